"""Per-entry usage counters, kept in local state rather than in the reviewed entry files.

Every run moves helpful/harmful/usage counters; writing them into the YAML
entries would turn each PR diff into noise. Online runs record one row per
(run, entry) here (so a retried or resumed run never counts twice); batch
curation reads what accumulated since the last fold, folds it into one
reviewed change, then marks those rows folded. Renames (merges) move an
entry's history to its new id and redirect late reports about the old id.

SQLite in WAL mode: several processes (eval workers, the CLI) may write at
once; within a process one connection is shared under a lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from selfheal.config import Settings

Tag = Literal["helpful", "harmful", "neutral"]
TAGS: tuple[str, ...] = ("helpful", "harmful", "neutral")
STATE_FILENAME = "cheatsheet_state.sqlite"
_SQL_CHUNK = 900

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uses (
    run_id   TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    tag      TEXT NOT NULL CHECK (tag IN ('helpful', 'harmful', 'neutral')),
    success  INTEGER NOT NULL,
    at       TEXT NOT NULL,
    folded   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, entry_id)
);
CREATE INDEX IF NOT EXISTS uses_entry ON uses (entry_id, folded);
CREATE TABLE IF NOT EXISTS entry_meta (
    entry_id   TEXT PRIMARY KEY,
    confidence REAL NOT NULL DEFAULT 1.0,
    folded_at  TEXT
);
CREATE TABLE IF NOT EXISTS renames (
    old_id TEXT PRIMARY KEY,
    new_id TEXT NOT NULL,
    at     TEXT NOT NULL
);
"""


def _utc(at: datetime | None) -> datetime:
    """Aware UTC (naive means UTC), so stored ISO strings compare in time order."""
    at = at or datetime.now(UTC)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@dataclass
class EntryStats:
    """What the runs said about one entry."""

    entry_id: str
    helpful: int = 0
    harmful: int = 0
    neutral: int = 0
    uses: int = 0
    successes: int = 0
    failures: int = 0
    last_used: datetime | None = None
    confidence: float = 1.0

    @property
    def success_rate(self) -> float | None:
        """Share of the runs using this entry that succeeded; None before any use."""
        return self.successes / self.uses if self.uses else None


_AGG = """
SELECT entry_id,
       SUM(tag = 'helpful'), SUM(tag = 'harmful'), SUM(tag = 'neutral'),
       COUNT(*), SUM(success), SUM(1 - success), MAX(at)
FROM uses
"""


