"""One run as evidence for the Reflector: what was asked, done, checked and said about it.

Online the digest comes from the graph state at the end of the run; offline
from the trace store (root run, its tool runs and its feedback). Both give the
same :class:`RunDigest`, so the Reflector and Curator never know which mode
they serve. Tool results are cut to a preview: the Reflector needs the gist
of each call, and a 2k-token window on the local model holds little more.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from selfheal.agent.record import ExecutionRecord, last_record

if TYPE_CHECKING:
    from selfheal.agent.state import AgentState, RunContext
    from selfheal.cheatsheet.model import Cheatsheet
    from selfheal.tracing.schema import RunRecord

RESULT_PREVIEW = 300
#: Feedback scores (0..1, ``selfheal feedback --score``) below this count as negative.
NEGATIVE_SCORE = 0.5


def preview(value: Any, limit: int = RESULT_PREVIEW) -> str:
    """``value`` as one string of at most ``limit`` characters (JSON for structures)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CheckDigest(_Model):
    description: str
    passed: bool
    detail: str = ""


class ToolCallDigest(_Model):
    name: str
    args: Any = None
    result: str = ""
    error: str | None = None  # the error text when the call failed


class EntryDigest(_Model):
    id: str
    text: str
    candidate: bool = False


class FeedbackDigest(_Model):
    key: str
    score: float | None = None
    comment: str | None = None
    correction: Any = None


class RunDigest(_Model):
    """Everything the Reflector may read about one run."""

    run_id: str = ""
    task: str
    task_type: str = "general"
    success: bool
    verified: bool = False
    error_type: str | None = None
    reason: str = ""
    checks: list[CheckDigest] = Field(default_factory=list)
    tool_calls: list[ToolCallDigest] = Field(default_factory=list)
    final_answer: str = ""
    retrieved_entries: list[EntryDigest] = Field(default_factory=list)
    used_entries: list[str] = Field(default_factory=list)
    feedback: list[FeedbackDigest] = Field(default_factory=list)
    reference: str | None = None  # the scenario's definition of success, when known

    @property
    def entry_ids(self) -> list[str]:
        """Ids the Reflector must tag: retrieved entries, then used ones not retrieved."""
        ids = [e.id for e in self.retrieved_entries]
        return ids + [u for u in self.used_entries if u not in ids]

    @property
    def negative_feedback(self) -> bool:
        return any(f.score is not None and f.score < NEGATIVE_SCORE for f in self.feedback)

    @property
    def needs_learning(self) -> bool:
        """A failure or a run someone scored low: what batch curation selects by default."""
        return not self.success or self.negative_feedback

    def render(self) -> str:
        """The digest as prompt text (compact, labelled, one fact per line)."""
        lines = [f"Task ({self.task_type}): {self.task}"]
        outcome = "SUCCESS" if self.success else "FAILURE"
        basis = "verified by environment checks" if self.verified else "not verified by checks"
        lines.append(f"Outcome: {outcome} ({basis})" + (f", error_type={self.error_type}" if self.error_type else ""))
        if self.reason:
            lines.append(f"Evaluator: {self.reason}")
        if self.reference:
            lines.append(f"Reference (what success means here): {' '.join(self.reference.split())}")
        for c in self.checks:
            mark = "PASS" if c.passed else "FAIL"
            lines.append(f"Check {mark}: {c.description}" + (f" — {c.detail}" if c.detail else ""))
        if self.tool_calls:
            lines.append("Tool calls:")
            for i, t in enumerate(self.tool_calls, 1):
                status = f"ERROR {t.error}" if t.error else t.result
                lines.append(f"  {i}. {t.name}({preview(t.args or {}, 160)}) -> {status}")
        else:
            lines.append("Tool calls: none")
        if self.final_answer:
            lines.append(f"Agent's final answer: {preview(self.final_answer, 400)}")
        if self.retrieved_entries:
            lines.append("Cheatsheet entries shown to the agent:")
            for e in self.retrieved_entries:
                flag = " (candidate)" if e.candidate else ""
                lines.append(f"  [{e.id}]{flag} {e.text}")
        lines.append(f"Entries the agent says it used: {', '.join(self.used_entries) or 'none'}")
        for f in self.feedback:
            parts = [f"score={f.score}" if f.score is not None else "", f"comment={f.comment!r}" if f.comment else ""]
            if f.correction is not None:
                parts.append(f"correction={preview(f.correction, 300)}")
            lines.append(f"User feedback ({f.key}): " + ", ".join(p for p in parts if p))
        return "\n".join(lines)


def _tool_call(call: Mapping[str, Any]) -> ToolCallDigest:
    output = str(call.get("output", ""))
    failed = call.get("status") == "error"
    return ToolCallDigest(
        name=str(call.get("name", "?")),
        args=call.get("args"),
        result="" if failed else preview(output),
        error=preview(output) if failed else None,
    )


