"""Record/replay cache of chat responses: deterministic, offline, reviewable runs.

``record`` calls the real model and stores each response as a small pretty
JSON file ``<cache_dir>/<key[:2]>/<key>.json``; ``replay`` serves only from
those files and never builds the real model (CI replays an evaluation with no
weights and no API key); ``auto`` serves what was recorded and calls (and
records) the real model for any request it has not seen, so an edited prompt
runs live while the unchanged ones replay. The key is the sha256 of the canonical JSON of the
model identity, the conversation (type, content, tool calls, tool call ids),
the bound tools (full schemas: a changed tool description is a new request)
and the generation parameters. Tool-call ids are renumbered by first
appearance, so a provider's random ids do not change the keys of later steps.

Recordings are committed, so nothing secret may reach them: the conversation is
redacted (``selfheal.redact``, stable placeholders such as
``[REDACTED:aws_secret_access_key]``) *before* the key is computed, and the
response before it is written. The same task with the same secret therefore
has the same key on record and on replay, and a replayed response carries the
placeholders, never the secret.

Every response the wrapper returns says where it came from and what it cost in
its ``response_metadata``: ``cache`` ("record" or "replay") and ``generation_s``
(measured now, or as recorded; absent for a recording older than that field).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from selfheal.errors import CacheMissError, FileFormatError
from selfheal.models.structured import StructuredMethod, structured_runnable
from selfheal.redact import Redactor, make_redactor

KEY_VERSION = 1
CacheMode = Literal["record", "replay", "auto"]
_NOT_KEYED = ("tools",)  # keyed separately


# -- the stored file ------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StoredMessage(_Record):
    """The response, enough to rebuild the AIMessage an agent consumed."""

    content: str | list[Any] = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    invalid_tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    usage_metadata: dict[str, Any] | None = None
    response_metadata: dict[str, Any] = Field(default_factory=dict)


class RequestSummary(_Record):
    """What was asked, for a reviewer reading the diff (the key covers the full request)."""

    messages: int
    last: dict[str, Any]
    tools: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)


class CachedResponse(_Record):
    key: str
    model: str
    recorded_at: str
    request: RequestSummary
    response: StoredMessage
    #: Seconds the model took to generate the response when it was recorded (None: recorded before
    #: this was kept). A replay takes no time; this is what the run would have cost live.
    generation_s: float | None = None


# -- keys -----------------------------------------------------------------------


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """The parts of a conversation that determine the response, ids renumbered."""
    ids: dict[str, str] = {}

    def cid(raw: Any) -> str | None:
        if raw is None:
            return None
        key = str(raw)
        if key not in ids:
            ids[key] = f"call_{len(ids)}"
        return ids[key]

    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"type": m.type, "content": m.content}
        if isinstance(m, AIMessage):
            if m.tool_calls:
                item["tool_calls"] = [
                    {"name": tc["name"], "args": tc["args"], "id": cid(tc.get("id"))} for tc in m.tool_calls
                ]
            if m.invalid_tool_calls:
                item["invalid_tool_calls"] = [
                    {"name": tc.get("name"), "args": tc.get("args"), "id": cid(tc.get("id"))}
                    for tc in m.invalid_tool_calls
                ]
        tool_call_id = getattr(m, "tool_call_id", None)
        if tool_call_id is not None:
            item["tool_call_id"] = cid(tool_call_id)
        out.append(item)
    return out


def request_key(
    identity: str,
    messages: Sequence[BaseMessage],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    params: Mapping[str, Any] | None = None,
) -> str:
    """sha256 of the canonical request; equal across processes and machines."""
    payload = {
        "v": KEY_VERSION,
        "model": identity,
        "messages": canonical_messages(messages),
        "tools": list(tools or []),
        "params": {k: v for k, v in sorted((params or {}).items()) if v is not None},
    }
    return hashlib.sha256(_canonical_json(payload).encode("utf-8")).hexdigest()


def _excerpt(message: BaseMessage | None, limit: int = 80) -> str:
    if message is None:
        return "(no messages)"
    text = message.content if isinstance(message.content, str) else _canonical_json(message.content)
    if not text and isinstance(message, AIMessage) and message.tool_calls:
        text = ", ".join(tc["name"] for tc in message.tool_calls)
    text = " ".join(text.split())
    return f"{message.type}: {text if len(text) <= limit else text[: limit - 1] + '…'!r}"


def _to_stored(message: AIMessage) -> StoredMessage:
    meta = {k: message.response_metadata[k] for k in ("finish_reason", "model_name", "model_provider")
            if message.response_metadata.get(k) is not None}
    return StoredMessage(
        content=message.content,
        tool_calls=[{"name": tc["name"], "args": tc["args"], "id": tc.get("id")} for tc in message.tool_calls],
        invalid_tool_calls=[
            {k: tc.get(k) for k in ("name", "args", "id", "error")} for tc in message.invalid_tool_calls
        ],
        usage_metadata=dict(message.usage_metadata) if message.usage_metadata else None,
        response_metadata=json.loads(_canonical_json(meta)),
    )


def _from_stored(stored: StoredMessage, generation_s: float | None = None) -> AIMessage:
    timing = {} if generation_s is None else {"generation_s": generation_s}
    return AIMessage(
        content=stored.content,
        tool_calls=[{"name": tc["name"], "args": tc["args"], "id": tc.get("id"), "type": "tool_call"}
                    for tc in stored.tool_calls],
        invalid_tool_calls=[{**tc, "type": "invalid_tool_call"} for tc in stored.invalid_tool_calls],
        usage_metadata=stored.usage_metadata,  # type: ignore[arg-type]
        response_metadata={**stored.response_metadata, "cache": "replay", **timing},
    )


# -- the wrapper ----------------------------------------------------------------


class CachedChatModel(BaseChatModel):
    """Wraps a chat model (built lazily by ``inner_factory``) with a record/replay cache."""

    identity: str
    mode: CacheMode
    cache_dir: Path
    inner_factory: Callable[[], BaseChatModel]
    params: dict[str, Any] = Field(default_factory=dict)
    structured_method: StructuredMethod = "function_calling"
    #: Redacts requests before keying and responses before writing; None stores them verbatim.
    redactor: Redactor | None = Field(default_factory=make_redactor, exclude=True)

    _inner: BaseChatModel | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def wrap(cls, inner: BaseChatModel, *, identity: str, mode: CacheMode, cache_dir: Path,
             **kwargs: Any) -> CachedChatModel:
        """Wrap an already-built model."""
        return cls(identity=identity, mode=mode, cache_dir=Path(cache_dir), inner_factory=lambda: inner, **kwargs)

    @property
    def _llm_type(self) -> str:
        return "selfheal-cached"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"identity": self.identity, "mode": self.mode, **self.params}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        provider, _, rest = self.identity.partition(":")
        params = LangSmithParams(ls_provider=provider, ls_model_name=rest.split("@", 1)[0], ls_model_type="chat")
        if self.params.get("temperature") is not None:
            params["ls_temperature"] = self.params["temperature"]
        if self.params.get("max_tokens") is not None:
            params["ls_max_tokens"] = self.params["max_tokens"]
        if stop:
            params["ls_stop"] = stop
        return params

    @property
    def inner(self) -> BaseChatModel:
        """The real model, built on first need (never in replay)."""
        with self._lock:
            if self._inner is None:
                self._inner = self.inner_factory()
            return self._inner

    def path_for(self, key: str) -> Path:
        return Path(self.cache_dir) / key[:2] / f"{key}.json"

    def redacted(self, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        """The conversation as it is keyed and summarised: secrets replaced by placeholders."""
        if self.redactor is None:
            return list(messages)
        return list(self.redactor.redact_deep(list(messages)))

    def key_for(
        self, messages: Sequence[BaseMessage], stop: list[str] | None = None, *, redact: bool = True, **kwargs: Any
    ) -> str:
        """The request's key, computed on the redacted conversation (same secret, same key).

        ``redact=False`` gives the key recordings made before redaction have.
        """
        if redact:
            messages = self.redacted(messages)
        tools = kwargs.get("tools") or []
        params = {**self.params, **{k: v for k, v in kwargs.items() if k not in _NOT_KEYED and not k.startswith("ls_")}}
        if stop:
            params["stop"] = list(stop)
        return request_key(self.identity, messages, tools=tools, params=params)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind on the wrapper (tools become part of the key); the inner model binds at call time."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def with_structured_output(  # type: ignore[override]
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: StructuredMethod | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        kwargs.pop("strict", None)
        if kwargs:
            raise ValueError(f"unsupported arguments: {sorted(kwargs)}")
        return structured_runnable(self, schema, method=method or self.structured_method, include_raw=include_raw)

    # -- storage --

    def load(self, key: str) -> CachedResponse | None:
        path = self.path_for(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return CachedResponse.model_validate_json(text)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err.get("loc", ()))
            raise FileFormatError(path, None, f"invalid cached response ({loc}: {err['msg']})") from None

    def store(self, key: str, messages: Sequence[BaseMessage], message: AIMessage, *,
              generation_s: float | None = None, **kwargs: Any) -> Path:
        from selfheal.yamlio import atomic_write_text

        tools = kwargs.get("tools") or []
        params = {k: v for k, v in kwargs.items() if k not in _NOT_KEYED and not k.startswith("ls_")}
        messages = self.redacted(messages)
        response = _to_stored(message)
        if self.redactor is not None:
            response = StoredMessage.model_validate(self.redactor.redact(response.model_dump(mode="json")))
        record = CachedResponse(
            key=key,
            model=self.identity,
            recorded_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            request=RequestSummary(
                messages=len(messages),
                last=canonical_messages(messages)[-1] if messages else {},
                tools=[t.get("function", {}).get("name", "") for t in tools],
                params=json.loads(_canonical_json({**self.params, **params})),
            ),
            response=response,
            generation_s=generation_s,
        )
        path = self.path_for(key)
        atomic_write_text(path, json.dumps(record.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
        return path

    # -- generation --

    def _call_inner(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any) -> AIMessage:
        inner = self.inner
        tools = kwargs.pop("tools", None)
        call_kwargs = {k: v for k, v in kwargs.items() if not k.startswith("ls_")}
        if tools:
            tool_choice = call_kwargs.pop("tool_choice", None)
            bound = inner.bind_tools(tools, tool_choice=tool_choice, **call_kwargs)
            if isinstance(bound, RunnableBinding) and bound.bound is inner:
                call_kwargs = dict(bound.kwargs)
            else:  # an exotic bind_tools: let it run the call itself
                result = bound.invoke(messages, stop=stop)
                assert isinstance(result, AIMessage)
                return result
        # Call the inner generation directly: the wrapper's own run is the traced LLM run.
        out = inner._generate(messages, stop=stop, **call_kwargs)
        message = out.generations[0].message
        if not isinstance(message, AIMessage):  # pragma: no cover - chat models return AIMessage
            message = AIMessage(content=message.content)
        return message

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        from selfheal.models.cache_manifest import note_key

        key = self.key_for(messages, stop, **kwargs)
        cached = None
        if self.mode in ("replay", "auto"):
            cached = self.load(key)
            if cached is None and self.redactor is not None:
                # A recording made before keys were redacted (identical unless the request held a finding).
                legacy = self.key_for(messages, stop, redact=False, **kwargs)
                if legacy != key and (cached := self.load(legacy)) is not None:
                    key = legacy
        if cached is not None:
            note_key(self.cache_dir, key, "replay")
            message = _from_stored(cached.response, cached.generation_s)
        elif self.mode == "replay":
            raise CacheMissError(
                f"replay: no recorded response {key[:12]} for model {self.identity} "
                f"(last message {_excerpt(self.redacted(messages[-1:])[0] if messages else None)})"
                f" under {self.cache_dir}; "
                "record it with model.cache_mode=record"
            )
        else:
            started = time.perf_counter()
            message = self._call_inner(list(messages), stop, **kwargs)
            seconds = round(time.perf_counter() - started, 3)
            self.store(key, messages, message, generation_s=seconds, **kwargs)
            note_key(self.cache_dir, key, "record")
            message = message.model_copy(update={"response_metadata": {
                **message.response_metadata, "cache": "record", "generation_s": seconds}})
        return ChatResult(generations=[ChatGeneration(message=message)], llm_output={"cache_key": key})