class CounterStore:
    """The counters of every cheatsheet entry (``<state_dir>/cheatsheet_state.sqlite``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(_SCHEMA)

    @classmethod
    def from_settings(cls, settings: Settings) -> CounterStore:
        return cls(settings.state_dir / STATE_FILENAME)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> CounterStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -------------------------------------------------------------------

    def _resolve(self, entry_id: str) -> str:
        """Follow renames, so a run that retrieved an entry before a merge counts for the merged one."""
        seen = {entry_id}
        while True:
            row = self._conn.execute("SELECT new_id FROM renames WHERE old_id = ?", (entry_id,)).fetchone()
            if row is None or row[0] in seen:
                return entry_id
            entry_id = row[0]
            seen.add(entry_id)

    def record_use(self, entry_id: str, *, run_id: str, tag: Tag, success: bool, at: datetime | None = None) -> None:
        """Count one run's use of an entry; recording the same (run, entry) again changes nothing."""
        if tag not in TAGS:
            raise ValueError(f"tag must be one of {', '.join(TAGS)}, not {tag!r}")
        stamp = _utc(at).isoformat()
        with self._lock:
            target = self._resolve(entry_id)
            self._conn.execute(
                "INSERT OR IGNORE INTO uses (run_id, entry_id, tag, success, at) VALUES (?, ?, ?, ?, ?)",
                (run_id, target, tag, int(bool(success)), stamp),
            )

    def set_confidence(self, entry_id: str, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"confidence must be within 0..1, not {value}")
        with self._lock:
            self._conn.execute(
                "INSERT INTO entry_meta (entry_id, confidence) VALUES (?, ?) "
                "ON CONFLICT(entry_id) DO UPDATE SET confidence = excluded.confidence",
                (self._resolve(entry_id), float(value)),
            )

    def mark_folded(self, entry_ids: Iterable[str], *, at: datetime) -> None:
        """Batch curation wrote these entries' pending counters into the files: start a new batch."""
        ids = list(entry_ids)
        stamp = _utc(at).isoformat()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(ids), _SQL_CHUNK):
                    chunk = ids[start : start + _SQL_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    self._conn.execute(
                        f"UPDATE uses SET folded = 1 WHERE folded = 0 AND at <= ? AND entry_id IN ({marks})",
                        (stamp, *chunk),
                    )
                self._conn.executemany(
                    "INSERT INTO entry_meta (entry_id, folded_at) VALUES (?, ?) "
                    "ON CONFLICT(entry_id) DO UPDATE SET folded_at = excluded.folded_at",
                    [(i, stamp) for i in ids],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def rename(self, old_id: str, new_id: str) -> None:
        """Move ``old_id``'s history to ``new_id`` (a merge or an id change keeps its evidence).

        A run that used both entries counts once for the merged one (its
        ``new_id`` row wins). The old id's confidence carries over unless the
        new entry has its own.
        """
        if old_id == new_id:
            return
        now = datetime.now(UTC).isoformat()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                target = self._resolve(new_id)
                self._conn.execute("UPDATE OR IGNORE uses SET entry_id = ? WHERE entry_id = ?", (target, old_id))
                self._conn.execute("DELETE FROM uses WHERE entry_id = ?", (old_id,))
                self._conn.execute(
                    "INSERT OR IGNORE INTO entry_meta (entry_id, confidence, folded_at) "
                    "SELECT ?, confidence, folded_at FROM entry_meta WHERE entry_id = ?",
                    (target, old_id),
                )
                self._conn.execute("DELETE FROM entry_meta WHERE entry_id = ?", (old_id,))
                self._conn.execute("UPDATE renames SET new_id = ? WHERE new_id = ?", (target, old_id))
                self._conn.execute(
                    "INSERT OR REPLACE INTO renames (old_id, new_id, at) VALUES (?, ?, ?)", (old_id, target, now)
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- reads --------------------------------------------------------------------

    def _stats(self, where: str, params: Sequence[object]) -> dict[str, EntryStats]:
        """Counters aggregated from the use log (confidence is added by the callers)."""
        out: dict[str, EntryStats] = {}
        with self._lock:
            rows = self._conn.execute(f"{_AGG} {where} GROUP BY entry_id", params).fetchall()
        for eid, helpful, harmful, neutral, uses, successes, failures, last in rows:
            out[eid] = EntryStats(eid, helpful, harmful, neutral, uses, successes, failures,
                                  datetime.fromisoformat(last) if last else None)
        return out

    def get(self, entry_id: str) -> EntryStats:
        """The entry's all-time counters (zeros for an entry never used)."""
        with self._lock:
            target = self._resolve(entry_id)
        return self.get_many([target]).get(target) or EntryStats(target)

    def get_many(self, entry_ids: Sequence[str]) -> dict[str, EntryStats]:
        """Counters of the given ids that have any history (retrieval asks for its shortlist only)."""
        out: dict[str, EntryStats] = {}
        ids = list(dict.fromkeys(entry_ids))
        for start in range(0, len(ids), _SQL_CHUNK):
            chunk = ids[start : start + _SQL_CHUNK]
            marks = ",".join("?" * len(chunk))
            out.update(self._stats(f"WHERE entry_id IN ({marks})", chunk))
            with self._lock:
                meta = self._conn.execute(
                    f"SELECT entry_id, confidence FROM entry_meta WHERE entry_id IN ({marks})", chunk
                ).fetchall()
            for eid, confidence in meta:
                out.setdefault(eid, EntryStats(eid)).confidence = confidence
        return out

    def all(self) -> dict[str, EntryStats]:
        """All-time counters of every entry with any history."""
        out = self._stats("", ())
        with self._lock:
            meta = self._conn.execute("SELECT entry_id, confidence FROM entry_meta").fetchall()
        for eid, confidence in meta:
            out.setdefault(eid, EntryStats(eid)).confidence = confidence
        return out

    def pending_since_fold(self) -> dict[str, EntryStats]:
        """Counters accumulated since each entry's last fold (what batch curation has to fold)."""
        out = self._stats("WHERE folded = 0", ())
        with self._lock:
            meta = self._conn.execute("SELECT entry_id, confidence FROM entry_meta").fetchall()
        for eid, confidence in meta:
            if eid in out:
                out[eid].confidence = confidence
        return out


@contextmanager
def open_counters(settings: Settings, injected: CounterStore | None = None) -> Iterator[CounterStore]:
    """``injected`` as is, else the state dir's counter store, closed afterwards."""
    if injected is not None:
        yield injected
        return
    store = CounterStore.from_settings(settings)
    try:
        yield store
    finally:
        store.close()
