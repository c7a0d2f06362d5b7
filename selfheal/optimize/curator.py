"""ACE's Curator: turn a reflection into delta operations on the cheatsheet, never a rewrite.

The Curator sees the reflection, the run in brief, and the entries relevant to
it (those the agent was shown or used, with their ids and fields). It may only
emit ADD / UPDATE / REMOVE / TAG operations (the schema of
:mod:`selfheal.cheatsheet.ops`); code assigns ids to new entries and applies
the operations deterministically. An UPDATE, REMOVE or TAG of an id the
Curator was not shown is rejected: a model that invents ids must not be able
to edit lessons it never read (that is how context collapse starts).

A reply that is not a JSON object with an ``operations`` list is rejected
whole (:class:`~selfheal.cheatsheet.ops.CurationRejected`, nothing applied);
individual malformed operations are rejected one by one with their reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import HumanMessage, SystemMessage

from selfheal.cheatsheet.model import SECTION_MODELS, SECTIONS, EntryBase
from selfheal.optimize.jsonout import JsonOutputError, first_json_object, invoke_json

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.cheatsheet.model import Cheatsheet
    from selfheal.optimize.digest import RunDigest
    from selfheal.optimize.reflector import Reflection

log = logging.getLogger(__name__)

_BASE_FIELDS = set(EntryBase.model_fields)
#: Each section's own text fields (what ADD/UPDATE ``fields`` may hold).
SECTION_FIELDS: dict[str, tuple[str, ...]] = {
    name: tuple(f for f in model.model_fields if f not in _BASE_FIELDS and f != "section")
    for name, model in SECTION_MODELS.items()
}
_REFERENCING = ("UPDATE", "REMOVE", "TAG")


def _rejected_error() -> type[Exception]:
    from selfheal.cheatsheet.ops import CurationRejected

    return CurationRejected


def reject(reason: str) -> Exception:
    """A CurationRejected (the ops module's error) carrying ``reason``."""
    return _rejected_error()(reason)


def rejection_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc)


CURATOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Delta operations on the cheatsheet",
    "properties": {
        "operations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "op": {"type": "string", "enum": ["ADD", "UPDATE", "REMOVE", "TAG"]},
                    "id": {"type": "string"},
                    "section": {"type": "string", "enum": list(SECTIONS)},
                    "task_type": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "tag": {"type": "string", "enum": ["helpful", "harmful", "neutral"]},
                    "reason": {"type": "string"},
                },
                "required": ["op", "reason"],
            },
        }
    },
    "required": ["operations"],
}

def curator_schema(entries: Sequence[EntryBase]) -> dict[str, Any]:
    """CURATOR_SCHEMA narrowed to this call: one shape per operation, per section for ADD.

    A constrained decoder (llama.cpp turns the schema into a grammar) then cannot
    invent a field a section lacks or reference an id it was not shown, so a small
    local model's reply is valid by construction instead of rejected afterwards.
    """
    reason = {"type": "string"}
    variants: list[dict[str, Any]] = []
    for section, fields in SECTION_FIELDS.items():
        variants.append({
            "type": "object",
            "properties": {
                "op": {"const": "ADD"},
                "section": {"const": section},
                "task_type": {"type": "string"},
                "fields": {
                    "type": "object",
                    "properties": {f: {"type": "string"} for f in fields},
                    "required": list(fields),
                    "additionalProperties": False,
                },
                "reason": reason,
            },
            "required": ["op", "section", "task_type", "fields", "reason"],
            "additionalProperties": False,
        })
    for entry in entries:
        fields = SECTION_FIELDS[entry.section]
        variants.append({
            "type": "object",
            "properties": {
                "op": {"const": "UPDATE"},
                "id": {"const": entry.id},
                "fields": {
                    "type": "object",
                    "properties": {f: {"type": "string"} for f in fields},
                    "additionalProperties": False,
                },
                "reason": reason,
            },
            "required": ["op", "id", "fields", "reason"],
            "additionalProperties": False,
        })
    if entries:
        ids = [e.id for e in entries]
        variants.append({
            "type": "object",
            "properties": {"op": {"const": "REMOVE"}, "id": {"enum": ids}, "reason": reason},
            "required": ["op", "id", "reason"],
            "additionalProperties": False,
        })
        variants.append({
            "type": "object",
            "properties": {
                "op": {"const": "TAG"},
                "id": {"enum": ids},
                "tag": {"enum": ["helpful", "harmful", "neutral"]},
                "reason": reason,
            },
            "required": ["op", "id", "tag", "reason"],
            "additionalProperties": False,
        })
    return {
        "type": "object",
        "description": CURATOR_SCHEMA["description"],
        "properties": {"operations": {"type": "array", "items": {"anyOf": variants}}},
        "required": ["operations"],
        "additionalProperties": False,
    }


