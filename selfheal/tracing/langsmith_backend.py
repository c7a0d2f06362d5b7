"""LangSmith as a trace backend: a bounded client, run/feedback payloads, verified delivery, reads.

selfheal never lets LangChain or the LangSmith SDK trace on their own: the
local store is the source of truth, and LangSmith receives copies of its
records (same run ids, trace ids, dotted orders and parent ids) through
:func:`deliver_runs`. That is what makes delivery *verifiable*: the SDK's own
background tracing (``auto_batch_tracing``) swallows upload errors and, against
an endpoint that accepts connections but never answers, keeps the process
alive for minutes at exit (measured: 373 s for one traced call). Its causes,
all in ``langsmith.Client``: the tracing thread is not a daemon, and at exit
it drains its queue; ``GET /info`` waits 60 s per read and urllib3 retries it
3 times; each multipart send waits 10 s per read (``_TRACING_SEND_TIMEOUT``),
retried 3 times by urllib3 inside 3 attempts of the client's own.

:func:`make_client` builds a client that cannot do that: no background thread
(``auto_batch_tracing=False``), no urllib3 retries, and a session that caps
every request's timeouts and honours a per-thread deadline, so a send is
bounded however the SDK sets its own timeouts. Errors that the SDK reports
only to ``tracing_error_callback`` are trapped per call and raised as
:class:`LangSmithDeliveryError`.

``langsmith`` is imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import requests

from selfheal.errors import SelfhealError
from selfheal.tracing.schema import FeedbackRecord, RunRecord, link_children, utcnow

if TYPE_CHECKING:
    from langsmith import Client
    from langsmith.schemas import Run

    from selfheal.config import Settings

logger = logging.getLogger(__name__)

#: Connect timeout of every LangSmith request, seconds.
CONNECT_TIMEOUT_S = 3.0
#: Read timeout of every LangSmith request, seconds (the SDK asks for up to 60).
READ_TIMEOUT_S = 10.0
#: Runs' fields LangSmith's ingest API takes (status and token counts it derives itself).
_RUN_FIELDS = (
    "id", "name", "run_type", "start_time", "end_time", "inputs", "outputs", "error",
    "extra", "tags", "events", "parent_run_id", "trace_id", "dotted_order",
)  # fmt: skip


class LangSmithDeliveryError(SelfhealError):
    """LangSmith did not confirm an upload (unreachable, timed out, or answered an error)."""


def langsmith_configured(settings: Settings) -> bool:
    """LangSmith is used only when switched on *and* given an API key."""
    key = settings.tracing.langsmith_api_key
    return bool(settings.tracing.langsmith and key is not None and key.get_secret_value())


# -- the client ----------------------------------------------------------------
class BoundedSession(requests.Session):
    """A requests session whose every request ends by a cap and by the calling thread's deadline.

    The SDK passes its own timeouts per request (60 s reads, 10 s for trace
    sends); capping them here is the one place that bounds them all.
    """

    def __init__(self, connect_s: float = CONNECT_TIMEOUT_S, read_s: float = READ_TIMEOUT_S):
        super().__init__()
        self.connect_s = connect_s
        self.read_s = read_s
        self._local = threading.local()

    @contextmanager
    def deadline(self, seconds: float | None) -> Iterator[None]:
        """Requests made by this thread inside the block end within ``seconds`` overall."""
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = None if seconds is None else time.monotonic() + seconds
        try:
            yield
        finally:
            self._local.deadline = previous

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        connect, read = self.connect_s, self.read_s
        given = kwargs.get("timeout")
        if isinstance(given, tuple):
            connect, read = min(connect, given[0] or connect), min(read, given[1] or read)
        elif isinstance(given, int | float):
            connect, read = min(connect, given), min(read, given)
        deadline = getattr(self._local, "deadline", None)
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise requests.ConnectTimeout(f"LangSmith deadline passed before {method!r} {url!r}")
            connect, read = min(connect, left), min(read, left)
        kwargs["timeout"] = (connect, read)
        return super().request(method, url, *args, **kwargs)


_DELIVERING = threading.local()


class _QuietWhileDelivering(logging.Filter):
    """Drops the SDK's own failure logs (tracebacks included) from a thread inside a delivery.

    Those failures are raised to the caller as :class:`LangSmithDeliveryError`
    and reported once, by selfheal, with what stays pending.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_DELIVERING, "active", False)


_QUIET_FILTER = _QuietWhileDelivering()


@contextmanager
def _delivering() -> Iterator[None]:
    sdk_logger = logging.getLogger("langsmith.client")
    if _QUIET_FILTER not in sdk_logger.filters:
        sdk_logger.addFilter(_QUIET_FILTER)
    previous = getattr(_DELIVERING, "active", False)
    _DELIVERING.active = True
    try:
        yield
    finally:
        _DELIVERING.active = previous


