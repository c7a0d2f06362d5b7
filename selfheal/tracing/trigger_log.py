"""What asked for an optimization, and which ``selfheal optimize`` run answered it.

The original design's update triggers (success rate below the threshold, a
new error cluster, a user request, the schedule) never optimize inline: the
graph's ``optimize_context`` node and ``selfheal optimize --reason`` only
*record* a trigger, one JSON line in ``<state>/triggers.jsonl``. Each run of
``selfheal optimize`` appends one line to ``<state>/optimize-runs.jsonl``
naming the triggers that were pending when it started; those are then
"handled" by it (``selfheal status`` shows which run, when, with what
outcome). Both files are append-only (``O_APPEND``: concurrent runs never
interleave a line); a torn or foreign line is skipped on reading, never fatal.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

TRIGGER_LOG = "triggers.jsonl"
OPTIMIZE_LOG = "optimize-runs.jsonl"

TriggerKind = Literal["success_rate", "error_cluster", "user_request", "schedule"]
TRIGGER_KINDS: tuple[TriggerKind, ...] = ("success_rate", "error_cluster", "user_request", "schedule")
#: ``--reason`` values that mark a run started by the schedule (the optimize workflow passes "schedule").
SCHEDULE_REASONS = frozenset({"schedule", "scheduled"})

M = TypeVar("M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SuccessRateNumbers(_Model):
    """The recent success rate of one task type against ``thresholds.success_rate``."""

    kind: Literal["success_rate"] = "success_rate"
    task_type: str
    rate: float | None
    successes: int
    runs: int
    threshold: float
    window: int = Field(description="thresholds.recent_runs: how many latest runs the rate is over")
    newest_run: datetime | None = None


class ErrorClusterNumbers(_Model):
    """One error signature of the window; ``new`` when no run before the window had it."""

    kind: Literal["error_cluster"] = "error_cluster"
    signature: str
    count: int
    example: str = ""
    new: bool
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    task_types: list[str] = Field(default_factory=list)


class RequestNumbers(_Model):
    """A user's (or the schedule's) request: ``selfheal optimize --reason ...``."""

    kind: Literal["request"] = "request"
    reason: str
    who: str | None = None
    time: datetime


class ScheduleNumbers(_Model):
    """The optimize workflow's cron schedule, and when it last triggered a recorded run."""

    kind: Literal["schedule"] = "schedule"
    workflow: str | None = None
    cron: list[str] = Field(default_factory=list)
    next_run: datetime | None = None
    previous_run: datetime | None = None
    last_triggered: datetime | None = None
    problem: str | None = None


EventNumbers = Annotated[SuccessRateNumbers | ErrorClusterNumbers | RequestNumbers, Field(discriminator="kind")]


class TriggerEvent(_Model):
    """One line of ``triggers.jsonl``: a trigger that fired, with the numbers behind it."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    kind: TriggerKind
    source: str = Field(description="what recorded it: the optimize_context node, selfheal optimize --reason")
    run_id: str | None = None
    task_type: str | None = None
    numbers: EventNumbers
    explanation: str


class OptimizeRun(_Model):
    """One line of ``optimize-runs.jsonl``: a ``selfheal optimize`` run and the triggers it handled."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    started: datetime
    finished: datetime = Field(default_factory=lambda: datetime.now(UTC))
    mode: str
    reason: str | None = None
    outcome: str
    completed: bool = Field(True, description="False: it raised; its triggers stay pending")
    handled: list[str] = Field(default_factory=list, description="ids of the trigger events it handled")


def trigger_log_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / TRIGGER_LOG


def optimize_log_path(state_dir: Path | str) -> Path:
    return Path(state_dir) / OPTIMIZE_LOG


