"""Concurrent online learning loses no lesson: every ADD reported applied is a file on disk.

Several processes (not threads: the lock is a cross-process file lock) apply
curator ADDs whose ids collide (same slug) through the online learner's apply
path, each from a snapshot taken at its "run start".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.reliability import record

from selfheal.cheatsheet.store import load_cheatsheet
from selfheal.config import load_settings
from helpers.curation import make_repo

WORKER = Path(__file__).parent / "helpers" / "concurrent_adds.py"


def _run_workers(repo: Path, workers: int, count: int) -> list[str]:
    go = repo / ".go"
    procs = [
        subprocess.Popen([sys.executable, str(WORKER), str(repo), str(w), str(count), str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(workers)
    ]
    go.touch()
    added: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=800)
        assert p.returncode == 0, err[-2000:]
        added += json.loads(out.strip().splitlines()[-1])["added"]
    return added


def _check(repo: Path, workers: int, count: int) -> None:
    settings = load_settings(repo)
    before = {e.id for e in load_cheatsheet(settings.cheatsheet_dir)}
    added = _run_workers(repo, workers, count)
    sheet = load_cheatsheet(settings.cheatsheet_dir)  # every file parses
    new = {e.id for e in sheet} - before
    assert len(added) == workers * count  # distinct lessons: none rejected
    assert len(new) == len(added), f"{len(added)} ADDs reported applied, {len(new)} new entry files on disk"
    assert new == set(added)
    lessons = {sheet.get(i).lesson for i in new}  # type: ignore[union-attr]
    assert len(lessons) == workers * count  # no file overwritten by another lesson
    record("load", tried=workers * count, held=len(new), lost=workers * count - len(new),
           unit="lessons", note=f"{workers} processes x {count} online-learning ADDs")


def test_parallel_processes_lose_no_lesson(tmp_path: Path) -> None:
    _check(make_repo(tmp_path), workers=4, count=5)


@pytest.mark.timeout(900)  # 8 interpreters: ~5 s on a quiet machine, minutes when the cores are busy
def test_parallel_processes_lose_no_lesson_8x25(tmp_path: Path) -> None:
    _check(make_repo(tmp_path), workers=8, count=25)


def test_lock_held_by_another_process_waits_then_says_so(tmp_path: Path) -> None:
    from selfheal.cheatsheet.lock import CheatsheetLocked, cheatsheet_lock

    lock = tmp_path / "state" / "cheatsheet.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from selfheal.cheatsheet.lock import cheatsheet_lock\n"
         f"with cheatsheet_lock({str(lock)!r}):\n    print('held', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(CheatsheetLocked, match="locked by another selfheal process"):
            with cheatsheet_lock(lock, timeout=0.3):
                pass
    finally:
        holder.kill()
        holder.wait()
    with cheatsheet_lock(lock, timeout=5), cheatsheet_lock(lock, timeout=0):  # released; re-entrant
        pass


_COUNT = """
import sys
from selfheal.cheatsheet.counters import CounterStore
with CounterStore(sys.argv[1]) as store:
    for i in range(int(sys.argv[3])):
        store.record_use(f"entry-{i % 7}", run_id=f"{sys.argv[2]}-{i}", tag="helpful", success=True)
"""


def test_counters_from_parallel_processes_all_recorded(tmp_path: Path) -> None:
    from selfheal.cheatsheet.counters import CounterStore

    db = tmp_path / "state" / "cheatsheet_state.sqlite"
    procs = [subprocess.Popen([sys.executable, "-c", _COUNT, str(db), f"w{w}", "40"], stderr=subprocess.PIPE,
                              text=True) for w in range(4)]
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    with CounterStore(db) as store:
        assert sum(s.uses for s in store.all().values()) == 4 * 40