class _ErrorTrap:
    """``tracing_error_callback`` that hands each error to the thread whose call caused it."""

    def __init__(self, chained: Any = None) -> None:
        self._local = threading.local()
        self._chained = chained

    def __call__(self, error: Exception) -> None:
        caught = getattr(self._local, "errors", None)
        if caught is not None:
            caught.append(error)
        if self._chained is not None:
            self._chained(error)

    @contextmanager
    def catching(self) -> Iterator[list[Exception]]:
        self._local.errors = errors = []
        try:
            yield errors
        finally:
            self._local.errors = None


def make_client(
    settings: Settings,
    *,
    connect_s: float = CONNECT_TIMEOUT_S,
    read_s: float = READ_TIMEOUT_S,
) -> Client:
    """A ``langsmith.Client`` for ``settings`` that never traces by itself and never hangs."""
    from langsmith import Client
    from urllib3.util.retry import Retry

    key = settings.tracing.langsmith_api_key
    trap = _ErrorTrap()
    client = Client(
        api_url=settings.tracing.langsmith_endpoint or None,
        api_key=key.get_secret_value() if key is not None else None,
        # No urllib3 retries: a failed send is retried later from the outbox, not in-line.
        retry_config=Retry(total=0, raise_on_status=False, raise_on_redirect=False),
        timeout_ms=(int(connect_s * 1000), int(read_s * 1000)),
        session=BoundedSession(connect_s, read_s),
        auto_batch_tracing=False,
        disable_prompt_cache=True,
        tracing_error_callback=trap,
    )
    return client


def _trap_for(client: Client) -> _ErrorTrap:
    """The error trap of ``client``; one is chained in on clients not made by :func:`make_client`.

    ``tracing_error_callback`` is the SDK's only channel for ingest errors and it
    has no setter, so a foreign client gets the trap through its attribute.
    """
    current = getattr(client, "_tracing_error_callback", None)
    if isinstance(current, _ErrorTrap):
        return current
    trap = _ErrorTrap(current)
    client._tracing_error_callback = trap
    return trap


@contextmanager
def _deadline(client: Client, seconds: float | None) -> Iterator[None]:
    session = getattr(client, "session", None)
    if isinstance(session, BoundedSession):
        with session.deadline(seconds):
            yield
    else:
        yield


def close_client(client: Client) -> None:
    """Release the client's session at once (never waits for the network)."""
    try:
        client.close(timeout=0)
    except Exception as exc:  # closing must not fail an exit path
        logger.debug("closing LangSmith client: %s", exc)


# -- payloads ------------------------------------------------------------------
def run_payload(run: RunRecord, project: str) -> dict[str, Any]:
    """The LangSmith ingest dict of a stored run, keeping its ids, trace and dotted order.

    The local project id means nothing to LangSmith: the run names its project
    (``session_name``), which LangSmith creates on first ingest. A local dataset
    example is unknown there too, so ``reference_example_id`` travels as metadata —
    except for an eval experiment's runs, whose dataset and examples the eval
    runner created in LangSmith with the same ids first: those link for real.
    """
    payload: dict[str, Any] = {name: getattr(run, name) for name in _RUN_FIELDS}
    # The SDK adds runtime keys to extra and extra["metadata"] in place: give it copies.
    metadata = dict(run.metadata)
    if run.reference_example_id is not None:
        metadata["reference_example_id"] = str(run.reference_example_id)
        if metadata.get("experiment"):
            payload["reference_example_id"] = str(run.reference_example_id)
    payload["extra"] = {**run.extra, "metadata": metadata}
    payload["session_name"] = project
    return payload


def deliver_runs(
    client: Client,
    create: Sequence[dict[str, Any]] = (),
    update: Sequence[dict[str, Any]] = (),
    *,
    deadline_s: float | None = None,
) -> None:
    """Send runs (multipart, falling back to ``/runs/batch`` as the SDK does); raise unless confirmed."""
    if not create and not update:
        return
    trap = _trap_for(client)
    with trap.catching() as errors, _deadline(client, deadline_s), _delivering():
        try:
            client.multipart_ingest(create=list(create), update=list(update))
        except Exception as exc:
            raise LangSmithDeliveryError(f"LangSmith upload failed: {_describe(exc)}") from exc
    if errors:
        raise LangSmithDeliveryError(f"LangSmith upload failed: {_describe(errors[-1])}")


def deliver_feedback(
    client: Client,
    feedback: FeedbackRecord,
    *,
    project_id: UUID | str | None,
    deadline_s: float | None = None,
) -> None:
    """Send one feedback with its own id; a conflict (already there) counts as delivered."""
    from langsmith.utils import LangSmithConflictError

    source = feedback.source
    source_type = source.type if source is not None and source.type in ("api", "model") else "api"
    source_info: dict[str, Any] = dict(source.metadata) if source is not None else {}
    if source is not None and source.type not in ("api", "model"):
        source_info.setdefault("source_type", source.type)
    if source is not None and source.user_id:
        source_info.setdefault("user_id", source.user_id)
    correction = feedback.correction
    if isinstance(correction, str):
        correction = {"text": correction}
    with _deadline(client, deadline_s), _delivering():
        try:
            client.create_feedback(
                feedback.run_id,
                feedback.key,
                score=feedback.score,
                value=feedback.value,
                comment=feedback.comment,
                correction=correction,
                feedback_id=feedback.id,
                trace_id=feedback.trace_id,
                session_id=project_id,
                source_info=source_info or None,
                feedback_source_type=source_type,
                stop_after_attempt=1,
            )
        except LangSmithConflictError:
            return
        except Exception as exc:
            raise LangSmithDeliveryError(f"LangSmith feedback upload failed: {_describe(exc)}") from exc


