"""Every evaluator kind passes and fails where a reviewer expects, with a one-line comment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from selfheal.agent.runner import RunOutcome
from selfheal.evaluation.dataset import EvaluatorConfig, Example, ExpectSpec
from selfheal.evaluation.evaluators import evaluate_outcome
from selfheal.evaluation.judge import parse_verdict
from selfheal.models.fakes import ScriptedChatModel

CHECKS_OK = [
    {"description": "checkout-api: timeout_s >= 8", "passed": True, "detail": "is 10"},
    {"description": "checkout-api: memory_mb == 512", "passed": True, "detail": "is 512"},
]
CHECK_BAD = {"description": "checkout-api: timeout_s >= 8", "passed": False, "detail": "is 5"}


def outcome(**over: Any) -> RunOutcome:
    base: dict[str, Any] = dict(
        run_id="0192f0c4-0000-7000-8000-000000000001", task="t", task_type="lambda_timeout", scenario=None,
        success=True, reason="ok", error_type=None, verified=False, steps=2, stop_reason="answered",
        tool_calls=[{"name": "update_timeout", "args": {}, "status": "success", "output": "{}"}], checks=[],
        retrieved_entries=[], used_entries=[], final_answer="Raised the timeout to 10 s.", route="end",
        improvement_suggestions=[], usage={"input_tokens": 900, "output_tokens": 100, "total_tokens": 1000},
        latency_s=1.5, model="scripted", context_version="c", cheatsheet_version="h", trace_store="x",
    )  # fmt: skip
    base.update(over)
    return RunOutcome(**base)


def example(expect: dict[str, Any] | None = None, n_checks: int = 0, **over: Any) -> Example:
    return Example(
        id="6f1c", name="ex", split="test", task="Fix checkout-api timeouts", task_type="lambda_timeout",
        success="timeout >= 8 s", expect=ExpectSpec.model_validate(expect or {}), path=Path("ex.yaml"),
        n_checks=n_checks, **over,
    )  # fmt: skip


CONFIG = EvaluatorConfig()


def by_key(scores: list[Any]) -> dict[str, Any]:
    return {s.key: s for s in scores}


def test_state_checks_pass_and_fail_and_are_required() -> None:
    ok, score, scores = evaluate_outcome(example(n_checks=2), outcome(checks=CHECKS_OK, verified=True), CONFIG)
    assert ok and score == 1.0
    assert by_key(scores)["state_checks"].comment == "checks 2/2: all hold"
    bad_checks = [CHECK_BAD, CHECKS_OK[1]]
    ok, score, scores = evaluate_outcome(example(n_checks=2), outcome(checks=bad_checks, verified=True), CONFIG)
    sc = by_key(scores)["state_checks"]
    assert not ok and sc.required and not sc.passed and sc.score == 0.5
    assert sc.comment == "checks 1/2: checkout-api: timeout_s >= 8 is 5"
    # a required evaluator fails the example even when the weighted score is high
    lenient = EvaluatorConfig(pass_threshold=0.1)
    assert evaluate_outcome(example(n_checks=2), outcome(checks=bad_checks, verified=True), lenient)[0] is False


def test_output_contains_not_contains_regex() -> None:
    ex = example({"contains": ["TIMEOUT"], "not_contains": ["memory"], "regex": [r"\d+ ?s\b"]})
    ok, _, scores = evaluate_outcome(ex, outcome(), CONFIG)
    assert ok and by_key(scores)["output"].comment == "output 3/3: all assertions hold"
    ok, score, scores = evaluate_outcome(ex, outcome(final_answer="Raised memory to 1024 MB."), CONFIG)
    out = by_key(scores)["output"]
    assert not ok and out.score == 0.0
    assert out.comment == "output 0/3: missing 'TIMEOUT'; contains forbidden 'memory'; no match for /\\d+ ?s\\b/"


def test_output_json_path() -> None:
    ex = example({"json": [{"path": "change.timeout_s", "equals": 10}, {"path": "functions.0", "equals": "checkout-api"}]})
    answer = 'Done.\n```json\n{"change": {"timeout_s": 10}, "functions": ["checkout-api"]}\n```'
    ok, _, scores = evaluate_outcome(ex, outcome(final_answer=answer), CONFIG)
    assert ok and by_key(scores)["output"].passed
    ok, _, scores = evaluate_outcome(ex, outcome(final_answer='{"change": {"timeout_s": 5}}'), CONFIG)
    assert not ok
    assert by_key(scores)["output"].comment == "output 0/2: change.timeout_s got 5 (want 10); functions.0 absent (want 'checkout-api')"
    _, _, scores = evaluate_outcome(ex, outcome(final_answer="no json here"), CONFIG)
    assert "no JSON object" in by_key(scores)["output"].comment


def test_tool_calls_required_forbidden_max() -> None:
    ex = example({"tool_calls": {"required": ["update_timeout"], "forbidden": ["update_memory"], "max_calls": 2}})
    ok, _, scores = evaluate_outcome(ex, outcome(), CONFIG)
    assert ok and by_key(scores)["tool_calls"].comment == "tool calls 3/3: ok (1 calls)"
    calls = [{"name": "update_memory", "status": "success"}] * 3
    ok, _, scores = evaluate_outcome(ex, outcome(tool_calls=calls), CONFIG)
    tc = by_key(scores)["tool_calls"]
    assert not ok and tc.score == 0.0
    assert tc.comment == "tool calls 0/3: update_timeout not called; update_memory called 3x (forbidden); 3 calls (max 2)"


def test_limits_from_dataset_and_example_override() -> None:
    cfg = EvaluatorConfig.model_validate({"limits": {"max_steps": 8, "max_total_tokens": 5000}})
    ok, _, scores = evaluate_outcome(example(), outcome(), cfg)
    assert ok and by_key(scores)["limits"].passed
    ex = example({"limits": {"max_total_tokens": 500, "max_latency_s": 1.0}})
    ok, score, scores = evaluate_outcome(ex, outcome(), cfg)
    lim = by_key(scores)["limits"]
    assert not ok and lim.score == pytest.approx(1 / 3)
    assert lim.comment == "limits 1/3: tokens 1000 > 500; latency 1.5s > 1.0s"


def test_weights_and_threshold_combine() -> None:
    # output fails (weight 1), tool calls pass (weight 3): 0.75 >= threshold 0.75 -> pass
    ex = example({"contains": ["nowhere"], "tool_calls": {"required": ["update_timeout"]},
                  "weights": {"tool_calls": 3}})  # fmt: skip
    ok, score, _ = evaluate_outcome(ex, outcome(), CONFIG)
    assert ok and score == 0.75
    strict = EvaluatorConfig(pass_threshold=0.8)
    assert evaluate_outcome(ex, outcome(), strict)[0] is False


def test_a_question_with_a_wrong_answer_fails_when_output_is_required() -> None:
    # a read-only question: the checks only say nothing changed, the answer is the result
    unchanged = [{"description": "fulfilment-router: unchanged", "passed": True, "detail": "as declared"}]
    question = example({"regex": [r"\b1,?5\d\d\s*ms\b"]}, n_checks=1)
    wrong = outcome(checks=unchanged, verified=True, final_answer="The p99 is 260 ms.")
    ok, score, _ = evaluate_outcome(question, wrong, CONFIG)
    assert ok and score == 0.75  # the checks' weight alone passed it (3 of 4)
    strict = EvaluatorConfig(required=["output"])
    ok, score, scores = evaluate_outcome(question, wrong, strict)
    assert not ok and score == 0.75 and by_key(scores)["output"].required
    assert evaluate_outcome(question, outcome(checks=unchanged, verified=True, final_answer="p99: 1594 ms"),
                            strict)[0]
    # an example may require it on its own; an action without answer assertions is unaffected
    ok, _, _ = evaluate_outcome(example({"regex": [r"1594"], "required": ["output"]}, n_checks=1), wrong, CONFIG)
    assert not ok
    assert evaluate_outcome(example(n_checks=2), outcome(checks=CHECKS_OK, verified=True), strict)[0]


def test_required_names_a_known_evaluator() -> None:
    with pytest.raises(ValueError, match=r"unknown evaluator\(s\) answer"):
        EvaluatorConfig(required=["answer"])
    with pytest.raises(ValueError, match="unknown evaluator"):
        ExpectSpec.model_validate({"required": ["answer"]})


def test_plain_example_without_expectations_uses_the_agent_verdict() -> None:
    cfg = EvaluatorConfig()
    ok, _, scores = evaluate_outcome(example(), outcome(success=False, reason="no tool changed anything"), cfg)
    assert not ok and [s.key for s in scores] == ["outcome"]
    assert evaluate_outcome(example(), outcome(), cfg)[0]


def test_judge_scores_and_malformed_output_scores_zero() -> None:
    ex = example({"judge": {"rubric": "Is the root cause named?", "weight": 1}})
    good = ScriptedChatModel(['{"score": 0.9, "reason": "names the slow upstream"}'])
    ok, _, scores = evaluate_outcome(ex, outcome(), CONFIG, judge_model=good)
    j = by_key(scores)["judge"]
    assert ok and j.score == 0.9 and j.comment == "judge 0.90: names the slow upstream"
    prompt = good.calls[0]["messages"][-1].content
    assert "Is the root cause named?" in prompt and "update_timeout" in prompt and "timeout >= 8 s" in prompt

    bad = ScriptedChatModel(["I think it is fine"])
    ok, _, scores = evaluate_outcome(ex, outcome(), CONFIG, judge_model=bad)
    j = by_key(scores)["judge"]
    assert not ok and j.score == 0.0 and "malformed judge output" in j.comment

    def boom(_: Any) -> AIMessage:
        raise RuntimeError("judge endpoint down")

    _, _, scores = evaluate_outcome(ex, outcome(), CONFIG, judge_model=ScriptedChatModel([boom]))
    assert by_key(scores)["judge"].score == 0.0 and "judge endpoint down" in by_key(scores)["judge"].comment


def test_judge_without_model_is_skipped_visibly() -> None:
    cfg = EvaluatorConfig.model_validate({"judge": {"enabled": True, "rubric": "grade it"}})
    ok, _, scores = evaluate_outcome(example(), outcome(), cfg)
    assert ok and by_key(scores)["judge"].weight == 0 and "skipped" in by_key(scores)["judge"].comment


@pytest.mark.parametrize(
    ("text", "score"),
    [('{"score": 1, "reason": "ok"}', 1.0), ('```json\n{"score": 0.25}\n```', 0.25), ('{"score": 7}', 0.0),
     ('{"score": "high"}', 0.0), ("[]", 0.0)],
)  # fmt: skip
def test_parse_verdict(text: str, score: float) -> None:
    assert parse_verdict(text).score == score
