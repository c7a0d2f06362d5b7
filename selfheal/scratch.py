"""Temporary directories and git worktrees that outlive a killed process, registered to be found.

``eval --against`` checks a ref out in a temporary worktree, publishing
commits in one, ``optimize`` and ``curate`` learn in scratch copies. A
``finally`` removes them, but SIGKILL skips ``finally``: the directory stays,
and a worktree keeps its branch checked out (the next PR gets a ``-2``,
``-3`` suffix). So each is entered in a small registry in the state directory
*before* it is created (a kill between the two leaves an entry, never an
unknown directory) and removed from it after it is gone. The registry names
the owning process (:mod:`selfheal.owner`); whatever belongs to a dead owner
is swept by the next command that makes such things, and by ``selfheal doctor``.

A branch selfheal created for a PR is registered too, until the publish is
recorded: killed before that, it is deleted (it was selfheal's temporary
branch, never a user's), so it neither blocks nor renames the next PR.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfheal.owner import ProcessOwner, current_owner, owner_alive
from selfheal.yamlio import atomic_write_text

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

REGISTRY_FILENAME = "scratch.json"
_LOCK_FILENAME = "scratch.lock"
_thread_lock = threading.Lock()

ItemKind = Literal["dir", "worktree", "branch"]


class ScratchItem(BaseModel):
    """One temporary thing: a directory, a worktree (in a temporary directory) or a PR branch in the making."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    kind: ItemKind
    purpose: str
    #: The temporary directory, removed whole (a worktree lives inside it).
    root: str | None = None
    #: The worktree's checkout (``kind == "worktree"``).
    worktree: str | None = None
    #: The repository's top level (worktree and branch items).
    repo: str | None = None
    branch: str | None = None
    #: selfheal created ``branch`` for this and it is not finished: delete it when the owner died.
    delete_branch: bool = False
    owner: ProcessOwner
    created: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def describe(self) -> str:
        where = self.worktree or self.root or self.branch or "?"
        return f"{self.kind} {where} ({self.purpose}, pid {self.owner.pid})"


class ScratchRegistry(BaseModel):
    """The registry file ``<state dir>/scratch.json``."""

    model_config = ConfigDict(extra="ignore")

    version: int = 1
    items: list[ScratchItem] = Field(default_factory=list)


def registry_path(state_dir: Path) -> Path:
    return Path(state_dir) / REGISTRY_FILENAME


@contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Cross-process exclusive access to the registry (read-modify-write)."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with _thread_lock:
        fd = os.open(state_dir / _LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock


def read_registry(state_dir: Path) -> ScratchRegistry:
    """The registry (empty when missing; an unreadable file counts as empty and is rewritten)."""
    path = registry_path(state_dir)
    try:
        return ScratchRegistry.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return ScratchRegistry()
    except (OSError, ValidationError, ValueError):
        return ScratchRegistry()


def _write(state_dir: Path, registry: ScratchRegistry) -> None:
    path = registry_path(state_dir)
    if not registry.items:
        path.unlink(missing_ok=True)
        return
    atomic_write_text(path, registry.model_dump_json(indent=1) + "\n")


def register(state_dir: Path, item: ScratchItem) -> ScratchItem:
    """Enter ``item`` (before the thing it names is created)."""
    with _locked(state_dir):
        reg = read_registry(state_dir)
        reg.items.append(item)
        _write(state_dir, reg)
    return item


def unregister(state_dir: Path, item_id: str) -> None:
    """Forget an item (after the thing it names is gone, or kept on purpose)."""
    if not registry_path(state_dir).exists():
        return
    with _locked(state_dir):
        reg = read_registry(state_dir)
        kept = [i for i in reg.items if i.id != item_id]
        if len(kept) != len(reg.items):
            reg.items = kept
            _write(state_dir, reg)


def stale_items(state_dir: Path) -> list[ScratchItem]:
    """Items whose owning process is gone."""
    return [i for i in read_registry(state_dir).items if not owner_alive(i.owner)]


def new_item(kind: ItemKind, purpose: str, **fields: object) -> ScratchItem:
    """An item owned by this process."""
    return ScratchItem(kind=kind, purpose=purpose, owner=current_owner(), **fields)  # type: ignore[arg-type]


def temp_path(prefix: str) -> Path:
    """A fresh, not yet created, path in the system temp directory."""
    return Path(tempfile.gettempdir()) / f"{prefix}{uuid.uuid4().hex[:10]}"


@contextmanager
def scratch_dir(state_dir: Path | None, prefix: str, purpose: str) -> Iterator[Path]:
    """A registered temporary directory, removed (and unregistered) however the block exits."""
    if state_dir is not None:
        sweep(state_dir)
    path = temp_path(prefix)
    item = register(state_dir, new_item("dir", purpose, root=str(path))) if state_dir is not None else None
    try:
        path.mkdir(mode=0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if item is not None and state_dir is not None:
            unregister(state_dir, item.id)


# -- repairs ---------------------------------------------------------------------
def _git(repo: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, timeout=120, check=False)


def checked_out_branches(repo: str) -> set[str]:
    """Branch names checked out in any worktree of ``repo``."""
    out = _git(repo, "worktree", "list", "--porcelain")
    return {line[len("branch refs/heads/"):] for line in out.stdout.splitlines()
            if line.startswith("branch refs/heads/")}


def worktree_known(repo: str, worktree: str) -> bool:
    """Whether git lists ``worktree`` among ``repo``'s worktrees (its admin dir exists)."""
    lines = _git(repo, "worktree", "list", "--porcelain").stdout.splitlines()
    return f"worktree {worktree}" in lines or f"worktree {os.path.realpath(worktree)}" in lines


def remove_worktree(repo: str, worktree: str) -> bool:
    """``git worktree remove --force --force`` then prune; True when git knew the worktree."""
    known = worktree_known(repo, worktree)
    if known:
        _git(repo, "worktree", "remove", "--force", "--force", worktree)
    shutil.rmtree(worktree, ignore_errors=True)
    _git(repo, "worktree", "prune")
    return known


def delete_temp_branch(repo: str, branch: str) -> bool:
    """Delete selfheal's unfinished branch unless a worktree still has it checked out."""
    if _git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").returncode != 0:
        return False
    if branch in checked_out_branches(repo):
        return False
    return _git(repo, "branch", "-D", branch).returncode == 0


def repair_item(item: ScratchItem, *, dry_run: bool = False) -> list[str]:
    """Remove what a dead owner left; one line per repair (what would be done, with ``dry_run``)."""
    lines: list[str] = []
    verb = "would remove" if dry_run else "removed"
    if item.kind == "worktree" and item.repo and item.worktree:
        if Path(item.worktree).exists() or worktree_known(item.repo, item.worktree):
            lines.append(f"{verb} stale worktree {item.worktree} ({item.purpose}, pid {item.owner.pid} gone)")
            if not dry_run:
                remove_worktree(item.repo, item.worktree)
    if item.root and Path(item.root).exists():
        lines.append(f"{verb} temporary directory {item.root} ({item.purpose}, pid {item.owner.pid} gone)")
        if not dry_run:
            shutil.rmtree(item.root, ignore_errors=True)
    if item.kind in ("worktree", "branch") and item.repo and item.branch and item.delete_branch:
        exists = _git(item.repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{item.branch}").returncode == 0
        if exists:
            if dry_run:
                lines.append(f"would delete unfinished branch {item.branch} ({item.purpose})")
            elif delete_temp_branch(item.repo, item.branch):
                lines.append(f"deleted unfinished branch {item.branch} ({item.purpose})")
    return lines


def sweep(state_dir: Path, *, dry_run: bool = False) -> list[str]:
    """Repair every item of a dead owner and drop it from the registry; returns the repair lines."""
    if not registry_path(state_dir).exists():
        return []
    lines: list[str] = []
    for item in stale_items(state_dir):
        done = repair_item(item, dry_run=dry_run)
        lines += done or [f"{'would forget' if dry_run else 'forgot'} registry entry of {item.describe()}"]
        if not dry_run:
            unregister(state_dir, item.id)
    return lines