def ensure_project(client: Client, project: str, *, deadline_s: float | None = None) -> UUID:
    """LangSmith's id of the project called ``project``, created if LangSmith has not yet.

    Runs create their project when LangSmith ingests them, asynchronously;
    feedback needs the id at once, so a missing project is created here.
    """
    from langsmith.utils import LangSmithConflictError, LangSmithNotFoundError

    with _deadline(client, deadline_s), _delivering():
        try:
            try:
                return client.read_project(project_name=project).id
            except LangSmithNotFoundError:
                pass
            try:
                return client.create_project(project).id
            except LangSmithConflictError:  # created meanwhile
                return client.read_project(project_name=project).id
        except Exception as exc:
            raise LangSmithDeliveryError(f"LangSmith project lookup failed: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


# -- reading -----------------------------------------------------------------
def record_from_langsmith(run: Run | Mapping[str, Any]) -> RunRecord:
    """A :class:`RunRecord` from a ``langsmith.schemas.Run`` (or its dict)."""
    data = dict(run) if isinstance(run, Mapping) else run.model_dump()
    if not data.get("status"):
        data["status"] = (
            "error" if data.get("error") else ("success" if data.get("end_time") else "pending")
        )
    data.pop("child_run_ids", None)
    return RunRecord.model_validate(data)


@contextmanager
def _quiet_deprecation() -> Iterator[None]:
    """The SDK deprecates ``list_runs``/``read_run`` for an async, hosted-only API; we keep them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(list_runs|read_run)\(\) is deprecated")
        yield


def _quote(value: Any) -> str:
    """A filter string literal; metadata values are compared as their JSON text, as LangSmith does."""
    import json

    return json.dumps(value if isinstance(value, str) else json.dumps(value))


class LangSmithTraceReader:
    """Reads runs from LangSmith as :class:`RunRecord` objects, mirroring ``LocalTraceStore``'s reads."""

    def __init__(self, client: Client, project: str) -> None:
        self.client = client
        self.project = project

    def get_run(self, run_id: UUID | str) -> RunRecord | None:
        from langsmith.utils import LangSmithNotFoundError

        with _quiet_deprecation():
            try:
                return record_from_langsmith(self.client.read_run(run_id))
            except LangSmithNotFoundError:
                return None

    def get_trace(self, trace_id: UUID | str) -> list[RunRecord]:
        """All runs of a trace in execution order (``dotted_order``), with ``child_run_ids`` set."""
        with _quiet_deprecation():
            runs = [record_from_langsmith(r) for r in self.client.list_runs(trace_id=trace_id)]
        runs.sort(key=lambda r: r.dotted_order)
        return link_children(runs)

    def list_runs(
        self,
        project: str | UUID | None = None,
        *,
        run_type: str | None = None,
        is_root: bool | None = None,
        limit: int | None = 100,
        since: datetime | timedelta | None = None,
        until: datetime | None = None,
        status: str | None = None,
        name: str | None = None,
        trace_id: UUID | str | None = None,
        metadata: Mapping[str, Any] | None = None,
        filter: str | None = None,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first (``LocalTraceStore.list_runs``'s contract).

        ``filter`` is passed through in LangSmith's filter language, and-ed with the rest.
        """
        clauses: list[str] = []
        if status is not None:
            clauses.append(f"eq(status, {_quote(status)})")
        if name is not None:
            clauses.append(f"eq(name, {_quote(name)})")
        if until is not None:
            clauses.append(f"lt(start_time, {_quote(until.isoformat())})")
        for key, value in (metadata or {}).items():
            clauses.append(
                f"and(eq(metadata_key, {_quote(key)}), eq(metadata_value, {_quote(value)}))"
            )
        if filter:
            clauses.append(filter)
        combined = None
        if len(clauses) == 1:
            combined = clauses[0]
        elif clauses:
            combined = f"and({', '.join(clauses)})"
        start_time = utcnow() - since if isinstance(since, timedelta) else since
        project = self.project if project is None else project
        target: dict[str, Any] = (
            {"project_id": project} if isinstance(project, UUID) else {"project_name": project}
        )
        from langsmith.utils import LangSmithNotFoundError

        with _quiet_deprecation():
            try:
                found = self.client.list_runs(
                    **target,
                    run_type=run_type,
                    is_root=is_root,
                    start_time=start_time,
                    trace_id=trace_id,
                    filter=combined,
                    limit=limit,
                )
                return [record_from_langsmith(r) for r in found]
            except LangSmithNotFoundError:  # unknown project: nothing, as locally
                return []
