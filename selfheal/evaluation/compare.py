"""Pair two experiments example by example and say what changed.

Only examples present in both experiments are compared (paired by
``example_id``, which survives renames); the rest are listed, never silently
dropped. An errored, timed-out or cache-missed example counts as a failure in
the rates and is also counted on its own (each kind apart), so an
infrastructure hiccup is visible as such and never as a pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from selfheal.evaluation.results import ExampleResult, ExperimentResult
from selfheal.evaluation.stats import (
    DeltaSummary,
    Interval,
    mcnemar_exact,
    paired_bootstrap_ci,
    paired_deltas,
    wilson_interval,
)

ALL = "all"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Provenance(_Model):
    """What one side of a comparison ran: enough to reproduce its numbers."""

    experiment_id: str
    name: str
    model: str
    dataset: str
    dataset_hash: str
    split: str
    context_version: str
    cheatsheet_version: str
    git_ref: str | None = None
    git_commit: str | None = None
    cache_mode: str = "off"
    cache_note: str | None = None         # how this side used the response cache (replayed, ran live, why)
    jobs: int = 1
    started_at: datetime
    finished_at: datetime

    @classmethod
    def of(cls, result: ExperimentResult) -> Provenance:
        commit = result.extra.get("git_commit")
        return cls(
            experiment_id=result.experiment_id,
            name=result.name,
            model=result.model,
            dataset=result.dataset,
            dataset_hash=result.dataset_hash,
            split=result.split,
            context_version=result.context_version,
            cheatsheet_version=result.cheatsheet_version,
            git_ref=result.git_ref,
            git_commit=str(commit) if commit else None,
            cache_mode=result.cache_mode,
            cache_note=_cache_note(result),
            jobs=result.jobs,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )


def _cache_note(result: ExperimentResult) -> str | None:
    cache = result.extra.get("cache")
    note = cache.get("note") if isinstance(cache, dict) else None
    return str(note) if note else None


class RateSummary(_Model):
    """One side's success rate with its Wilson 95% interval and its error counts."""

    n: int
    passed: int
    rate: float
    ci: Interval
    errors: int = 0
    timeouts: int = 0
    cache_misses: int = 0

    @property
    def no_verdict(self) -> int:
        """Examples that produced no verdict (errors, timeouts, cache misses)."""
        return self.errors + self.timeouts + self.cache_misses


def rate_summary(results: Iterable[ExampleResult]) -> RateSummary:
    """Success rate, Wilson CI and error/timeout counts of some example results."""
    rs = list(results)
    passed = sum(1 for r in rs if r.passed)
    return RateSummary(
        n=len(rs),
        passed=passed,
        rate=passed / len(rs) if rs else 0.0,
        ci=wilson_interval(passed, len(rs)),
        errors=sum(1 for r in rs if r.status == "error"),
        timeouts=sum(1 for r in rs if r.status == "timeout"),
        cache_misses=sum(1 for r in rs if r.status == "cache_miss"),
    )


class Flip(_Model):
    """An example whose pass/fail outcome differs between the two sides."""

    example_id: str
    name: str
    task_type: str
    baseline_run_id: str | None
    candidate_run_id: str | None
    baseline_score: float
    candidate_score: float
    baseline_status: str = "ok"
    candidate_status: str = "ok"
    candidate_error: str | None = None


class GroupComparison(_Model):
    """Paired statistics over a group of examples (all of them, or one task type)."""

    group: str
    n_paired: int
    baseline: RateSummary
    candidate: RateSummary
    difference: float                     # candidate rate - baseline rate
    pass_to_fail: int                     # McNemar b
    fail_to_pass: int                     # McNemar c
    mcnemar_p: float
    score_diff_mean: float | None
    score_diff_ci: Interval | None
    tokens: DeltaSummary
    latency_s: DeltaSummary


class PairedExample(_Model):
    """One example's outcome on both sides (for the full listing in a report)."""

    example_id: str
    name: str
    task_type: str
    baseline_passed: bool
    candidate_passed: bool
    baseline_score: float
    candidate_score: float
    baseline_status: str
    candidate_status: str
    baseline_run_id: str | None
    candidate_run_id: str | None
    baseline_tokens: int
    candidate_tokens: int
    baseline_latency_s: float
    candidate_latency_s: float


class Unpaired(_Model):
    """An example evaluated on one side only."""

    example_id: str
    name: str
    task_type: str


class Comparison(_Model):
    """Baseline vs candidate: headline, per task type, flips, and what could not be paired."""

    baseline: Provenance
    candidate: Provenance
    overall: GroupComparison
    by_task_type: list[GroupComparison] = Field(default_factory=list)
    pass_to_fail: list[Flip] = Field(default_factory=list)
    fail_to_pass: list[Flip] = Field(default_factory=list)
    only_in_baseline: list[Unpaired] = Field(default_factory=list)
    only_in_candidate: list[Unpaired] = Field(default_factory=list)
    # Whole-experiment error counts (paired or not): errors are reported, not hidden.
    baseline_errors: int = 0
    baseline_timeouts: int = 0
    candidate_errors: int = 0
    candidate_timeouts: int = 0
    baseline_cache_misses: int = 0
    candidate_cache_misses: int = 0
    examples: list[PairedExample] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)


