"""Traced runs as pruning evidence: each root run's task type, outcome and the entries it had.

Maintenance judges an entry by its lift over its task type's baseline
(:func:`selfheal.cheatsheet.maintenance.entry_lift`); the baseline comes from
the trace store, so every batch that prunes (``curate``, ``optimize``) reads
it here the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from selfheal.cheatsheet.maintenance import TaskRun

if TYPE_CHECKING:
    from selfheal.config import Settings

#: How many recent root runs are read for baselines.
BASELINE_RUNS = 2000


def _ids(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset([value])
    if isinstance(value, list | tuple):
        return frozenset(str(v) for v in value if v)
    return frozenset()


def task_runs_from_roots(roots: Any) -> list[TaskRun]:
    """One :class:`TaskRun` per root run that has a verdict (``metadata.success``)."""
    out = []
    for r in roots:
        md = r.metadata or {}
        if "success" not in md:
            continue
        entries = _ids(md.get("retrieved_entries")) | _ids(md.get("used_entries"))
        out.append(TaskRun(str(md.get("task_type") or "general"), bool(md.get("success")), entries))
    return out


def task_runs(settings: Settings, *, limit: int = BASELINE_RUNS) -> list[TaskRun] | None:
    """The recent traced runs of the project, or None when there is no trace store yet."""
    from selfheal.tracing.store import LocalTraceStore

    if not settings.trace_store_path.exists():
        return None
    store = LocalTraceStore.from_settings(settings)
    try:
        roots = store.query_runs(None, project=settings.tracing.project, is_root=True, limit=limit)
    finally:
        store.close()
    return task_runs_from_roots(roots)
