"""Traces: LangSmith-shaped records, the local SQLite store and the LangChain tracer.

``LocalTracer`` is imported lazily so that reading traces (CLI queries) does
not pay for importing LangChain's callback machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from selfheal.tracing.errors import RunNotFoundError, TraceStoreError
from selfheal.tracing.schema import (
    DatasetRecord,
    ExampleRecord,
    FeedbackRecord,
    FeedbackSource,
    ProjectRecord,
    RunRecord,
)
from selfheal.tracing.store import LocalTraceStore, TraceStore

if TYPE_CHECKING:
    from selfheal.tracing.tracer import LocalTracer

__all__ = [
    "DatasetRecord",
    "ExampleRecord",
    "FeedbackRecord",
    "FeedbackSource",
    "LocalTraceStore",
    "LocalTracer",
    "ProjectRecord",
    "RunNotFoundError",
    "RunRecord",
    "TraceStore",
    "TraceStoreError",
]


def __getattr__(name: str) -> Any:
    if name == "LocalTracer":
        from selfheal.tracing.tracer import LocalTracer

        return LocalTracer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
