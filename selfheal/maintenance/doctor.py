"""``selfheal doctor``: find and repair what killed selfheal processes left behind.

A SIGKILL skips every ``finally``. What can be left, and what is done about it:

- temporary worktrees (``eval --against``, publishing, rollback) and scratch
  directories (``optimize``, ``curate``): removed with git's admin dirs; the
  registry (:mod:`selfheal.scratch`) names them, and a selfheal worktree git
  still lists but nobody registered (an older selfheal, or a registry lost)
  is removed too when it lives in a ``selfheal-*`` temporary directory;
- branches a killed publish created and never finished: deleted (only
  selfheal's own temporary branches, never a user's);
- a working-tree change a killed ``curate``/``optimize --apply`` left half
  done: rolled back from its journal (:mod:`selfheal.journal`);
- root runs left open by a killed process: marked ``interrupted``;
- temp files of an atomic write (``.name.XXXXXXXX.tmp``) next to selfheal's
  files, older than a few seconds: removed;
- traces and feedback waiting for LangSmith: sent when LangSmith is
  configured, else kept and reported (``selfheal traces sync`` sends them);
- lock files: the cheatsheet lock is an ``flock``, released by the kernel
  when its holder dies, so its file is never stale; a lock held right now is
  reported (another selfheal process is working).

Every repair is one line; ``dry_run`` reports what would be done and changes nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.owner import owner_alive
from selfheal.scratch import read_registry, remove_worktree, sweep

if TYPE_CHECKING:
    from selfheal.config import Settings

#: Temporary directories selfheal makes worktrees in (``<tmp>/selfheal-eval-xxxx/worktree``...).
_SELFHEAL_TMP = re.compile(r"^selfheal-(eval|wt|revert)-")
#: ``tempfile.mkstemp(prefix=".name.", suffix=".tmp")`` of selfheal's atomic writes.
_ATOMIC_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.(tmp|part)$")
#: An atomic write's temp file younger than this may belong to a write in progress.
ATOMIC_TMP_MIN_AGE_S = 5.0


@dataclass
class DoctorReport:
    """What was found: ``repairs`` (done, or to do with ``dry_run``), ``notes`` (kept, needs a person)."""

    dry_run: bool = False
    repairs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.repairs

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "clean": self.clean, "repairs": self.repairs, "notes": self.notes,
                "checked": self.checked}


def doctor(settings: Settings, *, dry_run: bool = False, sync_uploads: bool = True,
           atomic_tmp_min_age_s: float = ATOMIC_TMP_MIN_AGE_S) -> DoctorReport:
    """Find (and unless ``dry_run``, repair) every leftover of killed selfheal processes."""
    report = DoctorReport(dry_run=dry_run)
    top = _toplevel(settings.root)
    _scratch(settings, top, report)
    _journals(settings, report)
    _atomic_temp_files(settings, report, atomic_tmp_min_age_s)
    _interrupted_runs(settings, report)
    _uploads(settings, report, sync=sync_uploads)
    _locks(settings, report)
    return report


# -- worktrees, scratch dirs, branches ------------------------------------------------
def _toplevel(root: Path) -> str | None:
    out = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel"], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip() or None if out.returncode == 0 else None


def _scratch(settings: Settings, top: str | None, report: DoctorReport) -> None:
    report.repairs += sweep(settings.state_dir, dry_run=report.dry_run)
    report.checked.append("registered temporary worktrees, directories and branches")
    if top is None:
        return
    live = {os.path.realpath(i.worktree) for i in read_registry(settings.state_dir).items
            if i.worktree and owner_alive(i.owner)}
    listing = subprocess.run(["git", "-C", top, "worktree", "list", "--porcelain"], capture_output=True,
                             text=True, check=False).stdout
    prunable = False
    for block in listing.strip().split("\n\n"):
        lines = block.splitlines()
        if not lines or not lines[0].startswith("worktree "):
            continue
        path = lines[0][len("worktree "):]
        prunable = prunable or any(line.startswith("prunable") for line in lines)
        if os.path.realpath(path) in live or not _SELFHEAL_TMP.match(Path(path).parent.name):
            continue
        if any(line.startswith("prunable") for line in lines):
            continue  # its directory is gone: the prune below drops it
        branch = next((line[len("branch refs/heads/"):] for line in lines if line.startswith("branch ")), None)
        freed = f", freeing branch {branch}" if branch else ""
        report.repairs.append(f"{'would remove' if report.dry_run else 'removed'} unregistered selfheal worktree "
                              f"{path}{freed}")
        if not report.dry_run:
            remove_worktree(top, path)
            _rmtree_quiet(Path(path).parent)
    if prunable:
        report.repairs.append(f"{'would prune' if report.dry_run else 'pruned'} git's records of deleted worktrees")
        if not report.dry_run:
            subprocess.run(["git", "-C", top, "worktree", "prune"], capture_output=True, check=False)
    report.checked.append("git worktrees of this repository")


def _rmtree_quiet(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# -- interrupted working-tree changes ------------------------------------------------------
def _journals(settings: Settings, report: DoctorReport) -> None:
    from selfheal.optimize.offline import recover_interrupted

    report.repairs += recover_interrupted(settings, dry_run=report.dry_run)
    report.checked.append("interrupted curate / optimize --apply changes")


def _atomic_temp_files(settings: Settings, report: DoctorReport, min_age_s: float) -> None:
    """Temp files of atomic writes a kill left between write and rename (never the target itself)."""
    roots = {settings.prompts_dir, settings.cheatsheet_dir, settings.evals_dir, settings.state_dir}
    now = time.time()
    for root in sorted(roots):
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d != ".git"]
            for name in filenames:
                if not _ATOMIC_TMP.match(name):
                    continue
                path = Path(dirpath) / name
                try:
                    if now - path.stat().st_mtime < min_age_s:
                        continue
                except OSError:
                    continue
                report.repairs.append(f"{'would remove' if report.dry_run else 'removed'} half-written temp file "
                                      f"{_rel(path, settings.root)}")
                if not report.dry_run:
                    path.unlink(missing_ok=True)
    report.checked.append("temp files of interrupted atomic writes")


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# -- traces ----------------------------------------------------------------------------------
def _interrupted_runs(settings: Settings, report: DoctorReport) -> None:
    if not settings.trace_store_path.exists():
        return
    from selfheal.tracing.liveness import close_interrupted, find_interrupted
    from selfheal.tracing.store import LocalTraceStore

    with LocalTraceStore.from_settings(settings) as store:
        runs = find_interrupted(store)
        for r in runs:
            report.repairs.append(f"{'would mark' if report.dry_run else 'marked'} run {str(r.id)[:13]} ({r.name}, "
                                  f"started {r.start_time:%Y-%m-%d %H:%M:%S}) interrupted")
        if runs and not report.dry_run:
            close_interrupted(store, runs)
    report.checked.append("open runs of dead processes")


def _uploads(settings: Settings, report: DoctorReport, *, sync: bool) -> None:
    if not settings.trace_store_path.exists():
        return
    from selfheal.tracing.langsmith_backend import langsmith_configured
    from selfheal.tracing.store import LocalTraceStore
    from selfheal.tracing.sync import pending_count, sync_pending

    with LocalTraceStore.from_settings(settings) as store:
        waiting = pending_count(store)
        if not waiting:
            report.checked.append("LangSmith outbox")
            return
        if not langsmith_configured(settings):
            report.notes.append(f"kept {waiting} upload(s) pending for LangSmith (not configured here; "
                                "`selfheal traces sync` sends them where it is)")
            return
        if report.dry_run or not sync:
            report.notes.append(f"{waiting} upload(s) pending for LangSmith (`selfheal traces sync` sends them)")
            return
        result = sync_pending(settings, store)
        if result.sent:
            report.repairs.append(f"sent {result.sent} pending upload(s) to LangSmith")
        if result.remaining:
            why = f": {result.errors[0]}" if result.errors else ""
            report.notes.append(f"kept {result.remaining} upload(s) pending for LangSmith{why}")


def _locks(settings: Settings, report: DoctorReport) -> None:
    from selfheal.cheatsheet.lock import lock_path

    path = lock_path(settings)
    if not path.exists():
        return
    if _flock_held(path):
        report.notes.append(f"{_rel(path, settings.root)} is held by a running selfheal process (left alone)")
    else:
        report.checked.append(f"{_rel(path, settings.root)}: not held (an flock ends with its process; "
                              "the file is harmless)")


def _flock_held(path: Path) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
