"""Context variants: a set of deltas on the current context, materialized in a scratch copy and vetted.

A variant is never a rewrite: it is the current ``prompts/<agent>/`` and
cheatsheet plus a list of delta operations (context ops and ACE cheatsheet
ops, each with its provenance). :func:`materialize` applies them to a scratch
copy, then vets the result before anyone spends an evaluation on it:

- it must **render** (the template with every live entry) and pass **lint**;
- it must not **collapse** the context: the rendered prompt's tokens and the
  number of instructions + entries + examples may shrink at most
  ``optimize.max_shrink`` (ACE's context collapse is exactly a "concise"
  rewrite that silently drops knowledge); a variant may change or remove at
  most ``optimize.max_rewrite`` of the existing items (more is a rewrite);
- it must not drop an item with **strong helpful evidence** (at least
  ``optimize.strong_helpful`` helpful marks, more than harmful, from the
  entries' counters and this run's reflections).

A variant that fails any of these carries the reasons and is not scored.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfheal.config import Settings
    from selfheal.optimize.context_curator import CuratorProposal


@dataclass
class Variant:
    """The current context plus these deltas (context ops; cheatsheet ops with the runs behind each)."""

    name: str
    context_ops: list[Any] = field(default_factory=list)
    cheatsheet_ops: list[tuple[Any, list[str]]] = field(default_factory=list)
    parent: str | None = None

    @property
    def empty(self) -> bool:
        return not self.context_ops and not self.cheatsheet_ops

    def extend(self, proposal: CuratorProposal, name: str) -> Variant:
        """A child variant: these deltas, then the proposal's (never a replacement of them)."""
        return Variant(name, [*self.context_ops, *proposal.context_ops],
                       [*self.cheatsheet_ops, *proposal.cheatsheet_ops], parent=self.name)

    @property
    def runs(self) -> list[str]:
        ids = [r for op in self.context_ops for r in op.runs] + [r for _, runs in self.cheatsheet_ops for r in runs]
        return list(dict.fromkeys(ids))


@dataclass(frozen=True)
class ContextSize:
    """How much context a version holds: rendered prompt tokens and its items."""

    tokens: int
    instructions: int
    entries: int
    examples: int

    @property
    def items(self) -> int:
        return self.instructions + self.entries + self.examples


@dataclass
class Materialized:
    """A variant written to a scratch copy: its settings, change lines, size, and why it is rejected."""

    variant: Variant
    settings: Settings
    lines: list[str] = field(default_factory=list)
    rejected_ops: list[str] = field(default_factory=list)
    size: ContextSize | None = None
    problems: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed_existing: list[str] = field(default_factory=list)
    added: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # touched id -> instructions | examples | entries

    @property
    def ok(self) -> bool:
        return not self.problems


def tool_pairs(settings: Settings) -> list[tuple[str, str]]:
    """The agent's tools as (name, description) without opening an environment (description: its name)."""
    from selfheal.agents.registry import get_agent

    return [(name, name) for name in get_agent(settings).tool_names()]


def context_size(settings: Settings, tools: Sequence[tuple[str, str]]) -> ContextSize:
    """The size of the context ``settings`` point at (every live entry rendered, as the budget sees it)."""
    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.context.loader import load_context
    from selfheal.context.render import effective_tools, render_system_prompt
    from selfheal.tokens import count_tokens

    ctx = load_context(settings.prompts_dir)
    live = [e for e in load_cheatsheet(settings.cheatsheet_dir) if e.status != "retired"]
    prompt = render_system_prompt(ctx, task="", task_type="general", entries=live, tools=tools)
    tokens = count_tokens(prompt) + sum(count_tokens(str(t)) for t in effective_tools(ctx, tools))
    return ContextSize(tokens, len(ctx.instructions), len(live), len(ctx.examples))


def scratch_copy(settings: Settings, work: Path, *, state: str = "state") -> Settings:
    """Settings reading a copy of the context and cheatsheet under ``work`` (traces and cache stay the user's)."""
    prompts = work / "prompts"
    sheet = work / "cheatsheet" / settings.agent
    shutil.copytree(settings.prompts_dir, prompts / settings.agent)
    if settings.cheatsheet_dir.exists():
        shutil.copytree(settings.cheatsheet_dir, sheet, ignore=shutil.ignore_patterns(".*"))
    else:
        sheet.mkdir(parents=True)
    paths = settings.paths.model_copy(update={
        "prompts": str(prompts), "cheatsheet": str(work / "cheatsheet"), "state": str(work / state),
        "evals": str(settings.path(settings.paths.evals)),
    })
    tracing = settings.tracing.model_copy(update={"store": str(settings.trace_store_path)})
    model = settings.model.model_copy(update={"cache_dir": str(settings.response_cache_dir)})
    return settings.model_copy(update={"paths": paths, "tracing": tracing, "model": model, "learning": False})


