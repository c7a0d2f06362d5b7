"""Routing after ``evaluate``: the original design's ``should_improve``."""

from __future__ import annotations

from typing import Literal

from langgraph.runtime import Runtime

from selfheal.agent.record import last_record
from selfheal.agent.state import AgentState, RunContext

Route = Literal["curate", "optimize", "user", "end"]


def recent_success_rate(successes: list[bool], current: bool, window: int) -> float:
    """Success rate over the last ``window`` runs of this task type, this run included."""
    recent = [*successes[-(window - 1) :], current] if window > 1 else [current]
    return sum(recent) / len(recent)


def should_improve(state: AgentState, runtime: Runtime[RunContext]) -> Route:
    """failure -> curate; low efficiency -> optimize when the recent success rate is
    below the threshold, else curate; other opportunities -> user; otherwise end."""
    if not state.get("needs_improvement"):
        return "end"
    evaluation = last_record(state).judged
    opportunities = evaluation.improvement_opportunities
    if "failure_pattern_detected" in opportunities:
        return "curate"
    if "low_efficiency" in opportunities:
        th = runtime.context.settings.thresholds
        rate = recent_success_rate(runtime.context.recent_successes, evaluation.success, th.recent_runs)
        return "optimize" if rate < th.success_rate else "curate"
    return "user"
