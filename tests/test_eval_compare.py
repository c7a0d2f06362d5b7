"""Pairing two experiments and gating the candidate on the result."""

from __future__ import annotations

import pytest
from helpers.eval_results import example, experiment, outcomes, pair

from selfheal.evaluation.compare import compare
from selfheal.evaluation.gate import EvalSettings, GateConfig, decide, decide_single, eval_settings


def test_pairs_by_example_id_and_counts_flips() -> None:
    base, cand = pair("PPPPPPFF", "PPPPPFPF")
    c = compare(base, cand)
    o = c.overall
    assert o.n_paired == 8
    assert (o.baseline.passed, o.candidate.passed) == (6, 6)
    assert o.difference == 0.0
    assert [f.name for f in c.pass_to_fail] == ["ex5"]
    assert [f.name for f in c.fail_to_pass] == ["ex6"]
    flip = c.pass_to_fail[0]
    assert (flip.baseline_run_id, flip.candidate_run_id) == ("run-ex5-p", "run-ex5-f")
    assert o.mcnemar_p == 1.0
    assert c.baseline.git_ref == "HEAD" and c.baseline.git_commit == "1234567890abcdef"


def test_pairing_ignores_order_and_names_follow_example_id() -> None:
    base = experiment([example("a", True), example("b", False)])
    cand = experiment([example("b", True), example("renamed", False, example_id="id-a")])
    c = compare(base, cand)
    assert c.overall.n_paired == 2
    assert [f.name for f in c.pass_to_fail] == ["renamed"]
    assert [f.name for f in c.fail_to_pass] == ["b"]


def test_examples_on_one_side_only_are_listed_not_dropped() -> None:
    base = experiment([example("a", True), example("gone", True)])
    cand = experiment([example("a", True), example("new", False)])
    c = compare(base, cand)
    assert c.overall.n_paired == 1 and c.overall.candidate.rate == 1.0
    assert [u.name for u in c.only_in_baseline] == ["gone"]
    assert [u.name for u in c.only_in_candidate] == ["new"]
    assert any("only in the baseline" in w for w in c.warnings)


def test_per_task_type_groups_and_deltas() -> None:
    base = experiment([example("t1", True, task_type="timeout", tokens=1000, latency_s=2.0),
                       example("t2", True, task_type="timeout", tokens=1000, latency_s=2.0),
                       example("o1", False, task_type="oom", tokens=500, latency_s=1.0)])
    cand = experiment([example("t1", True, task_type="timeout", tokens=800, latency_s=1.5),
                       example("t2", False, task_type="timeout", tokens=900, latency_s=2.5),
                       example("o1", True, task_type="oom", tokens=800, latency_s=1.0)])
    c = compare(base, cand)
    groups = {g.group: g for g in c.by_task_type}
    assert set(groups) == {"timeout", "oom"}
    assert groups["timeout"].pass_to_fail == 1 and groups["oom"].fail_to_pass == 1
    assert groups["timeout"].tokens.mean == pytest.approx(-150)
    assert c.overall.tokens.mean == pytest.approx((-200 - 100 + 300) / 3)
    assert c.overall.latency_s.median == pytest.approx(0.0)


def test_errors_and_timeouts_are_counted_separately() -> None:
    base = experiment(outcomes("PPP"))
    cand = experiment([example("ex0", True), example("ex1", False, status="error", error="boom"),
                       example("ex2", False, status="timeout")])
    c = compare(base, cand)
    assert (c.candidate_errors, c.candidate_timeouts) == (1, 1)
    assert (c.baseline_errors, c.baseline_timeouts) == (0, 0)
    assert c.overall.candidate.passed == 1  # errored examples count as failures
    assert {f.candidate_status for f in c.pass_to_fail} == {"error", "timeout"}
    assert any(f.candidate_error == "boom" for f in c.pass_to_fail)


def test_different_datasets_or_models_are_warned_about() -> None:
    base = experiment(outcomes("P"), dataset_hash="1" * 64)
    cand = experiment(outcomes("P"), model="other:model")
    warnings = " ".join(compare(base, cand).warnings)
    assert "dataset" in warnings and "other:model" in warnings


