"""SQLite schema of the local trace store, as numbered migrations.

A new file and an old file take the same path: every migration after the
file's ``schema_version`` is applied in one ``BEGIN IMMEDIATE`` transaction,
so two processes opening the same new file cannot both migrate it. A file
written by a newer selfheal, or a database that is not a trace store, is
refused with a one-line error naming the file.

Tables are named like LangSmith's objects and columns like their fields;
JSON columns hold dicts/lists, timestamps are fixed-width ISO-8601 UTC text
(text order is time order), ``start_us``/``end_us`` hold epoch microseconds
for duration arithmetic in SQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from selfheal.tracing.errors import TraceStoreError

#: Run metadata keys with an indexed generated column (``meta_<key>``) in ``runs``.
INDEXED_METADATA_KEYS: tuple[str, ...] = ("task_type", "success", "error_type")

_V1 = [
    """CREATE TABLE tracer_sessions (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        start_time TEXT NOT NULL,
        end_time TEXT,
        description TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        reference_dataset_id TEXT
    )""",
    """CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        run_type TEXT NOT NULL,
        start_time TEXT NOT NULL,
        end_time TEXT,
        start_us INTEGER NOT NULL,
        end_us INTEGER,
        inputs TEXT NOT NULL DEFAULT '{}',
        outputs TEXT,
        error TEXT,
        extra TEXT NOT NULL DEFAULT '{}',
        tags TEXT NOT NULL DEFAULT '[]',
        events TEXT NOT NULL DEFAULT '[]',
        parent_run_id TEXT,
        trace_id TEXT NOT NULL,
        dotted_order TEXT NOT NULL,
        session_id TEXT,
        status TEXT NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        total_tokens INTEGER,
        reference_example_id TEXT
    )""",
    "CREATE INDEX ix_runs_session_start ON runs (session_id, start_time)",
    "CREATE INDEX ix_runs_start ON runs (start_time)",
    "CREATE INDEX ix_runs_trace ON runs (trace_id, dotted_order)",
    "CREATE INDEX ix_runs_parent ON runs (parent_run_id)",
    "CREATE INDEX ix_runs_status ON runs (status, start_time)",
    "CREATE INDEX ix_runs_name ON runs (name, start_time)",
    """CREATE TABLE feedback (
        id TEXT PRIMARY KEY,
        run_id TEXT,
        trace_id TEXT,
        key TEXT NOT NULL,
        score REAL,
        value TEXT,
        comment TEXT,
        correction TEXT,
        created_at TEXT NOT NULL,
        source TEXT
    )""",
    "CREATE INDEX ix_feedback_run ON feedback (run_id)",
    "CREATE INDEX ix_feedback_trace ON feedback (trace_id)",
    "CREATE INDEX ix_feedback_key ON feedback (key, created_at)",
    """CREATE TABLE datasets (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        description TEXT,
        data_type TEXT NOT NULL DEFAULT 'kv',
        created_at TEXT NOT NULL,
        modified_at TEXT,
        metadata TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE examples (
        id TEXT PRIMARY KEY,
        dataset_id TEXT NOT NULL,
        inputs TEXT NOT NULL DEFAULT '{}',
        outputs TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        modified_at TEXT,
        source_run_id TEXT
    )""",
    "CREATE INDEX ix_examples_dataset ON examples (dataset_id, created_at)",
]


def _v2_statements() -> list[str]:
    """Generated columns for the metadata keys that filters use, so those filters hit an index."""
    out: list[str] = []
    for key in INDEXED_METADATA_KEYS:
        out.append(
            f"ALTER TABLE runs ADD COLUMN meta_{key} "
            f"GENERATED ALWAYS AS (json_extract(extra, '$.metadata.{key}')) VIRTUAL"
        )
        out.append(f"CREATE INDEX ix_runs_meta_{key} ON runs (meta_{key}, start_time)")
    return out


#: LangSmith delivery outbox (see :mod:`selfheal.tracing.sync`): one row per trace or
#: feedback not yet confirmed delivered; a row is deleted only after a verified upload.
_V3 = [
    """CREATE TABLE langsmith_pending (
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        run_id TEXT,
        op TEXT NOT NULL DEFAULT 'post',
        seq INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        queued_at TEXT NOT NULL,
        last_attempt_at TEXT,
        PRIMARY KEY (kind, id)
    )""",
]


#: Root runs by task type and outcome (success rates, "failed lambda_latency traces"):
#: partial, so child runs -- nine in ten -- pay nothing for it at ingest; used by
#: queries that say ``parent_run_id IS NULL`` (``is_root=True``, ``eq(is_root, true)``).
_V4 = [
    "CREATE INDEX ix_runs_root_task ON runs (meta_task_type, meta_success, start_time)"
    " WHERE parent_run_id IS NULL",
]


#: Evaluation experiments: the full ExperimentResult JSON of each experiment session
#: (``tracer_sessions`` keeps the LangSmith-shaped project; this keeps what a report needs).
_V5 = [
    """CREATE TABLE experiments (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        dataset TEXT NOT NULL,
        split TEXT NOT NULL,
        started_at TEXT NOT NULL,
        result TEXT NOT NULL
    )""",
    "CREATE INDEX ix_experiments_dataset ON experiments (dataset, started_at)",
]


def _statements(stmts: list[str]) -> Callable[[sqlite3.Connection], None]:
    def apply(conn: sqlite3.Connection) -> None:
        for sql in stmts:
            conn.execute(sql)

    return apply


#: version -> migration from version-1. Append only; never edit a released step.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _statements(_V1),
    2: _statements(_v2_statements()),
    3: _statements(_V3),
    4: _statements(_V4),
    5: _statements(_V5),
}
CURRENT_VERSION = max(MIGRATIONS)


def stored_version(conn: sqlite3.Connection, path: Path | str) -> int:
    """The file's schema version: 0 for an empty database; refuses foreign databases."""
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if "schema_version" in tables:
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            raise TraceStoreError(f"{path}: trace store has an empty schema_version table")
        return int(row[0])
    if tables:
        raise TraceStoreError(
            f"{path}: not a selfheal trace store (has tables {', '.join(sorted(tables))})"
        )
    return 0


def migrate(conn: sqlite3.Connection, path: Path | str) -> int:
    """Bring the database to :data:`CURRENT_VERSION`; returns the version it had before."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        before = stored_version(conn, path)
        if before > CURRENT_VERSION:
            raise TraceStoreError(
                f"{path}: trace store schema version {before} is newer than this "
                f"selfheal supports ({CURRENT_VERSION}); upgrade selfheal"
            )
        if before < CURRENT_VERSION:
            for version in range(before + 1, CURRENT_VERSION + 1):
                MIGRATIONS[version](conn)
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            conn.execute("DELETE FROM schema_version")
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (CURRENT_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return before
