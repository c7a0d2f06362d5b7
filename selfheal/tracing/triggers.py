"""Each optimization trigger's state and the numbers behind it: what ``selfheal status`` shows.

The original design's four triggers, computed from the stored runs and the
trigger log (:mod:`selfheal.tracing.trigger_log`):

- **success_rate**, per task type: the success rate of its latest
  ``thresholds.recent_runs`` runs in the window against ``thresholds.success_rate``;
- **error_cluster**: error signatures of the window (see
  :func:`selfheal.tracing.analysis.error_signature`) that no run before the
  window had;
- **user_request**: ``selfheal optimize --reason ...`` requests, pending until
  an optimize run handles them;
- **schedule**: the cron of the repository's optimize workflow, its next and
  previous time, and the last run it triggered (``--reason schedule``).

A trigger is *fired* while nothing acted on it, *handled* once a completed
``selfheal optimize`` run came after it (for computed triggers: after the
newest run behind the numbers), *quiet* otherwise. Nothing here optimizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from selfheal.tracing.trigger_log import (
    ErrorClusterNumbers,
    OptimizeRun,
    RequestNumbers,
    ScheduleNumbers,
    SuccessRateNumbers,
    TriggerEvent,
    TriggerKind,
    handled_by,
    read_optimize_runs,
    read_triggers,
)

if TYPE_CHECKING:
    from selfheal.config import Settings
    from selfheal.tracing.schema import RunRecord

TriggerState = Literal["fired", "quiet", "handled"]
#: Where the scheduled optimizer lives (``selfheal init`` writes it there too).
OPTIMIZE_WORKFLOW = Path(".github/workflows/selfheal-optimize.yml")
#: Error clusters listed per window at most (the analysis ranks them by count).
MAX_CLUSTERS = 50

Numbers = Annotated[
    SuccessRateNumbers | ErrorClusterNumbers | RequestNumbers | ScheduleNumbers, Field(discriminator="kind")
]


class Trigger(BaseModel):
    """One trigger's state: fired or not, the numbers behind it, a one-line explanation."""

    model_config = ConfigDict(extra="forbid")

    kind: TriggerKind
    state: TriggerState
    explanation: str
    task_type: str | None = None
    numbers: Numbers | None = None
    pending_events: int = Field(0, description="recorded trigger events of this kind (and task type) not handled")
    handled_by: OptimizeRun | None = None

    @property
    def fired(self) -> bool:
        return self.state == "fired"


class TriggerStatus(BaseModel):
    """``selfheal status``: every trigger, and the last optimize run."""

    model_config = ConfigDict(extra="forbid")

    generated_at: datetime
    since: datetime | None
    project: str
    triggers: list[Trigger]
    last_optimize: OptimizeRun | None = None


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _after(run: OptimizeRun | None, when: datetime | None) -> bool:
    """Did the completed optimize ``run`` start after ``when``?"""
    return run is not None and when is not None and _aware(run.started) >= _aware(when)


def last_completed(runs: Sequence[OptimizeRun]) -> OptimizeRun | None:
    done = [r for r in runs if r.completed]
    return max(done, key=lambda r: _aware(r.finished)) if done else None


# -- success rate ---------------------------------------------------------------------
def success_rate_triggers(roots: Sequence[RunRecord], *, threshold: float, window: int,
                          last_optimize: OptimizeRun | None = None,
                          events: Sequence[TriggerEvent] = (), done: dict[str, OptimizeRun] | None = None,
                          ) -> list[Trigger]:
    """One trigger per task type over its latest ``window`` root runs with a known outcome."""
    done = done or {}
    by_type: dict[str, list[RunRecord]] = {}
    for r in roots:
        flag = r.metadata.get("success")
        if isinstance(flag, bool):
            by_type.setdefault(str(r.metadata.get("task_type") or "unknown"), []).append(r)
    out: list[Trigger] = []
    for task_type in sorted(by_type):
        runs = sorted(by_type[task_type], key=lambda r: _aware(r.start_time))[-window:]
        successes = sum(1 for r in runs if r.metadata.get("success") is True)
        rate = successes / len(runs)
        newest = _aware(runs[-1].start_time)
        nums = SuccessRateNumbers(task_type=task_type, rate=rate, successes=successes, runs=len(runs),
                                  threshold=threshold, window=window, newest_run=newest)
        pending = sum(1 for e in events if e.kind == "success_rate" and e.task_type == task_type and e.id not in done)
        below = rate < threshold
        head = f"{task_type}: {successes}/{len(runs)} of the latest runs succeeded ({rate:.0%})"
        if not below:
            state: TriggerState = "quiet"
            text = f"{head}, at or above the {threshold:.0%} threshold"
        elif _after(last_optimize, newest):
            state, text = "handled", f"{head}, below the {threshold:.0%} threshold; optimize ran since"
        else:
            state, text = "fired", f"{head}, below the {threshold:.0%} threshold"
        out.append(Trigger(kind="success_rate", state=state, explanation=text, task_type=task_type, numbers=nums,
                           pending_events=pending, handled_by=last_optimize if state == "handled" else None))
    if not out:
        out.append(Trigger(kind="success_rate", state="quiet",
                           explanation="no run with a known outcome in the window"))
    return out