# -- gate -----------------------------------------------------------------------
def test_gate_fails_on_a_drop_beyond_the_margin_with_a_sentence() -> None:
    base, cand = pair("PPPPPPFF", "PPPPPFFF")  # 75.0% -> 62.5%
    d = decide(compare(base, cand), GateConfig(margin=0.05))
    assert not d.passed
    assert d.reasons == [
        "success rate fell 12.5 points (75.0% -> 62.5%), more than the 5-point margin"
    ]


def test_gate_passes_within_the_margin() -> None:
    base, cand = pair("PPPPPPFF", "PPPPPFFF")
    d = decide(compare(base, cand), GateConfig(margin=0.15))
    assert d.passed and d.reasons == [] and "no regression" in d.notes[0]


def test_gate_fails_on_a_significant_drop() -> None:
    base, cand = pair("P" * 12, "P" * 2 + "F" * 10)
    d = decide(compare(base, cand), GateConfig(margin=0.95))  # margin alone would pass
    assert not d.passed
    assert len(d.reasons) == 1 and "significantly worse" in d.reasons[0] and "McNemar p" in d.reasons[0]


def test_gate_does_not_fail_a_significant_improvement() -> None:
    base, cand = pair("F" * 12, "P" * 12)
    assert decide(compare(base, cand)).passed


def test_gate_fails_when_too_many_examples_errored() -> None:
    base = experiment(outcomes("FFF"))
    cand = experiment([example("ex0", False, status="error"), example("ex1", False, status="timeout"),
                       example("ex2", True)])
    d = decide(compare(base, cand), GateConfig(max_errors=1))
    assert not d.passed
    assert d.reasons == ["2 example(s) on the candidate side produced no verdict (errored, timed out or missed"
                         " the cache), more than the 1 allowed (eval.max_errors)"]
    assert decide(compare(base, cand), GateConfig(max_errors=2)).passed


def test_an_example_without_a_verdict_never_passes_the_gate_by_default() -> None:
    """Errors on either side fail the default gate (max_errors 0), even when the rates look equal."""
    base = experiment(outcomes("PPP"))
    cand = experiment([example("ex0", True), example("ex1", True), example("ex2", False, status="error")])
    d = decide(compare(base, cand))
    assert not d.passed and any("candidate side produced no verdict" in r for r in d.reasons)
    d = decide(compare(cand, base))
    assert not d.passed and any("baseline side produced no verdict" in r for r in d.reasons)


def test_all_errors_on_both_sides_is_nothing_to_compare() -> None:
    errs = [example(f"ex{i}", False, status="error") for i in range(3)]
    d = decide(compare(experiment(errs), experiment(list(errs))), GateConfig(max_errors=5))
    assert not d.passed
    assert d.reasons == ["no example produced a verdict on both sides, so nothing could be compared"]


def test_a_single_run_of_errors_is_nothing_to_gate_on() -> None:
    errs = [example(f"ex{i}", False, status="error") for i in range(3)]
    d = decide_single(experiment(errs), GateConfig(max_errors=5))
    assert not d.passed and d.reasons == ["no example produced a verdict, so there is nothing to gate on"]
    assert not decide_single(experiment([])).passed


def test_gate_without_baseline_uses_min_success_rate_or_passes_with_a_note() -> None:
    result = experiment(outcomes("PPF"))
    d = decide_single(result, GateConfig())
    assert d.passed and "nothing to gate on" in d.notes[0]
    d = decide_single(result, GateConfig(min_success_rate=0.8))
    assert not d.passed and d.reasons == ["success rate 66.7% (2/3) is below the required 80.0%"]
    assert decide_single(result, GateConfig(min_success_rate=0.6)).passed


def test_gate_config_reads_the_eval_section_with_cli_overrides() -> None:
    class FakeSettings:
        eval = EvalSettings(margin=0.1, alpha=0.01, min_success_rate=0.5)

    cfg = GateConfig.from_settings(FakeSettings(), margin=0.2)
    assert (cfg.margin, cfg.alpha, cfg.min_success_rate) == (0.2, 0.01, 0.5)
    assert eval_settings(object()) == EvalSettings()
    assert eval_settings(type("S", (), {"eval": {"jobs": 3}})()).jobs == 3
