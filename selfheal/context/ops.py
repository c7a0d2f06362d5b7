"""ACE delta operations on the agent's context (``prompts/<agent>/context.yaml``), never a rewrite.

The cheatsheet has ADD / UPDATE / REMOVE / TAG (:mod:`selfheal.cheatsheet.ops`);
the rest of the context -- instructions, few-shot examples, tool descriptions
-- gets the same treatment here: one pydantic discriminated union
(:data:`ContextOp`) a Curator's JSON is parsed into, applied by a pure function
(:func:`apply_context_ops`) to a loaded :class:`AgentContext`, and written
atomically (:func:`write_context`) as a round-trip edit of the reviewed YAML
file, comments kept, ``version`` bumped once per write.

Every op carries its provenance (``runs``: the trace ids it was learned from,
``reason``) and every text it brings is screened by the cheatsheet's
:class:`~selfheal.cheatsheet.guard.ContentGuard` exactly like a learned entry:
an instruction is shown on every run, so it is at least as dangerous as one.
An op naming an id or tool the context does not have is rejected with its
reason, never guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from selfheal.cheatsheet.guard import ContentGuard
from selfheal.cheatsheet.model import ID_PATTERN
from selfheal.context.model import CONTEXT_FILENAME, AgentContext, Example, Instruction

__all__ = [
    "AddExample",
    "AddInstruction",
    "ContextApplyResult",
    "ContextOp",
    "RemoveExample",
    "RemoveInstruction",
    "UpdateInstruction",
    "UpdateToolDescription",
    "apply_context_ops",
    "context_yaml_text",
    "parse_context_ops",
    "write_context",
]

#: Longest example trajectory the guard accepts (an instruction or description keeps the guard's default).
EXAMPLE_MAX_CHARS = 2400


def run_list(runs: Sequence[str], limit: int = 5) -> str:
    """The run ids, in full (uuid7 prefixes collide), at most ``limit`` of them."""
    shown = ", ".join(runs[:limit]) or "no runs"
    return shown + (f" (+{len(runs) - limit} more)" if len(runs) > limit else "")


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = ""
    runs: list[str] = Field(default_factory=list)  # provenance: trace ids this delta was learned from

    def provenance(self) -> str:
        return f"{self.reason or 'no reason given'} (runs: {run_list(self.runs)})"


class AddInstruction(_Op):
    op: Literal["add_instruction"] = "add_instruction"
    text: str = Field(min_length=1)
    id: str | None = None  # code assigns one when missing


class UpdateInstruction(_Op):
    op: Literal["update_instruction"] = "update_instruction"
    id: str
    text: str = Field(min_length=1)


class RemoveInstruction(_Op):
    op: Literal["remove_instruction"] = "remove_instruction"
    id: str


class UpdateToolDescription(_Op):
    op: Literal["update_tool_description"] = "update_tool_description"
    tool: str
    description: str = Field(min_length=1)


class AddExample(_Op):
    op: Literal["add_example"] = "add_example"
    task: str = Field(min_length=1)
    trajectory: str = Field(min_length=1)
    id: str | None = None


class RemoveExample(_Op):
    op: Literal["remove_example"] = "remove_example"
    id: str


ContextOp = Annotated[
    AddInstruction | UpdateInstruction | RemoveInstruction | UpdateToolDescription | AddExample | RemoveExample,
    Field(discriminator="op"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(ContextOp)
OP_NAMES: tuple[str, ...] = (
    "add_instruction", "update_instruction", "remove_instruction", "update_tool_description", "add_example",
    "remove_example",
)


def parse_context_ops(raw: Iterable[Any]) -> tuple[list[Any], list[tuple[Any, str]]]:
    """(valid ops, rejected (item, reason)) from a Curator's ``context_operations`` list, one by one."""
    ops: list[Any] = []
    rejected: list[tuple[Any, str]] = []
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("op"), str):
            item = {**item, "op": item["op"].strip().lower()}
        try:
            ops.append(_ADAPTER.validate_python(item))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in OP_NAMES)
            rejected.append((item, f"invalid context operation: {where + ': ' if where else ''}{err.get('msg')}"))
    return ops, rejected


@dataclass
class ContextApplyResult:
    """The new context, one line per applied op (with provenance), and the rejected ops with reasons."""

    context: AgentContext
    applied: list[tuple[Any, str]] = field(default_factory=list)  # (op, change line)
    rejected: list[tuple[Any, str]] = field(default_factory=list)
    added: dict[str, Any] = field(default_factory=dict)  # new item id -> the op that added it

    @property
    def changed(self) -> bool:
        return bool(self.applied)

    @property
    def lines(self) -> list[str]:
        return [line for _, line in self.applied]


