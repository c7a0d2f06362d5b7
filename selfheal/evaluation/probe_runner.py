"""Score a chat model (one tool-call protocol) on a probe set, and summarise it side by side.

The model is whatever LangChain chat model the caller built — the embedded
model under a given protocol, an OpenAI-compatible endpoint, the record/replay
cache around either — so one runner compares protocols, models and prompts.
Probes judged in an environment (``expect.verify``) execute the decided call
in the probe's scenario through the agent plug-in and ask its verifier.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from statistics import mean
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from selfheal.evaluation.probes import Decision, Probe, ProbeScore, score_decision
from selfheal.evaluation.stats import Interval, wilson_interval
from selfheal.errors import ModelError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings

#: (probe, decision) -> the environment's verdict on the decided call
Verifier = Callable[[Probe, Decision], bool]


class Rate(BaseModel):
    """k of n, with its Wilson 95% interval."""

    model_config = ConfigDict(extra="forbid")

    k: int
    n: int
    rate: float | None
    ci: Interval

    @classmethod
    def of(cls, k: int, n: int) -> Rate:
        return cls(k=k, n=n, rate=(k / n if n else None), ci=wilson_interval(k, n))

    def __str__(self) -> str:
        if not self.n:
            return "-"
        return f"{self.k}/{self.n} {100 * (self.rate or 0):.0f}% [{100 * self.ci.low:.0f}-{100 * self.ci.high:.0f}]"


class ProbeSummary(BaseModel):
    """Accuracy of one protocol on a group of probes (all, one agent or one tag)."""

    model_config = ConfigDict(extra="forbid")

    group: str
    n: int
    tool: Rate
    args: Rate
    answer: Rate
    step: Rate
    errors: int
    tokens_per_decision: float
    seconds_per_decision: float


def decide(model: BaseChatModel, probe: Probe) -> Decision:
    """Ask the model for the next step at ``probe``: its first tool call, or its answer."""
    from langchain_core.messages import convert_to_messages

    messages = convert_to_messages(probe.messages)
    bound: Any = model.bind_tools(probe.tools, tool_choice=probe.tool_choice) if probe.tools else model
    started = time.perf_counter()
    try:
        reply = bound.invoke(messages)
    except ModelError as exc:
        return Decision(error=exc.message, seconds=time.perf_counter() - started)
    seconds = time.perf_counter() - started
    usage = getattr(reply, "usage_metadata", None) or {}
    calls = list(getattr(reply, "tool_calls", []) or [])
    bad = list(getattr(reply, "invalid_tool_calls", []) or [])
    text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
    tool: str | None = None
    args: dict[str, Any] = {}
    if calls:
        tool, args = calls[0]["name"], dict(calls[0].get("args") or {})
    elif bad:
        tool = bad[0].get("name") or "?"
    return Decision(tool=tool, args=args, answer=text if tool is None else "",
                    input_tokens=int(usage.get("input_tokens", 0) or 0),
                    output_tokens=int(usage.get("output_tokens", 0) or 0), seconds=round(seconds, 3))


def run_probes(
    model: BaseChatModel,
    probes: Sequence[Probe],
    *,
    verifier: Verifier | None = None,
    on_score: Callable[[ProbeScore], None] | None = None,
) -> list[ProbeScore]:
    """Decide and score every probe in order (``on_score`` sees each as it lands)."""
    scores = []
    for probe in probes:
        decision = decide(model, probe)
        verified: bool | None = None
        if probe.expect.verify and decision.tool in probe.expect.tools and verifier is not None:
            verified = verifier(probe, decision)
        score = score_decision(probe, decision, verified=verified)
        scores.append(score)
        if on_score is not None:
            on_score(score)
    return scores


def summarize(scores: Sequence[ProbeScore], group: str = "all") -> ProbeSummary:
    """Tool, argument, answer and whole-step accuracy of ``scores`` (measures that apply only)."""
    args = [s.args_ok for s in scores if s.args_ok is not None]
    answers = [s.answer_ok for s in scores if s.answer_ok is not None]
    return ProbeSummary(
        group=group,
        n=len(scores),
        tool=Rate.of(sum(s.tool_ok for s in scores), len(scores)),
        args=Rate.of(sum(args), len(args)),
        answer=Rate.of(sum(answers), len(answers)),
        step=Rate.of(sum(s.correct for s in scores), len(scores)),
        errors=sum(bool(s.decision.error) for s in scores),
        tokens_per_decision=round(mean([s.decision.input_tokens + s.decision.output_tokens for s in scores]), 1)
        if scores else 0.0,
        # replayed decisions take no time: seconds are the mean over decisions the model made live
        seconds_per_decision=round(mean(live), 2) if (live := [s.decision.seconds for s in scores
                                                                if s.decision.seconds > 0]) else 0.0,
    )


def summarize_groups(scores: Sequence[ProbeScore]) -> list[ProbeSummary]:
    """The whole set, then per agent, then per tag."""
    out = [summarize(scores)]
    for agent in sorted({s.agent for s in scores}):
        out.append(summarize([s for s in scores if s.agent == agent], f"agent:{agent}"))
    for tag in sorted({t for s in scores for t in s.tags}):
        out.append(summarize([s for s in scores if tag in s.tags], f"tag:{tag}"))
    return out


def environment_verifier(settings: Settings) -> Verifier:
    """Execute the decided call in a fresh environment of the probe's scenario, then ask the verifier.

    Generic over agents: the plug-in opens the scenario, its own tool runs the
    call, and its own ``verify`` judges the state (e.g. a query's result
    against gold SQL, a function's configuration against the scenario's checks).
    """
    from selfheal.agents.registry import get_agent

    def verify(probe: Probe, decision: Decision) -> bool:
        agent_settings = settings.model_copy(update={"agent": probe.agent})
        plugin = get_agent(agent_settings, probe.agent)
        session = plugin.open(agent_settings, task=None, scenario=probe.scenario)
        try:
            tools = {t.name: t for t in session.tools}
            tool = tools.get(decision.tool or "")
            if tool is None:
                return False
            try:
                tool.invoke(decision.args)
            except Exception:  # an invalid call is a wrong decision, not a crash of the probe run
                return False
            return bool(session.verify().passed)
        finally:
            session.close()

    return verify
