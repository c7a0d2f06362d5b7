"""Open runs: a root trace is written when it starts, so a killed run shows as interrupted, not missing.

The tracer writes a run's root row with status ``pending`` as soon as the
run starts, stamped with the process that runs it (``extra.selfheal_owner``:
pid, host, boot id, process start time), and replaces it with the finished
tree when the run ends. A ``pending`` root whose process is gone was killed:
listings show it as ``interrupted``, and :func:`close_interrupted`
(``selfheal doctor``) records that status in the store for good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from selfheal.owner import ProcessOwner, owner_alive
from selfheal.tracing.schema import RunRecord

if TYPE_CHECKING:
    from selfheal.tracing.store import LocalTraceStore

#: Key in a root run's ``extra`` naming the process that runs it.
OWNER_KEY = "selfheal_owner"
OPEN = "pending"
INTERRUPTED = "interrupted"
RUNNING = "running"


def run_owner(run: RunRecord) -> ProcessOwner | None:
    """The process recorded as running ``run`` (None when the run did not record one)."""
    raw: Any = run.extra.get(OWNER_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        return ProcessOwner.model_validate(raw)
    except ValidationError:
        return None


def is_interrupted(run: RunRecord) -> bool:
    """An open root whose process is gone."""
    if run.status != OPEN or not run.is_root:
        return run.status == INTERRUPTED
    owner = run_owner(run)
    return owner is not None and not owner_alive(owner)


def display_status(run: RunRecord) -> str:
    """``interrupted`` / ``running`` for open roots (by their process), else the stored status."""
    if run.status == OPEN and run.is_root and run_owner(run) is not None:
        return INTERRUPTED if is_interrupted(run) else RUNNING
    return run.status


def with_display_status(runs: list[RunRecord]) -> list[RunRecord]:
    """Copies of ``runs`` whose open roots carry their display status (for listings)."""
    return [r if r.status != OPEN else r.model_copy(update={"status": display_status(r)}) for r in runs]


def find_interrupted(store: LocalTraceStore) -> list[RunRecord]:
    """Open root runs, in any project, whose process is gone."""
    return [r for r in store.list_runs(status=OPEN, is_root=True, limit=None) if is_interrupted(r)]


def close_interrupted(store: LocalTraceStore, runs: list[RunRecord]) -> None:
    """Record ``interrupted`` (and why) on these open roots, in one transaction."""
    closed = []
    for r in runs:
        owner = run_owner(r)
        who = f"process {owner.pid} on {owner.host}" if owner else "its process"
        closed.append(r.model_copy(update={
            "status": INTERRUPTED,
            "error": r.error or f"interrupted: {who} ended before the run finished",
        }))
    store.write_runs(closed)