def _slug(text: str, prefix: str, taken: set[str]) -> str:
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2][:5]
    base = f"{prefix}-{'-'.join(words) or 'learned'}"[:60].rstrip("-")
    out, n = base, 2
    while out in taken:
        out, n = f"{base}-{n}", n + 1
    return out


class _Rejected(Exception):
    pass


def _same(a: str, b: str) -> bool:
    """Equal up to whitespace and case: an update to this text changes nothing."""
    return " ".join(a.split()).lower() == " ".join(b.split()).lower()


def _screen(guard: ContentGuard, text: str, what: str, *, max_chars: int | None = None) -> str:
    g = guard if max_chars is None else ContentGuard(max_chars=max_chars, redactor=guard.redactor,
                                                     allowed_tools=guard.allowed_tools)
    verdict = g.check(text)
    if not verdict.ok:
        raise _Rejected(f"{what} rejected by the content guard: {'; '.join(verdict.reasons)}")
    return verdict.text


def apply_context_ops(
    ctx: AgentContext,
    ops: Sequence[Any],
    *,
    guard: ContentGuard | None = None,
    known_tools: Iterable[str] | None = None,
) -> ContextApplyResult:
    """Apply ``ops`` in order to a copy of ``ctx`` (pure: ``ctx`` is not changed, nothing is written).

    An op that cannot apply (unknown id or tool, an id already taken, text the
    guard rejects) is rejected alone with its reason; the others still apply.
    ``known_tools``: the domain's tool names; a description for another tool
    is rejected (it would never be shown).
    """
    guard = guard or ContentGuard(allowed_tools=set(known_tools) if known_tools is not None else None)
    tools_known = set(known_tools) if known_tools is not None else None
    instructions = list(ctx.instructions)
    examples = list(ctx.examples)
    tools = dict(ctx.tools)
    result = ContextApplyResult(context=ctx)
    for op in ops:
        taken = {i.id for i in instructions} | {e.id for e in examples}
        try:
            if isinstance(op, AddInstruction):
                text = _screen(guard, op.text, "instruction")
                if any(_same(i.text, text) for i in instructions):
                    raise _Rejected("the same instruction is already in the context")
                new_id = op.id or _slug(text, "ins", taken)
                if new_id in taken or not re.match(ID_PATTERN, new_id):
                    raise _Rejected(f"id '{new_id}' is taken or not a valid id")
                instructions.append(Instruction(id=new_id, text=text))
                result.added[new_id] = op
                line = f"ADD instruction {new_id}: {op.provenance()}"
            elif isinstance(op, UpdateInstruction):
                idx = next((k for k, i in enumerate(instructions) if i.id == op.id), None)
                if idx is None:
                    raise _Rejected(f"no instruction '{op.id}' in the context")
                text = _screen(guard, op.text, "instruction")
                if _same(instructions[idx].text, text):  # a small Curator often re-emits what it was shown
                    raise _Rejected("changes nothing: the same text as the instruction it updates")
                instructions[idx] = Instruction(id=op.id, text=text)
                line = f"UPDATE instruction {op.id}: {op.provenance()}"
            elif isinstance(op, RemoveInstruction):
                if not any(i.id == op.id for i in instructions):
                    raise _Rejected(f"no instruction '{op.id}' in the context")
                instructions = [i for i in instructions if i.id != op.id]
                line = f"REMOVE instruction {op.id}: {op.provenance()}"
            elif isinstance(op, UpdateToolDescription):
                if tools_known is not None and op.tool not in tools_known:
                    raise _Rejected(f"no tool '{op.tool}' in the agent (known: {', '.join(sorted(tools_known))})")
                described = _screen(guard, op.description, "tool description")
                if op.tool in tools and _same(tools[op.tool], described):
                    raise _Rejected("changes nothing: the same text as the tool's description")
                tools[op.tool] = described
                line = f"UPDATE tool {op.tool}: {op.provenance()}"
            elif isinstance(op, AddExample):
                task = _screen(guard, op.task, "example task")
                trajectory = _screen(guard, op.trajectory, "example trajectory", max_chars=EXAMPLE_MAX_CHARS)
                new_id = op.id or _slug(task, "ex", taken)
                if new_id in taken or not re.match(ID_PATTERN, new_id):
                    raise _Rejected(f"id '{new_id}' is taken or not a valid id")
                examples.append(Example(id=new_id, task=task, trajectory=trajectory + "\n"))
                result.added[new_id] = op
                line = f"ADD example {new_id}: {op.provenance()}"
            elif isinstance(op, RemoveExample):
                if not any(e.id == op.id for e in examples):
                    raise _Rejected(f"no example '{op.id}' in the context")
                examples = [e for e in examples if e.id != op.id]
                line = f"REMOVE example {op.id}: {op.provenance()}"
            else:  # pragma: no cover - the union is closed
                raise _Rejected(f"unknown operation {type(op).__name__}")
        except _Rejected as exc:
            result.rejected.append((op, str(exc)))
            continue
        result.applied.append((op, line))
    result.context = ctx.model_copy(update={"instructions": instructions, "examples": examples, "tools": tools})
    return result


