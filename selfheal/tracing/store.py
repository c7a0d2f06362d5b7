"""Where traces live: the ``TraceStore`` protocol and its local SQLite implementation.

``LocalTraceStore`` is the embedded default: one SQLite file in WAL mode with
LangSmith-shaped tables (see :mod:`selfheal.tracing.migrations`). Every
batch of runs is one transaction; one connection guarded by a lock serves
all threads, because the evaluation runner writes from a thread pool and
SQLite serialises writers anyway. Other processes may open the same file:
WAL lets them read while one writes, and the busy timeout makes writers queue.

The tracer hands finished traces to :meth:`LocalTraceStore.submit_encoded`,
which writes them on a background thread (see :mod:`selfheal.tracing.writer`).
Every read, merge and ``close`` through the same store object first waits for
those pending writes, so code that runs a graph and then reads or stamps its
trace never sees it missing; other store objects and processes see it once
the writer commits, a few milliseconds later.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from uuid import UUID

from selfheal.tracing import serde
from selfheal.tracing.errors import RunNotFoundError, TraceStoreError
from selfheal.tracing.filters import Filter
from selfheal.tracing.migrations import INDEXED_METADATA_KEYS, migrate
from selfheal.tracing.query import compile_filter, install_functions, to_filter
from selfheal.tracing.schema import (
    DatasetRecord,
    ExampleRecord,
    FeedbackRecord,
    ProjectRecord,
    RunRecord,
    link_children,
    utcnow,
)
from selfheal.tracing.writer import BackgroundWriter

if TYPE_CHECKING:
    from selfheal.config import Settings
    from selfheal.redact import Redactor

Since = datetime | timedelta

_RUN_COLUMNS = (
    "id", "name", "run_type", "start_time", "end_time", "start_us", "end_us",
    "inputs", "outputs", "error", "extra", "tags", "events", "parent_run_id",
    "trace_id", "dotted_order", "session_id", "status", "prompt_tokens",
    "completion_tokens", "total_tokens", "reference_example_id",
)  # fmt: skip
_RUN_SELECT = "SELECT " + ", ".join(_RUN_COLUMNS) + " FROM runs"
_RUN_UPSERT = (
    f"INSERT INTO runs ({', '.join(_RUN_COLUMNS)}) VALUES ({', '.join('?' * len(_RUN_COLUMNS))}) "
    "ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _RUN_COLUMNS if c != "id")
)
_JSON_RUN_COLUMNS = frozenset({"inputs", "outputs", "extra", "tags", "events"})
_METADATA_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


@runtime_checkable
class TraceStore(Protocol):
    """What the agent, the evaluator and the CLI need from a trace backend."""

    def ensure_project(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        reference_dataset_id: UUID | None = None,
    ) -> ProjectRecord: ...

    def get_project(self, name: str) -> ProjectRecord | None: ...

    def write_runs(self, runs: Iterable[RunRecord]) -> None: ...

    def get_run(self, run_id: UUID | str) -> RunRecord | None: ...

    def get_trace(self, trace_id: UUID | str) -> list[RunRecord]: ...

    def list_runs(
        self,
        project: str | UUID | None = None,
        *,
        run_type: str | None = None,
        is_root: bool | None = None,
        limit: int | None = 100,
        since: Since | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]: ...

    def merge_metadata(self, run_id: UUID | str, metadata: Mapping[str, Any]) -> RunRecord: ...

    def add_feedback(self, feedback: FeedbackRecord) -> FeedbackRecord: ...

    def list_feedback(
        self,
        *,
        run_ids: Sequence[UUID | str] | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[FeedbackRecord]: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


def _uuid(value: UUID | str, what: str = "run id") -> str:
    try:
        return str(value if isinstance(value, UUID) else UUID(str(value)))
    except ValueError:
        raise TraceStoreError(f"invalid {what}: {value!r}") from None


def _opt(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def _since(value: Since) -> str:
    when = utcnow() - value if isinstance(value, timedelta) else value
    return serde.iso(when) or ""


#: A run encoded as the row ``LocalTraceStore.write_encoded`` inserts.
EncodedRun = tuple[Any, ...]


class RunLike(Protocol):
    """What :func:`encode_run` reads: a :class:`RunRecord`, or the tracer's in-flight run."""

    id: UUID
    name: str
    run_type: str
    start_time: datetime
    end_time: datetime | None
    inputs: Any
    outputs: Any
    error: str | None
    extra: dict[str, Any]
    tags: list[str]
    events: list[dict[str, Any]]
    parent_run_id: UUID | None
    trace_id: UUID
    dotted_order: str
    session_id: UUID | None
    status: str
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None
    reference_example_id: UUID | None


