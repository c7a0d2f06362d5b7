from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from sql_analyst import generate
from sql_analyst.generate import TABLES, build, content_digest, database_path, source_hash


def test_same_seed_gives_the_same_rows(tmp_path: Path, db_path: Path) -> None:
    start = time.monotonic()
    other = tmp_path / "again.sqlite"
    build(other)
    assert time.monotonic() - start < 10  # generation budget on a 2-core machine
    assert content_digest(other) == content_digest(db_path)
    assert source_hash() == source_hash()
    build(other, seed=7)
    assert content_digest(other) != content_digest(db_path)


def test_size_of_the_company(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(TABLES) <= names and len(TABLES) >= 10
    counts = {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
    assert all(n > 0 for n in counts.values())
    assert sum(counts.values()) >= 100_000, counts
    for table, column in [("employees", "full_name"), ("customers", "name"), ("products", "name"), ("regions", "name")]:
        dupes = conn.execute(f"SELECT COUNT(*) - COUNT(DISTINCT {column}) FROM {table}").fetchone()[0]
        assert dupes == 0, f"answers list {table}.{column}: it must name one row"
    ddl = " ".join(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))
    assert "--" not in ddl and "/*" not in ddl and "cents" not in ddl.lower()  # nothing gives a convention away


def test_cache_is_keyed_by_source_and_seed_and_reused(cache_dir: Path, db_path: Path) -> None:
    assert source_hash() in db_path.name and str(generate.DEFAULT_SEED) in db_path.name
    mtime = db_path.stat().st_mtime_ns
    assert database_path(cache_dir) == db_path
    assert db_path.stat().st_mtime_ns == mtime  # not rebuilt
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".building-")]


def test_concurrent_openers_see_a_whole_database(tmp_path: Path, monkeypatch) -> None:
    """Two builders race: each writes its own temp file and renames it; nobody sees a partial file."""
    seen_partial: list[bool] = []

    def slow_build(path: Path, seed: int = generate.DEFAULT_SEED) -> None:
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE regions (id INTEGER PRIMARY KEY, name TEXT)")
        conn.commit()
        time.sleep(0.3)  # the other thread looks while this one is half done
        conn.executemany("INSERT INTO regions VALUES (?, ?)", [(i, f"r{i}") for i in range(100)])
        conn.commit()
        conn.close()

    monkeypatch.setattr(generate, "build", slow_build)
    found: list[Path] = []

    def open_it() -> None:
        path = database_path(tmp_path)
        found.append(path)
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        seen_partial.append(conn.execute("SELECT COUNT(*) FROM regions").fetchone()[0] != 100)
        conn.close()

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.1)
    for t in threads:
        t.join()
    assert len(found) == 3 and len(set(found)) == 1
    assert seen_partial == [False, False, False]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".building-")]
