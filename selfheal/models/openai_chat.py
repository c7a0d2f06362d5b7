"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server) via langchain-openai.

Failures a user can fix (endpoint down, timeout, bad key, server error) come
out as one-line :class:`ModelError`s naming the endpoint, quickly: the connect
timeout is bounded separately from the (long) generation timeout, and retries
are few. Nothing here counts tokens: ChatOpenAI's ``get_num_tokens*`` use
tiktoken, which downloads its encodings on first use.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from selfheal.errors import ModelError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_ENDPOINT = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, the client insists on one
CONNECT_TIMEOUT_S = 10.0


def openai_endpoint(settings: Settings) -> str:
    return (settings.model.base_url or DEFAULT_ENDPOINT).rstrip("/")


def openai_model_name(settings: Settings) -> str:
    return settings.model.name or DEFAULT_MODEL


def _short(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's message: 'Connection refused' rather than 'Connection error.'."""
    seen = set()
    cur: BaseException | None = exc
    last = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        last = cur
        cur = cur.__cause__ or cur.__context__
    text = str(last) or type(last).__name__
    if "[Errno" in text and "]" in text:
        text = text.split("]", 1)[1].strip() or text
    return _short(text)


def _status_detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return _short(str(msg))
    response = getattr(exc, "response", None)
    try:
        text = response.text if response is not None else ""
    except Exception:  # the body may not have been read
        text = ""
    return _short(text or getattr(exc, "message", "") or str(exc))


def _has_request(exc: BaseException) -> bool:
    try:
        return getattr(exc, "request", None) is not None  # httpx raises when the request is unset
    except RuntimeError:
        return False


def as_model_error(exc: BaseException, *, endpoint: str | None = None) -> ModelError | None:
    """Translate a model client failure into a one-line ModelError; None if it is not one.

    Covers openai/httpx (connection, timeout, auth, HTTP status) and llama.cpp
    (context overflow, load failure). The agent loop calls this around
    ``model.invoke`` so a user sees the cause, not a traceback.
    """
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, json.JSONDecodeError):  # the client decodes the body of an HTTP 200 itself
        where = endpoint or "the model endpoint"
        return ModelError(f"model endpoint {where} answered with a body that is not JSON ({exc.msg})")
    openai = sys.modules.get("openai")
    if openai is not None and isinstance(exc, openai.OpenAIError):
        request = getattr(exc, "request", None)
        where = endpoint or (str(request.url) if request is not None else "the model endpoint")
        if isinstance(exc, openai.APITimeoutError):
            return ModelError(f"model endpoint {where} timed out: {_root_cause(exc)}")
        if isinstance(exc, openai.APIConnectionError):
            return ModelError(f"cannot reach model endpoint {where}: {_root_cause(exc)}")
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            detail = _status_detail(exc)
            if code in (401, 403):
                return ModelError(
                    f"model endpoint {where} rejected the API key (HTTP {code}): {detail}; check OPENAI_API_KEY"
                )
            if code == 404:
                return ModelError(f"model endpoint {where} answered HTTP 404 (unknown model or path?): {detail}")
            if code == 429:
                return ModelError(f"model endpoint {where} is rate limiting (HTTP 429): {detail}")
            if code >= 500:
                return ModelError(f"model endpoint {where} failed with HTTP {code}: {detail}")
            return ModelError(f"model endpoint {where} refused the request (HTTP {code}): {detail}")
        return ModelError(f"model endpoint {where}: {_short(str(exc))}")
    for mod_name in ("httpx", "httpx2"):
        mod = sys.modules.get(mod_name)
        if mod is None:
            continue
        if not isinstance(exc, mod.TransportError):  # TimeoutException is a TransportError
            continue
        where = endpoint or (str(exc.request.url) if _has_request(exc) else "the model endpoint")
        if isinstance(exc, mod.TimeoutException):
            return ModelError(f"model endpoint {where} timed out: {_root_cause(exc)}")
        return ModelError(f"cannot reach model endpoint {where}: {_root_cause(exc)}")
    if "selfheal.models.local_chat" in sys.modules:
        from selfheal.models.local_chat import local_model_error

        return local_model_error(exc)
    return None


@functools.cache
def _chat_openai_class() -> type[Any]:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import ChatGenerationChunk, ChatResult
    from langchain_openai import ChatOpenAI

    class SelfhealChatOpenAI(ChatOpenAI):
        """ChatOpenAI whose client failures surface as one-line ModelErrors."""

        def _endpoint(self) -> str:
            return str(self.openai_api_base or DEFAULT_ENDPOINT).rstrip("/")

        def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
            payload = super()._get_request_payload(input_, stop=stop, **kwargs)
            # Self-hosted servers (llama.cpp, older vLLM/Ollama) only read the legacy name.
            if self.openai_api_base and "max_completion_tokens" in payload:
                payload.setdefault("max_tokens", payload["max_completion_tokens"])
            return payload

        def _create_chat_result(self, response: Any, generation_info: dict | None = None) -> ChatResult:
            # An HTTP 200 whose body is not a chat completion (an HTML error page from a proxy,
            # JSON of another shape) fails deep in langchain with ValueError/TypeError/AttributeError.
            try:
                return super()._create_chat_result(response, generation_info)
            except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
                raise ModelError(
                    f"model endpoint {self._endpoint()} answered with something that is not a chat completion: "
                    f"{_short(str(exc), 120)}"
                ) from None

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            try:
                return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
            except Exception as exc:
                err = as_model_error(exc, endpoint=self._endpoint())
                if err is None or err is exc:
                    raise
                raise err from exc

        async def _agenerate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: AsyncCallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            try:
                return await super()._agenerate(messages, stop=stop, run_manager=run_manager, **kwargs)
            except Exception as exc:
                err = as_model_error(exc, endpoint=self._endpoint())
                if err is None or err is exc:
                    raise
                raise err from exc

        def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
            try:
                yield from super()._stream(*args, **kwargs)
            except Exception as exc:
                err = as_model_error(exc, endpoint=self._endpoint())
                if err is None or err is exc:
                    raise
                raise err from exc

        def get_num_tokens_from_messages(self, *args: Any, **kwargs: Any) -> int:
            # tiktoken would download its encodings here; budgets use selfheal.tokens.
            from selfheal.tokens import count_tokens

            messages = args[0] if args else kwargs.get("messages", [])
            return sum(count_tokens(str(getattr(m, "content", m))) + 4 for m in messages)

        def get_token_ids(self, text: str) -> list[int]:
            raise NotImplementedError("selfheal never tokenizes through tiktoken; use selfheal.tokens")

    return SelfhealChatOpenAI


def make_openai_chat(settings: Settings) -> BaseChatModel:
    """ChatOpenAI configured from ``settings.model`` (no network until the first call)."""
    import openai

    m = settings.model
    api_key = m.api_key.get_secret_value() if m.api_key is not None else None
    if not api_key:
        if not m.base_url:
            raise ModelError(
                "model.provider is openai but neither OPENAI_API_KEY nor model.base_url (OPENAI_BASE_URL) is set"
            )
        api_key = PLACEHOLDER_KEY
    timeout = openai.Timeout(m.timeout_s, connect=min(m.timeout_s, CONNECT_TIMEOUT_S))
    cls = _chat_openai_class()
    return cls(
        model=openai_model_name(settings),
        base_url=m.base_url or None,
        api_key=api_key,
        timeout=timeout,
        max_retries=m.max_retries,
        temperature=m.temperature,
        max_tokens=m.max_tokens,
    )
