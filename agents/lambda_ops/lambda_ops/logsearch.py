"""CloudWatch Logs search with FilterLogEvents, in 24-hour chunks.

Logs Insights (``stats``/``filter``) is not available everywhere (moto lacks
it, and it is asynchronous and billed per GB), so searches use
FilterLogEvents. A long window is split into 24 h chunks searched newest
first: one huge FilterLogEvents call over a week times out on busy groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

CHUNK_MS = 24 * 3600 * 1000
PAGE_LIMIT = 1000
MAX_PAGES_PER_CHUNK = 20
MAX_PAGES_PER_SEARCH = 40  # a broad pattern over 14 busy days must not take minutes
MESSAGE_CHARS = 240
_STREAM_VERSION = re.compile(r"\[([^\]]+)\]")


def log_group(function_name: str) -> str:
    return f"/aws/lambda/{function_name}"


def time_chunks(start_ms: int, end_ms: int, chunk_ms: int = CHUNK_MS) -> list[tuple[int, int]]:
    """[start, end) split into chunks of at most ``chunk_ms``, newest first."""
    chunks: list[tuple[int, int]] = []
    hi = end_ms
    while hi > start_ms:
        lo = max(start_ms, hi - chunk_ms)
        chunks.append((lo, hi))
        hi = lo
    return chunks


@dataclass
class ChunkResult:
    events: list[dict[str, Any]]
    truncated: bool
    pages: int


def filter_chunk(
    logs: Any, group: str, pattern: str, start_ms: int, end_ms: int, max_pages: int = MAX_PAGES_PER_CHUNK
) -> ChunkResult:
    """All matching events of one chunk, oldest first (at most ``max_pages`` pages)."""
    kwargs: dict[str, Any] = {
        "logGroupName": group,
        "startTime": start_ms,
        "endTime": end_ms - 1,
        "limit": PAGE_LIMIT,
    }
    if pattern:
        kwargs["filterPattern"] = pattern
    events: list[dict[str, Any]] = []
    pages = max(1, max_pages)
    for page in range(1, pages + 1):
        resp = logs.filter_log_events(**kwargs)
        events.extend(resp.get("events", []))
        token = resp.get("nextToken")
        if not token:
            return ChunkResult(sorted(events, key=lambda e: e["timestamp"]), False, page)
        kwargs["nextToken"] = token
    return ChunkResult(sorted(events, key=lambda e: e["timestamp"]), True, pages)


def iter_chunks(
    logs: Any, group: str, pattern: str, start_ms: int, end_ms: int, *, pages_per_chunk: int = MAX_PAGES_PER_CHUNK
) -> list[ChunkResult]:
    """Every 24 h chunk of the window, newest first."""
    return [
        filter_chunk(logs, group, pattern, lo, hi, pages_per_chunk) for lo, hi in time_chunks(start_ms, end_ms)
    ]


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def compact_event(event: dict[str, Any]) -> dict[str, Any]:
    """What a small model needs of an event: when, which version, the (trimmed) message."""
    msg = " ".join(str(event.get("message", "")).split())
    if len(msg) > MESSAGE_CHARS:
        msg = msg[: MESSAGE_CHARS - 3] + "..."
    out: dict[str, Any] = {"t": _stamp(int(event["timestamp"]))}
    m = _STREAM_VERSION.search(str(event.get("logStreamName", "")))
    if m:
        out["v"] = m.group(1)
    out["msg"] = msg
    return out


def search(logs: Any, function_name: str, pattern: str, start_ms: int, end_ms: int, limit: int) -> dict[str, Any]:
    """Count matches over the window and return the most recent ``limit`` (oldest first)."""
    group = log_group(function_name)
    matched = 0
    truncated = False
    recent: list[dict[str, Any]] = []
    first_ms: int | None = None
    last_ms: int | None = None
    budget = MAX_PAGES_PER_SEARCH
    for lo, hi in time_chunks(start_ms, end_ms):
        if budget <= 0:
            truncated = True
            break
        chunk = filter_chunk(logs, group, pattern, lo, hi, min(MAX_PAGES_PER_CHUNK, budget))
        budget -= chunk.pages
        matched += len(chunk.events)
        truncated = truncated or chunk.truncated
        if chunk.events:
            first_ms = chunk.events[0]["timestamp"]
            if last_ms is None:
                last_ms = chunk.events[-1]["timestamp"]
        if len(recent) < limit:
            need = limit - len(recent)
            recent = chunk.events[-need:] + recent
    result: dict[str, Any] = {"function": function_name, "pattern": pattern, "matched": matched}
    if truncated:
        result["matched_is_lower_bound"] = True
        result["note"] = "busy log group: only part of the window was read; narrow the pattern or the hours"
    if first_ms is not None and last_ms is not None:
        result["first"] = _stamp(first_ms)
        result["last"] = _stamp(last_ms)
    result["events"] = [compact_event(e) for e in recent]
    return result
