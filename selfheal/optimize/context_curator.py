"""ACE's Curator for the whole context: delta operations on context.yaml and on the cheatsheet.

From a batch reflection the Curator proposes a small set of deltas: context
operations (:data:`selfheal.context.ops.ContextOp`: add/update/remove an
instruction, update a tool's description, add/remove a few-shot example) and
cheatsheet operations (ACE's ADD/UPDATE/REMOVE/TAG, screened by
:func:`selfheal.optimize.curator.screen_operations`). It sees the context in
full (it is small and every id in it is fair game) and the entries the batch's
runs were shown. Every op without its own ``runs`` gets the batch's run ids:
a delta never loses where it came from.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage, SystemMessage

from selfheal.context.ops import OP_NAMES, parse_context_ops
from selfheal.optimize.curator import CURATOR_SCHEMA, SECTION_FIELDS, reject
from selfheal.optimize.jsonout import JsonOutputError, invoke_json

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.cheatsheet.model import EntryBase
    from selfheal.context.model import AgentContext
    from selfheal.optimize.batch_reflect import BatchReflection, ReflectionBatch

log = logging.getLogger(__name__)

CONTEXT_CURATOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Delta operations on the agent's context and cheatsheet",
    "properties": {
        "context_operations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "op": {"type": "string", "enum": list(OP_NAMES)},
                    "id": {"type": "string"},
                    "text": {"type": "string"},
                    "tool": {"type": "string"},
                    "description": {"type": "string"},
                    "task": {"type": "string"},
                    "trajectory": {"type": "string"},
                    "reason": {"type": "string"},
                    "runs": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["op", "reason"],
            },
        },
        "cheatsheet_operations": CURATOR_SCHEMA["properties"]["operations"],
    },
    "required": ["context_operations", "cheatsheet_operations"],
}

SYSTEM_PROMPT = """\
You are the Curator of an agent's context. From the Reflector's insights you emit ONLY small delta
operations, never a rewrite, as one JSON object:
{"context_operations": [...], "cheatsheet_operations": [...]}

