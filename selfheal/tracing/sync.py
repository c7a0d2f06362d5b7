"""Nothing lost: the LangSmith outbox in the local store, verified delivery, and ``traces sync``.

Design. The local store is the source of truth; LangSmith gets copies. Every
trace finished while LangSmith is on gets a row in ``langsmith_pending``
*before* any upload is tried (in the traced thread, when the root run ends),
and the row is deleted only after LangSmith confirmed the upload: the SDK
reports ingest errors only to a callback, so :mod:`~selfheal.tracing.langsmith_backend`
sends with the client's background thread off and traps those errors per call.
A process that crashes, exits during an upload, or meets an outage leaves the
row, and :func:`sync_pending` (``selfheal traces sync``) sends it later with
the same ids. Feedback is queued the same way, after its trace.

Each row carries ``op``: ``post`` (the whole trace was never delivered) or
``patch`` (the root run changed after delivery, e.g. ``success`` stamped once
the graph ended), and ``seq``, bumped by every change: a delivery deletes the
row only if ``seq`` is still the one it read, so a change racing an upload is
sent afterwards as a patch instead of being forgotten. Sending twice is
harmless: LangSmith keys runs and feedback by id, and the SDK treats its
``409 Conflict`` as done.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from uuid import UUID

from selfheal.errors import ConfigError
from selfheal.tracing import serde
from selfheal.tracing.errors import TraceStoreError
from selfheal.tracing.langsmith_backend import (
    LangSmithDeliveryError,
    deliver_feedback,
    deliver_runs,
    langsmith_configured,
    ensure_project,
    make_client,
    run_payload,
)
from selfheal.tracing.migrations import migrate
from selfheal.tracing.schema import FeedbackRecord, RunRecord, utcnow

if TYPE_CHECKING:
    from langsmith import Client

    from selfheal.config import Settings
    from selfheal.tracing.store import LocalTraceStore

logger = logging.getLogger(__name__)

#: A pending trace whose runs never reached the local store is dropped after this long.
MISSING_GRACE = timedelta(minutes=5)
#: Runs per LangSmith request (whole traces are never split).
MAX_RUNS_PER_REQUEST = 500
#: Wall-clock bound of one LangSmith request, including the SDK's own attempts.
REQUEST_DEADLINE_S = 15.0
#: Project name used when a run's local project is unknown.
DEFAULT_PROJECT = "selfheal"


class PendingItem(NamedTuple):
    """One row of ``langsmith_pending``."""

    kind: str  # "trace" | "feedback"
    id: str  # trace id (= its root run id) or feedback id
    run_id: str | None  # feedback: the run it is about
    op: str  # "post" | "patch"
    seq: int
    attempts: int
    last_error: str | None
    queued_at: str


class LangSmithOutbox:
    """The ``langsmith_pending`` table of a trace store, on its own connection.

    Its own connection lets the traced thread mark a trace pending while the
    store's background writer is busy, and lets the uploader thread outlive
    the caller's store object.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # as the store: no fsync per mark
            conn.execute("PRAGMA busy_timeout = 30000")
            migrate(conn, self.path)
        except sqlite3.Error as exc:
            raise TraceStoreError(f"{self.path}: cannot open LangSmith outbox: {exc}") from None
        self._conn: sqlite3.Connection | None = conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise TraceStoreError(f"{self.path}: LangSmith outbox is closed")
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- queueing ------------------------------------------------------------
    def add_trace(self, trace_id: UUID | str) -> None:
        """A finished trace to deliver whole."""
        self._upsert("trace", str(trace_id), None, "post")

    def trace_changed(self, trace_id: UUID | str) -> None:
        """The root of a trace changed: deliver it again (as a patch, if it was delivered)."""
        self._upsert("trace", str(trace_id), None, "patch")

    def add_feedback(self, feedback_id: UUID | str, run_id: UUID | str | None) -> None:
        self._upsert("feedback", str(feedback_id), None if run_id is None else str(run_id), "post")

    def _upsert(self, kind: str, item_id: str, run_id: str | None, op: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO langsmith_pending (kind, id, run_id, op, queued_at)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(kind, id) DO UPDATE SET seq = seq + 1",
                (kind, item_id, run_id, op, serde.iso(utcnow())),
            )

    # -- reading -------------------------------------------------------------
    def pending(self, kind: str | None = None, *, limit: int | None = None) -> list[PendingItem]:
        """Pending rows, oldest first (traces before feedback when ``kind`` is None)."""
        sql = "SELECT kind, id, run_id, op, seq, attempts, last_error, queued_at FROM langsmith_pending"
        params: list[Any] = []
        if kind is not None:
            sql += " WHERE kind = ?"
            params.append(kind)
        sql += " ORDER BY kind = 'feedback', queued_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._tx() as conn:
            return [PendingItem(*row) for row in conn.execute(sql, params).fetchall()]

    def get(self, kind: str, item_id: UUID | str) -> PendingItem | None:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT kind, id, run_id, op, seq, attempts, last_error, queued_at"
                " FROM langsmith_pending WHERE kind = ? AND id = ?",
                (kind, str(item_id)),
            ).fetchone()
        return None if row is None else PendingItem(*row)

    def count(self, kind: str | None = None) -> int:
        sql = "SELECT COUNT(*) FROM langsmith_pending"
        params: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            params = (kind,)
        with self._tx() as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    # -- outcomes --------------------------------------------------------------
    def delivered(self, items: Iterable[PendingItem]) -> None:
        """Clear rows LangSmith confirmed; a row changed meanwhile stays, as a patch."""
        with self._tx() as conn:
            for item in items:
                gone = conn.execute(
                    "DELETE FROM langsmith_pending WHERE kind = ? AND id = ? AND seq = ?",
                    (item.kind, item.id, item.seq),
                ).rowcount
                if not gone:
                    conn.execute(
                        "UPDATE langsmith_pending SET op = 'patch', attempts = 0, last_error = NULL"
                        " WHERE kind = ? AND id = ?",
                        (item.kind, item.id),
                    )

    def failed(self, items: Iterable[PendingItem], error: str) -> None:
        now = serde.iso(utcnow())
        with self._tx() as conn:
            conn.executemany(
                "UPDATE langsmith_pending SET attempts = attempts + 1, last_error = ?,"
                " last_attempt_at = ? WHERE kind = ? AND id = ?",
                [(error, now, item.kind, item.id) for item in items],
            )

    def drop(self, items: Iterable[PendingItem]) -> None:
        with self._tx() as conn:
            conn.executemany(
                "DELETE FROM langsmith_pending WHERE kind = ? AND id = ?",
                [(item.kind, item.id) for item in items],
            )


