"""Which process owns something, and whether that process is still alive.

A run that is SIGKILLed cannot clean up after itself: its root trace stays
open, its temporary worktree stays checked out. Whoever comes next must tell
"still running in another process" from "its process is gone". Each such
thing records a :class:`ProcessOwner` (pid, host, boot id and the process's
start time, so a recycled pid is not mistaken for the owner); :func:`owner_alive`
answers conservatively: an owner on another host (or another boot we cannot
see) counts as alive, because we cannot prove otherwise.
"""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class ProcessOwner(BaseModel):
    """A process, identified well enough to tell it apart from a later process with the same pid."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    pid: int
    host: str
    boot_id: str | None = None
    started: int | None = None  # start time in clock ticks since boot (Linux /proc), when known


@lru_cache(maxsize=1)
def _boot_id() -> str | None:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip() or None
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def current_owner() -> ProcessOwner:
    """This process."""
    pid = os.getpid()
    return ProcessOwner(pid=pid, host=socket.gethostname(), boot_id=_boot_id(), started=_start_ticks(pid))


def owner_alive(owner: ProcessOwner) -> bool:
    """False only when the owner is provably gone: same host and boot, and its pid is dead or reused."""
    if owner.host != socket.gethostname():
        return True
    boot = _boot_id()
    if owner.boot_id and boot and owner.boot_id != boot:
        return False  # the machine rebooted since: every process of that boot is gone
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    if owner.started is not None:
        now = _start_ticks(owner.pid)
        if now is not None and now != owner.started:
            return False  # the pid was recycled by a later process
        if now is not None and _is_zombie(owner.pid):
            return False
    return True


def _is_zombie(pid: int) -> bool:
    """A killed child not yet reaped by its parent still has a pid; it will never finish its work."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        return stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except (OSError, IndexError):
        return False