def _entries(
    records: Sequence[Mapping[str, Any]] | Sequence[str], cheatsheet: Cheatsheet | None
) -> list[EntryDigest]:
    out: list[EntryDigest] = []
    for rec in records:
        if isinstance(rec, str):
            entry = cheatsheet.get(rec) if cheatsheet is not None else None
            text = entry.text() if entry is not None else ""
            candidate = entry is not None and entry.status == "candidate"
            out.append(EntryDigest(id=rec, text=text, candidate=candidate))
        else:
            out.append(
                EntryDigest(
                    id=str(rec["id"]),
                    text=str(rec.get("text", "")),
                    candidate=bool(rec.get("candidate")) or rec.get("status") == "candidate",
                )
            )
    return out


def digest_from_record(
    record: Mapping[str, Any],
    *,
    run_id: str = "",
    entries: Sequence[Mapping[str, Any]] | Sequence[str] | None = None,
    cheatsheet: Cheatsheet | None = None,
    feedback: Sequence[FeedbackDigest] = (),
    reference: str | None = None,
) -> RunDigest:
    """A digest from one ``execution_history`` record (with its ``evaluation``)."""
    rec = ExecutionRecord.of(record)
    evaluation = rec.judged
    shown = entries if entries is not None else list(rec.retrieved_entries)
    return RunDigest(
        run_id=run_id,
        task=rec.task,
        task_type=rec.task_type or "general",
        success=evaluation.success,
        verified=evaluation.verified,
        error_type=evaluation.error_type,
        reason=evaluation.reason,
        checks=[CheckDigest(description=c.description, passed=c.passed, detail=c.detail) for c in evaluation.checks],
        tool_calls=[_tool_call(c.model_dump()) for c in rec.tool_calls],
        final_answer=rec.final_answer,
        retrieved_entries=_entries(shown, cheatsheet),
        used_entries=list(rec.used_entries),
        feedback=list(feedback),
        reference=reference,
    )


def session_reference(session: Any) -> str | None:
    """The scenario's ``success:`` text when the session was seeded from a scenario."""
    spec = getattr(session, "scenario_spec", None)
    text = getattr(spec, "success", None)
    return str(text) if text else None


def digest_from_state(state: AgentState, rc: RunContext, *, run_id: str = "") -> RunDigest:
    """Online mode: the digest of the run the graph just evaluated."""
    record = last_record(state)
    shown = (state.get("context") or {}).get("cheatsheet_entries") or record.retrieved_entries
    return digest_from_record(
        record,
        run_id=run_id,
        entries=shown,
        cheatsheet=rc.cheatsheet,
        reference=session_reference(rc.session),
    )


# -- offline: from the trace store ---------------------------------------------


def _feedback(store: Any, run_id: UUID) -> list[FeedbackDigest]:
    items = store.list_feedback(run_ids=[run_id]) if hasattr(store, "list_feedback") else []
    return [FeedbackDigest(key=f.key, score=f.score, comment=f.comment, correction=f.correction) for f in items]


def _tool_runs(trace: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Tool calls rebuilt from tool runs (for roots whose outputs were not stored)."""
    calls = []
    for run in trace:
        if run.run_type != "tool":
            continue
        out = run.outputs or {}
        msg = out.get("output", out)
        content = msg.get("content", msg) if isinstance(msg, dict) else msg
        status = msg.get("status") if isinstance(msg, dict) else None
        failed = run.error is not None or status == "error"
        calls.append(
            {
                "name": run.name,
                "args": run.inputs,
                "status": "error" if failed else "success",
                "output": run.error if run.error else content,
            }
        )
    return calls


def digest_from_store(
    store: Any, run_id: UUID | str, *, reference: str | None = None, cheatsheet: Cheatsheet | None = None
) -> RunDigest:
    """Offline mode: the digest of a stored root run (its final state, tool runs and feedback).

    The root's outputs hold the workflow's final state; when the run errored
    before finishing, the metadata and tool runs stand in for it.
    """
    from selfheal.tracing.errors import RunNotFoundError

    root = store.get_run(run_id)
    if root is None:
        raise RunNotFoundError(f"run {run_id} is not in the trace store")
    md = root.metadata
    history = (root.outputs or {}).get("execution_history") or []
    record: dict[str, Any] = dict(history[-1]) if history and isinstance(history[-1], dict) else {}
    entries: list[Any] | None = None
    ctx = (root.outputs or {}).get("context") or {}
    if isinstance(ctx, dict) and ctx.get("cheatsheet_entries"):
        entries = list(ctx["cheatsheet_entries"])
    if not record:
        trace = store.get_trace(root.trace_id)
        record = {
            "task": (root.inputs or {}).get("task", ""),
            "task_type": md.get("task_type", "general"),
            "tool_calls": _tool_runs(trace),
            "final_answer": "",
            "used_entries": md.get("used_entries") or [],
            "retrieved_entries": md.get("retrieved_entries") or [],
            "evaluation": {
                "success": bool(md.get("success", False)),
                "verified": False,
                "error_type": md.get("error_type") or ("run_error" if root.error else None),
                "reason": preview(root.error, 240) if root.error else "",
            },
        }
    return digest_from_record(
        record,
        run_id=str(root.id),
        entries=entries,
        cheatsheet=cheatsheet,
        feedback=_feedback(store, root.id),
        reference=reference,
    )