def _provenance_comment(op: Any) -> str:
    runs = run_list(list(getattr(op, "runs", [])))
    reason = " ".join((getattr(op, "reason", "") or "").split())[:120]
    return f"learned from runs {runs}" + (f": {reason}" if reason else "")


def context_yaml_text(
    source_text: str, new: AgentContext, *, added: Mapping[str, Any] | None = None, bump: bool = True
) -> str:
    """``context.yaml``'s text edited to hold ``new`` (round-trip: comments and order kept).

    Items that stay keep their place and comments; new items are appended with
    a comment naming the runs they were learned from; ``version`` goes up by one.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import LiteralScalarString

    from selfheal.yamlio import dump_yaml, parse_yaml

    data = parse_yaml(source_text)
    added_by = dict(added or {})

    def sync(key: str, items: Sequence[Any], build: Any) -> None:
        old = data.get(key)
        old_list = list(old) if isinstance(old, list) else []
        index = {str(node.get("id")): j for j, node in enumerate(old_list) if hasattr(node, "get")}
        seq = CommentedSeq()
        if items and isinstance(old, CommentedSeq) and old.ca.comment:
            seq.ca.comment = old.ca.comment  # the comment above the list's first item
        for item in items:
            j = index.get(item.id)
            node = old_list[j] if j is not None else CommentedMap()
            build(node, item)
            seq.append(node)
            k = len(seq) - 1
            if j is not None and isinstance(old, CommentedSeq) and j in old.ca.items:
                seq.ca.items[k] = old.ca.items[j]
            op = added_by.get(item.id) if j is None else None
            if op is not None:
                seq.yaml_set_comment_before_after_key(k, before=_provenance_comment(op), indent=2)
        if not items and key in data.ca.items:
            data.ca.items.pop(key)  # a comment after the key would break an empty list's flow style
        data[key] = seq

    def instr(node: Any, i: Instruction) -> None:
        node["id"] = i.id
        if str(node.get("text", "")) != i.text:
            node["text"] = i.text

    def example(node: Any, e: Example) -> None:
        dumped = e.model_dump(exclude_none=True)
        for k, v in dumped.items():
            if k == "trajectory" and str(node.get(k, "")) != v:
                node[k] = LiteralScalarString(v if v.endswith("\n") else v + "\n")
            elif k != "trajectory" and node.get(k) != v:
                node[k] = v

    sync("instructions", new.instructions, instr)
    sync("examples", new.examples, example)
    if new.tools or "tools" in data:
        tools = data.get("tools")
        if not isinstance(tools, CommentedMap):
            tools = CommentedMap()
        for name, desc in new.tools.items():
            if tools.get(name) != desc:
                tools[name] = desc
        for name in [n for n in tools if n not in new.tools]:
            del tools[name]
        data["tools"] = tools
    if bump:
        data["version"] = int(data.get("version", 0)) + 1
    return dump_yaml(data)


def write_context(prompts_dir: Path, new: AgentContext, *, added: Mapping[str, Any] | None = None) -> Path:
    """Write ``new`` over ``prompts_dir/context.yaml`` atomically (validated first), version bumped."""
    from selfheal.context.loader import load_context
    from selfheal.yamlio import atomic_write_text

    path = Path(prompts_dir) / CONTEXT_FILENAME
    text = context_yaml_text(path.read_text(encoding="utf-8"), new, added=added)
    from selfheal.context.model import ContextFile
    from selfheal.yamlio import parse_yaml, validate

    validate(ContextFile, parse_yaml(text, path), path)  # never write a file the loader would refuse
    atomic_write_text(path, text)
    load_context(Path(prompts_dir))  # refresh the cache (and prove it loads)
    return path