def _append(path: Path, line: str) -> None:
    """Append one line (O_APPEND: concurrent writers never interleave a short line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
    finally:
        os.close(fd)


def _read(path: Path, model: type[M]) -> list[M]:
    if not path.is_file():
        return []
    out: list[M] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip():
            try:
                out.append(model.model_validate_json(line))
            except ValidationError:
                continue
    return out


def record_trigger(state_dir: Path | str, event: TriggerEvent) -> TriggerEvent:
    """Append ``event`` to the trigger log; returns it."""
    _append(trigger_log_path(state_dir), event.model_dump_json())
    return event


def read_triggers(state_dir: Path | str) -> list[TriggerEvent]:
    """Every readable trigger event, oldest first."""
    return _read(trigger_log_path(state_dir), TriggerEvent)


def read_optimize_runs(state_dir: Path | str) -> list[OptimizeRun]:
    """Every readable optimize run, oldest first."""
    return _read(optimize_log_path(state_dir), OptimizeRun)


def handled_by(runs: Sequence[OptimizeRun]) -> dict[str, OptimizeRun]:
    """Trigger event id -> the first completed optimize run that handled it."""
    out: dict[str, OptimizeRun] = {}
    for run in runs:
        if run.completed:
            for event_id in run.handled:
                out.setdefault(event_id, run)
    return out


def pending_triggers(state_dir: Path | str) -> list[TriggerEvent]:
    """Recorded triggers no completed optimize run has handled yet, oldest first."""
    done = handled_by(read_optimize_runs(state_dir))
    return [e for e in read_triggers(state_dir) if e.id not in done]


def request_event(reason: str, *, who: str | None, now: datetime | None = None) -> TriggerEvent:
    """The trigger of ``selfheal optimize --reason REASON`` ("schedule" marks the scheduled workflow)."""
    reason = " ".join(str(reason).split())
    if not reason:
        raise ValueError("--reason must say why (e.g. --reason \"refund answers regressed\")")
    when = now or datetime.now(UTC)
    kind: Literal["user_request", "schedule"] = "schedule" if reason.lower() in SCHEDULE_REASONS else "user_request"
    by = f" by {who}" if who else ""
    explanation = ("the scheduled optimize workflow asked for a run" if kind == "schedule"
                   else f"optimization requested{by}: {reason}")
    return TriggerEvent(time=when, kind=kind, source="selfheal optimize --reason",
                        numbers=RequestNumbers(reason=reason, who=who, time=when), explanation=explanation)


def success_rate_event(*, run_id: str | None, task_type: str, recent: Sequence[bool], current: bool,
                       threshold: float, window: int, now: datetime | None = None) -> TriggerEvent:
    """The trigger the graph records when a run's task type is below the success-rate threshold.

    ``recent`` are the latest stored outcomes of the task type (oldest first),
    ``current`` this run's; the rate is over the last ``window`` of them, this
    run included (the same numbers ``should_improve`` routed on).
    """
    flags = [*list(recent)[-(window - 1):], current] if window > 1 else [current]
    successes = sum(flags)
    rate = successes / len(flags)
    nums = SuccessRateNumbers(task_type=task_type, rate=rate, successes=successes, runs=len(flags),
                              threshold=threshold, window=window, newest_run=now or datetime.now(UTC))
    return TriggerEvent(
        time=now or datetime.now(UTC), kind="success_rate", source="optimize_context node", run_id=run_id,
        task_type=task_type, numbers=nums,
        explanation=f"{task_type}: {successes}/{len(flags)} of the latest runs succeeded ({rate:.0%}), "
                    f"below the {threshold:.0%} threshold",
    )


def record_optimize_run(state_dir: Path | str, *, started: datetime, mode: str, reason: str | None,
                        outcome: str, handled: Sequence[str], completed: bool = True) -> OptimizeRun:
    """Append the record of one ``selfheal optimize`` run.

    ``handled`` are the ids of the triggers pending when it started (a
    trigger recorded while it ran waits for the next run); a run that raised
    (``completed=False``) handles nothing.
    """
    run = OptimizeRun(started=started, mode=mode, reason=reason, outcome=outcome, completed=completed,
                      handled=list(handled) if completed else [])
    _append(optimize_log_path(state_dir), run.model_dump_json())
    return run


@dataclass
class OptimizeSession:
    """An optimize run in progress: set ``outcome`` once it is known (proposed, rejected, ...)."""

    started: datetime
    pending: list[str]
    request: TriggerEvent | None = None
    outcome: str | None = None
    run: OptimizeRun | None = field(default=None, repr=False)


@contextmanager
def optimize_session(state_dir: Path | str, *, mode: str, reason: str | None = None, who: str | None = None,
                     now: datetime | None = None) -> Iterator[OptimizeSession]:
    """Bracket one ``selfheal optimize`` run: record its request, then what it handled.

    ``reason`` records a user-request (or schedule) trigger before anything
    runs. On leaving, the run is appended to ``optimize-runs.jsonl`` with the
    triggers that were pending when it started as handled, once an
    ``outcome`` was set (a gate failure leaving through ``ctx.exit`` still
    counts); an exception before that records a failed run that handles
    nothing, and is re-raised.
    """
    started = now or datetime.now(UTC)
    request = record_trigger(state_dir, request_event(reason, who=who, now=started)) if reason is not None else None
    session = OptimizeSession(started=started, pending=[e.id for e in pending_triggers(state_dir)], request=request)
    try:
        yield session
    except BaseException as exc:
        completed = session.outcome is not None
        outcome = session.outcome or f"failed: {type(exc).__name__}"
        session.run = record_optimize_run(state_dir, started=started, mode=mode, reason=reason, outcome=outcome,
                                          handled=session.pending, completed=completed)
        raise
    session.run = record_optimize_run(state_dir, started=started, mode=mode, reason=reason,
                                      outcome=session.outcome or "finished", handled=session.pending)
