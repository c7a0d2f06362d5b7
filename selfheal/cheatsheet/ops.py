"""ACE delta operations on the cheatsheet, applied by code, deterministically and atomically.

The curator model emits a batch of ADD / UPDATE / REMOVE / TAG operations,
never a rewritten cheatsheet (ACE's guard against context collapse). This
module turns that batch into file changes; the model never picks ids, paths
or statuses.

What "malformed -> rejected, never half-applied" means here:

* A **malformed batch** -- not JSON, not the schema (unknown op or section,
  missing or extra keys, an ADD without its section's fields) -- is rejected
  whole by :func:`parse_operations` (:class:`CurationRejected`). Output that
  breaks the contract says the model lost the thread; none of it is trusted.
* In a well-formed batch, an **op that cannot apply** (unknown or retired id,
  guard rejection, duplicate of an existing entry, a field its section does
  not have) is rejected alone, with its reason logged on
  ``selfheal.curation`` and returned in :attr:`ApplyResult.rejected`; the
  other ops apply. ACE deltas are independent by design (each is one lesson),
  and a small local curator often gets one of five ops wrong -- dropping the
  four good lessons with it would starve the cheatsheet.
* **Writing** is all-or-nothing: every op is validated and every new entry
  built before the first file is touched, then all files are written; if one
  write fails, the files already written get their previous bytes back
  (:func:`selfheal.cheatsheet.changes.write_entries`).

Same batch, same cheatsheet, same ``now`` -> byte-identical files. TAG ops
touch no file: they are counter updates, returned for the caller's counter
store (ACE's helpful/harmful counts live outside the reviewed files).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from selfheal.cheatsheet.changes import AppliedChange, write_entries
from selfheal.cheatsheet.guard import ContentGuard
from selfheal.cheatsheet.model import (
    SECTION_MODELS,
    Cheatsheet,
    CheatsheetEntry,
    Section,
    Source,
    Status,
    make_entry_id,
)
from selfheal.cheatsheet.store import entry_path, load_cheatsheet
from selfheal.errors import SelfhealError

__all__ = [
    "AddOp",
    "AppliedChange",
    "ApplyResult",
    "CurationRejected",
    "Operation",
    "OperationBatch",
    "RemoveOp",
    "TagOp",
    "UpdateOp",
    "apply_operations",
    "editable_fields",
    "parse_operations",
]

log = logging.getLogger("selfheal.curation")

#: Optional per-section fields an op may set besides the content fields.
_OPTIONAL_FIELDS: dict[str, tuple[str, ...]] = {"code_snippets": ("language",)}
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,99}$")
_TASK_TYPE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
_REASON_MAX = 200
_SLUG_WORDS = 5
_STOP = frozenset(
    "a an the and or of in on at to for from with by is are be it its this that when if then than not no do "
    "does should must any all".split()
)


class CurationRejected(SelfhealError):
    """The curator's output is not a valid operation batch; nothing of it was applied."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"curation rejected: {reason}")
        self.reason = reason


def editable_fields(section: str) -> tuple[str, ...]:
    """The fields an ADD/UPDATE may set for a section (content fields, then optional ones)."""
    model = SECTION_MODELS[section]
    content = tuple(k for k in model.model_fields if k not in _BASE_FIELDS and k not in _OPTIONAL_FIELDS.get(section, ()))
    return content + _OPTIONAL_FIELDS.get(section, ())


_BASE_FIELDS = frozenset({"id", "section", "task_type", "status", "tags", "source"})


def _required_fields(section: str) -> tuple[str, ...]:
    model = SECTION_MODELS[section]
    return tuple(k for k in editable_fields(section) if model.model_fields[k].is_required())


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddOp(_Op):
    """A new lesson; code gives it an id, ``status: candidate`` and curator provenance."""

    op: Literal["ADD"]
    section: Section
    task_type: str = "general"
    fields: dict[str, str]
    tags: list[str] = Field(default_factory=list)
    reason: str

    @model_validator(mode="after")
    def _section_fields(self) -> AddOp:
        allowed = editable_fields(self.section)
        unknown = sorted(set(self.fields) - set(allowed))
        if unknown:
            raise ValueError(f"{self.section} has no field(s) {', '.join(unknown)} (fields: {', '.join(allowed)})")
        missing = [k for k in _required_fields(self.section) if not self.fields.get(k, "").strip()]
        if missing:
            raise ValueError(f"{self.section} entry needs field(s) {', '.join(missing)}")
        return self


