"""Which chat model a run uses, built from settings.

``auto`` picks an OpenAI-compatible endpoint when OPENAI_API_KEY or
OPENAI_BASE_URL is configured (config.py maps them to ``model.api_key`` /
``model.base_url``), else the embedded local model, so a fresh checkout runs
offline. Heavy libraries are imported only when a model is built, keeping
``selfheal --help`` fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from selfheal.errors import ModelError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings

Provider = Literal["openai", "local"]


def resolve_provider(settings: Settings) -> Provider:
    """Explicit ``model.provider``; else openai when a key or base URL is set; else local."""
    m = settings.model
    if m.provider != "auto":
        return m.provider
    has_key = m.api_key is not None and bool(m.api_key.get_secret_value())
    return "openai" if has_key or bool(m.base_url) else "local"


def local_model_path(settings: Settings) -> Path | None:
    """The configured GGUF (relative to the repo root), or None for the embedded default."""
    if not settings.model.gguf_path:
        return None
    return settings.path(settings.model.gguf_path)


def model_identity(settings: Settings) -> str:
    """Stable name of the model a run talks to, e.g. ``openai:gpt-4o-mini@http://host/v1``.

    Part of every response-cache key and shown in reports, so recordings made
    against one model are never replayed for another.
    """
    if resolve_provider(settings) == "openai":
        from selfheal.models.openai_chat import openai_endpoint, openai_model_name

        return f"openai:{openai_model_name(settings)}@{openai_endpoint(settings)}"
    from selfheal.models.local_weights import MODEL_ID

    path = local_model_path(settings)
    name = f"local:{path.stem if path is not None else MODEL_ID}"
    from selfheal.config import ModelSettings

    m = settings.model
    # a protocol other than the default is another model as far as recorded responses go
    if m.chat_format != ModelSettings.model_fields["chat_format"].default:
        name += f"+{m.chat_format}"
    if m.tool_bias != ModelSettings.model_fields["tool_bias"].default:
        name += f"+bias{m.tool_bias:g}"
    if m.tool_descriptions != ModelSettings.model_fields["tool_descriptions"].default:
        name += f"+{m.tool_descriptions}"
    return name


def _check_gguf(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except FileNotFoundError:
        raise ModelError(f"model.gguf_path: {path} does not exist") from None
    except OSError as exc:
        raise ModelError(f"model.gguf_path: cannot read {path}: {exc.strerror or exc}") from None
    if magic != b"GGUF":
        raise ModelError(f"model.gguf_path: {path} is not a GGUF file")


def make_local_chat(settings: Settings) -> BaseChatModel:
    """ChatLlamaCpp for the configured GGUF or the embedded weights (assembled on first use)."""
    from selfheal.models.local_chat import ChatLlamaCpp
    from selfheal.models.local_weights import MODEL_ID, ensure_local_weights

    m = settings.model
    path = local_model_path(settings)
    if path is not None:
        _check_gguf(path)
    else:
        path = ensure_local_weights()
    return ChatLlamaCpp(
        model_path=str(path),
        model_name=MODEL_ID if m.gguf_path is None else path.stem,
        n_ctx=m.n_ctx,
        n_threads=m.n_threads,
        seed=m.seed,
        temperature=m.temperature,
        max_tokens=m.max_tokens,
        request_timeout_s=m.timeout_s,
        processes=m.processes,
        chat_format=m.chat_format,
        tool_bias=m.tool_bias,
        tool_descriptions=m.tool_descriptions,
    )


def make_base_chat_model(settings: Settings) -> BaseChatModel:
    """The provider's chat model, without the response cache."""
    if resolve_provider(settings) == "openai":
        from selfheal.models.openai_chat import make_openai_chat

        return make_openai_chat(settings)
    return make_local_chat(settings)


def make_chat_model(settings: Settings) -> BaseChatModel:
    """The chat model for a run; wrapped by the record/replay cache unless ``cache_mode`` is off.

    In replay mode the underlying model is never built (no weights loaded, no
    client created): every response must come from the cache.
    """
    mode = settings.model.cache_mode
    if mode == "off":
        return make_base_chat_model(settings)
    from selfheal.models.cache import CachedChatModel
    from selfheal.redact import make_redactor

    provider = resolve_provider(settings)
    return CachedChatModel(
        identity=model_identity(settings),
        mode=mode,
        cache_dir=settings.response_cache_dir,
        inner_factory=lambda: make_base_chat_model(settings),
        params={"temperature": settings.model.temperature, "max_tokens": settings.model.max_tokens},
        structured_method="json_object" if provider == "local" else "function_calling",
        redactor=make_redactor(settings) if settings.tracing.redact else None,
    )


def check_local_model(settings: Settings, *, tokens: int = 16) -> dict[str, object]:
    """Load the local model in its own process, generate a few tokens, and measure it.

    Returns the CPU features llama.cpp runs with and prompt/generation tokens
    per second. A model that cannot run — missing llama-cpp-python, missing
    weights, a build that crashes on this CPU — raises one ``ModelError``
    saying why (the crash stays in the child process).
    """
    chat = make_local_chat(settings)
    process = chat.process()  # type: ignore[attr-defined]
    try:
        speed = process.request("POST", "/selfheal/check", {"tokens": tokens}, timeout=settings.model.timeout_s)
        health = process.request("GET", "/health", timeout=30)
    finally:
        process.close()
    return {
        "model": health.get("model"),
        "model_path": health.get("model_path"),
        "threads": health.get("threads"),
        "load_s": health.get("load_s"),
        "cpu_features": health.get("cpu_features"),
        "system_info": health.get("system_info"),
        **speed,
    }