def _group(name: str, pairs: list[tuple[ExampleResult, ExampleResult]]) -> GroupComparison:
    base = [b for b, _ in pairs]
    cand = [c for _, c in pairs]
    b = sum(1 for x, y in pairs if x.passed and not y.passed)
    c = sum(1 for x, y in pairs if not x.passed and y.passed)
    bs = rate_summary(base)
    cs = rate_summary(cand)
    base_scores = [x.score for x in base]
    cand_scores = [y.score for y in cand]
    return GroupComparison(
        group=name,
        n_paired=len(pairs),
        baseline=bs,
        candidate=cs,
        difference=cs.rate - bs.rate,
        pass_to_fail=b,
        fail_to_pass=c,
        mcnemar_p=mcnemar_exact(b, c),
        score_diff_mean=paired_deltas(base_scores, cand_scores).mean,
        score_diff_ci=paired_bootstrap_ci(base_scores, cand_scores),
        tokens=paired_deltas([x.total_tokens for x in base], [y.total_tokens for y in cand]),
        latency_s=paired_deltas([x.latency_s for x in base], [y.latency_s for y in cand]),
    )


def _flip(b: ExampleResult, c: ExampleResult) -> Flip:
    return Flip(
        example_id=c.example_id,
        name=c.name,
        task_type=c.task_type,
        baseline_run_id=b.run_id,
        candidate_run_id=c.run_id,
        baseline_score=b.score,
        candidate_score=c.score,
        baseline_status=b.status,
        candidate_status=c.status,
        candidate_error=c.error,
    )


def _warnings(base: ExperimentResult, cand: ExperimentResult) -> list[str]:
    out = []
    if base.dataset_hash != cand.dataset_hash:
        out.append("the two sides ran different dataset contents (dataset hashes differ)")
    if base.model != cand.model:
        out.append(f"the two sides ran different models ({base.model} vs {cand.model})")
    if base.split != cand.split:
        out.append(f"the two sides ran different splits ({base.split} vs {cand.split})")
    return out


def _by_id(results: list[ExampleResult], side: str) -> dict[str, ExampleResult]:
    out: dict[str, ExampleResult] = {}
    for r in results:
        if r.example_id in out:
            raise ValueError(f"{side} has example id {r.example_id!r} twice; cannot pair")
        out[r.example_id] = r
    return out


def compare(baseline: ExperimentResult, candidate: ExperimentResult) -> Comparison:
    """Pair ``candidate`` against ``baseline`` by example id and compute the paired statistics."""
    base = _by_id(baseline.results, "baseline")
    cand = _by_id(candidate.results, "candidate")
    # Candidate order first (the dataset order), then baseline-only ones.
    pairs = [(base[i], cand[i]) for i in cand if i in base]
    only_base = [Unpaired(example_id=r.example_id, name=r.name, task_type=r.task_type)
                 for i, r in base.items() if i not in cand]
    only_cand = [Unpaired(example_id=r.example_id, name=r.name, task_type=r.task_type)
                 for i, r in cand.items() if i not in base]

    task_types = sorted({c.task_type for _, c in pairs})
    by_type = [_group(t, [(b, c) for b, c in pairs if c.task_type == t]) for t in task_types]
    warnings = _warnings(baseline, candidate)
    if only_base or only_cand:
        warnings.append(
            f"{len(only_base)} example(s) only in the baseline and {len(only_cand)} only in the"
            " candidate are listed but not compared"
        )
    both = rate_summary(baseline.results), rate_summary(candidate.results)
    return Comparison(
        baseline=Provenance.of(baseline),
        candidate=Provenance.of(candidate),
        overall=_group(ALL, pairs),
        by_task_type=by_type,
        pass_to_fail=[_flip(b, c) for b, c in pairs if b.passed and not c.passed],
        fail_to_pass=[_flip(b, c) for b, c in pairs if not b.passed and c.passed],
        only_in_baseline=only_base,
        only_in_candidate=only_cand,
        baseline_errors=both[0].errors,
        baseline_timeouts=both[0].timeouts,
        candidate_errors=both[1].errors,
        candidate_timeouts=both[1].timeouts,
        baseline_cache_misses=both[0].cache_misses,
        candidate_cache_misses=both[1].cache_misses,
        examples=[
            PairedExample(
                example_id=c.example_id,
                name=c.name,
                task_type=c.task_type,
                baseline_passed=b.passed,
                candidate_passed=c.passed,
                baseline_score=b.score,
                candidate_score=c.score,
                baseline_status=b.status,
                candidate_status=c.status,
                baseline_run_id=b.run_id,
                candidate_run_id=c.run_id,
                baseline_tokens=b.total_tokens,
                candidate_tokens=c.total_tokens,
                baseline_latency_s=b.latency_s,
                candidate_latency_s=c.latency_s,
            )
            for b, c in pairs
        ],
        warnings=warnings,
    )
