"""ACE's Reflector over batches of runs, contrastive and with the dataset's ground truth.

One run at a time (``reflector.py``) a small critic sees a failure and guesses.
Over a batch it sees the pattern: per task type, how many runs passed and
failed, which errors repeat (clusters), which entries the runs leaned on, what
users said -- and, side by side, a *failed and a successful trajectory of the
same task type* (contrastive reflection: the difference is the lesson). When
the dataset knows the answer (an example's ``success`` text, its checks, a
gold query and its result: whatever the plug-in's example files hold under
``optimize.ground_truth_keys``, or the plug-in's optional
``ground_truth(settings, name)`` hook) the Reflector sees it too (ACE's
ground-truth mode); without one it judges from environment feedback only.

Output is one JSON object of insights, each naming the runs it came from, so
every delta built on it keeps its provenance.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from selfheal.optimize.jsonout import JsonOutputError, invoke_json
from selfheal.optimize.reflector import TAGS, ReflectionRejected

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings
    from selfheal.optimize.digest import RunDigest

log = logging.getLogger(__name__)

_MAX_GROUND_TRUTH = 900


# -- ground truth ---------------------------------------------------------------------


def ground_truths(settings: Settings, examples: Sequence[Any]) -> dict[str, str]:
    """Example name -> the ground truth the dataset holds for it (examples without one are absent).

    Sources, generic over plug-ins: the plug-in's optional ``ground_truth(settings,
    name) -> str | None`` hook (e.g. a gold query *and its result*), else the
    example's ``success`` text, its reference outputs and the keys of its file
    named in ``optimize.ground_truth_keys``.
    """
    from selfheal.agents.registry import get_agent
    from selfheal.yamlio import dump_yaml, read_yaml, to_plain

    try:
        hook = getattr(get_agent(settings), "ground_truth", None)
    except Exception:  # pragma: no cover - an unknown agent fails earlier, at load
        hook = None
    keys = list(settings.optimize.ground_truth_keys)
    out: dict[str, str] = {}
    for ex in examples:
        parts: list[str] = []
        if callable(hook):
            try:
                text = hook(settings, ex.name)
            except Exception as exc:  # a plug-in's bug must not stop the optimizer
                log.warning("ground truth of %s unavailable: %s", ex.name, exc)
                text = None
            if text:
                parts.append(str(text).strip())
        if not parts:
            if ex.success:
                parts.append(f"success: {' '.join(ex.success.split())}")
            if ex.reference_outputs:
                parts.append(f"reference outputs: {json.dumps(to_plain(ex.reference_outputs), default=str)}")
            try:
                raw = read_yaml(ex.path) if ex.index is None else None
            except Exception:
                raw = None
            if raw is not None and hasattr(raw, "get"):
                for k in keys:
                    if raw.get(k) not in (None, "", []):
                        value = raw[k]
                        shown = value.strip() if isinstance(value, str) else dump_yaml(value).strip()
                        parts.append(f"{k}:\n{shown}" if "\n" in shown else f"{k}: {shown}")
        if parts:
            text = "\n".join(parts)
            out[ex.name] = text if len(text) <= _MAX_GROUND_TRUTH else text[: _MAX_GROUND_TRUTH - 1] + "…"
    return out


# -- batches ----------------------------------------------------------------------------


@dataclass
class RunEvidence:
    """One run with what the dataset knows about it (``ground_truth`` None: environment feedback only)."""

    digest: RunDigest
    example: str | None = None
    ground_truth: str | None = None

    @property
    def run_id(self) -> str:
        return self.digest.run_id


@dataclass
class TaskTypeStats:
    """Successes vs failures of one task type, its error clusters and the entries its runs used."""

    task_type: str
    successes: int = 0
    failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    entries_used: Counter[str] = field(default_factory=Counter)
    feedback: list[str] = field(default_factory=list)

    def render(self) -> str:
        n = self.successes + self.failures
        line = f"- {self.task_type}: {self.successes}/{n} succeeded"
        if self.errors:
            line += "; errors: " + ", ".join(f"{k} x{v}" for k, v in self.errors.most_common(4))
        if self.entries_used:
            line += "; entries used: " + ", ".join(f"{k} x{v}" for k, v in self.entries_used.most_common(5))
        if self.feedback:
            line += "; feedback: " + " | ".join(self.feedback[:3])
        return line


@dataclass
class ReflectionBatch:
    """What one Reflector call sees: stats per task type, contrastive pairs, unpaired failures."""

    stats: list[TaskTypeStats]
    pairs: list[tuple[RunEvidence, RunEvidence]] = field(default_factory=list)  # (failed, succeeded)
    failures: list[RunEvidence] = field(default_factory=list)  # failed runs with no success of their type

    @property
    def run_ids(self) -> list[str]:
        ids = [r.run_id for pair in self.pairs for r in pair] + [r.run_id for r in self.failures]
        return [i for i in dict.fromkeys(ids) if i]

    @property
    def task_types(self) -> list[str]:
        failed = [f for f, _ in self.pairs] + self.failures
        return list(dict.fromkeys(f.digest.task_type for f in failed))

    @property
    def entry_ids(self) -> list[str]:
        ids: list[str] = []
        for r in [x for pair in self.pairs for x in pair] + self.failures:
            ids += r.digest.entry_ids
        return list(dict.fromkeys(ids))


def task_type_stats(evidence: Sequence[RunEvidence]) -> list[TaskTypeStats]:
    by_type: dict[str, TaskTypeStats] = {}
    for r in evidence:
        d = r.digest
        s = by_type.setdefault(d.task_type, TaskTypeStats(d.task_type))
        if d.success:
            s.successes += 1
        else:
            s.failures += 1
            s.errors[d.error_type or "unknown"] += 1
        s.entries_used.update(d.used_entries)
        for f in d.feedback:
            if f.comment or f.correction is not None:
                s.feedback.append(" ".join(str(f.comment or f.correction).split())[:160])
    return sorted(by_type.values(), key=lambda s: s.task_type)


def contrastive_pairs(
    evidence: Sequence[RunEvidence],
) -> tuple[list[tuple[RunEvidence, RunEvidence]], list[RunEvidence]]:
    """(failed, succeeded) pairs of the same task type, and the failures no success of their type pairs with.

    A failure is paired with a success of the same example first (the exact
    contrast), else of the same task type; successes are reused round-robin
    when failures outnumber them, so every failure gets its contrast.
    """
    pairs: list[tuple[RunEvidence, RunEvidence]] = []
    alone: list[RunEvidence] = []
    successes: dict[str, list[RunEvidence]] = {}
    for r in evidence:
        if r.digest.success:
            successes.setdefault(r.digest.task_type, []).append(r)
    used: Counter[str] = Counter()
    for r in evidence:
        if r.digest.success and not r.digest.negative_feedback:
            continue
        pool = successes.get(r.digest.task_type, [])
        if not pool:
            alone.append(r)
            continue
        same = [s for s in pool if s.example and s.example == r.example]
        choice = min(same or pool, key=lambda s: (used[s.run_id], pool.index(s)))
        used[choice.run_id] += 1
        pairs.append((r, choice))
    return pairs, alone


def build_batches(evidence: Sequence[RunEvidence], *, batch_size: int) -> list[ReflectionBatch]:
    """Batches of at most ``batch_size`` failures, grouped by task type, each with every type's stats."""
    stats = task_type_stats(evidence)
    pairs, alone = contrastive_pairs(evidence)
    items: list[tuple[str, Any]] = [(f.digest.task_type, ("pair", (f, s))) for f, s in pairs]
    items += [(f.digest.task_type, ("alone", f)) for f in alone]
    items.sort(key=lambda t: t[0])
    batches: list[ReflectionBatch] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        types = {t for t, _ in chunk}
        batch = ReflectionBatch(stats=[s for s in stats if s.task_type in types])
        for _, (kind, value) in chunk:
            if kind == "pair":
                batch.pairs.append(value)
            else:
                batch.failures.append(value)
        batches.append(batch)
    return batches