class UpdateOp(_Op):
    """New text for some of an existing entry's content fields."""

    op: Literal["UPDATE"]
    id: str
    fields: dict[str, str] = Field(min_length=1)
    reason: str


class RemoveOp(_Op):
    """Retire an entry (``status: retired``); the file stays, so history and blame keep it."""

    op: Literal["REMOVE"]
    id: str
    reason: str


class TagOp(_Op):
    """ACE's helpful/harmful/neutral mark on an entry a run used: a counter update."""

    op: Literal["TAG"]
    id: str
    tag: Literal["helpful", "harmful", "neutral"]
    reason: str = ""


Operation = Annotated[AddOp | UpdateOp | RemoveOp | TagOp, Field(discriminator="op")]


class OperationBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operations: list[Operation] = Field(default_factory=list)


_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)


def parse_operations(raw: str | dict[str, Any] | list[Any]) -> OperationBatch:
    """Validate a curator's output: JSON text (optionally in a code fence), a dict or a list of ops.

    Raises :class:`CurationRejected` naming the first problem (with the op's
    index) if any part of the batch breaks the schema.
    """
    data: Any = raw
    if isinstance(raw, str):
        text = raw.strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group("body")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise CurationRejected(f"not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if isinstance(data, list):
        data = {"operations": data}
    if not isinstance(data, dict):
        raise CurationRejected(f"expected an object with 'operations' or a list, got {type(data).__name__}")
    try:
        return OperationBatch.model_validate(data)
    except ValidationError as e:
        raise CurationRejected(_describe(e)) from None


def _describe(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = list(err.get("loc", ()))
    where = ""
    if len(loc) >= 2 and loc[0] == "operations" and isinstance(loc[1], int):
        where = f"operation {loc[1]}"
        loc = loc[2:]
        if loc and loc[0] in ("ADD", "UPDATE", "REMOVE", "TAG"):
            loc = loc[1:]
    kind = err.get("type", "")
    key = ".".join(str(p) for p in loc)
    if kind == "extra_forbidden":
        msg = f"unknown key '{key}'"
    elif kind == "missing":
        msg = f"missing key '{key}'"
    elif kind == "union_tag_invalid":
        msg = f"unknown op {err.get('input', {}).get('op')!r} (ADD, UPDATE, REMOVE, TAG)" if isinstance(err.get("input"), dict) else err["msg"]
    elif kind == "union_tag_not_found":
        msg = "missing key 'op'"
    else:
        msg = f"{key + ': ' if key else ''}{err.get('msg', 'invalid')}"
        msg = msg.replace("Value error, ", "")
    return f"{where}: {msg}" if where else msg


@dataclass
class ApplyResult:
    changes: list[AppliedChange] = field(default_factory=list)
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    tags: list[TagOp] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


class _OpRejected(Exception):
    pass


def apply_operations(
    cheatsheet_dir: Path,
    batch: OperationBatch,
    *,
    source_runs: list[str],
    now: datetime | None = None,
    guard: ContentGuard | None = None,
    existing: Cheatsheet | None = None,
    dry_run: bool = False,
    lock: Path | None = None,
    source_kind: str = "curator",
    author: str | None = None,
    initial_status: Status = "candidate",
) -> ApplyResult:
    """Validate every op, then write all resulting entries at once (or none if a write fails).

    ``source_kind``/``author``/``initial_status`` are what ADD gives a new entry:
    learned content is a ``curator`` candidate; ``selfheal teach`` passes
    ``user``, the person's git identity and ``active`` (a person wrote it and
    reviews it in the PR), through exactly the same checks.

    ``existing`` is the snapshot ops are checked against (loaded from
    ``cheatsheet_dir`` when None). ``dry_run`` validates and reports without
    writing (``AppliedChange.path`` is where the file would go).

    ``lock`` (a lock file, :func:`selfheal.cheatsheet.lock.lock_path`) makes the
    apply safe beside other processes writing the same cheatsheet: under the
    exclusive lock the cheatsheet is re-read from disk (``existing`` is
    ignored) so new ids are allocated against the files there now, never
    against a snapshot another process has since outdated.
    """
    origin = _Origin(source_kind, author, initial_status)
    if lock is None or dry_run:
        return _apply(Path(cheatsheet_dir), batch, source_runs=source_runs, now=now, guard=guard,
                      existing=existing, dry_run=dry_run, origin=origin)
    from selfheal.cheatsheet.lock import cheatsheet_lock

    with cheatsheet_lock(lock):
        return _apply(Path(cheatsheet_dir), batch, source_runs=source_runs, now=now, guard=guard,
                      existing=None, dry_run=False, origin=origin)


@dataclass(frozen=True)
class _Origin:
    """Provenance and first status of the entries a batch ADDs."""

    kind: str = "curator"
    author: str | None = None
    status: Status = "candidate"


def _apply(
    root: Path,
    batch: OperationBatch,
    *,
    source_runs: list[str],
    now: datetime | None,
    guard: ContentGuard | None,
    existing: Cheatsheet | None,
    dry_run: bool,
    origin: _Origin | None = None,
) -> ApplyResult:
    origin = origin or _Origin()
    sheet = existing if existing is not None else load_cheatsheet(root)
    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    guard = guard or ContentGuard()
    runs = list(dict.fromkeys(source_runs))
    state = _BatchState(sheet)
    result = ApplyResult()
    for op in batch.operations:
        try:
            if isinstance(op, TagOp):
                state.require(op.id, allow_retired=True)
                result.tags.append(op)
                continue
            change = _apply_one(op, state, guard=guard, runs=runs, when=when, origin=origin)
        except _OpRejected as e:
            reason = str(e)
            log.warning("rejected %s %s: %s", op.op, getattr(op, "id", getattr(op, "section", "")), reason)
            result.rejected.append((op.model_dump(mode="json"), reason))
            continue
        result.changes.append(change)

    entries = [state.current[i] for i in state.order]
    if dry_run:
        paths = {e.id: entry_path(root, e) for e in entries}
    else:
        paths = write_entries(root, entries) if entries else {}
    for change in result.changes:
        change.path = paths.get(change.entry_id)
    return result


class _BatchState:
    """The cheatsheet as the batch has changed it so far (nothing written yet)."""

    def __init__(self, sheet: Cheatsheet) -> None:
        self.sheet = sheet
        self.current: dict[str, CheatsheetEntry] = {e.id: e for e in sheet}
        self.order: list[str] = []  # ids to write, in first-touched order

    def require(self, entry_id: str, *, allow_retired: bool = False) -> CheatsheetEntry:
        entry = self.current.get(entry_id)
        if entry is None:
            raise _OpRejected(f"no entry '{entry_id}'")
        if entry.status == "retired" and not allow_retired:
            raise _OpRejected(f"entry '{entry_id}' is retired")
        return entry

    def put(self, entry: CheatsheetEntry) -> None:
        self.current[entry.id] = entry
        if entry.id not in self.order:
            self.order.append(entry.id)

    def live_texts(self, section: str, skip: str = "") -> list[tuple[str, str]]:
        return [
            (e.id, e.text())
            for e in self.current.values()
            if e.section == section and e.status != "retired" and e.id != skip
        ]


def _apply_one(
    op: AddOp | UpdateOp | RemoveOp, state: _BatchState, *, guard: ContentGuard, runs: list[str], when: datetime,
    origin: _Origin,
) -> AppliedChange:
    reason = _clean_reason(op.reason, guard)
    if isinstance(op, AddOp):
        fields = _guarded(op.fields, guard)
        task_type = op.task_type.strip() or "general"
        if not _TASK_TYPE.match(task_type):
            raise _OpRejected(f"task_type {op.task_type!r} is not a lowercase identifier")
        bad = [t for t in op.tags if not _TAG.match(t)]
        if bad:
            raise _OpRejected(f"tag {bad[0]!r} is not a short lowercase tag")
        title = _title(fields[editable_fields(op.section)[0]])
        entry_id = make_entry_id(op.section, title, set(state.current))
        entry = _build(
            SECTION_MODELS[op.section],
            {
                "id": entry_id,
                "section": op.section,
                "task_type": task_type,
                **fields,
                "status": origin.status,
                "tags": list(dict.fromkeys(op.tags)),
                "source": Source(kind=origin.kind, runs=runs, created=when, author=origin.author),
            },
        )
        _no_duplicate(entry, state, guard)
        state.put(entry)
        line = f"ADD {entry.id} ({entry.section}, {entry.task_type}): {origin.status} — {reason}"
        return AppliedChange(op="ADD", entry_id=entry.id, path=None, reason=reason, line=line)

    entry = state.require(op.id)
    if isinstance(op, RemoveOp):
        state.put(entry.model_copy(update={"status": "retired"}))
        line = f"REMOVE {entry.id} ({entry.section}): {entry.status} -> retired — {reason}"
        return AppliedChange(op="REMOVE", entry_id=entry.id, path=None, reason=reason, line=line)

    allowed = editable_fields(entry.section)
    unknown = sorted(set(op.fields) - set(allowed))
    if unknown:
        raise _OpRejected(f"{entry.section} has no field(s) {', '.join(unknown)} (fields: {', '.join(allowed)})")
    fields = _guarded(op.fields, guard)
    changed = [k for k in allowed if k in fields and fields[k] != getattr(entry, k)]
    if not changed:
        raise _OpRejected(f"UPDATE of '{entry.id}' changes nothing")
    source = entry.source.model_copy(update={"runs": list(dict.fromkeys([*entry.source.runs, *runs]))})
    data = entry.model_dump()
    data.update({k: fields[k] for k in changed}, source=source)
    updated = _build(type(entry), data)
    _no_duplicate(updated, state, guard)
    state.put(updated)
    line = f"UPDATE {entry.id} ({entry.section}): {', '.join(changed)} — {reason}"
    return AppliedChange(op="UPDATE", entry_id=entry.id, path=None, reason=reason, line=line)


def _guarded(fields: dict[str, str], guard: ContentGuard) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in sorted(fields):
        if name == "language":
            value = fields[name].strip()
            if not re.fullmatch(r"[a-z][a-z0-9+#-]{0,19}", value):
                raise _OpRejected(f"language {value!r} is not a language name")
            out[name] = value
            continue
        verdict = guard.check(fields[name], field=name)
        if not verdict.ok:
            raise _OpRejected(f"{name}: {'; '.join(verdict.reasons)}")
        out[name] = verdict.text
    return out


def _clean_reason(reason: str, guard: ContentGuard) -> str:
    """The reason goes into commit messages and PR bodies: redacted, one line, bounded, not an attack."""
    one = " ".join(guard.redactor.redact_text(reason).split())
    if len(one) > _REASON_MAX:
        one = one[: _REASON_MAX - 1] + "…"
    verdict = guard.check(one, field="reason")
    bad = [r for r in verdict.reasons if not r.startswith(("length", "redacted"))]
    if bad:
        raise _OpRejected(f"reason: {'; '.join(bad)}")
    return one or "(no reason given)"


def _build(model: type[Any], data: dict[str, Any]) -> CheatsheetEntry:
    try:
        entry: CheatsheetEntry = model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err.get("loc", ()))
        raise _OpRejected(f"{key}: {err.get('msg', 'invalid')}") from None
    return entry


def _no_duplicate(entry: CheatsheetEntry, state: _BatchState, guard: ContentGuard) -> None:
    dup = guard.duplicate_of(entry.text(), state.live_texts(entry.section, skip=entry.id))
    if dup is not None:
        raise _OpRejected(f"duplicate of '{dup}'")


def _title(text: str) -> str:
    """A few significant words of the entry's first field: the readable part of its id."""
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP]
    return " ".join(words[:_SLUG_WORDS]) or "entry"
