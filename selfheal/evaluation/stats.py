"""Statistics for small paired evaluations.

Datasets here are tens of examples, so a raw difference of success rates is
mostly noise. Each side gets a Wilson interval (sane at 0% and 100%), paired
pass/fail outcomes get an exact McNemar test (only discordant pairs carry
information), and scores get a paired bootstrap interval of their mean
difference. Deltas are always ``candidate - baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

Z_95 = 1.959963984540054


class Interval(BaseModel):
    """A two-sided confidence interval."""

    model_config = ConfigDict(extra="forbid")

    low: float
    high: float


class DeltaSummary(BaseModel):
    """Per-example differences ``candidate - baseline`` of one measure (tokens, latency)."""

    model_config = ConfigDict(extra="forbid")

    n: int = 0
    mean: float | None = None
    median: float | None = None


def _z(confidence: float) -> float:
    if abs(confidence - 0.95) < 1e-12:
        return Z_95
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for ``successes / n``; ``[0, 1]`` when there is no data."""
    if n <= 0:
        return Interval(low=0.0, high=1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..{n}, got {successes}")
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(low=max(0.0, centre - half), high=min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (1.0 when there are none).

    ``b`` = pass -> fail, ``c`` = fail -> pass; under no difference each discordant
    pair is a fair coin, so the test is a binomial test on ``b`` of ``b + c``.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(min(1.0, binomtest(b, b + c, 0.5, alternative="two-sided").pvalue))


def paired_bootstrap_ci(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval | None:
    """Percentile bootstrap CI of ``mean(candidate - baseline)`` resampling pairs; None if empty.

    Seeded so a report is reproducible: the same results give the same interval.
    """
    if len(baseline) != len(candidate):
        raise ValueError("paired samples must have the same length")
    if not baseline:
        return None
    diffs = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(low=float(low), high=float(high))


def paired_deltas(baseline: Sequence[float], candidate: Sequence[float]) -> DeltaSummary:
    """Mean and median of per-example ``candidate - baseline``."""
    if len(baseline) != len(candidate):
        raise ValueError("paired samples must have the same length")
    if not baseline:
        return DeltaSummary()
    diffs = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    return DeltaSummary(n=len(diffs), mean=float(diffs.mean()), median=float(np.median(diffs)))