_EXAMPLE = {
    "operations": [
        {
            "op": "ADD",
            "section": "failure_patterns",
            "task_type": "lambda_timeout",
            "fields": {
                "pattern": "Raising memory for a timeout whose logs show low Max Memory Used",
                "lesson": "Raise the timeout to about twice the slowest observed duration; leave memory alone.",
            },
            "reason": "the run raised memory and the timeout check still failed",
        },
        {
            "op": "UPDATE",
            "id": "heur-timeout-low-memory",
            "fields": {"rule": "Raise the timeout to about twice the p99 duration; never raise memory first."},
            "reason": "the rule was followed only half-way; say the order explicitly",
        },
        {"op": "TAG", "id": "heur-vpc-before-memory", "tag": "neutral", "reason": "not a VPC function"},
    ]
}

SYSTEM_PROMPT = """\
You are the Curator of an AWS Lambda operations agent's cheatsheet. From a reflection on one run
you emit ONLY delta operations on the cheatsheet as one JSON object, never a rewrite:
- ADD a new entry: "section", "task_type", "fields" (the section's fields below), "reason". No "id":
  code assigns it.
- UPDATE a listed entry: "id", "fields" holding only the fields that change, "reason".
- REMOVE (retire) a listed entry that proved wrong: "id", "reason".
- TAG a listed entry: "id", "tag" (helpful | harmful | neutral), "reason".
Only ids listed under "Relevant entries" may be updated, removed or tagged.
Prefer UPDATE of a listed entry over ADD of a near-duplicate. Each text is one short, general
sentence (no run ids, no secrets, no URLs). Emit {"operations": []} when nothing new was learned.

Sections and their fields:
{sections}

Example reply:
{example}"""


def _sections_text() -> str:
    return "\n".join(f"- {name}: {', '.join(fields)}" for name, fields in SECTION_FIELDS.items())


def _entry_view(entry: EntryBase) -> dict[str, Any]:
    view: dict[str, Any] = {"id": entry.id, "section": entry.section, "task_type": entry.task_type,
                            "status": entry.status}
    for f in SECTION_FIELDS[entry.section]:
        view[f] = getattr(entry, f)
    return view


def relevant_entries(digest: RunDigest, cheatsheet: Cheatsheet, extra_ids: Iterable[str] = ()) -> list[EntryBase]:
    """The entries the Curator is shown: those the run retrieved or used (and ``extra_ids``)."""
    out: list[EntryBase] = []
    for entry_id in dict.fromkeys([*digest.entry_ids, *extra_ids]):
        entry = cheatsheet.get(entry_id)
        if entry is not None:
            out.append(entry)
    return out


def _messages(reflection: Reflection, digest: RunDigest, entries: Sequence[EntryBase]) -> list[Any]:
    system = SYSTEM_PROMPT.replace("{sections}", _sections_text()).replace(
        "{example}", json.dumps(_EXAMPLE, indent=1)
    )
    outcome = "success" if digest.success else f"failure ({digest.error_type or 'unknown'})"
    shown = "\n".join(json.dumps(_entry_view(e), ensure_ascii=False) for e in entries) or "(none)"
    human = (
        f"Run: task type {digest.task_type}, outcome {outcome}.\nTask: {digest.task}\n\n"
        f"Reflection:\n{reflection.render()}\n\nRelevant entries:\n{shown}\n\n"
        "Reply with the JSON object of operations."
    )
    return [SystemMessage(content=system), HumanMessage(content=human)]


@dataclass
class CuratorOutput:
    """The accepted operations and the ones rejected before applying (with their reasons)."""

    batch: Any  # selfheal.cheatsheet.ops.OperationBatch
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    raw: str = ""


