"""Where the interaction commands read traces from: the local store, or LangSmith when configured.

``ask``, ``explain`` and ``cheatsheet`` take ``source="local" | "langsmith"``
like ``selfheal traces``; this opens the matching reader (both fit
:class:`selfheal.tracing.analysis.TraceSource`) and turns LangSmith's client
errors into one-line user errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

from selfheal.errors import ConfigError, SelfhealError

if TYPE_CHECKING:
    from selfheal.config import Settings

Source = Literal["local", "langsmith"]
SOURCES: tuple[str, ...] = ("local", "langsmith")

__all__ = ["SOURCES", "Source", "open_reader", "resolve_run", "langsmith_errors"]


@contextmanager
def open_reader(settings: Settings, source: str = "local", project: str | None = None) -> Iterator[Any]:
    """A trace reader for ``source``; LangSmith must be configured (else a ConfigError, exit 2)."""
    project = project or settings.tracing.project
    if source == "local":
        from selfheal.tracing.store import LocalTraceStore

        store = LocalTraceStore.from_settings(settings)
        try:
            yield store
        finally:
            store.close()
        return
    if source != "langsmith":
        raise ConfigError(f"unknown trace source {source!r} (local or langsmith)")
    from selfheal.tracing.langsmith_backend import (
        LangSmithTraceReader,
        close_client,
        langsmith_configured,
        make_client,
    )

    if not langsmith_configured(settings):
        raise ConfigError(
            "LangSmith is not configured: set tracing.langsmith (LANGSMITH_TRACING=true)"
            " and LANGSMITH_API_KEY to read traces from LangSmith"
        )
    client = make_client(settings)
    try:
        with langsmith_errors():
            yield LangSmithTraceReader(client, project)
    finally:
        close_client(client)


@contextmanager
def langsmith_errors() -> Iterator[None]:
    """LangSmith read failures as one-line user errors instead of tracebacks."""
    try:
        yield
    except SelfhealError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("langsmith", "requests", "urllib3")):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise SelfhealError(f"LangSmith read failed: {first}") from None
        raise


def resolve_run(reader: Any, run_id: str | UUID) -> UUID:
    """The full run id: a unique prefix works on the local store, LangSmith needs the full id."""
    if hasattr(reader, "path"):  # the local store
        from selfheal.interact.feedback import resolve_run_id

        return resolve_run_id(reader, run_id)
    try:
        return run_id if isinstance(run_id, UUID) else UUID(str(run_id).strip())
    except ValueError:
        raise SelfhealError(f"LangSmith needs the full run id, not {run_id!r}") from None
