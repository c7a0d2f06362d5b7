"""Score one run against one example: state checks, output assertions, tool calls, limits, judge.

Each evaluator returns an :class:`EvaluatorScore` whose comment is one line a
reviewer understands without opening the trace ("checks 2/3: checkout-api
timeout_s >= 8 is 5"). The example's score is the weighted mean of the
evaluators that apply to it; it passes when every *required* evaluator passes
(the environment's state checks are required: an agent that leaves the
account broken fails, whatever it wrote; the dataset's ``evaluators.required``
and an example's ``expect.required`` add others, e.g. ``output`` for questions)
and the score reaches the dataset's ``pass_threshold``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from selfheal.evaluation.custom import Evaluator, score_custom
from selfheal.evaluation.dataset import CustomEvaluatorSpec, EvaluatorConfig, Example, LimitsSpec
from selfheal.evaluation.results import EvaluatorScore

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.agent.runner import RunOutcome

_MAX_COMMENT = 240
_MISSING = object()


def _short(text: str, limit: int = _MAX_COMMENT) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _frac(ok: int, total: int) -> float:
    return ok / total if total else 1.0


# -- the evaluators -----------------------------------------------------------
def score_state_checks(outcome: RunOutcome, weight: float) -> EvaluatorScore:
    """The environment's own verdict: every declared check must hold."""
    checks = list(outcome.checks or [])
    ok = [c for c in checks if c.get("passed")]
    failed = [c for c in checks if not c.get("passed")]
    if not checks:
        return EvaluatorScore(
            key="state_checks", score=0.0, passed=False, weight=weight, required=True,
            comment="checks 0/0: the environment reported no check results",
        )  # fmt: skip
    detail = "; ".join(
        f"{c.get('description', '?')} {c.get('detail', '')}".strip() for c in failed[:3]
    )
    more = f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""
    comment = f"checks {len(ok)}/{len(checks)}" + (f": {detail}{more}" if failed else ": all hold")
    return EvaluatorScore(
        key="state_checks", score=_frac(len(ok), len(checks)), passed=not failed,
        weight=weight, required=True, comment=_short(comment),
    )  # fmt: skip


def find_json_objects(text: str) -> list[Any]:
    """Every JSON object embedded in ``text`` (fenced or inline), outermost first."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    pos = 0
    while True:
        start = text.find("{", pos)
        if start < 0:
            return found
        try:
            obj, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            pos = start + 1
            continue
        if isinstance(obj, dict):
            found.append(obj)
        pos = end


def json_path(obj: Any, path: str) -> Any:
    """``a.b.0`` in nested dicts/lists; ``_MISSING`` when absent."""
    node = obj
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def score_output(example: Example, answer: str, weight: float) -> EvaluatorScore | None:
    """contains / not_contains / regex / json assertions on the final answer (case-insensitive)."""
    exp = example.expect
    if not (exp.contains or exp.not_contains or exp.regex or exp.json_):
        return None
    lowered = answer.lower()
    failures: list[str] = []
    total = 0
    for s in exp.contains:
        total += 1
        if s.lower() not in lowered:
            failures.append(f"missing {s!r}")
    for s in exp.not_contains:
        total += 1
        if s.lower() in lowered:
            failures.append(f"contains forbidden {s!r}")
    for pattern in exp.regex:
        total += 1
        if not re.search(pattern, answer, re.IGNORECASE):
            failures.append(f"no match for /{pattern}/")
    objects = find_json_objects(answer) if exp.json_ else []
    for j in exp.json_:
        total += 1
        if not objects:
            failures.append(f"no JSON object (wanted {j.path} == {j.equals!r})")
            continue
        values = [json_path(o, j.path) for o in objects]
        if any(v == j.equals for v in values if v is not _MISSING):
            continue
        present = [v for v in values if v is not _MISSING]
        got = f"got {present[0]!r}" if present else "absent"
        failures.append(f"{j.path} {got} (want {j.equals!r})")
    passed = total - len(failures)
    comment = f"output {passed}/{total}" + (": " + "; ".join(failures) if failures else ": all assertions hold")
    return EvaluatorScore(
        key="output", score=_frac(passed, total), passed=not failures, weight=weight, comment=_short(comment)
    )


def score_tool_calls(example: Example, outcome: RunOutcome, weight: float) -> EvaluatorScore | None:
    """Required tools called, forbidden tools not called, at most ``max_calls`` calls."""
    spec = example.expect.tool_calls
    if spec is None:
        return None
    called = [c.get("name", "?") for c in outcome.tool_calls or []]
    names = set(called)
    failures: list[str] = []
    total = 0
    for name in spec.required:
        total += 1
        if name not in names:
            failures.append(f"{name} not called")
    for name in spec.forbidden:
        total += 1
        if name in names:
            failures.append(f"{name} called {called.count(name)}x (forbidden)")
    if spec.max_calls is not None:
        total += 1
        if len(called) > spec.max_calls:
            failures.append(f"{len(called)} calls (max {spec.max_calls})")
    passed = total - len(failures)
    comment = f"tool calls {passed}/{total}" + (
        ": " + "; ".join(failures) if failures else f": ok ({len(called)} calls)"
    )
    return EvaluatorScore(
        key="tool_calls", score=_frac(passed, total), passed=not failures, weight=weight, comment=_short(comment)
    )


def effective_limits(example: Example, config: EvaluatorConfig) -> LimitsSpec:
    """Dataset limits with the example's own limits laid over them."""
    base = config.limits.model_dump()
    if example.expect.limits is not None:
        base.update(example.expect.limits.model_dump(exclude_none=True))
    return LimitsSpec.model_validate(base)


