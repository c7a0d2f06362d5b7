"""What a curation or maintenance pass changed, and writing it all-or-nothing.

Curation ops and maintenance both end in "save these N entries". A cheatsheet
half-written (the ADD landed, the REMOVE of the entry it replaces did not) is
worse than either state, so :func:`write_entries` keeps every touched file's
previous bytes in memory and puts them back if any save fails. Each save is
itself atomic (``store.save_entry`` -> ``atomic_write_text``), which keeps
comments and key order of edited files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from selfheal.cheatsheet.model import SECTIONS, EntryBase
from selfheal.cheatsheet.store import ENTRY_SUFFIX, entry_path, save_entry
from selfheal.yamlio import atomic_write_text

__all__ = ["AppliedChange", "summary", "write_entries"]

log = logging.getLogger("selfheal.curation")


@dataclass
class AppliedChange:
    """One change to the cheatsheet, with the one-line summary used in commits and PR bodies."""

    op: str
    entry_id: str
    path: Path | None
    reason: str
    line: str


def summary(changes: Sequence[AppliedChange]) -> str:
    """The change summary: one line per change, in the order applied."""
    return "\n".join(c.line for c in changes)


def _files_of(cheatsheet_dir: Path, entry: EntryBase) -> list[Path]:
    """The file an entry is saved to plus any same-named file in another section (a move)."""
    root = Path(cheatsheet_dir)
    name = f"{entry.id}{ENTRY_SUFFIX}"
    target = entry_path(root, entry)
    return [target] + [root / sec / name for sec in SECTIONS if sec != entry.section]


def write_entries(cheatsheet_dir: Path, entries: Sequence[EntryBase]) -> dict[str, Path]:
    """Save every entry, in order; on any failure restore all files touched and re-raise.

    Returns id -> path written. Directories created on the way are left (empty
    section folders are harmless and git does not track them).
    """
    root = Path(cheatsheet_dir)
    previous: dict[Path, bytes | None] = {}
    written: dict[str, Path] = {}
    try:
        for entry in entries:
            for p in _files_of(root, entry):
                if p not in previous:
                    previous[p] = p.read_bytes() if p.exists() else None
            written[entry.id] = save_entry(root, entry)
    except BaseException:
        _restore(previous)
        raise
    return written


def _restore(previous: dict[Path, bytes | None]) -> None:
    for p, data in previous.items():
        try:
            if data is None:
                p.unlink(missing_ok=True)
            elif not p.exists() or p.read_bytes() != data:
                atomic_write_text(p, data.decode("utf-8"))
        except OSError as e:  # pragma: no cover - the disk failed twice
            log.error("could not restore %s after a failed write: %s", p, e)