# -- error clusters ------------------------------------------------------------------
def error_cluster_triggers(source: Any, *, project: str, since: datetime | None, now: datetime,
                           last_optimize: OptimizeRun | None = None) -> list[Trigger]:
    """New error clusters of ``[since, now)``: signatures no root run before ``since`` had.

    ``since`` None (the whole history) makes every cluster new: nothing came before.
    """
    from selfheal.tracing.analysis import analyze

    window = analyze(source, project=project, since=since, until=now, top=MAX_CLUSTERS)
    before: set[str] = set()
    if since is not None:
        earlier = analyze(source, project=project, since=None, until=since, top=10_000)
        before = {c.signature for c in earlier.overall.errors}
    out: list[Trigger] = []
    for cluster in window.overall.errors:
        if cluster.signature in before:
            continue
        types = sorted(t for t, g in window.by_task_type.items()
                       if any(c.signature == cluster.signature for c in g.errors))
        first = last = None
        if cluster.run_ids:
            newest, oldest = source.get_run(cluster.run_ids[0]), source.get_run(cluster.run_ids[-1])
            last = _aware(newest.start_time) if newest is not None else None
            first = _aware(oldest.start_time) if oldest is not None else None
        nums = ErrorClusterNumbers(signature=cluster.signature, count=cluster.count, example=cluster.example,
                                   new=True, first_seen=first, last_seen=last, task_types=types)
        head = f"new error cluster ({cluster.count}x in {', '.join(types) or 'runs'}): {cluster.signature}"
        handled = _after(last_optimize, last)
        out.append(Trigger(kind="error_cluster", state="handled" if handled else "fired",
                           explanation=head + ("; optimize ran since" if handled else ""),
                           task_type=types[0] if len(types) == 1 else None, numbers=nums,
                           handled_by=last_optimize if handled else None))
    if not out:
        seen = len(window.overall.errors)
        out.append(Trigger(kind="error_cluster", state="quiet",
                           explanation=f"no new error cluster in the window ({seen} known cluster(s) recurred)"
                           if seen else "no error in the window"))
    return out


# -- requests and the schedule ------------------------------------------------------------
def request_triggers(events: Sequence[TriggerEvent], done: dict[str, OptimizeRun],
                     since: datetime | None) -> list[Trigger]:
    """Pending user requests, and the ones handled in the window (by which run, with what outcome)."""
    out: list[Trigger] = []
    for e in events:
        if e.kind != "user_request":
            continue
        run = done.get(e.id)
        if run is not None and since is not None and _aware(run.finished) < since:
            continue
        text = e.explanation + (f"; handled by optimize {run.id[:8]} at {run.finished:%Y-%m-%d %H:%M} "
                                f"({run.outcome})" if run is not None else "; pending: run `selfheal optimize`")
        out.append(Trigger(kind="user_request", state="handled" if run else "fired", explanation=text,
                           numbers=e.numbers, pending_events=0 if run else 1, handled_by=run))
    if not out:
        out.append(Trigger(kind="user_request", state="quiet", explanation="no request pending"))
    return out


