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
    ddl = " ".join(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))
    assert "--" not in ddl and "/*" not in ddl and "cents" not in ddl.lower()  # nothing gives a convention away


def test_cache_is_keyed_by_source_and_seed_and_reused(cache_dir: Path, db_path: Path) -> None:
    assert source_hash() in db_path.name and str(generate.DEFAULT_SEED) in db_path.name
    mtime = db_path.stat().st_mtime_ns
    assert database_path(cache_dir) == db_path
    assert db_path.stat().st_mtime_ns == mtime  # not rebuilt
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".building-")]


def test_concurrent_openers_see_a_whole_database(tmp_path: Path, monkeypatch) -> None:
    built: list[Path] = []
    real_build = generate.build

    def slow_build(path: Path, seed: int = generate.DEFAULT_SEED) -> None:
        real_build(path, seed)
        built.append(path)

    monkeypatch.setattr(generate, "build", slow_build)
    found: list[Path] = []
    threads = [threading.Thread(target=lambda: found.append(database_path(tmp_path))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(found)) == 1
    conn = sqlite3.connect(f"{found[0].as_uri()}?mode=ro", uri=True)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".building-")]