context_operations (on the agent's instructions, few-shot examples and tool descriptions):
- {"op": "add_instruction", "text": "...", "reason": "..."}
- {"op": "update_instruction", "id": "<listed id>", "text": "...", "reason": "..."}
- {"op": "remove_instruction", "id": "<listed id>", "reason": "..."}   (only when it proved wrong)
- {"op": "update_tool_description", "tool": "<listed tool>", "description": "...", "reason": "..."}
- {"op": "add_example", "task": "...", "trajectory": "Looked at: ...\\nChanged: ...", "reason": "..."}
- {"op": "remove_example", "id": "<listed id>", "reason": "..."}
cheatsheet_operations (ACE): ADD {"section", "task_type", "fields", "reason"}; UPDATE {"id", "fields",
"reason"}; REMOVE {"id", "reason"}; TAG {"id", "tag", "reason"} -- only ids listed below.
Sections and their fields:
{sections}
Every operation may carry "runs": the run ids it comes from. Prefer few, concrete operations;
keep what works; never remove knowledge that helped."""


@dataclass
class CuratorProposal:
    """The deltas one batch yields (each with provenance) and the ops rejected before applying."""

    context_ops: list[Any] = field(default_factory=list)
    cheatsheet_ops: list[tuple[Any, list[str]]] = field(default_factory=list)  # (op, runs)
    rejected: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.context_ops and not self.cheatsheet_ops


def _context_view(ctx: AgentContext, tools: Sequence[str]) -> str:
    lines = ["Instructions:"]
    lines += [f"  [{i.id}] {' '.join(i.text.split())}" for i in ctx.instructions] or ["  (none)"]
    lines.append("Examples:")
    lines += [f"  [{e.id}] task: {' '.join(e.task.split())}" for e in ctx.examples] or ["  (none)"]
    lines.append("Tools (current description):")
    lines += [f"  {t}: {ctx.tools.get(t, '(code docstring)')}" for t in tools]
    return "\n".join(lines)


def curator_prompt(reflection: BatchReflection, batch: ReflectionBatch, ctx: AgentContext,
                   entries: Sequence[EntryBase], tools: Sequence[str]) -> list[Any]:
    from selfheal.optimize.curator import _entry_view

    system = SYSTEM_PROMPT.replace(
        "{sections}", "\n".join(f"- {n}: {', '.join(f)}" for n, f in SECTION_FIELDS.items())
    )
    shown = "\n".join(json.dumps(_entry_view(e), ensure_ascii=False) for e in entries) or "(none)"
    human = (
        f"Insights:\n{reflection.render()}\n\nRuns of this batch: {', '.join(batch.run_ids)}\n\n"
        f"The agent's context:\n{_context_view(ctx, tools)}\n\nCheatsheet entries the runs were shown:\n{shown}\n\n"
        "Reply with the JSON object of operations."
    )
    return [SystemMessage(content=system), HumanMessage(content=human)]


def propose_deltas(
    model: BaseChatModel,
    reflection: BatchReflection,
    batch: ReflectionBatch,
    ctx: AgentContext,
    entries: Sequence[EntryBase],
    tools: Sequence[str],
    *,
    config: Any = None,
) -> CuratorProposal:
    """The Curator's deltas for one batch; raises CurationRejected (unusable reply) or ModelError."""
    from selfheal.optimize.curator import screen_operations

    try:
        obj, _raw = invoke_json(model, curator_prompt(reflection, batch, ctx, entries, tools),
                                CONTEXT_CURATOR_SCHEMA, name="context_operations", config=config)
    except JsonOutputError as exc:
        raise reject(str(exc)) from None
    raw_ctx = obj.get("context_operations") or []
    raw_sheet = obj.get("cheatsheet_operations") or []
    if not isinstance(raw_ctx, list) or not isinstance(raw_sheet, list):
        raise reject("'context_operations' and 'cheatsheet_operations' must be lists")
    known = set(batch.run_ids)
    default_runs = batch.run_ids
    proposal = CuratorProposal()
    ops, bad = parse_context_ops(raw_ctx)
    for op in ops:
        runs = [r for r in op.runs if r in known] or default_runs
        proposal.context_ops.append(op.model_copy(update={"runs": runs}))
    proposal.rejected += [f"{item.get('op', '?') if isinstance(item, dict) else '?'}: {why}" for item, why in bad]
    sheet_runs = [[r for r in (item.get("runs") or []) if r in known] if isinstance(item, dict) else []
                  for item in raw_sheet]
    cleaned = [{k: v for k, v in item.items() if k != "runs"} if isinstance(item, dict) else item for item in raw_sheet]
    try:
        batch_ops, rejected = screen_operations(cleaned, {e.id for e in entries}, task_type=batch.task_types)
    except Exception as exc:
        proposal.rejected.append(f"cheatsheet operations: {getattr(exc, 'reason', exc)}")
        return proposal
    proposal.rejected += [f"{op.get('op', '?')} {op.get('id') or op.get('section') or ''}: {r}" for op, r in rejected]
    # screen_operations keeps order among accepted ops; map each back to its runs by position among survivors.
    shown = {e.id for e in entries}
    def screened_out(item: Any) -> bool:  # what screen_operations drops: a reference to an id not shown
        kind = str(item.get("op", "")).strip().upper() if isinstance(item, dict) else ""
        return kind in ("UPDATE", "REMOVE", "TAG") and str(item.get("id", "")) not in shown

    survivors = [i for i, item in enumerate(cleaned) if not screened_out(item)]
    for k, op in enumerate(batch_ops.operations):
        idx = survivors[k] if k < len(survivors) else None
        runs = sheet_runs[idx] if idx is not None and idx < len(sheet_runs) else []
        proposal.cheatsheet_ops.append((op, runs or default_runs))
    return proposal


def lessons_as_entries(reflection: BatchReflection, batch: ReflectionBatch) -> CuratorProposal:
    """The Reflector's lessons as candidate ``failure_patterns`` entries, one ADD per insight.

    A small Curator often answers with operations that change nothing (it
    re-emits the instructions it was shown); the Reflector's lesson, which may
    hold exactly the fragment that was missing (``c.email NOT LIKE
    '%@brightcart.io'``), would then be lost. As ADDs they go through the same
    guard, lint and dev selection as any delta, with the batch's runs as
    provenance, so a lesson that does not help is never kept.
    """
    from selfheal.optimize.curator import screen_operations

    known = set(batch.run_ids)
    raw: list[dict[str, Any]] = []
    runs: list[list[str]] = []
    for ins in reflection.insights:
        lesson = " ".join(ins.lesson.split())
        if not lesson:
            continue
        pattern = " ".join((ins.diagnosis or lesson).split())[:300]
        raw.append({"op": "ADD", "section": "failure_patterns", "task_type": ins.task_type or "general",
                    "fields": {"pattern": pattern, "lesson": lesson},
                    "reason": "the Reflector's lesson (the Curator's operations changed nothing)"})
        runs.append([r for r in ins.runs if r in known] or batch.run_ids)
    proposal = CuratorProposal()
    if not raw:
        return proposal
    try:
        ops, rejected = screen_operations(raw, set(), task_type=batch.task_types)
    except Exception as exc:
        proposal.rejected.append(f"lessons as entries: {getattr(exc, 'reason', exc)}")
        return proposal
    proposal.rejected += [f"ADD failure_patterns: {r}" for _, r in rejected]
    proposal.cheatsheet_ops = list(zip(ops.operations, runs, strict=False))
    return proposal

