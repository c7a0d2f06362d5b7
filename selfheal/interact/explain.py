"""``selfheal explain RUN``: what a run decided, on which evidence, with which context — cited.

The structured part comes from the trace alone: every tool call is a step
(``[step:N]``) with its arguments and what came back (the evidence the next
decision saw); the run's verdict and checks; the cheatsheet entries retrieved
and used (``[entry:ID]``, from the typed run record or the root's metadata);
the context instructions in the prompt (``[instruction:ID]``, as the context
is now: the run's ``context_version`` says which version it used).

The chat model then summarises it, answering the user's question, with
citations in that fixed syntax (and ``[run:ID]``). Every cited id is checked
against the structured part: an answer citing anything else is sent back once
with the bad ids named; if the second answer still has some, they are removed
and the explanation is flagged. ``use_model=False`` gives the structured part
only (offline, instant).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from selfheal.agent.record import ExecutionRecord
from selfheal.errors import SelfhealError
from selfheal.tracing.analysis import error_message, tool_failure
from selfheal.tracing.errors import RunNotFoundError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings
    from selfheal.tracing.schema import RunRecord

__all__ = ["CITATION", "Explanation", "ExplainedEntry", "Step", "check_citations", "explain"]

#: ``[step:3]``, ``[entry:heur-vpc-before-memory]``, ``[instruction:ins-x]``, ``[run:0193...]``.
CITATION = re.compile(r"\[(run|step|entry|instruction):\s*([A-Za-z0-9_.\-]+)\]")
_PREVIEW = 600


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Step(_Model):
    """One decision: a tool call, its arguments, and the evidence it returned."""

    n: int
    tool: str
    args: Any = None
    status: Literal["success", "error"] = "success"
    output: str = ""
    run_id: str | None = None
    model_turn: int | None = None


class ExplainedEntry(_Model):
    """A cheatsheet entry or context instruction the run had in its prompt."""

    id: str
    kind: Literal["entry", "instruction"]
    text: str = ""
    retrieved: bool = False
    used: bool = False
    exists: bool = True


class Explanation(_Model):
    run_id: str
    trace_id: str
    task: str = ""
    task_type: str | None = None
    outcome: str
    reason: str = ""
    checks: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    final_answer: str = ""
    entries: list[ExplainedEntry] = Field(default_factory=list)
    instructions: list[ExplainedEntry] = Field(default_factory=list)
    context_version: str | None = None
    question: str | None = None
    summary: str | None = None
    citations: list[str] = Field(default_factory=list)
    invalid_citations: list[str] = Field(default_factory=list)
    retried: bool = False
    flagged: bool = False
    notes: list[str] = Field(default_factory=list)

    def valid_ids(self) -> dict[str, set[str]]:
        return {
            "run": {self.run_id, self.run_id[:8], self.run_id[:13]},
            "step": {str(s.n) for s in self.steps},
            "entry": {e.id for e in self.entries},
            "instruction": {e.id for e in self.instructions},
        }


# -- the structured part -------------------------------------------------------------------


def _preview(value: Any, limit: int = _PREVIEW) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tool_output(run: RunRecord) -> str:
    out = run.outputs or {}
    msg = out.get("output", out) if isinstance(out, Mapping) else out
    content = msg.get("content") if isinstance(msg, Mapping) and "content" in msg else msg
    return _preview(content)


def _tool_args(run: RunRecord) -> Any:
    args = run.inputs
    if isinstance(args, Mapping) and set(args) == {"input"}:
        return args["input"]
    return args


def _record_of(root: RunRecord) -> ExecutionRecord | None:
    outputs = root.outputs if isinstance(root.outputs, Mapping) else {}
    history = outputs.get("execution_history")
    if isinstance(history, list) and history and isinstance(history[-1], Mapping):
        try:
            return ExecutionRecord.of(history[-1])
        except Exception:
            return None
    return None


def _ids(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v]
    return []


def _outcome(root: RunRecord) -> str:
    flag = root.metadata.get("success")
    if flag is True:
        return "success"
    if flag is False:
        et = root.metadata.get("error_type")
        return "failed" + (f" ({et})" if et else "")
    return "error" if root.status == "error" else root.status


def structure(settings: Settings, root: RunRecord, trace: list[RunRecord]) -> Explanation:
    """Everything the trace, the run record, the cheatsheet and the context say about one run."""
    record = _record_of(root)
    md = root.metadata
    tools = sorted((r for r in trace if r.run_type == "tool"), key=lambda r: r.dotted_order)
    steps: list[Step] = []
    turns = [c.step for c in record.tool_calls] if record is not None else []
    for i, run in enumerate(tools):
        why = tool_failure(run)
        steps.append(Step(
            n=i + 1, tool=run.name, args=_tool_args(run), status="error" if why else "success",
            output=error_message(why) if why else _tool_output(run), run_id=str(run.id),
            model_turn=turns[i] if len(turns) == len(tools) else None,
        ))  # fmt: skip
    if not steps and record is not None:
        for i, call in enumerate(record.tool_calls):
            steps.append(Step(n=i + 1, tool=call.name, args=call.args,
                              status="error" if call.status == "error" else "success",
                              output=_preview(call.output), model_turn=call.step))
    retrieved = record.retrieved_entries if record is not None else _ids(md.get("retrieved_entries"))
    used = record.used_entries if record is not None else _ids(md.get("used_entries"))
    notes: list[str] = []
    from selfheal.cheatsheet.model import Cheatsheet
    from selfheal.cheatsheet.store import load_cheatsheet

    sheet: Cheatsheet | None = None
    try:
        sheet = load_cheatsheet(settings.cheatsheet_dir)
    except SelfhealError as exc:
        notes.append(f"cheatsheet unreadable: {exc.message}")
    entries = []
    for entry_id in dict.fromkeys([*retrieved, *used]):
        entry = sheet.get(entry_id) if sheet is not None else None
        entries.append(ExplainedEntry(id=entry_id, kind="entry", text=entry.text() if entry else "",
                                      retrieved=entry_id in retrieved, used=entry_id in used,
                                      exists=entry is not None))
    instructions: list[ExplainedEntry] = []
    try:
        from selfheal.context.loader import load_context

        ctx = load_context(settings.prompts_dir)
        instructions = [ExplainedEntry(id=i.id, kind="instruction", text=i.text, retrieved=True)
                        for i in ctx.instructions]
        notes.append("instructions are the context as it is now"
                     + (f"; the run used context version {md['context_version']}" if md.get("context_version") else ""))
    except SelfhealError as exc:
        notes.append(f"context unreadable: {exc.message}")
    judged = record.judged if record is not None and record.evaluation is not None else None
    task = record.task if record is not None and record.task else str((root.inputs or {}).get("task") or "")
    reason = judged.reason if judged is not None else (error_message(root.error) if root.error else "")
    return Explanation(
        run_id=str(root.id),
        trace_id=str(root.trace_id),
        task=task,
        task_type=md.get("task_type") or (record.task_type if record is not None else None),
        outcome=_outcome(root),
        reason=reason,
        checks=[f"{'✓' if c.passed else '✗'} {c.description}" + (f" — {c.detail}" if c.detail else "")
                for c in (judged.checks if judged is not None else [])],
        steps=steps,
        final_answer=record.final_answer if record is not None else "",
        entries=entries,
        instructions=instructions,
        context_version=md.get("context_version"),
        notes=notes,
    )


# -- citations ------------------------------------------------------------------------------


def check_citations(text: str, valid: Mapping[str, set[str]]) -> tuple[list[str], list[str]]:
    """(valid, invalid) citations in ``text``, each as written (``step:3``), in order, without repeats."""
    good: list[str] = []
    bad: list[str] = []
    for m in CITATION.finditer(text):
        kind, ident = m.group(1), m.group(2)
        ok = ident in valid.get(kind, set()) or (kind == "run" and any(v.startswith(ident) and len(ident) >= 8
                                                                        for v in valid["run"]))
        target = good if ok else bad
        cite = f"{kind}:{ident}"
        if cite not in target:
            target.append(cite)
    return good, bad


def _strip(text: str, bad: list[str]) -> str:
    def repl(m: re.Match[str]) -> str:
        return "" if f"{m.group(1)}:{m.group(2)}" in bad else m.group(0)

    return re.sub(r"[ \t]+([.,;:])", r"\1", CITATION.sub(repl, text)).strip()


def evidence_text(x: Explanation) -> str:
    """The structured part as the model reads it."""
    lines = [f"[run:{x.run_id}] task ({x.task_type}): {x.task}", f"outcome: {x.outcome}. {x.reason}".strip()]
    lines += [f"check: {c}" for c in x.checks]
    for s in x.steps:
        lines.append(f"[step:{s.n}] called {s.tool}({_preview(s.args, 300)}) -> {s.status}: {s.output}")
    if x.final_answer:
        lines.append(f"final answer: {_preview(x.final_answer, 800)}")
    for e in x.entries:
        how = "used" if e.used else "retrieved, not used"
        lines.append(f"[entry:{e.id}] ({how}) {e.text or '(no longer in the cheatsheet)'}")
    for i in x.instructions:
        lines.append(f"[instruction:{i.id}] {i.text}")
    return "\n".join(lines)


_SYSTEM = """You explain one run of an AI agent to its developer, from the evidence given and nothing else. \
Answer the question in a few sentences. Back every claim with citations in exactly this syntax: \
[step:N] for a tool call, [entry:ID] for a cheatsheet entry, [instruction:ID] for a context instruction, \
[run:ID] for the run. Cite only ids that appear in the evidence."""


def _summarise(model: BaseChatModel, x: Explanation, question: str) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    valid = x.valid_ids()
    messages: list[Any] = [SystemMessage(_SYSTEM), HumanMessage(f"Evidence:\n{evidence_text(x)}\n\nQuestion: {question}")]
    text, bad = "", []
    for attempt in range(2):
        try:
            reply = model.invoke(messages)
        except SelfhealError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise SelfhealError(f"the chat model failed: {first}") from None
        text = reply.content if isinstance(reply.content, str) else json.dumps(reply.content)
        good, bad = check_citations(text, valid)
        if not bad:
            x.citations = good
            break
        x.retried = True
        messages += [reply, HumanMessage(
            f"These citations are not in the evidence: {', '.join('[' + b + ']' for b in bad)}. "
            "Answer again citing only ids from the evidence."
        )]  # fmt: skip
    if bad:
        x.flagged = True
        x.invalid_citations = bad
        text = _strip(text, bad)
        x.citations = check_citations(text, valid)[0]
    if not x.citations:
        x.flagged = True
    x.summary = text.strip()


DEFAULT_QUESTION = "What did the agent do, why, and what decided the outcome?"


def explain(
    settings: Settings,
    run_id: str,
    question: str | None = None,
    *,
    source: str = "local",
    project: str | None = None,
    model: BaseChatModel | None = None,
    use_model: bool = True,
) -> Explanation:
    """Explain one run (a child run's id explains its whole run); the model part unless ``use_model=False``."""
    from selfheal.interact.sources import open_reader, resolve_run

    with open_reader(settings, source, project) as reader:
        rid = resolve_run(reader, run_id)
        run = reader.get_run(rid)
        if run is None:
            raise RunNotFoundError(f"run {rid} not found")
        trace = reader.get_trace(run.trace_id)
    root = next((r for r in trace if r.parent_run_id is None), run)
    x = structure(settings, root, trace)
    x.question = question
    if use_model:
        if model is None:
            from selfheal.models.providers import make_chat_model

            model = make_chat_model(settings)
        _summarise(model, x, question or DEFAULT_QUESTION)
    return x
