"""Ask a chat model for one JSON object, by whatever means its backend supports.

llama.cpp (embedded, or wrapped by the response cache as ``json_object``)
constrains the output with ``response_format={"type": "json_object",
"schema": ...}``; OpenAI-compatible endpoints get a forced function call (what
providers.py picks for them); anything else (a test fake, an unknown wrapper)
is asked in plain text. Whatever comes back, the first JSON object in the
text is the fallback: small models like to wrap JSON in prose or fences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from selfheal.errors import ModelError

JsonMethod = Literal["json_object", "function_calling", "text"]
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


class JsonOutputError(ValueError):
    """The model's reply holds no JSON object."""


def json_method(model: Any) -> JsonMethod:
    """How to ask ``model`` for JSON (see the module docstring)."""
    declared = getattr(model, "structured_method", None)
    if declared in ("json_object", "function_calling"):
        return declared  # type: ignore[return-value]
    name = type(model).__name__
    if name == "ChatLlamaCpp":
        return "json_object"
    if name in ("ChatOpenAI", "AzureChatOpenAI"):
        return "function_calling"
    return "text"


def first_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (inside a fence first, prose around it ignored)."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        start = chunk.find("{")
        while start >= 0:
            try:
                obj, _ = decoder.raw_decode(chunk[start:])
            except ValueError:
                start = chunk.find("{", start + 1)
                continue
            if isinstance(obj, dict):
                return obj
            start = chunk.find("{", start + 1)
    return None


def _text(reply: Any) -> str:
    content = getattr(reply, "content", reply)
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return str(content)


LEARNER_MAX_TOKENS = 1024


def invoke_json(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    schema: dict[str, Any],
    *,
    name: str,
    config: Any = None,
) -> tuple[dict[str, Any], str]:
    """(the parsed object, the raw reply text); raises JsonOutputError or ModelError."""
    from selfheal.models.openai_chat import as_model_error

    method = json_method(model)
    bound: Any
    if method == "json_object":
        # A curator's batch of operations outgrows an agent turn's token budget; a cut-off
        # JSON reply would only be rejected.
        bound = model.bind(response_format={"type": "json_object", "schema": schema},
                           max_tokens=LEARNER_MAX_TOKENS)
    elif method == "function_calling":
        tool = {"type": "function", "function": {"name": name, "description": schema.get("description", name),
                                                  "parameters": schema}}
        bound = model.bind_tools([tool], tool_choice=name)
    else:
        bound = model
    try:
        reply = bound.invoke(list(messages), config=config)
    except Exception as exc:
        err = as_model_error(exc)
        if err is None:
            raise
        raise err from None
    if isinstance(reply, AIMessage) and reply.tool_calls:
        args = reply.tool_calls[0].get("args")
        if isinstance(args, dict):
            return args, json.dumps(args)
    text = _text(reply)
    obj = first_json_object(text)
    if obj is None:
        excerpt = " ".join(text.split())[:120]
        raise JsonOutputError(f"no JSON object in the reply: {excerpt!r}" if excerpt else "empty reply")
    return obj, text


__all__ = ["JsonMethod", "JsonOutputError", "ModelError", "first_json_object", "invoke_json", "json_method"]