# -- the Reflector --------------------------------------------------------------------


class Insight(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task_type: str = "general"
    diagnosis: str = ""
    lesson: str = Field(min_length=1)
    runs: list[str] = Field(default_factory=list)


class BatchReflection(BaseModel):
    """The Reflector's insights over one batch, and its tags for the entries the runs were shown."""

    model_config = ConfigDict(extra="ignore")

    insights: list[Insight] = Field(default_factory=list)
    entry_tags: dict[str, str] = Field(default_factory=dict)

    def render(self) -> str:
        lines = []
        for i, ins in enumerate(self.insights, 1):
            runs = ", ".join(ins.runs) or "-"
            lines.append(f"{i}. [{ins.task_type}] {ins.diagnosis} -> LESSON: {ins.lesson} (runs: {runs})")
        if self.entry_tags:
            lines.append("Entry tags: " + ", ".join(f"{k}={v}" for k, v in self.entry_tags.items()))
        return "\n".join(lines) or "(no insights)"


BATCH_REFLECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Insights over a batch of agent runs",
    "properties": {
        "insights": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "task_type": {"type": "string"},
                    "diagnosis": {"type": "string",
                                  "description": "what separates the failed from the successful runs"},
                    "lesson": {"type": "string", "description": "the reusable lesson, general"},
                    "runs": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["task_type", "diagnosis", "lesson", "runs"],
            },
        },
        "entry_tags": {"type": "object", "additionalProperties": {"type": "string", "enum": list(TAGS)}},
    },
    "required": ["insights", "entry_tags"],
}