def encode_run(
    run: RunLike, limit: int = serde.MAX_PAYLOAD_CHARS, redactor: Redactor | None = None
) -> EncodedRun:
    """Encode a run's payloads now (e.g. before its objects can be mutated) for a later write.

    With a ``redactor``, secrets and PII are removed from every payload here,
    before anything is stored (and so before a copy can go to LangSmith).
    """
    if redactor is not None:
        return _encode_fields(run, limit, lambda v: redactor.redact(serde.plain(v)), redactor.redact_text)
    return _encode_fields(run, limit, lambda v: v, lambda t: t)


def _encode_fields(
    run: RunLike, limit: int, clean: Callable[[Any], Any], clean_text: Callable[[str], str]
) -> EncodedRun:
    return (
        str(run.id),
        run.name,
        run.run_type,
        serde.iso(run.start_time),
        serde.iso(run.end_time),
        serde.epoch_us(run.start_time),
        serde.epoch_us(run.end_time),
        serde.dumps(clean(run.inputs or {}), limit=limit),
        serde.dumps(clean(run.outputs), limit=limit),
        clean_text(run.error) if run.error else run.error,
        serde.dumps(clean(run.extra or {}), limit=limit),
        serde.dumps(list(run.tags or ())),
        serde.dumps(clean(list(run.events or ())), limit=limit),
        _opt(run.parent_run_id),
        str(run.trace_id),
        run.dotted_order,
        _opt(run.session_id),
        run.status,
        run.prompt_tokens,
        run.completion_tokens,
        run.total_tokens,
        _opt(run.reference_example_id),
    )


def _run_from_row(row: sqlite3.Row) -> RunRecord:
    data = {c: (serde.loads(row[c]) if c in _JSON_RUN_COLUMNS else row[c]) for c in _RUN_COLUMNS}
    del data["start_us"], data["end_us"]
    return RunRecord.model_validate(data)


