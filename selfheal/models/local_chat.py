"""The embedded chat model: a GGUF served by selfheal's own model process, as a LangChain chat model.

llama.cpp never runs inside selfheal: :class:`ChatLlamaCpp` sends OpenAI-shaped
requests to a child process (:mod:`selfheal.models.local_process`) that
selfheal starts, shares between every instance and thread, and stops at exit.
A crash of native code (segfault, SIGILL, OOM) kills only the child and comes
back as one ``ModelError``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from selfheal.errors import ModelError
from selfheal.models.llama_tools import SELFHEAL_CHAT_FORMAT, compact_tool
from selfheal.models.tool_protocols import SELFHEAL_FORMATS
from selfheal.models.local_process import LocalModelProcess, LocalModelRequestError, ModelProcessSpec
from selfheal.models.local_weights import INSTALL_HINT, MODEL_ID
from selfheal.models.structured import StructuredMethod, structured_runnable

_CALL_KWARGS = {"temperature", "max_tokens", "top_p", "top_k", "min_p", "seed", "repeat_penalty",
                "presence_penalty", "frequency_penalty"}
_CTX_OVERFLOW = re.compile(r"Requested tokens \((\d+)\) exceed context window of (\d+)")


def llama_cpp_installed() -> bool:
    """Whether the model process can import llama-cpp-python (checked here: its error is clearer)."""
    return importlib.util.find_spec("llama_cpp") is not None


@functools.cache
def default_threads() -> int:
    """Threads for the model processes: the CPUs not busy when the first one starts (``local_process.free_cpus``).

    Decided once per selfheal process: the thread count is part of a process's
    spec, so a default that followed the load average gave the second run of an
    eval (the first model process now busy) another spec, and a second model
    process, competing with the first for the same cores.
    """
    from selfheal.models.local_process import free_cpus

    return free_cpus()


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, Mapping) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages -> OpenAI chat messages (tool calls with JSON-string arguments)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": _content_text(m.content)})
        elif isinstance(m, AIMessage):
            msg: dict[str, Any] = {"role": "assistant", "content": _content_text(m.content) or None}
            calls = [
                {"id": tc.get("id") or f"call_{i}", "type": "function",
                 "function": {"name": tc["name"], "arguments": json.dumps(tc["args"], ensure_ascii=False)}}
                for i, tc in enumerate(m.tool_calls)
            ]
            calls += [
                {"id": tc.get("id") or f"invalid_{i}", "type": "function",
                 "function": {"name": tc.get("name") or "", "arguments": tc.get("args") or ""}}
                for i, tc in enumerate(m.invalid_tool_calls)
            ]
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
        elif isinstance(m, ToolMessage):
            msg = {"role": "tool", "tool_call_id": m.tool_call_id, "content": _content_text(m.content)}
            if m.name:
                msg["name"] = m.name
            out.append(msg)
        elif isinstance(m, HumanMessage) or m.type in ("human", "user", "chat"):
            out.append({"role": "user", "content": _content_text(m.content)})
        else:
            raise ValueError(f"unsupported message type for the local model: {m.type}")
    return out


def message_from_completion(response: Mapping[str, Any], *, model_name: str = "") -> AIMessage:
    """An OpenAI-shaped chat completion -> AIMessage with parsed (or invalid) tool calls and usage."""
    choice = response["choices"][0]
    msg = choice.get("message") or {}
    raw_calls = list(msg.get("tool_calls") or [])
    if not raw_calls and msg.get("function_call"):
        fc = msg["function_call"]
        raw_calls = [{"id": None, "function": {"name": fc.get("name"), "arguments": fc.get("arguments")}}]
    calls, invalid = [], []
    for i, tc in enumerate(raw_calls):
        fn = tc.get("function") or {}
        name = str(fn.get("name") or "").rstrip(":")
        raw = fn.get("arguments")
        call_id = tc.get("id") or f"call_{i}"
        try:
            args = raw if isinstance(raw, dict) else json.loads(raw or "{}")
            if not isinstance(args, dict):
                raise ValueError(f"expected a JSON object, got {type(args).__name__}")
        except ValueError as exc:
            text = raw if isinstance(raw, str) else json.dumps(raw)
            invalid.append(invalid_tool_call(name=name, args=text, id=call_id,
                                             error=f"malformed JSON arguments: {exc}"))
            continue
        calls.append(tool_call(name=name, args=args, id=call_id))
    usage = response.get("usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    return AIMessage(
        content=msg.get("content") or "",
        tool_calls=calls,
        invalid_tool_calls=invalid,
        usage_metadata={
            "input_tokens": prompt_tokens,
            "output_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        response_metadata={
            "finish_reason": choice.get("finish_reason"),
            "model_name": model_name or response.get("model", ""),
            "model_provider": "llama-cpp",
        },
    )


def _llama_tool_choice(tool_choice: Any, *, own_handler: bool) -> Any:
    """LangChain tool_choice -> what the handler accepts.

    llama-cpp-python's stock formats only honour "auto" (omitted ignores the
    tools, "required" fails); our handler also supports "required" and names.
    """
    if tool_choice in (None, "auto"):
        return "auto"
    if tool_choice in ("none", False):
        return "none"
    if tool_choice in ("any", "required", True):
        return "required" if own_handler else "auto"
    if isinstance(tool_choice, str):
        return {"type": "function", "function": {"name": tool_choice}}
    return tool_choice


class ChatLlamaCpp(BaseChatModel):
    """A GGUF chat model in-process (default: the embedded Qwen2.5-Coder-1.5B-Instruct)."""

    model_path: str
    model_name: str = MODEL_ID
    n_ctx: int = 4096
    n_threads: int | None = None
    seed: int = 0
    temperature: float = 0.0
    max_tokens: int = 512
    repeat_penalty: float = 1.0
    chat_format: str = SELFHEAL_CHAT_FORMAT
    tool_bias: float = 1.0
    #: "compact": tools are bound with their descriptions cut to the first sentence
    tool_descriptions: Literal["full", "compact"] = "full"
    max_tool_calls: int = Field(default=1, ge=1)
    #: Where the model process keeps fixed-prefix KV states (None: ~/.cache/selfheal/kv; "" disables).
    state_dir: str | None = None
    request_timeout_s: float | None = None
    #: Model processes shared by this model's threads (each thread's conversations stay in one).
    processes: int = Field(default=1, ge=1)

    @property
    def _llm_type(self) -> str:
        return "llama-cpp"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "n_ctx": self.n_ctx,
            "seed": self.seed,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "chat_format": self.chat_format,
            "tool_descriptions": self.tool_descriptions,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="llama-cpp",
            ls_model_name=self.model_name,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stop:
            params["ls_stop"] = stop
        return params

    def process_spec(self) -> ModelProcessSpec:
        from selfheal.models.local_process import default_state_dir

        return ModelProcessSpec(
            model_path=os.path.realpath(self.model_path),
            model_name=self.model_name,
            n_ctx=self.n_ctx,
            threads=self.n_threads or max(1, default_threads() // self.processes),
            seed=self.seed,
            tool_bias=self.tool_bias,
            max_tool_calls=self.max_tool_calls,
            state_dir=self.state_dir if self.state_dir is not None else str(default_state_dir()),
            chat_format=self.chat_format,
        )

    def process(self) -> LocalModelProcess:
        """The model process serving this model (started on first use, shared process-wide)."""
        from selfheal.models.local_process import model_process

        if not os.path.isfile(self.model_path):
            raise ModelError(f"local model file not found: {self.model_path}")
        if not llama_cpp_installed():
            raise ModelError(
                "the embedded model needs llama-cpp-python: "
                f"{INSTALL_HINT} (or set OPENAI_API_KEY / OPENAI_BASE_URL for an OpenAI-compatible endpoint)"
            )
        return model_process(self.process_spec(), self.processes)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        if self.tool_descriptions == "compact":
            formatted = [compact_tool(t) for t in formatted]
        choice = _llama_tool_choice(tool_choice, own_handler=self.chat_format in SELFHEAL_FORMATS)
        return self.bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(  # type: ignore[override]
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: StructuredMethod = "json_object",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Grammar-constrained JSON (``response_format`` json_object + schema)."""
        kwargs.pop("strict", None)
        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        return structured_runnable(self, schema, method=method, include_raw=include_raw)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params: dict[str, Any] = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "repeat_penalty": self.repeat_penalty,
        }
        params.update({k: v for k, v in kwargs.items() if k in _CALL_KWARGS})
        tools = kwargs.get("tools") or None
        request: dict[str, Any] = {"messages": to_openai_messages(messages), "stop": stop, **params}
        if tools:
            request["tools"] = tools
            request["tool_choice"] = kwargs.get("tool_choice") or "auto"
        if kwargs.get("response_format"):
            request["response_format"] = kwargs["response_format"]
        try:
            response = self.process().request(
                "POST", "/v1/chat/completions", request, timeout=self.request_timeout_s
            )
        except LocalModelRequestError as exc:
            raise local_model_error(exc, model=self.model_name) or ModelError(
                f"local model {self.model_name}: {exc}"
            ) from None
        message = message_from_completion(response, model_name=self.model_name)
        return ChatResult(
            generations=[ChatGeneration(message=message)],
            llm_output={"model_name": self.model_name, "token_usage": response.get("usage")},
        )


def local_model_error(exc: BaseException, *, model: str = MODEL_ID) -> ModelError | None:
    """One-line ModelError for llama.cpp failures a user can fix (context overflow, load failure)."""
    text = str(exc)
    m = _CTX_OVERFLOW.search(text)
    if m:
        return ModelError(
            f"local model {model}: the prompt needs {m.group(1)} tokens but the context window is "
            f"{m.group(2)}; raise model.n_ctx in selfheal.yaml or shorten the context"
        )
    if "Failed to load model" in text or "failed to load model" in text:
        return ModelError(f"cannot load local model {model}: {text.splitlines()[0]}")
    return None
