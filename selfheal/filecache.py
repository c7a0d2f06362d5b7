"""Process-wide memo of parsed files, invalidated by the files' stat.

ruamel's round-trip parser costs ~1 ms per small file; the eval runner and
benchmarks load the same context and cheatsheet for every run. Keyed by
(path, mtime_ns, size, inode): atomic writes replace the inode, so a rewrite
is always seen. Callers get shared objects: treat them as read-only snapshots.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_MAX = 4096
_lock = threading.Lock()
_memo: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def stat_key(paths: Sequence[Path]) -> tuple[Any, ...] | None:
    """Identity of the files' current contents, or None if one is missing."""
    key: list[Any] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return None
        key.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(key)


def cached(kind: str, paths: Sequence[Path], load: Callable[[], T]) -> T:
    """``load()``'s result, reused while none of ``paths`` changed on disk."""
    key = stat_key(paths)
    if key is None:
        return load()
    full = (kind, key)
    with _lock:
        if full in _memo:
            _memo.move_to_end(full)
            return _memo[full]  # type: ignore[no-any-return]
    value = load()
    with _lock:
        _memo[full] = value
        while len(_memo) > _MAX:
            _memo.popitem(last=False)
    return value


def clear() -> None:
    with _lock:
        _memo.clear()