class LocalTraceStore:
    """A SQLite file with LangSmith's runs, projects, feedback, datasets and examples."""

    def __init__(
        self,
        path: Path | str,
        *,
        max_payload_chars: int = serde.MAX_PAYLOAD_CHARS,
        redactor: Redactor | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_payload_chars = max_payload_chars
        #: Applied to every run payload, metadata merge and feedback text before storage.
        self.redactor = redactor
        self._lock = threading.RLock()
        self._projects: dict[str, ProjectRecord] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise TraceStoreError(f"{self.path}: cannot open trace store: {exc}") from None
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA busy_timeout = 30000")
            self.migrated_from = migrate(conn, self.path)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise TraceStoreError(f"{self.path}: not a usable trace store: {exc}") from None
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        self._writer: BackgroundWriter | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalTraceStore:
        """The store configured by ``tracing.store`` in selfheal.yaml (redacting unless disabled)."""
        from selfheal.redact import make_redactor

        redactor = make_redactor(settings) if settings.tracing.redact else None
        return cls(settings.trace_store_path, redactor=redactor)

    # -- plumbing -----------------------------------------------------------
    def __enter__(self) -> LocalTraceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalTraceStore({str(self.path)!r})"

    def close(self) -> None:
        """Write what is pending, then close the file (closing twice is harmless)."""
        self.flush()
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- background writes -------------------------------------------------
    def submit_encoded(self, rows: Sequence[EncodedRun]) -> None:
        """Write encoded runs on the background writer; returns at once."""
        if self._conn is None:
            raise TraceStoreError(f"{self.path}: trace store is closed")
        with self._lock:
            if self._writer is None:
                self._writer = BackgroundWriter(
                    self._write_rows, name=f"trace-writer:{self.path.name}"
                )
        self._writer.submit(rows)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until submitted runs are written; False if ``timeout`` ran out."""
        return True if self._writer is None else self._writer.flush(timeout)

    @property
    def write_errors(self) -> list[Exception]:
        """Exceptions of background writes (each also logged)."""
        return [] if self._writer is None else list(self._writer.errors)

    @contextmanager
    def _read(self, *, wait_for_writer: bool = True) -> Iterator[sqlite3.Connection]:
        """The connection, after pending background writes (read-your-writes)."""
        if wait_for_writer and self._writer is not None and self._writer.pending:
            self._writer.flush()
        with self._lock:
            if self._conn is None:
                raise TraceStoreError(f"{self.path}: trace store is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise TraceStoreError(f"{self.path}: {exc}") from exc

    @contextmanager
    def _write(self, *, wait_for_writer: bool = True) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: all or nothing, writers queue on the busy timeout."""
        with self._read(wait_for_writer=wait_for_writer) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- projects -----------------------------------------------------------
    def ensure_project(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        reference_dataset_id: UUID | None = None,
    ) -> ProjectRecord:
        """The project called ``name``, created on first use (as LangSmith does on ingest)."""
        cached = self._projects.get(name)
        if cached is not None:
            return cached
        with self._write() as conn:
            row = conn.execute("SELECT * FROM tracer_sessions WHERE name = ?", (name,)).fetchone()
            if row is None:
                project = ProjectRecord(
                    name=name,
                    description=description,
                    metadata=dict(metadata or {}),
                    reference_dataset_id=reference_dataset_id,
                )
                conn.execute(
                    "INSERT INTO tracer_sessions (id, name, start_time, end_time, description,"
                    " metadata, reference_dataset_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        str(project.id),
                        project.name,
                        serde.iso(project.start_time),
                        None,
                        project.description,
                        serde.dumps(project.metadata),
                        _opt(project.reference_dataset_id),
                    ),
                )
            else:
                project = self._project_from_row(row)
        self._projects[name] = project
        return project

    @staticmethod
    def _project_from_row(row: sqlite3.Row) -> ProjectRecord:
        data = dict(row)
        data["metadata"] = serde.loads(data["metadata"])
        return ProjectRecord.model_validate(data)

    def get_project(self, name: str) -> ProjectRecord | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM tracer_sessions WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._project_from_row(row)

    def list_projects(self) -> list[ProjectRecord]:
        with self._read() as conn:
            rows = conn.execute("SELECT * FROM tracer_sessions ORDER BY start_time DESC").fetchall()
        return [self._project_from_row(r) for r in rows]

    # -- runs ---------------------------------------------------------------
    def write_runs(self, runs: Iterable[RunRecord]) -> None:
        """Insert or replace a batch of runs in one transaction."""
        self.write_encoded([encode_run(r, self.max_payload_chars, self.redactor) for r in runs])

    def write_encoded(self, rows: Sequence[EncodedRun]) -> None:
        """Insert or replace runs already encoded by :func:`encode_run`, in one transaction."""
        if rows:
            with self._write() as conn:
                conn.executemany(_RUN_UPSERT, rows)

    def _write_rows(self, rows: list[EncodedRun]) -> None:
        """The background writer's write: it must not wait for the writer (it is the writer)."""
        with self._write(wait_for_writer=False) as conn:
            conn.executemany(_RUN_UPSERT, rows)

    def get_run(self, run_id: UUID | str) -> RunRecord | None:
        with self._read() as conn:
            row = conn.execute(_RUN_SELECT + " WHERE id = ?", (_uuid(run_id),)).fetchone()
        return None if row is None else _run_from_row(row)

    def get_trace(self, trace_id: UUID | str) -> list[RunRecord]:
        """All runs of a trace in execution order (``dotted_order``), with ``child_run_ids`` set."""
        with self._read() as conn:
            rows = conn.execute(
                _RUN_SELECT + " WHERE trace_id = ? ORDER BY dotted_order",
                (_uuid(trace_id, "trace id"),),
            ).fetchall()
        runs = [_run_from_row(r) for r in rows]
        return link_children(runs)

    def list_runs(
        self,
        project: str | UUID | None = None,
        *,
        run_type: str | None = None,
        is_root: bool | None = None,
        limit: int | None = 100,
        since: Since | None = None,
        until: datetime | None = None,
        status: str | None = None,
        name: str | None = None,
        trace_id: UUID | str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first.

        ``since`` is a datetime or a look-back window (``timedelta(days=7)``);
        ``metadata`` matches scalar values of ``extra.metadata`` keys, through
        an index for :data:`~selfheal.tracing.migrations.INDEXED_METADATA_KEYS`.
        An unknown project name matches nothing.
        """
        where: list[str] = []
        params: list[Any] = []
        if project is not None:
            if isinstance(project, UUID):
                session_id: str | None = str(project)
            else:
                found = self.get_project(project)
                if found is None:
                    return []
                session_id = str(found.id)
            where.append("session_id = ?")
            params.append(session_id)
        if run_type is not None:
            where.append("run_type = ?")
            params.append(run_type)
        if is_root is not None:
            where.append("parent_run_id IS NULL" if is_root else "parent_run_id IS NOT NULL")
        if since is not None:
            where.append("start_time >= ?")
            params.append(_since(since))
        if until is not None:
            where.append("start_time < ?")
            params.append(serde.iso(until))
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if trace_id is not None:
            where.append("trace_id = ?")
            params.append(_uuid(trace_id, "trace id"))
        for key, value in (metadata or {}).items():
            clause, values = _metadata_clause(key, value)
            where.append(clause)
            params.extend(values)
        sql = _RUN_SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_time DESC, dotted_order DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_run_from_row(r) for r in rows]

    def count_runs(self, project: str | None = None, *, is_root: bool | None = None) -> int:
        """Cheap size check (how many runs, or root runs, a project holds)."""
        where, params = [], []
        if project is not None:
            found = self.get_project(project)
            if found is None:
                return 0
            where.append("session_id = ?")
            params.append(str(found.id))
        if is_root is not None:
            where.append("parent_run_id IS NULL" if is_root else "parent_run_id IS NOT NULL")
        sql = "SELECT COUNT(*) FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._read() as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    # -- filter queries and retention (see selfheal.tracing.query) ----------
    def query_runs(
        self,
        filter: str | Filter | None = None,  # noqa: A002 - LangSmith's parameter name
        *,
        project: str | UUID | None = None,
        since: Since | None = None,
        until: datetime | None = None,
        status: str | None = None,
        task_type: str | None = None,
        run_type: str | None = None,
        is_root: bool | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs matching a LangSmith filter string and every given argument, newest first.

        ``filter`` uses LangSmith's language (``and(eq(status, "error"),
        gte(start_time, "2026-11-01"))``) with the semantics of
        :func:`selfheal.tracing.filters.evaluate`; a malformed one raises
        ``FilterError`` naming the column. ``since`` is a datetime or a
        look-back window, ``until`` exclusive. ``limit=None`` returns every match.
        """
        if (limit is not None and limit < 0) or offset < 0:
            raise ValueError("limit and offset must not be negative")
        found = self._matching(filter, project, since, until, status, task_type, run_type, is_root)
        if found is None:
            return []
        where, params = found
        sql = f"{_RUN_SELECT} WHERE {where} ORDER BY start_time DESC, dotted_order DESC"
        if limit is not None or offset:
            sql += " LIMIT :q_limit OFFSET :q_offset"
            params["q_limit"] = -1 if limit is None else int(limit)
            params["q_offset"] = int(offset)
        with self._read() as conn:
            install_functions(conn)
            rows = conn.execute(sql, params).fetchall()
        return [_run_from_row(r) for r in rows]

    def count_matching(
        self,
        filter: str | Filter | None = None,  # noqa: A002
        *,
        project: str | UUID | None = None,
        since: Since | None = None,
        until: datetime | None = None,
        status: str | None = None,
        task_type: str | None = None,
        run_type: str | None = None,
        is_root: bool | None = None,
    ) -> int:
        """How many runs :meth:`query_runs` would return without a limit."""
        found = self._matching(filter, project, since, until, status, task_type, run_type, is_root)
        if found is None:
            return 0
        where, params = found
        with self._read() as conn:
            install_functions(conn)
            row = conn.execute(f"SELECT COUNT(*) FROM runs WHERE {where}", params).fetchone()
        return int(row[0])

    def _matching(
        self,
        filter: str | Filter | None,  # noqa: A002
        project: str | UUID | None,
        since: Since | None,
        until: datetime | None,
        status: str | None,
        task_type: str | None,
        run_type: str | None,
        is_root: bool | None,
    ) -> tuple[str, dict[str, Any]] | None:
        """WHERE clause and named parameters; None when ``project`` names no project."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if filter is not None:
            compiled = compile_filter(to_filter(filter))
            where.append(compiled.where)
            params.update(compiled.params)
        if project is not None:
            session_id = self._session_id(project)
            if session_id is None:
                return None
            where.append("runs.session_id = :q_session")
            params["q_session"] = session_id
        if since is not None:
            where.append("runs.start_time >= :q_since")
            params["q_since"] = _since(since)
        if until is not None:
            where.append("runs.start_time < :q_until")
            params["q_until"] = serde.iso(until)
        if status is not None:
            where.append("runs.status = :q_status")
            params["q_status"] = status
        if task_type is not None:
            where.append("runs.meta_task_type = :q_task_type")
            params["q_task_type"] = task_type
        if run_type is not None:
            where.append("runs.run_type = :q_run_type")
            params["q_run_type"] = run_type
        if is_root is not None:
            where.append(f"runs.parent_run_id IS {'' if is_root else 'NOT '}NULL")
        return (" AND ".join(where) if where else "1"), params

    def _session_id(self, project: str | UUID) -> str | None:
        if isinstance(project, UUID):
            return str(project)
        found = self.get_project(project)
        return None if found is None else str(found.id)

    def prune(
        self,
        older_than: timedelta,
        *,
        project: str | UUID | None = None,
        batch_traces: int = 500,
        vacuum: bool = False,
    ) -> int:
        """Delete whole traces whose root started over ``older_than`` ago; returns how many.

        Each batch of traces goes in one transaction with their runs, their
        feedback and their ``langsmith_pending`` rows (a pruned trace is no
        longer worth uploading), so a reader never sees part of a trace and
        other writers get the file between batches. Freed pages are reused by
        later writes; ``vacuum=True`` also shrinks the file (a full ``VACUUM``
        that switches the file to incremental auto-vacuum, so later prunes
        return space without one).
        """
        if older_than < timedelta(0):
            raise ValueError("older_than must not be negative")
        if batch_traces < 1:
            raise ValueError("batch_traces must be at least 1")
        select = "SELECT DISTINCT trace_id FROM runs WHERE parent_run_id IS NULL AND start_time < ?"
        args: list[Any] = [serde.iso(utcnow() - older_than)]
        if project is not None:
            session_id = self._session_id(project)
            if session_id is None:
                return 0
            select += " AND session_id = ?"
            args.append(session_id)
        select += " LIMIT ?"
        args.append(batch_traces)
        pruned = 0
        while True:
            with self._write() as conn:
                traces = [r[0] for r in conn.execute(select, args).fetchall()]
                if traces:
                    _delete_traces(conn, traces)
            if not traces:
                break
            pruned += len(traces)
        with self._read() as conn:
            conn.execute("PRAGMA optimize")
            if vacuum:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                conn.execute("VACUUM")
            elif conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
                # executescript steps it to the end; execute() would free a single page
                conn.executescript("PRAGMA incremental_vacuum;")
        return pruned

    def merge_metadata(self, run_id: UUID | str, metadata: Mapping[str, Any]) -> RunRecord:
        """Merge keys into a stored run's ``extra.metadata`` (e.g. success, once the graph ends)."""
        rid = _uuid(run_id)
        with self._write() as conn:
            row = conn.execute("SELECT extra FROM runs WHERE id = ?", (rid,)).fetchone()
            if row is None:
                raise RunNotFoundError(f"run {rid} not found in {self.path}")
            extra = serde.loads(row["extra"]) or {}
            md = extra.get("metadata")
            added = self.redactor.redact(serde.plain(dict(metadata))) if self.redactor else metadata
            extra["metadata"] = {**(md if isinstance(md, dict) else {}), **added}
            conn.execute(
                "UPDATE runs SET extra = ? WHERE id = ?",
                (serde.dumps(extra, limit=self.max_payload_chars), rid),
            )
        run = self.get_run(rid)
        assert run is not None
        return run

    def _clean(self, value: Any) -> Any:
        """``value`` with secrets and PII removed (as is without a redactor)."""
        if self.redactor is None or value is None:
            return value
        return self.redactor.redact(serde.plain(value))

    # -- feedback -----------------------------------------------------------
    def add_feedback(self, feedback: FeedbackRecord) -> FeedbackRecord:
        """Store feedback; its ``trace_id`` is filled from the run. Unknown runs are refused."""
        if feedback.run_id is not None:
            run = self.get_run(feedback.run_id)
            if run is None:
                raise RunNotFoundError(f"run {feedback.run_id} not found in {self.path}")
            if feedback.trace_id is None:
                feedback = feedback.model_copy(update={"trace_id": run.trace_id})
        source = feedback.source.model_dump() if feedback.source is not None else None
        with self._write() as conn:
            conn.execute(
                "INSERT INTO feedback (id, run_id, trace_id, key, score, value, comment,"
                " correction, created_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(feedback.id),
                    _opt(feedback.run_id),
                    _opt(feedback.trace_id),
                    feedback.key,
                    None if feedback.score is None else float(feedback.score),
                    serde.dumps(self._clean(feedback.value)),
                    self.redactor.redact_text(feedback.comment)
                    if self.redactor and feedback.comment
                    else feedback.comment,
                    serde.dumps(self._clean(feedback.correction)),
                    serde.iso(feedback.created_at),
                    serde.dumps(source),
                ),
            )
        return feedback

    def list_feedback(
        self,
        *,
        run_ids: Sequence[UUID | str] | None = None,
        key: str | None = None,
        limit: int | None = None,
    ) -> list[FeedbackRecord]:
        """Feedback, newest first, optionally for some runs and/or one key."""
        where: list[str] = []
        params: list[Any] = []
        if run_ids is not None:
            ids = [_uuid(r) for r in run_ids]
            if not ids:
                return []
            where.append(f"run_id IN ({', '.join('?' * len(ids))})")
            params.extend(ids)
        if key is not None:
            where.append("key = ?")
            params.append(key)
        sql = "SELECT * FROM feedback"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        out = []
        for row in rows:
            data = dict(row)
            for col in ("value", "correction", "source"):
                data[col] = serde.loads(data[col])
            out.append(FeedbackRecord.model_validate(data))
        return out

    # -- datasets and examples ---------------------------------------------
    def ensure_dataset(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> DatasetRecord:
        """The dataset called ``name``, created on first use."""
        with self._write() as conn:
            row = conn.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return self._dataset_from_row(row)
            ds = DatasetRecord(name=name, description=description, metadata=dict(metadata or {}))
            conn.execute(
                "INSERT INTO datasets (id, name, description, data_type, created_at, modified_at,"
                " metadata) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    str(ds.id),
                    ds.name,
                    ds.description,
                    ds.data_type,
                    serde.iso(ds.created_at),
                    None,
                    serde.dumps(ds.metadata),
                ),
            )
        return ds

    @staticmethod
    def _dataset_from_row(row: sqlite3.Row) -> DatasetRecord:
        data = dict(row)
        data["metadata"] = serde.loads(data["metadata"])
        return DatasetRecord.model_validate(data)

    def get_dataset(self, name: str) -> DatasetRecord | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM datasets WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._dataset_from_row(row)

    def upsert_examples(self, examples: Iterable[ExampleRecord]) -> None:
        """Insert or replace examples in one transaction (redacted, like runs: they are uploaded too)."""
        rows = [
            (
                str(e.id),
                str(e.dataset_id),
                serde.dumps(self._clean(e.inputs), limit=self.max_payload_chars),
                serde.dumps(self._clean(e.outputs), limit=self.max_payload_chars),
                serde.dumps(self._clean(e.metadata)),
                serde.iso(e.created_at),
                serde.iso(e.modified_at),
                _opt(e.source_run_id),
            )
            for e in examples
        ]
        if not rows:
            return
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO examples (id, dataset_id, inputs, outputs, metadata,"
                " created_at, modified_at, source_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def list_examples(
        self, dataset_id: UUID | str, *, split: str | None = None
    ) -> list[ExampleRecord]:
        """A dataset's examples in creation order, optionally only one split."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM examples WHERE dataset_id = ? ORDER BY created_at, id",
                (_uuid(dataset_id, "dataset id"),),
            ).fetchall()
        out = []
        for row in rows:
            data = dict(row)
            for col in ("inputs", "outputs", "metadata"):
                data[col] = serde.loads(data[col])
            ex = ExampleRecord.model_validate(data)
            if split is None or split in ex.splits:
                out.append(ex)
        return out

    # -- experiments (selfheal.evaluation.experiments) ----------------------
    def put_experiment(
        self, *, id: str, name: str, dataset: str, split: str, started_at: str, result: str
    ) -> None:
        """Insert or replace one experiment's result JSON (keyed by its session id)."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO experiments (id, name, dataset, split, started_at, result)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (_uuid(id, "experiment id"), name, dataset, split, started_at, result),
            )

    def get_experiment(self, name_or_id: str) -> str | None:
        """The stored result JSON of the experiment with this name or id (None if unknown)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT result FROM experiments WHERE name = ? OR id = ?", (name_or_id, name_or_id)
            ).fetchone()
        return None if row is None else str(row[0])

    def list_experiment_results(self, dataset: str | None = None) -> list[str]:
        """Stored result JSON of every experiment (of one dataset), newest first."""
        sql = "SELECT result FROM experiments"
        params: list[Any] = []
        if dataset is not None:
            sql += " WHERE dataset = ?"
            params.append(dataset)
        sql += " ORDER BY started_at DESC, name DESC"
        with self._read() as conn:
            return [str(r[0]) for r in conn.execute(sql, params).fetchall()]


def _delete_traces(conn: sqlite3.Connection, trace_ids: Sequence[str]) -> None:
    """Delete these traces' runs, feedback and LangSmith outbox rows, in the caller's transaction."""
    marks = ", ".join("?" * len(trace_ids))
    ids = list(trace_ids)
    feedback_ids = [
        r[0]
        for r in conn.execute(
            f"SELECT id FROM feedback WHERE trace_id IN ({marks})"
            f" OR run_id IN (SELECT id FROM runs WHERE trace_id IN ({marks}))",
            ids + ids,
        )
    ]
    for start in range(0, len(feedback_ids), 500):
        chunk = feedback_ids[start : start + 500]
        fb_marks = ", ".join("?" * len(chunk))
        conn.execute(f"DELETE FROM feedback WHERE id IN ({fb_marks})", chunk)
        conn.execute(
            f"DELETE FROM langsmith_pending WHERE kind = 'feedback' AND id IN ({fb_marks})", chunk
        )
    conn.execute(f"DELETE FROM langsmith_pending WHERE kind = 'trace' AND id IN ({marks})", ids)
    conn.execute(f"DELETE FROM runs WHERE trace_id IN ({marks})", ids)


def _metadata_clause(key: str, value: Any) -> tuple[str, list[Any]]:
    """SQL for ``extra.metadata[key] == value``; indexed keys use their generated column."""
    if not _METADATA_KEY.match(key):
        raise ValueError(f"metadata filter key must be letters, digits, '_' or '-': {key!r}")
    column = f"meta_{key}" if key in INDEXED_METADATA_KEYS else None
    expr = column or "json_extract(extra, ?)"
    params: list[Any] = [] if column else [f'$.metadata."{key}"']
    if value is None:
        return f"{expr} IS NULL", params
    if isinstance(value, bool):
        return f"{expr} = ?", [*params, int(value)]
    if isinstance(value, int | float | str):
        return f"{expr} = ?", [*params, value]
    raise ValueError(f"metadata filter on {key!r} needs a scalar value, got {type(value).__name__}")
