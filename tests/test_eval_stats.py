"""Statistics behind the eval report, checked against known values."""

from __future__ import annotations

import pytest

from selfheal.evaluation.stats import mcnemar_exact, paired_bootstrap_ci, paired_deltas, wilson_interval


def test_wilson_interval_known_value() -> None:
    ci = wilson_interval(8, 10)
    assert ci.low == pytest.approx(0.490, abs=5e-4)
    assert ci.high == pytest.approx(0.943, abs=5e-4)


def test_wilson_interval_stays_inside_0_1_at_the_extremes() -> None:
    zero, full = wilson_interval(0, 5), wilson_interval(5, 5)
    assert zero.low == 0.0 and 0.4 < zero.high < 0.6
    assert full.high == 1.0 and 0.4 < full.low < 0.6
    assert wilson_interval(0, 0).model_dump() == {"low": 0.0, "high": 1.0}


def test_wilson_interval_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_mcnemar_exact_known_values() -> None:
    assert mcnemar_exact(10, 2) == pytest.approx(0.0386, abs=1e-4)
    assert mcnemar_exact(2, 10) == pytest.approx(0.0386, abs=1e-4)  # two-sided
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(0.0625)


def test_paired_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    base = [0.5, 0.6, 0.4, 0.7, 0.5, 0.6, 0.5, 0.4]
    cand = [0.7, 0.8, 0.5, 0.9, 0.6, 0.8, 0.6, 0.6]
    ci = paired_bootstrap_ci(base, cand)
    assert ci is not None
    mean = sum(c - b for b, c in zip(base, cand)) / len(base)
    assert 0 < ci.low < mean < ci.high
    assert paired_bootstrap_ci(base, cand) == ci  # reproducible
    assert paired_bootstrap_ci([], []) is None


def test_paired_bootstrap_ci_of_identical_scores_is_zero() -> None:
    ci = paired_bootstrap_ci([0.3, 0.8, 1.0], [0.3, 0.8, 1.0])
    assert ci is not None and ci.low == 0.0 and ci.high == 0.0


def test_paired_deltas_mean_and_median() -> None:
    d = paired_deltas([100, 200, 300, 400], [110, 190, 330, 500])
    assert d.n == 4 and d.mean == pytest.approx(32.5) and d.median == pytest.approx(20.0)
    assert paired_deltas([], []).mean is None
    with pytest.raises(ValueError):
        paired_deltas([1.0], [])
