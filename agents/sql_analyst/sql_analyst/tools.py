"""LangChain tools over a read-only SQLite connection.

Read-only twice over: the file is opened with ``mode=ro`` and every statement
the model sends runs under an authorizer that allows only reads, SELECT,
recursive CTEs and plain functions (never ``load_extension``). A progress
handler stops a query after ``time_limit_s``; one statement per call. Errors
come back as short text the model can read — a tool never raises.

Every successful ``run_sql`` result (columns and all rows, up to
``MAX_RECORDED_ROWS``) is recorded in :attr:`SqlDatabase.results`, so the
verifier judges from evidence.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool

SHOWN_ROWS = 50
MAX_RECORDED_ROWS = 100_000
TIME_LIMIT_S = 5.0
MAX_VALUE_BYTES = 10_000_000
TOOL_NAMES = ["list_tables", "describe_table", "run_sql"]

_ALLOWED = {sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_FORBIDDEN_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}


@dataclass
class QueryResult:
    query: str
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool = False


@dataclass
class SqlDatabase:
    """One read-only connection plus the log of successful results."""

    path: Path
    time_limit_s: float = TIME_LIMIT_S
    results: list[QueryResult] = field(default_factory=list)

    def __post_init__(self) -> None:
        uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        # no value (string/blob) above 10 MB: `SELECT randomblob(1e9)` must not take the machine's memory
        self._conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        self._lock = threading.Lock()
        self._deadline = 0.0
        self._denied: list[str] = []

    def close(self) -> None:
        self._conn.close()

    # -- internal metadata (no authorizer: our own statements) ------------------
    def list_tables(self) -> str:
        out = []
        with self._lock:
            for name in self.table_names_unlocked():
                n = self._conn.execute(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0]
                out.append(f"{name} ({n} rows)")
        return "\n".join(out)

    def table_names_unlocked(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        ).fetchall()
        return [r[0] for r in rows]

    def describe_table(self, table: str) -> str:
        table = table.strip().strip('"').strip("`")
        with self._lock:
            names = self.table_names_unlocked()
            if table not in names:
                return f"error: no table named {table!r}; tables: {', '.join(names)}"
            cols = self._conn.execute(f'PRAGMA table_info("{table}")').fetchall()
            fks = self._conn.execute(f'PRAGMA foreign_key_list("{table}")').fetchall()
            sample = self._conn.execute(f'SELECT * FROM "{table}" LIMIT 3').fetchall()
        refs = {fk[3]: f"{fk[2]}.{fk[4]}" for fk in fks}
        lines = [f"table {table}:"]
        for c in cols:
            extra = " primary key" if c[5] else ""
            if c[1] in refs:
                extra += f" -> {refs[c[1]]}"
            lines.append(f"  {c[1]} {c[2]}{extra}")
        lines.append("sample rows:")
        lines.append("  " + " | ".join(c[1] for c in cols))
        lines.extend("  " + " | ".join(_cell(v) for v in row) for row in sample)
        return "\n".join(lines)

    # -- the model's queries -----------------------------------------------------
    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None, src: str | None) -> int:
        if action in _ALLOWED:
            if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _FORBIDDEN_FUNCTIONS:
                self._denied.append(f"function {arg2}")
                return sqlite3.SQLITE_DENY
            return sqlite3.SQLITE_OK
        self._denied.append(_ACTION_NAMES.get(action, str(action)))
        return sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        return 1 if time.monotonic() > self._deadline else 0

    def execute(self, query: str) -> QueryResult | str:
        """The query's full result, or a short error text."""
        query = (query or "").strip()
        if not query:
            return "error: empty query"
        with self._lock:
            self._denied = []
            self._deadline = time.monotonic() + self.time_limit_s
            self._conn.set_authorizer(self._authorize)
            self._conn.set_progress_handler(self._progress, 10_000)
            try:
                cur = self._conn.execute(query)
                columns = [d[0] for d in cur.description or []]
                rows = cur.fetchmany(MAX_RECORDED_ROWS + 1)
            except (sqlite3.Error, sqlite3.Warning) as exc:
                msg = str(exc)
                if "one statement" in msg:
                    return "error: more than one statement; send exactly one SELECT statement"
                if "interrupted" in msg:
                    return f"error: query stopped after {self.time_limit_s:g} s (time limit); simplify it"
                if "not authorized" in msg or self._denied:
                    what = f" ({', '.join(dict.fromkeys(self._denied))})" if self._denied else ""
                    return f"error: not allowed{what}: the database is read-only, only SELECT queries run"
                return f"error: {msg}"
            finally:
                self._conn.set_authorizer(None)
                self._conn.set_progress_handler(None, 0)
        if not columns:
            return "error: the statement returned no result set; send a SELECT query"
        truncated = len(rows) > MAX_RECORDED_ROWS
        result = QueryResult(query, columns, [tuple(r) for r in rows[:MAX_RECORDED_ROWS]], truncated)
        self.results.append(result)
        return result

    def run_sql(self, query: str) -> str:
        out = self.execute(query)
        if isinstance(out, str):
            return out
        return format_result(out)

    def tools(self, descriptions: dict[str, str] | None = None) -> list[BaseTool]:
        d = descriptions or {}

        def list_tables() -> str:
            return self.list_tables()

        def describe_table(table: str) -> str:
            return self.describe_table(table)

        def run_sql(query: str) -> str:
            return self.run_sql(query)

        return [
            StructuredTool.from_function(list_tables, name="list_tables",
                                         description=d.get("list_tables", "The tables of the database with row counts.")),
            StructuredTool.from_function(describe_table, name="describe_table", description=d.get(
                "describe_table", "A table's columns, types, references and 3 sample rows. Argument: table name.")),
            StructuredTool.from_function(run_sql, name="run_sql", description=d.get(
                "run_sql", f"Run one read-only SQLite SELECT query; shows up to {SHOWN_ROWS} rows and the total count.")),
        ]


_ACTIONS = (
    "CREATE_INDEX CREATE_TABLE CREATE_TEMP_INDEX CREATE_TEMP_TABLE CREATE_TEMP_TRIGGER CREATE_TEMP_VIEW "
    "CREATE_TRIGGER CREATE_VIEW DELETE DROP_INDEX DROP_TABLE DROP_TEMP_INDEX DROP_TEMP_TABLE DROP_TEMP_TRIGGER "
    "DROP_TEMP_VIEW DROP_TRIGGER DROP_VIEW INSERT PRAGMA READ SELECT TRANSACTION UPDATE ATTACH DETACH "
    "ALTER_TABLE REINDEX ANALYZE CREATE_VTABLE DROP_VTABLE FUNCTION SAVEPOINT RECURSIVE"
).split()
_ACTION_NAMES = {getattr(sqlite3, "SQLITE_" + a): a for a in _ACTIONS if hasattr(sqlite3, "SQLITE_" + a)}


def _cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e15 else repr(v)
    return str(v)


def format_result(result: QueryResult) -> str:
    n = len(result.rows)
    lines = [" | ".join(result.columns)]
    lines.extend(" | ".join(_cell(v) for v in row) for row in result.rows[:SHOWN_ROWS])
    total = f"{n}+" if result.truncated else str(n)
    if n > SHOWN_ROWS:
        lines.append(f"({total} rows in total, first {SHOWN_ROWS} shown)")
    else:
        lines.append(f"({total} row{'s' if n != 1 else ''})")
    return "\n".join(lines)
