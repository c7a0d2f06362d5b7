"""What a change means, per entry and instruction: the reviewer's view of a YAML diff.

A raw diff of ``context.yaml`` shows moved lines; a reviewer wants "instruction
ins-x: text before -> after" and "heur-y: candidate -> active". This module
compares old and new file contents by stable id and says exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal

from selfheal.cheatsheet.model import SECTIONS
from selfheal.context.model import CONTEXT_FILENAME
from selfheal.errors import FileFormatError
from selfheal.yamlio import parse_yaml, to_plain

Action = Literal["added", "changed", "removed"]
_SKIP_ENTRY_FIELDS = ("id", "section", "status")


@dataclass
class ItemChange:
    """One entry, instruction, example, tool description or template that changed."""

    kind: Literal["entry", "instruction", "example", "tool", "template", "file"]
    id: str
    action: Action
    path: str
    section: str = ""
    status: tuple[str | None, str | None] | None = None   # (before, after) when it changed
    fields: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (name, before, after)

    @property
    def is_knowledge(self) -> bool:
        """Entries, instructions and examples carry ids that trailers and blame refer to."""
        return self.kind in ("entry", "instruction", "example")


def _load(text: str | None, path: str) -> Any:
    if text is None:
        return None
    try:
        return to_plain(parse_yaml(text, path))
    except FileFormatError:
        return None


def is_entry_path(path: str) -> bool:
    p = PurePosixPath(path)
    return len(p.parts) >= 2 and p.parent.name in SECTIONS and p.suffix == ".yaml"


def is_context_path(path: str) -> bool:
    return PurePosixPath(path).name == CONTEXT_FILENAME


def _action(old: Any, new: Any) -> Action:
    return "added" if old is None else "removed" if new is None else "changed"


def _str(v: Any) -> str | None:
    """A field value as one readable string (mappings as ``k: v``, lists comma-separated)."""
    if v is None:
        return None
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_str(x)}" for k, x in v.items())
    if isinstance(v, list):
        return "[" + ", ".join(str(_str(x)) for x in v) + "]"
    if hasattr(v, "isoformat"):
        return v.isoformat().replace("+00:00", "Z")
    return str(v)


def _entry_change(path: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> ItemChange:
    ref = new or old or {}
    change = ItemChange(
        kind="entry",
        id=str(ref.get("id") or PurePosixPath(path).stem),
        action=_action(old, new),
        path=path,
        section=str(ref.get("section") or PurePosixPath(path).parent.name),
    )
    before, after = (old or {}).get("status"), (new or {}).get("status")
    if before != after or change.action != "changed":
        change.status = (_str(before), _str(after))
    keys = [k for k in (*(old or {}), *(new or {})) if k not in _SKIP_ENTRY_FIELDS]
    for key in dict.fromkeys(keys):
        b, a = (old or {}).get(key), (new or {}).get(key)
        if b != a:
            change.fields.append((key, _str(b), _str(a)))
    return change  # no fields and no status: only comments or formatting changed


def context_items(data: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, id) -> item for instructions, examples and tool descriptions of a context file."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    if not isinstance(data, dict):
        return out
    for key, kind in (("instructions", "instruction"), ("examples", "example")):
        for item in data.get(key) or []:
            if isinstance(item, dict) and item.get("id"):
                out[(kind, str(item["id"]))] = {k: v for k, v in item.items() if k != "id"}
    tools = data.get("tools")
    if isinstance(tools, dict):
        for name, desc in tools.items():
            out[("tool", str(name))] = {"description": desc}
    return out


def _context_changes(path: str, old: Any, new: Any) -> list[ItemChange]:
    before, after = context_items(old), context_items(new)
    changes: list[ItemChange] = []
    for key in dict.fromkeys([*before, *after]):
        b, a = before.get(key), after.get(key)
        if b == a:
            continue
        change = ItemChange(kind=key[0], id=key[1], action=_action(b, a), path=path)  # type: ignore[arg-type]
        for name in dict.fromkeys([*(b or {}), *(a or {})]):
            if (b or {}).get(name) != (a or {}).get(name):
                change.fields.append((name, _str((b or {}).get(name)), _str((a or {}).get(name))))
        changes.append(change)
    for key in ("version", "system"):
        b = old.get(key) if isinstance(old, dict) else None
        a = new.get(key) if isinstance(new, dict) else None
        if b != a and not (old is None or new is None):
            changes.append(ItemChange("template" if key == "system" else "file", key, "changed", path,
                                      fields=[(key, _str(b), _str(a))]))
    return changes


def describe_file(path: str, old_text: str | None, new_text: str | None) -> list[ItemChange]:
    """The item-level changes one file's edit makes (a plain file change when it is no known format)."""
    if old_text == new_text:
        return []
    old, new = _load(old_text, path), _load(new_text, path)
    if is_entry_path(path) and (isinstance(old, dict) or isinstance(new, dict)):
        return [_entry_change(path, old if isinstance(old, dict) else None, new if isinstance(new, dict) else None)]
    if is_context_path(path) and (isinstance(old, dict) or isinstance(new, dict)):
        found = _context_changes(path, old, new)
        if found:
            return found
    kind: Literal["template", "file"] = "template" if path.endswith(".j2") else "file"
    return [ItemChange(kind, PurePosixPath(path).name, _action(old_text, new_text), path)]


def touched_ids(changes: list[ItemChange]) -> list[str]:
    """Ids of the entries, instructions and examples a change touches (for ``Selfheal-Entries``)."""
    return list(dict.fromkeys(c.id for c in changes if c.is_knowledge))
