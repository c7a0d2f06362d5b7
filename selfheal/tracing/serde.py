"""JSON and timestamp encoding for stored traces.

Run payloads hold whatever flowed through the graph: LangChain messages,
pydantic models, datetimes, exceptions, boto3 responses with bytes. They are
encoded by pydantic-core in Rust (fast enough to run inside every traced
call), anything unknown falls back to its ``repr``, NaN/inf become null so
SQLite's JSON functions accept every stored document, and an oversized payload
is cut down with a visible marker instead of bloating the store.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic_core

#: Default ceiling for one stored JSON field (inputs, outputs, ...), in characters.
MAX_PAYLOAD_CHARS = 1_000_000
#: When a payload is over the ceiling, strings longer than this are cut first.
MAX_STRING_CHARS = 10_000
#: Characters of the original kept when a payload has to be replaced whole.
PREVIEW_CHARS = 2_000
TRUNCATED_KEY = "__truncated__"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_REPR_LIMIT = 2_000


def _fallback(obj: Any) -> Any:
    """Last resort for objects pydantic-core cannot encode."""
    if isinstance(obj, BaseException):
        return {"type": type(obj).__name__, "message": str(obj)[:_REPR_LIMIT]}
    try:
        text = repr(obj)
    except Exception:  # a broken __repr__ must not lose the whole run
        text = f"<{type(obj).__name__}>"
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT] + "..."


def _encode(value: Any) -> str:
    try:
        raw = pydantic_core.to_json(
            value,
            serialize_unknown=True,
            fallback=_fallback,
            bytes_mode="base64",
            inf_nan_mode="null",
            serialize_as_any=True,  # a message declared BaseMessage keeps its AIMessage fields
        )
        return raw.decode("utf-8")
    except Exception:  # e.g. a model whose own serializer raises
        return json.dumps(value, default=_fallback, ensure_ascii=False, allow_nan=False)


def plain(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, strings, numbers), however it was typed."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.loads(_encode(value))


def _shrink(value: Any, max_str: int) -> Any:
    if isinstance(value, str):
        if len(value) > max_str:
            return f"{value[:max_str]}...[truncated {len(value) - max_str} chars]"
        return value
    if isinstance(value, dict):
        return {k: _shrink(v, max_str) for k, v in value.items()}
    if isinstance(value, list):
        return [_shrink(v, max_str) for v in value]
    return value


def dumps(value: Any, *, limit: int = MAX_PAYLOAD_CHARS) -> str | None:
    """Encode ``value`` as JSON text of at most about ``limit`` characters (None stays None).

    Over the limit, long strings are cut first so the structure survives; if
    that is not enough the whole value becomes ``{"__truncated__": true,
    "original_chars": n, "preview": ...}``.
    """
    if value is None:
        return None
    text = _encode(value)
    if len(text) <= limit:
        return text
    original = len(text)
    shrunk = json.dumps(
        _shrink(json.loads(text), min(MAX_STRING_CHARS, limit // 4)), ensure_ascii=False
    )
    if len(shrunk) <= limit:
        return shrunk
    return json.dumps(
        {
            TRUNCATED_KEY: True,
            "original_chars": original,
            "preview": text[: min(PREVIEW_CHARS, limit)],
        },
        ensure_ascii=False,
    )


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def is_truncated(value: Any) -> bool:
    """Whether a stored payload was replaced whole by the truncation marker."""
    return isinstance(value, dict) and value.get(TRUNCATED_KEY) is True


def as_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC (LangChain and LangSmith produce UTC)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    """Fixed-width ISO-8601 UTC text, so text order equals time order in SQL."""
    if dt is None:
        return None
    if dt.tzinfo is not UTC:
        dt = as_utc(dt)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def epoch_us(dt: datetime | None) -> int | None:
    """Microseconds since the epoch, for duration arithmetic in SQL."""
    if dt is None:
        return None
    return (as_utc(dt) - _EPOCH) // _MICROSECOND


def parse_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
