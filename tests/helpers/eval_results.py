"""Builders of evaluation results for tests of comparison, gating and reports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from selfheal.evaluation.results import ExampleResult, ExperimentResult

T0 = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


def example(
    name: str,
    passed: bool,
    *,
    task_type: str = "lambda_timeout",
    score: float | None = None,
    status: str = "ok",
    tokens: int = 1000,
    latency_s: float = 2.0,
    run_id: str | None = None,
    example_id: str | None = None,
    error: str | None = None,
) -> ExampleResult:
    return ExampleResult(
        example_id=example_id or f"id-{name}",
        name=name,
        split="test",
        task_type=task_type,
        passed=passed,
        score=(1.0 if passed else 0.0) if score is None else score,
        run_id=run_id or f"run-{name}-{'p' if passed else 'f'}",
        status=status,  # type: ignore[arg-type]
        error=error,
        total_tokens=tokens,
        latency_s=latency_s,
    )


def experiment(
    results: Sequence[ExampleResult],
    *,
    name: str = "lambda_ops-test",
    experiment_id: str = "exp-1",
    git_ref: str | None = None,
    context_version: str = "c" * 40,
    cheatsheet_version: str = "d" * 40,
    dataset_hash: str = "a" * 64,
    model: str = "scripted:test",
    **extra: Any,
) -> ExperimentResult:
    return ExperimentResult(
        experiment_id=experiment_id,
        name=name,
        dataset="lambda_ops",
        dataset_hash=dataset_hash,
        split="test",
        model=model,
        context_version=context_version,
        cheatsheet_version=cheatsheet_version,
        git_ref=git_ref,
        cache_mode="replay",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=30),
        results=list(results),
        extra=extra,
    )


def outcomes(pattern: str, *, prefix: str = "ex", **kw: Any) -> list[ExampleResult]:
    """``"PPF"`` -> three examples ex0 (pass), ex1 (pass), ex2 (fail)."""
    return [example(f"{prefix}{i}", ch == "P", **kw) for i, ch in enumerate(pattern)]


def pair(base: str, cand: str, **kw: Any) -> tuple[ExperimentResult, ExperimentResult]:
    """A baseline at HEAD and a working-tree candidate over the same examples."""
    return (
        experiment(outcomes(base, **kw), experiment_id="exp-base", git_ref="HEAD", context_version="b" * 40,
                   git_commit="1234567890abcdef"),
        experiment(outcomes(cand, **kw), experiment_id="exp-cand", cheatsheet_version="e" * 40 + "-dirty"),
    )
