"""LLM-as-judge: a chat model grades a run's answer against a rubric.

The judge sees the rubric, the task, the example's success definition, the
final answer and a summary of the tool calls (the evidence), and answers a
JSON object ``{"score": 0..1, "reason": "..."}``. A judge that answers
anything else, or fails, scores 0 with the cause as the reason: a broken judge
must lower a score visibly, never crash an evaluation or pass silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.agent.runner import RunOutcome
    from selfheal.evaluation.dataset import Example

SYSTEM = (
    "You grade the work of an operations agent. Judge only by the rubric and the evidence "
    "(the tool calls and their results), not by what the agent claims. Answer with one JSON "
    'object and nothing else: {"score": <number from 0 to 1>, "reason": "<one sentence>"}.'
)
_MAX_ANSWER_CHARS = 4000
_MAX_CALLS = 20


@dataclass(frozen=True)
class JudgeVerdict:
    score: float
    reason: str
    raw: str = ""


def tool_call_summary(outcome: RunOutcome) -> str:
    """One line per tool call: name, arguments, status, and the start of its output."""
    lines = []
    for c in (outcome.tool_calls or [])[:_MAX_CALLS]:
        out = " ".join(str(c.get("output", "")).split())[:160]
        lines.append(f"- {c.get('name')}({c.get('args')}) -> {c.get('status')}: {out}")
    if len(outcome.tool_calls or []) > _MAX_CALLS:
        lines.append(f"- ... {len(outcome.tool_calls) - _MAX_CALLS} more")
    return "\n".join(lines) or "(no tool calls)"


def judge_prompt(rubric: str, example: Example, outcome: RunOutcome) -> str:
    return (
        f"Rubric:\n{rubric.strip()}\n\n"
        f"Task:\n{example.task.strip()}\n\n"
        f"Definition of success:\n{(example.success or '(none given)').strip()}\n\n"
        f"Tool calls:\n{tool_call_summary(outcome)}\n\n"
        f"Final answer:\n{(outcome.final_answer or '(empty)')[:_MAX_ANSWER_CHARS]}\n\n"
        'Reply with {"score": ..., "reason": ...} only.'
    )


def parse_verdict(text: str) -> JudgeVerdict:
    """The judge's JSON verdict; malformed -> score 0 with the reason saying why."""
    from selfheal.evaluation.evaluators import find_json_objects

    snippet = " ".join(text.split())[:120]
    for obj in find_json_objects(text):
        if "score" not in obj:
            continue
        raw_score = obj["score"]
        if isinstance(raw_score, bool) or not isinstance(raw_score, int | float):
            return JudgeVerdict(0.0, f"malformed judge output: score {raw_score!r} is not a number", text)
        score = float(raw_score)
        if not 0.0 <= score <= 1.0:
            return JudgeVerdict(0.0, f"malformed judge output: score {score} outside 0..1", text)
        reason = " ".join(str(obj.get("reason", "")).split()) or "(no reason given)"
        return JudgeVerdict(round(score, 4), reason, text)
    return JudgeVerdict(0.0, f"malformed judge output (no JSON with a score): {snippet!r}", text)


def judge_run(model: BaseChatModel, *, rubric: str, example: Example, outcome: RunOutcome) -> JudgeVerdict:
    """Ask ``model`` for a verdict; any failure becomes a score-0 verdict naming the cause."""
    from langchain_core.messages import HumanMessage, SystemMessage

    try:
        reply = model.invoke([SystemMessage(content=SYSTEM), HumanMessage(content=judge_prompt(rubric, example, outcome))])
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return JudgeVerdict(0.0, f"judge failed: {type(exc).__name__}: {first[:160]}")
    content = reply.content if isinstance(reply.content, str) else str(reply.content)
    return parse_verdict(content)
