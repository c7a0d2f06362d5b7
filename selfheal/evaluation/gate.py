"""The regression gate: pass or fail a candidate, with a sentence per reason.

A PR should fail when its context/cheatsheet change makes the agent measurably
worse, not when noise moves one example. So the gate fails on a significant
paired drop (McNemar), on a drop larger than a tolerated margin (significant or
not: a reviewer should look), on examples that produced no verdict (errors,
timeouts, cache misses: more than ``eval.max_errors`` on either side, default
0), and when nothing could be compared. An example without a verdict is never
a pass.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from selfheal.config import EvalSettings
from selfheal.evaluation.compare import Comparison, rate_summary
from selfheal.evaluation.results import ExperimentResult


def eval_settings(settings: Any) -> EvalSettings:
    """``settings.eval`` when the lead's config has it, else the defaults."""
    section = getattr(settings, "eval", None)
    if section is None:
        return EvalSettings()
    if isinstance(section, EvalSettings):
        return section
    data = section.model_dump() if isinstance(section, BaseModel) else dict(section)
    return EvalSettings.model_validate({k: v for k, v in data.items() if k in EvalSettings.model_fields})


class GateConfig(BaseModel):
    """Thresholds of one gate decision."""

    model_config = ConfigDict(extra="forbid")

    margin: float = Field(0.05, ge=0.0, le=1.0)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    max_errors: int = Field(0, ge=0)
    min_success_rate: float | None = Field(None, ge=0.0, le=1.0)

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> GateConfig:
        ev = eval_settings(settings)
        data = {"margin": ev.margin, "alpha": ev.alpha, "max_errors": ev.max_errors,
                "min_success_rate": ev.min_success_rate}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)


class GateDecision(BaseModel):
    """Whether the candidate may merge; ``reasons`` say why not, ``notes`` add context."""

    model_config = ConfigDict(extra="forbid")

    passed: bool
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _points(x: float) -> str:
    return f"{x * 100:.1f}".rstrip("0").rstrip(".")


def _error_reason(errors: int, config: GateConfig, side: str = "") -> str | None:
    """An example that produced no verdict (error, timeout, cache miss) is never a pass."""
    if errors > config.max_errors:
        where = f" on the {side} side" if side else ""
        return (f"{errors} example(s){where} produced no verdict (errored, timed out or missed the cache),"
                f" more than the {config.max_errors} allowed (eval.max_errors)")
    return None


def decide(comparison: Comparison, config: GateConfig | None = None) -> GateDecision:
    """Gate a candidate against its baseline."""
    config = config or GateConfig()
    o = comparison.overall
    base, cand = o.baseline.rate, o.candidate.rate
    reasons: list[str] = []
    notes: list[str] = []
    verdicts = sum(1 for e in comparison.examples if e.baseline_status == "ok" and e.candidate_status == "ok")
    if o.n_paired == 0 or (comparison.examples and verdicts == 0):
        reasons.append("no example produced a verdict on both sides, so nothing could be compared")
    drop = base - cand
    if o.n_paired and cand < base and o.mcnemar_p < config.alpha:
        reasons.append(
            f"the candidate is significantly worse: {o.pass_to_fail} example(s) went from pass to fail"
            f" and {o.fail_to_pass} from fail to pass (McNemar p = {o.mcnemar_p:.3g} < {config.alpha:g})"
        )
    if o.n_paired and drop > config.margin + 1e-9:
        reasons.append(
            f"success rate fell {_points(drop)} points ({_pct(base)} -> {_pct(cand)}),"
            f" more than the {_points(config.margin)}-point margin"
        )
    c = comparison
    for side, errors in (("baseline", c.baseline_errors + c.baseline_timeouts + c.baseline_cache_misses),
                         ("candidate", c.candidate_errors + c.candidate_timeouts + c.candidate_cache_misses)):
        err = _error_reason(errors, config, side)
        if err:
            reasons.append(err)
    if not reasons:
        change = cand - base
        notes.append(
            f"success rate {_pct(base)} -> {_pct(cand)} ({'+' if change >= 0 else '-'}{_points(abs(change))} points,"
            f" McNemar p = {o.mcnemar_p:.3g}): no regression beyond the {_points(config.margin)}-point margin"
        )
    if comparison.only_in_baseline or comparison.only_in_candidate:
        notes.append(
            f"{len(comparison.only_in_baseline) + len(comparison.only_in_candidate)} example(s)"
            " ran on one side only and were not gated"
        )
    return GateDecision(passed=not reasons, reasons=reasons, notes=notes)


def decide_single(result: ExperimentResult, config: GateConfig | None = None) -> GateDecision:
    """Gate one experiment without a baseline: an absolute bar if configured, else pass with a note."""
    config = config or GateConfig()
    summary = rate_summary(result.results)
    reasons: list[str] = []
    notes: list[str] = []
    if summary.n == 0 or summary.no_verdict >= summary.n:
        reasons.append("no example produced a verdict, so there is nothing to gate on")
    elif config.min_success_rate is None:
        notes.append("no baseline (--against) and no eval.min_success_rate configured: nothing to gate on")
    elif summary.rate + 1e-9 < config.min_success_rate:
        reasons.append(
            f"success rate {_pct(summary.rate)} ({summary.passed}/{summary.n}) is below the required"
            f" {_pct(config.min_success_rate)}"
        )
    else:
        notes.append(f"success rate {_pct(summary.rate)} meets the required {_pct(config.min_success_rate)}")
    err = _error_reason(summary.no_verdict, config)
    if err:
        reasons.append(err)
    return GateDecision(passed=not reasons, reasons=reasons, notes=notes)