def score_limits(example: Example, outcome: RunOutcome, config: EvaluatorConfig, weight: float) -> EvaluatorScore | None:
    """Steps, total tokens and latency within the budget."""
    limits = effective_limits(example, config)
    total_tokens = int((outcome.usage or {}).get("total_tokens", 0) or 0)
    measured = [
        ("steps", outcome.steps, limits.max_steps, "{}"),
        ("tokens", total_tokens, limits.max_total_tokens, "{}"),
        ("latency", outcome.latency_s, limits.max_latency_s, "{:.1f}s"),
    ]
    applied = [(k, v, m, f) for k, v, m, f in measured if m is not None]
    if not applied:
        return None
    over = [f"{k} {f.format(v)} > {f.format(m)}" for k, v, m, f in applied if v > m]
    within = [f"{k} {f.format(v)}/{f.format(m)}" for k, v, m, f in applied if v <= m]
    passed = len(applied) - len(over)
    comment = f"limits {passed}/{len(applied)}: " + "; ".join(over or within)
    return EvaluatorScore(
        key="limits", score=_frac(passed, len(applied)), passed=not over, weight=weight, comment=_short(comment)
    )


def score_outcome(outcome: RunOutcome, weight: float) -> EvaluatorScore:
    """Fallback when nothing else applies: the agent's evidence-based verdict (tool results)."""
    return EvaluatorScore(
        key="outcome", score=1.0 if outcome.success else 0.0, passed=bool(outcome.success),
        weight=weight, comment=_short(f"agent verdict: {'success' if outcome.success else 'failure'}"
                                      f" ({outcome.reason})"),
    )  # fmt: skip


# -- the combination -----------------------------------------------------------
def _weight(key: str, example: Example, config: EvaluatorConfig) -> float:
    if key in example.expect.weights:
        return float(example.expect.weights[key])
    return float(config.weights.get(key, 1.0))


def evaluate_outcome(
    example: Example,
    outcome: RunOutcome,
    config: EvaluatorConfig,
    *,
    judge_model: BaseChatModel | None = None,
    custom: Sequence[tuple[CustomEvaluatorSpec, Evaluator]] = (),
) -> tuple[bool, float, list[EvaluatorScore]]:
    """(passed, weighted score 0..1, one score per applicable evaluator) for one run.

    ``custom``: the dataset's own evaluators (``evaluators.custom``), already imported.
    """
    scores: list[EvaluatorScore] = []
    if example.has_checks or outcome.verified:
        scores.append(score_state_checks(outcome, _weight("state_checks", example, config)))
    for maybe in (
        score_output(example, outcome.final_answer or "", _weight("output", example, config)),
        score_tool_calls(example, outcome, _weight("tool_calls", example, config)),
        score_limits(example, outcome, config, _weight("limits", example, config)),
    ):
        if maybe is not None:
            scores.append(maybe)
    judge = _judge_score(example, outcome, config, judge_model)
    if judge is not None:
        scores.append(judge)
    for spec, fn in custom:
        scores.extend(score_custom(spec, fn, example, outcome))
    if not any(s.weight > 0 for s in scores):
        scores.append(score_outcome(outcome, _weight("outcome", example, config)))
    return verdict(scores, example, config)


def verdict(scores: Sequence[EvaluatorScore], example: Example,
            config: EvaluatorConfig) -> tuple[bool, float, list[EvaluatorScore]]:
    """The verdict of an example's scores under its dataset's rules (required evaluators, threshold).

    Also how a recorded result is re-judged when those rules change
    (``scripts/rescore_results.py``): the scores are kept, only the verdict moves.
    """
    must = {*config.required, *example.expect.required}
    marked = [s.model_copy(update={"required": True}) if s.key in must and not s.required else s for s in scores]
    return combine(marked, config.pass_threshold)


def combine(scores: list[EvaluatorScore], pass_threshold: float) -> tuple[bool, float, list[EvaluatorScore]]:
    """Weighted mean; pass = every required evaluator passed and mean >= threshold."""
    total_weight = sum(s.weight for s in scores)
    score = sum(s.score * s.weight for s in scores) / total_weight if total_weight > 0 else 0.0
    score = round(score, 4)
    required_ok = all(s.passed for s in scores if s.required)
    return (required_ok and score >= pass_threshold and total_weight > 0), score, scores


def _judge_score(
    example: Example, outcome: RunOutcome, config: EvaluatorConfig, judge_model: BaseChatModel | None
) -> EvaluatorScore | None:
    spec = example.expect.judge
    if spec is None and not config.judge.enabled:
        return None
    rubric = spec.rubric if spec is not None else config.judge.rubric
    weight = _weight("judge", example, config) if spec is None else spec.weight
    if "judge" in example.expect.weights:
        weight = example.expect.weights["judge"]
    if not rubric.strip():
        return None
    if judge_model is None:
        return EvaluatorScore(
            key="judge", score=0.0, passed=True, weight=0.0,
            comment="judge skipped: no judge model given (weight 0)",
        )  # fmt: skip
    from selfheal.evaluation.judge import judge_run

    verdict = judge_run(judge_model, rubric=rubric, example=example, outcome=outcome)
    return EvaluatorScore(
        key="judge", score=verdict.score, passed=verdict.score >= 0.5, weight=weight,
        comment=_short(f"judge {verdict.score:.2f}: {verdict.reason}"),
    )  # fmt: skip