def screen_operations(
    raw_ops: Any, shown_ids: set[str], *, task_type: str | Sequence[str] | None = None
) -> tuple[Any, list[tuple[dict[str, Any], str]]]:
    """(OperationBatch, rejected (op, reason)) from the Curator's ``operations`` list.

    Ops on ids the Curator was not shown are rejected one by one (they cannot
    apply); the rest must form a valid batch, else the whole reply is rejected
    (:class:`CurationRejected`: a reply that breaks the schema is not trusted
    in part). An ADD's proposed ``id`` is dropped (code assigns ids) and its
    ``task_type`` must be one of the runs' (``task_type``: the run's, or the
    batch's runs' types) or ``general``; anything else becomes the runs' type
    (``general`` when they had several): retrieval shows an entry only to runs
    of its own task type (or to all, for ``general``), and a small Curator
    invents types (``database_error`` for a lesson from a ``revenue`` run),
    which filed the lesson where no run would ever see it.
    """
    from selfheal.cheatsheet.ops import parse_operations

    if not isinstance(raw_ops, list):
        raise reject(f"'operations' must be a list, got {type(raw_ops).__name__}")
    allowed = [task_type] if isinstance(task_type, str) else list(task_type or [])
    fallback = allowed[0] if len(allowed) == 1 else "general"
    kept: list[Any] = []
    rejected: list[tuple[dict[str, Any], str]] = []
    for item in raw_ops:
        if not isinstance(item, dict):
            kept.append(item)  # parse_operations names the problem
            continue
        op = dict(item)
        kind = str(op.get("op", "")).strip().upper()
        if kind:
            op["op"] = kind
        if kind in _REFERENCING and str(op.get("id", "")) not in shown_ids:
            reason = f"{kind} of unknown id '{op.get('id', '')}': the curator may only change entries it was shown"
            log.warning("curator: rejected %s", reason)
            rejected.append((op, reason))
            continue
        if kind == "ADD":
            if "id" in op:
                log.info("curator: dropped the id %r proposed for a new entry (ids are assigned by code)", op["id"])
                op.pop("id")
            proposed = str(op.get("task_type") or "").strip()
            if allowed and proposed not in (*allowed, "general"):
                if proposed:
                    log.info("curator: filed a new entry under %r, not %r (no run of that type)", fallback, proposed)
                op["task_type"] = fallback
        kept.append(op)
    return parse_operations({"operations": kept}), rejected


def curate_with_report(
    model: BaseChatModel,
    reflection: Reflection,
    digest: RunDigest,
    cheatsheet: Cheatsheet,
    *,
    config: Any = None,
    extra_ids: Iterable[str] = (),
) -> CuratorOutput:
    """Ask the Curator for delta operations; raises CurationRejected (malformed reply) or ModelError."""
    entries = relevant_entries(digest, cheatsheet, extra_ids)
    try:
        obj, raw = invoke_json(model, _messages(reflection, digest, entries), curator_schema(entries),
                               name="cheatsheet_operations", config=config)
    except JsonOutputError as exc:
        log.warning("curation rejected for run %s: %s", digest.run_id or "-", exc)
        raise reject(str(exc)) from None
    if "operations" not in obj:
        log.warning("curation rejected for run %s: no 'operations' key", digest.run_id or "-")
        raise reject("the reply has no 'operations' list")
    batch, rejected = screen_operations(obj["operations"], {e.id for e in entries}, task_type=digest.task_type)
    return CuratorOutput(batch=batch, rejected=rejected, raw=raw)


def parse_curator_reply(text: str, shown_ids: set[str], *, task_type: str | None = None) -> CuratorOutput:
    """A Curator's raw reply text -> accepted operations, as :func:`curate_with_report` reads a reply.

    Any text either parses or raises :class:`CurationRejected` (the fuzz tests
    hold it to that): prose around the JSON, fences, wrong shapes, unknown ids.
    """
    obj = first_json_object(text)
    if obj is None:
        raise reject("no JSON object in the reply" if text.strip() else "empty reply")
    if "operations" not in obj:
        raise reject("the reply has no 'operations' list")
    batch, rejected = screen_operations(obj["operations"], shown_ids, task_type=task_type)
    return CuratorOutput(batch=batch, rejected=rejected, raw=text)


def curate(
    model: BaseChatModel, reflection: Reflection, digest: RunDigest, cheatsheet: Cheatsheet, *, config: Any = None
) -> Any:
    """The OperationBatch the Curator proposes for this run (rejected ops are logged and left out)."""
    return curate_with_report(model, reflection, digest, cheatsheet, config=config).batch
