from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from langchain_core.tools import BaseTool

from sql_analyst.generate import content_digest
from sql_analyst.tools import SHOWN_ROWS, TOOL_NAMES, SqlDatabase

HOSTILE = [
    "DROP TABLE orders",
    "DELETE FROM orders",
    "INSERT INTO regions VALUES (99, 'Moon', 'MO')",
    "UPDATE orders SET status = 4",
    "ATTACH DATABASE '{tmp}/evil.db' AS evil",
    "PRAGMA writable_schema = 1",
    "PRAGMA journal_mode = DELETE",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT 1; DROP TABLE orders",
    "CREATE TABLE t (x)",
    "CREATE TEMP VIEW v AS SELECT 1",
    "VACUUM",
    "REPLACE INTO regions VALUES (1, 'X', 'X')",
    "ALTER TABLE orders ADD COLUMN x",
    "BEGIN IMMEDIATE",
    "SELECT randomblob(1000000000)",
    "SELECT length(zeroblob(2000000000))",
]


@pytest.fixture
def scratch_db(tmp_path: Path, db_path: Path) -> Path:
    copy = tmp_path / "copy.sqlite"
    shutil.copy(db_path, copy)
    return copy


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_hostile_sql_is_refused_and_the_database_unchanged(scratch_db: Path, tmp_path: Path) -> None:
    before, before_rows = _file_hash(scratch_db), content_digest(scratch_db)
    db = SqlDatabase(scratch_db, time_limit_s=0.5)
    run_sql = {t.name: t for t in db.tools()}["run_sql"]
    for query in HOSTILE:
        out = run_sql.invoke({"query": query.format(tmp=tmp_path)})
        assert out.startswith("error:"), (query, out)
    out = run_sql.invoke({"query": "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT COUNT(*) FROM r"})
    assert "time limit" in out
    db.close()
    assert db.results == []
    assert _file_hash(scratch_db) == before and content_digest(scratch_db) == before_rows
    assert not (tmp_path / "evil.db").exists()


def test_errors_are_text_the_model_can_read(db_path: Path) -> None:
    db = SqlDatabase(db_path)
    assert db.run_sql("SELECT * FROM nope") == "error: no such table: nope"
    assert "only SELECT" in db.run_sql("DELETE FROM orders")
    assert "(DELETE)" in db.run_sql("DELETE FROM orders")
    assert db.run_sql("") == "error: empty query"
    assert "one statement" in db.run_sql("SELECT 1; SELECT 2")
    assert db.describe_table("nope").startswith("error: no table named 'nope'")


def test_results_are_shown_50_and_recorded_whole(db_path: Path) -> None:
    db = SqlDatabase(db_path)
    out = db.run_sql("SELECT id, name FROM customers ORDER BY id LIMIT 120")
    lines = out.splitlines()
    assert lines[0] == "id | name"
    assert len(lines) == 1 + SHOWN_ROWS + 1 and lines[-1] == "(120 rows in total, first 50 shown)"
    assert len(db.results) == 1 and len(db.results[0].rows) == 120 and db.results[0].columns == ["id", "name"]
    assert db.run_sql("SELECT COUNT(*) FROM regions").endswith("6\n(1 row)")
    db.run_sql("SELECT broken FROM regions")  # failures are not recorded
    assert len(db.results) == 2


def test_tools_are_langchain_tools(db_path: Path) -> None:
    db = SqlDatabase(db_path)
    tools = db.tools()
    assert [t.name for t in tools] == TOOL_NAMES and all(isinstance(t, BaseTool) for t in tools)
    by_name = {t.name: t for t in tools}
    listing = by_name["list_tables"].invoke({})
    assert "orders (" in listing and "regions (6 rows)" in listing
    desc = by_name["describe_table"].invoke({"table": "orders"})
    assert "customer_id INTEGER -> customers.id" in desc and "sample rows:" in desc
    assert len(desc.split("sample rows:")[1].strip().splitlines()) == 4  # header + 3 rows
