"""Chat model providers: OpenAI-compatible endpoints, the embedded llama.cpp model,
the record/replay response cache and scripted fakes.

Names are resolved lazily so importing :mod:`selfheal.models` costs nothing:
LangChain, openai and llama_cpp load only when a model is built.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "resolve_provider": "selfheal.models.providers",
    "make_chat_model": "selfheal.models.providers",
    "make_base_chat_model": "selfheal.models.providers",
    "model_identity": "selfheal.models.providers",
    "as_model_error": "selfheal.models.openai_chat",
    "ensure_local_weights": "selfheal.models.local_weights",
    "CachedChatModel": "selfheal.models.cache",
    "ChatLlamaCpp": "selfheal.models.local_chat",
    "ScriptedChatModel": "selfheal.models.fakes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'selfheal.models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