def collapse_reasons(
    before: ContextSize,
    after: ContextSize,
    *,
    removed: Sequence[str],
    changed: Sequence[str],
    evidence: Mapping[str, tuple[int, int]],
    max_shrink: float,
    max_rewrite: float,
    strong_helpful: int,
    kinds: Mapping[str, str] | None = None,
) -> list[str]:
    """Why a variant collapses the context (empty: it does not).

    ``evidence``: id -> (helpful, harmful); ``kinds``: id -> instructions | examples | entries.
    """
    kinds = kinds or {}
    reasons: list[str] = []
    if before.tokens and (before.tokens - after.tokens) / before.tokens > max_shrink + 1e-9:
        reasons.append(
            f"collapse: the rendered context shrinks from {before.tokens} to {after.tokens} tokens "
            f"({(before.tokens - after.tokens) / before.tokens:.0%}), more than optimize.max_shrink {max_shrink:.0%}"
        )
    if before.items and (before.items - after.items) / before.items > max_shrink + 1e-9:
        reasons.append(
            f"collapse: instructions+entries+examples fall from {before.items} to {after.items} "
            f"({(before.items - after.items) / before.items:.0%}), more than optimize.max_shrink {max_shrink:.0%}"
        )
    for kind, total in (("instructions", before.instructions), ("examples", before.examples),
                        ("entries", before.entries)):
        n = len({i for i in [*removed, *changed] if kinds.get(i) == kind})
        if total and n > max(1, int(max_rewrite * total)):
            reasons.append(
                f"rewrite: the variant changes or removes {n} of {total} existing {kind}, more than "
                f"optimize.max_rewrite {max_rewrite:.0%} (a variant is a few deltas, not a rewrite)"
            )
    for item in removed:
        helpful, harmful = evidence.get(item, (0, 0))
        if helpful >= strong_helpful and helpful > harmful:
            reasons.append(
                f"drops {item}, which has strong helpful evidence ({helpful} helpful, {harmful} harmful marks)"
            )
    return reasons


def materialize(
    settings: Settings,
    variant: Variant,
    work: Path,
    *,
    tools: Sequence[tuple[str, str]],
    base_size: ContextSize,
    evidence: Mapping[str, tuple[int, int]],
    now: datetime | None = None,
) -> Materialized:
    """Write ``variant`` into a scratch copy under ``work`` and vet it (render, lint, collapse)."""
    from selfheal.cheatsheet.guard import ContentGuard
    from selfheal.cheatsheet.ops import OperationBatch, RemoveOp, UpdateOp, apply_operations
    from selfheal.context.loader import load_context
    from selfheal.context.ops import RemoveExample, RemoveInstruction, UpdateInstruction, UpdateToolDescription
    from selfheal.context.ops import apply_context_ops, write_context
    from selfheal.errors import SelfhealError
    from selfheal.lint import lint_repository

    now = now or datetime.now(UTC)
    scratch = scratch_copy(settings, work)
    out = Materialized(variant, scratch)
    names = [n for n, _ in tools]
    guard = ContentGuard(allowed_tools=set(names) or None)
    if variant.context_ops:
        ctx = load_context(scratch.prompts_dir)
        result = apply_context_ops(ctx, variant.context_ops, guard=guard, known_tools=names or None)
        out.rejected_ops += [f"{op.op}: {why}" for op, why in result.rejected]
        out.lines += result.lines
        out.added = result.added
        for op, _ in result.applied:
            if isinstance(op, RemoveInstruction | RemoveExample):
                out.removed.append(op.id)
                out.kinds[op.id] = "instructions" if isinstance(op, RemoveInstruction) else "examples"
            elif isinstance(op, UpdateInstruction) and op.id not in result.added:
                out.changed_existing.append(op.id)
                out.kinds[op.id] = "instructions"
            elif isinstance(op, UpdateToolDescription):
                out.changed_existing.append(f"tool:{op.tool}")
        if result.changed:
            write_context(scratch.prompts_dir, result.context, added=result.added)
    for op, runs in variant.cheatsheet_ops:
        res = apply_operations(scratch.cheatsheet_dir, OperationBatch(operations=[op]), source_runs=runs, now=now,
                               guard=guard)
        out.lines += [c.line for c in res.changes]
        out.rejected_ops += [f"{o.get('op', '?')} {o.get('id') or o.get('section') or ''}: {r}"
                             for o, r in res.rejected]
        if res.changes and isinstance(op, RemoveOp):
            out.removed.append(op.id)
            out.kinds[op.id] = "entries"
        elif res.changes and isinstance(op, UpdateOp):
            out.changed_existing.append(op.id)
            out.kinds[op.id] = "entries"
    if not out.lines:  # nothing applied: scoring it would only re-score its parent
        out.problems.append(f"changes nothing: all {len(out.rejected_ops)} delta(s) were rejected")
        return out
    try:
        out.size = context_size(scratch, tools)
    except SelfhealError as exc:
        out.problems.append(f"does not render: {exc.message}")
        return out
    errors = [i for i in lint_repository(scratch, known_tools=set(names) or None) if i.severity == "error"]
    out.problems += [f"lint: {i.format(work)}" for i in errors[:5]]
    out.problems += collapse_reasons(
        base_size, out.size, removed=out.removed, changed=out.changed_existing, evidence=evidence,
        max_shrink=settings.optimize.max_shrink, max_rewrite=settings.optimize.max_rewrite,
        strong_helpful=settings.optimize.strong_helpful, kinds=out.kinds,
    )
    return out