# -- delivery ------------------------------------------------------------------
@dataclass
class Delivery:
    """What one :func:`deliver_items` pass did."""

    sent: list[PendingItem] = field(default_factory=list)
    failed: list[PendingItem] = field(default_factory=list)
    skipped: list[PendingItem] = field(default_factory=list)
    dropped: list[PendingItem] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped


class _Projects:
    """Local project id -> name, and LangSmith project name -> id, looked up once."""

    def __init__(self, store: LocalTraceStore, client: Client) -> None:
        self._store = store
        self._client = client
        self._names: dict[UUID, str] | None = None
        self._remote: dict[str, UUID] = {}

    def name_of(self, run: RunRecord) -> str:
        if self._names is None or (run.session_id is not None and run.session_id not in self._names):
            self._names = {p.id: p.name for p in self._store.list_projects()}
        if run.session_id is None:
            return DEFAULT_PROJECT
        return self._names.get(run.session_id, DEFAULT_PROJECT)

    def remote_id(self, name: str, deadline_s: float | None) -> UUID:
        if name not in self._remote:
            self._remote[name] = ensure_project(self._client, name, deadline_s=deadline_s)
        return self._remote[name]


def deliver_items(
    items: Sequence[PendingItem],
    *,
    client: Client,
    store: LocalTraceStore,
    outbox: LangSmithOutbox,
    deadline_s: float | None = REQUEST_DEADLINE_S,
    stop: threading.Event | None = None,
) -> Delivery:
    """Send pending rows (traces, then feedback) and record each outcome in the outbox.

    The first failed request ends the pass (LangSmith is down or refusing):
    the rows not tried are ``skipped`` and stay pending untouched.
    """
    result = Delivery()
    projects = _Projects(store, client)
    traces = [i for i in items if i.kind == "trace"]
    feedback = [i for i in items if i.kind == "feedback"]

    batch: list[PendingItem] = []
    create: list[dict[str, Any]] = []
    update: list[dict[str, Any]] = []

    def send() -> bool:
        if not batch:
            return True
        try:
            deliver_runs(client, create, update, deadline_s=deadline_s)
        except LangSmithDeliveryError as exc:
            outbox.failed(batch, str(exc))
            result.failed.extend(batch)
            result.errors.append(str(exc))
            return False
        outbox.delivered(batch)
        result.sent.extend(batch)
        batch.clear()
        create.clear()
        update.clear()
        return True

    stopped = False
    for n, item in enumerate(traces):
        if stop is not None and stop.is_set():
            result.skipped.extend(traces[n:])
            stopped = True
            break
        runs = store.get_trace(item.id)
        if not runs:
            if _older_than(item.queued_at, MISSING_GRACE):
                outbox.drop([item])
                result.dropped.append(item)
                result.errors.append(f"trace {item.id} is not in the local store; dropped")
            else:
                result.skipped.append(item)
            continue
        if item.op == "patch":
            roots = [r for r in runs if str(r.id) == item.id] or [r for r in runs if r.is_root]
            update.extend(run_payload(r, projects.name_of(r)) for r in roots[:1])
        else:
            create.extend(run_payload(r, projects.name_of(r)) for r in runs)
        batch.append(item)
        if len(create) + len(update) >= MAX_RUNS_PER_REQUEST and not send():
            result.skipped.extend(traces[n + 1 :])
            stopped = True
            break
    if not stopped and not send():
        stopped = True
    if stopped:
        result.skipped.extend(feedback)
        return result

    for n, item in enumerate(feedback):
        if stop is not None and stop.is_set():
            result.skipped.extend(feedback[n:])
            break
        fb = _feedback(store, item)
        if fb is None:
            outbox.drop([item])
            result.dropped.append(item)
            result.errors.append(f"feedback {item.id} is not in the local store; dropped")
            continue
        run = store.get_run(fb.run_id) if fb.run_id is not None else None
        trace_id = fb.trace_id or (run.trace_id if run is not None else None)
        waiting = trace_id is not None and outbox.get("trace", trace_id)
        if waiting and waiting.op == "post":
            result.skipped.append(item)  # its trace goes first
            continue
        try:
            remote = (
                projects.remote_id(projects.name_of(run), deadline_s) if run is not None else None
            )
            deliver_feedback(client, fb, project_id=remote, deadline_s=deadline_s)
        except LangSmithDeliveryError as exc:
            outbox.failed([item], str(exc))
            result.failed.append(item)
            result.errors.append(str(exc))
            result.skipped.extend(feedback[n + 1 :])
            break
        outbox.delivered([item])
        result.sent.append(item)
    return result