SYSTEM_PROMPT = """\
You are the Reflector of an agent. You read a BATCH of its runs: per task type how many passed,
the errors that repeat, the entries the runs used, and pairs of a FAILED and a SUCCESSFUL run of the
same task type side by side. Find what the successful run did that the failed one did not.
When a GROUND TRUTH is given, judge against it; otherwise judge from the environment's checks and
tool results only. The agent's own claim of success is not evidence.

Reply with exactly one JSON object and nothing else:
{"insights": [{"task_type": "...", "diagnosis": "...", "lesson": "...", "runs": ["<run id>", ...]}],
 "entry_tags": {"<entry id>": "helpful" | "harmful" | "neutral"}}
- one insight per distinct lesson; "runs" lists the run ids (as given) it comes from.
- lesson: general and reusable (no run-specific ids or numbers); prefer a concrete step or a
  fragment the agent can copy over advice.
- entry_tags: for the listed entry ids only."""


def _run_block(label: str, r: RunEvidence) -> str:
    head = f"{label} run {r.run_id}"
    gt = f"\nGROUND TRUTH:\n{r.ground_truth}" if r.ground_truth else "\n(no ground truth: environment feedback only)"
    return f"{head}\n{r.digest.render()}{gt}"


def batch_prompt(batch: ReflectionBatch) -> str:
    """The Reflector's human message for ``batch`` (stats, contrastive pairs, lone failures)."""
    parts = ["Task types in this batch:", *[s.render() for s in batch.stats]]
    for i, (failed, succeeded) in enumerate(batch.pairs, 1):
        parts.append(f"\n=== Pair {i} ({failed.digest.task_type}) ===")
        parts.append(_run_block("FAILED", failed))
        parts.append("---")
        parts.append(_run_block("SUCCESSFUL", succeeded))
    for r in batch.failures:
        parts.append(f"\n=== Failure without a successful run of its type ({r.digest.task_type}) ===")
        parts.append(_run_block("FAILED", r))
    ids = batch.entry_ids
    parts.append("\n" + (f"Entry ids to tag: {', '.join(ids)}" if ids else "No entries were shown: entry_tags is {}."))
    parts.append("Reply with the JSON object.")
    return "\n".join(parts)


def parse_batch_reflection(obj: Any, batch: ReflectionBatch) -> BatchReflection:
    if not isinstance(obj, dict):
        raise ReflectionRejected(f"expected a JSON object, got {type(obj).__name__}")
    raw = obj.get("insights")
    if not isinstance(raw, list):
        raise ReflectionRejected("the reply has no 'insights' list")
    known = set(batch.run_ids)
    insights = []
    for item in raw:
        if not isinstance(item, dict) or not str(item.get("lesson") or "").strip():
            continue
        runs = [str(r) for r in item.get("runs") or [] if str(r) in known] or batch.run_ids
        insights.append(Insight(task_type=str(item.get("task_type") or "general"),
                                diagnosis=" ".join(str(item.get("diagnosis") or "").split())[:600],
                                lesson=" ".join(str(item["lesson"]).split())[:600], runs=runs))
    if not insights:
        raise ReflectionRejected("the reply holds no insight with a lesson")
    tags_raw = obj.get("entry_tags") if isinstance(obj.get("entry_tags"), dict) else {}
    allowed = set(batch.entry_ids)
    tags = {str(k): str(v).lower() for k, v in tags_raw.items() if str(k) in allowed and str(v).lower() in TAGS}
    return BatchReflection(insights=insights, entry_tags=tags)


def reflect_batch(model: BaseChatModel, batch: ReflectionBatch, *, config: Any = None) -> BatchReflection:
    """Insights over ``batch``; raises ReflectionRejected (unusable reply) or ModelError."""
    messages = [SystemMessage(content=SYSTEM_PROMPT), HumanMessage(content=batch_prompt(batch))]
    try:
        obj, _raw = invoke_json(model, messages, BATCH_REFLECTION_SCHEMA, name="batch_reflection", config=config)
    except JsonOutputError as exc:
        raise ReflectionRejected(str(exc)) from None
    return parse_batch_reflection(obj, batch)


def evidence_by_example(digests: Mapping[str, RunDigest], examples: Mapping[str, str],
                        truths: Mapping[str, str]) -> list[RunEvidence]:
    """RunEvidence for each run id -> digest, with its example name and that example's ground truth."""
    out = []
    for run_id, digest in digests.items():
        name = examples.get(run_id)
        out.append(RunEvidence(digest, name, truths.get(name) if name else None))
    return out
