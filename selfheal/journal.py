"""A multi-file change to the working tree that a SIGKILL cannot leave half applied.

Each file selfheal writes is replaced atomically, but ``curate`` writes
several and then stamps the runs it learned from: killed in between, some
entry files are new, others old, and the runs are not marked curated (the
next batch would learn the same lessons again). So before the first write
a journal with every file's content before and after goes to the state
directory (atomically), and it is deleted once the whole change, stamps
included, is done. A journal whose process is gone marks an interrupted
change: :func:`roll_back` puts back the ``before`` content of every file
that still holds selfheal's ``after`` content (a file the user changed
since is left alone and reported), so the tree is as it was and the next
``curate`` redoes the batch.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfheal.owner import ProcessOwner, current_owner, owner_alive
from selfheal.yamlio import atomic_write_text

JOURNAL_DIR = "journal"


class FileEdit(BaseModel):
    """One file of the change (None: the file does not exist on that side)."""

    model_config = ConfigDict(extra="ignore")

    before: str | None
    after: str | None


class TreeJournal(BaseModel):
    """``<state dir>/journal/<id>.json``: a working-tree change in progress."""

    model_config = ConfigDict(extra="ignore")

    purpose: str
    root: str
    owner: ProcessOwner
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))
    files: dict[str, FileEdit] = Field(default_factory=dict)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


@contextmanager
def tree_journal(state_dir: Path, root: Path, files: dict[str, str | None], purpose: str) -> Iterator[None]:
    """Journal ``files`` (repo-relative path -> new content, None deletes) for the ``with`` block.

    Enter before the first file is written, leave after the last step of the
    change; an exception also removes the journal (the caller reports it).
    """
    journal = TreeJournal(
        purpose=purpose,
        root=str(root),
        owner=current_owner(),
        files={rel: FileEdit(before=_read(Path(root) / rel), after=new) for rel, new in files.items()},
    )
    path = Path(state_dir) / JOURNAL_DIR / f"{uuid.uuid4().hex}.json"
    atomic_write_text(path, journal.model_dump_json(indent=1) + "\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def interrupted(state_dir: Path) -> list[tuple[Path, TreeJournal | None]]:
    """Journals whose process is gone (None: a journal file that does not parse)."""
    folder = Path(state_dir) / JOURNAL_DIR
    found: list[tuple[Path, TreeJournal | None]] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.json")):
        try:
            journal: TreeJournal | None = TreeJournal.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError):
            journal = None
        if journal is None or not owner_alive(journal.owner):
            found.append((path, journal))
    return found


def _temp_files_of(target: Path) -> list[Path]:
    """Temp files :func:`selfheal.yamlio.atomic_write_text` makes for ``target`` (``.name.XXXXXXXX.tmp``)."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp$")
    try:
        return sorted(p for p in target.parent.iterdir() if pattern.match(p.name))
    except OSError:
        return []


def roll_back(path: Path, journal: TreeJournal | None, *, dry_run: bool = False) -> list[str]:
    """Undo an interrupted change; one line per file restored or kept, and the journal removed."""
    lines: list[str] = []
    if journal is None:
        lines.append(f"{'would remove' if dry_run else 'removed'} unreadable journal {path}")
    else:
        root = Path(journal.root)
        for rel, edit in sorted(journal.files.items()):
            target = root / rel
            for stray in _temp_files_of(target):  # the atomic write the kill cut short
                lines.append(f"{'would remove' if dry_run else 'removed'} half-written temp file "
                             f"{stray.relative_to(root)} of the interrupted {journal.purpose}")
                if not dry_run:
                    stray.unlink(missing_ok=True)
            now = _read(target)
            if now == edit.before:
                continue
            if now != edit.after:
                lines.append(f"kept {rel}: changed since the interrupted {journal.purpose} (pid {journal.owner.pid})")
                continue
            verb = "would restore" if dry_run else "restored"
            lines.append(f"{verb} {rel} as before the interrupted {journal.purpose} (pid {journal.owner.pid})")
            if not dry_run:
                if edit.before is None:
                    target.unlink(missing_ok=True)
                else:
                    atomic_write_text(target, edit.before)
        if not lines:
            lines.append(f"{'would close' if dry_run else 'closed'} journal of the interrupted {journal.purpose}"
                         f" (pid {journal.owner.pid}): nothing had been written")
    if not dry_run:
        path.unlink(missing_ok=True)
    return lines
