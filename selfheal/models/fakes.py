"""Deterministic chat model for tests and benchmarks: a script of responses.

Each call consumes the next entry: an AIMessage (returned as a copy), a string
(a plain text reply) or a callable that receives the conversation and returns
an AIMessage (to answer from what the agent did, e.g. echo a tool result).
Calls, bound tools and tool choices are recorded for assertions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

from selfheal.tokens import count_tokens

ScriptEntry = AIMessage | str | Callable[[list[BaseMessage]], AIMessage]


class ScriptExhaustedError(AssertionError):
    """The code under test made more model calls than the script provides."""


def _text(content: Any) -> str:
    return content if isinstance(content, str) else str(content)


class ScriptedChatModel(BaseChatModel):
    """Replies from a fixed script; ``repeat=True`` cycles it (benchmarks)."""

    responses: list[Any] = Field(default_factory=list)
    latency_s: float = 0.0
    repeat: bool = False
    model_name: str = "scripted"

    _index: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _calls: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _bound_tools: list[dict[str, Any]] = PrivateAttr(default_factory=list)
    _tool_choice: Any = PrivateAttr(default=None)

    def __init__(self, responses: Sequence[ScriptEntry] | None = None, **kwargs: Any) -> None:
        super().__init__(responses=list(responses or []), **kwargs)  # type: ignore[call-arg]

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    # -- what the test can inspect --

    @property
    def calls(self) -> list[dict[str, Any]]:
        """One entry per call: ``{"messages": [...], "kwargs": {...}}``."""
        return list(self._calls)

    @property
    def call_count(self) -> int:
        return len(self._calls)

    @property
    def bound_tools(self) -> list[dict[str, Any]]:
        """OpenAI-format schemas of the tools last bound with ``bind_tools``."""
        return list(self._bound_tools)

    @property
    def bound_tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self._bound_tools]

    @property
    def tool_choice(self) -> Any:
        return self._tool_choice

    @property
    def remaining(self) -> int:
        return max(0, len(self.responses) - self._index)

    # -- chat model --

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        self._bound_tools = formatted
        self._tool_choice = tool_choice
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _next_entry(self, messages: list[BaseMessage]) -> Any:
        with self._lock:
            n = len(self._calls)
            if self._index >= len(self.responses):
                if self.repeat and self.responses:
                    self._index = 0
                else:
                    last = messages[-1] if messages else None
                    excerpt = _text(last.content)[:80] if last is not None else ""
                    raise ScriptExhaustedError(
                        f"ScriptedChatModel: call #{n} but the script has only {len(self.responses)} "
                        f"response(s); last message {last.type if last else '-'}: {excerpt!r}"
                    )
            entry = self.responses[self._index]
            self._index += 1
            return entry

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            self._calls.append({"messages": list(messages), "kwargs": dict(kwargs), "stop": stop})
        entry = self._next_entry(messages)
        if self.latency_s:
            time.sleep(self.latency_s)
        if callable(entry) and not isinstance(entry, BaseMessage):
            message = entry(list(messages))
        elif isinstance(entry, str):
            message = AIMessage(content=entry)
        elif isinstance(entry, AIMessage):
            message = entry.model_copy(deep=True)
        else:
            raise TypeError(f"ScriptedChatModel: unsupported script entry {type(entry).__name__}")
        if not isinstance(message, AIMessage):
            raise TypeError(f"ScriptedChatModel: a script callable returned {type(message).__name__}, not AIMessage")
        updates: dict[str, Any] = {}
        if message.tool_calls and any(not tc.get("id") for tc in message.tool_calls):
            updates["tool_calls"] = [
                {**tc, "id": tc.get("id") or f"call_{len(self._calls)}_{i}"} for i, tc in enumerate(message.tool_calls)
            ]
        if message.usage_metadata is None:
            prompt = sum(count_tokens(_text(m.content)) for m in messages)
            completion = count_tokens(_text(message.content)) + sum(
                count_tokens(str(tc["args"])) + 1 for tc in message.tool_calls
            )
            updates["usage_metadata"] = {
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
            }
        if updates:
            message = message.model_copy(update=updates)
        return ChatResult(generations=[ChatGeneration(message=message)])
