"""The cheatsheet's cross-process write lock.

Concurrent ``selfheal run``s learn online, and ``selfheal curate`` may run
beside them. A new entry's id is allocated against the files on disk, so
"read the cheatsheet, pick an id, write the file" must not interleave between
processes: two runs would pick the same id and the last writer would win,
silently dropping the other's lesson. Writers hold this lock (an exclusive
``flock`` on ``<state_dir>/cheatsheet.lock``) around that read-pick-write,
and re-read the cheatsheet inside it. Readers (retrieval, lint) take no lock:
each entry file is replaced atomically.

The lock is re-entrant within a thread; other threads and processes wait.
Where ``fcntl`` does not exist (Windows) writes are not serialised.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from selfheal.errors import SelfhealError

if TYPE_CHECKING:
    from selfheal.config import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILENAME", "CheatsheetLocked", "cheatsheet_lock", "lock_path"]

LOCK_FILENAME = "cheatsheet.lock"
DEFAULT_TIMEOUT_S = 120.0
_held = threading.local()


class CheatsheetLocked(SelfhealError):
    """Another process held the cheatsheet's write lock for longer than the timeout."""


def lock_path(settings: Settings) -> Path:
    """The lock file of a repository's cheatsheets (in its local state directory)."""
    return settings.state_dir / LOCK_FILENAME


@contextmanager
def cheatsheet_lock(path: Path, *, timeout: float = DEFAULT_TIMEOUT_S) -> Iterator[None]:
    """Hold the exclusive write lock ``path`` (created if missing) for the ``with`` block."""
    key = str(Path(path).resolve())
    depth: dict[str, int] = getattr(_held, "depth", None) or {}
    _held.depth = depth
    if depth.get(key) or fcntl is None:
        depth[key] = depth.get(key, 0) + 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise CheatsheetLocked(
                        f"the cheatsheet is locked by another selfheal process ({path}); "
                        f"waited {timeout:.0f}s"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        depth[key] = 1
        try:
            yield
        finally:
            depth[key] = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