def _feedback(store: LocalTraceStore, item: PendingItem) -> FeedbackRecord | None:
    candidates = store.list_feedback(run_ids=[item.run_id]) if item.run_id else store.list_feedback()
    return next((f for f in candidates if str(f.id) == item.id), None)


def _older_than(stamp: str, age: timedelta) -> bool:
    try:
        return utcnow() - datetime.fromisoformat(stamp) > age
    except ValueError:
        return True


# -- traces sync ---------------------------------------------------------------
@dataclass
class SyncReport:
    """Outcome of :func:`sync_pending`: items delivered, items that failed, items still pending."""

    sent: int
    failed: int
    remaining: int
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def sync_pending(
    settings: Settings,
    store: LocalTraceStore,
    client: Client | None = None,
    *,
    limit: int | None = None,
    deadline_s: float = REQUEST_DEADLINE_S,
) -> SyncReport:
    """Resend every trace and feedback LangSmith has not confirmed, with their original ids.

    Stops at the first failed request (the rest stay pending); a second run
    after LangSmith recovers delivers them. Raises :class:`ConfigError` when
    LangSmith is not configured and no ``client`` is given.
    """
    if client is None and not langsmith_configured(settings):
        raise ConfigError(
            "LangSmith is not configured: set tracing.langsmith (LANGSMITH_TRACING=true)"
            " and LANGSMITH_API_KEY to sync traces"
        )
    started = time.monotonic()
    store.flush()
    outbox = LangSmithOutbox(store.path)
    own_client = client is None
    if client is None:
        client = make_client(settings)
    try:
        items = outbox.pending(limit=limit)
        result = deliver_items(
            items, client=client, store=store, outbox=outbox, deadline_s=deadline_s
        )
        remaining = outbox.count()
    finally:
        outbox.close()
        if own_client:
            from selfheal.tracing.langsmith_backend import close_client

            close_client(client)
    return SyncReport(
        sent=len(result.sent),
        failed=len(result.failed),
        remaining=remaining,
        errors=list(dict.fromkeys(result.errors)),
        seconds=round(time.monotonic() - started, 3),
    )


def pending_count(store: LocalTraceStore) -> int:
    """How many traces and feedback wait for LangSmith (for ``selfheal traces`` status lines)."""
    outbox = LangSmithOutbox(store.path)
    try:
        return outbox.count()
    finally:
        outbox.close()