def workflow_crons(path: Path) -> list[str]:
    """The ``on.schedule[].cron`` expressions of a GitHub workflow file (none: empty)."""
    from selfheal.yamlio import read_yaml

    data = read_yaml(path)
    on = data.get("on", data.get(True)) if isinstance(data, dict) else None
    schedule = on.get("schedule") if isinstance(on, dict) else None
    return [str(s["cron"]) for s in schedule or [] if isinstance(s, dict) and s.get("cron")]


def schedule_trigger(root: Path, events: Sequence[TriggerEvent], done: dict[str, OptimizeRun],
                     now: datetime) -> Trigger:
    """The optimize workflow's schedule: next and previous time, the last run it triggered."""
    from selfheal.cron import next_time, parse_cron, previous_time

    path = Path(root) / OPTIMIZE_WORKFLOW
    sched = [e for e in events if e.kind == "schedule"]
    last = sched[-1] if sched else None
    nums = ScheduleNumbers(last_triggered=last.time if last else None)
    if path.is_file():
        nums.workflow = OPTIMIZE_WORKFLOW.as_posix()
        try:
            nums.cron = workflow_crons(path)
            specs = [parse_cron(c) for c in nums.cron]
        except Exception as exc:  # a broken workflow file is shown, not fatal
            nums.problem = f"{OPTIMIZE_WORKFLOW}: {exc}"
            specs = []
        nexts = [t for s in specs if (t := next_time(s, now)) is not None]
        prevs = [t for s in specs if (t := previous_time(s, now)) is not None]
        nums.next_run = min(nexts) if nexts else None
        nums.previous_run = max(prevs) if prevs else None
    if not nums.cron:
        where = nums.problem or ("no schedule in " + OPTIMIZE_WORKFLOW.as_posix() if nums.workflow
                                 else f"no schedule ({OPTIMIZE_WORKFLOW.as_posix()} is absent)")
        return Trigger(kind="schedule", state="quiet", explanation=where, numbers=nums)
    head = f"scheduled by {nums.workflow}"
    if last is None:
        return Trigger(kind="schedule", state="quiet", numbers=nums,
                       explanation=head + "; no scheduled run recorded here")
    run = done.get(last.id)
    if run is None:
        return Trigger(kind="schedule", state="fired", numbers=nums, pending_events=1,
                       explanation=head + f"; scheduled run of {last.time:%Y-%m-%d %H:%M} not finished")
    return Trigger(kind="schedule", state="handled", numbers=nums, handled_by=run,
                   explanation=head + f"; last scheduled optimize {run.finished:%Y-%m-%d %H:%M} ({run.outcome})")


# -- all of them -----------------------------------------------------------------------
def trigger_status(settings: Settings, *, since: datetime | timedelta | None = timedelta(days=7),
                   now: datetime | None = None, source: Any = None) -> TriggerStatus:
    """Every trigger's state over the window ``since`` (a look-back, an instant, None: all runs).

    ``source`` reads the runs (default: the local trace store; nothing is
    created when it does not exist yet).
    """
    from selfheal.tracing.store import LocalTraceStore

    now = now or datetime.now(UTC)
    start = now - since if isinstance(since, timedelta) else since
    events = read_triggers(settings.state_dir)
    runs = read_optimize_runs(settings.state_dir)
    done = handled_by(runs)
    last = last_completed(runs)
    project = settings.tracing.project
    own = source is None and Path(settings.trace_store_path).is_file()
    if own:
        source = LocalTraceStore.from_settings(settings)
    try:
        if source is not None:
            roots = source.list_runs(project, is_root=True, since=start, until=now, limit=None)
            rates = success_rate_triggers(roots, threshold=settings.thresholds.success_rate,
                                          window=settings.thresholds.recent_runs, last_optimize=last,
                                          events=events, done=done)
            clusters = error_cluster_triggers(source, project=project, since=start, now=now, last_optimize=last)
        else:
            rates = success_rate_triggers([], threshold=settings.thresholds.success_rate,
                                          window=settings.thresholds.recent_runs)
            clusters = [Trigger(kind="error_cluster", state="quiet", explanation="no trace store yet")]
    finally:
        if own:
            source.close()
    triggers = [*rates, *clusters, *request_triggers(events, done, start),
                schedule_trigger(settings.root, events, done, now)]
    return TriggerStatus(generated_at=now, since=start, project=project, triggers=triggers,
                         last_optimize=runs[-1] if runs else None)
