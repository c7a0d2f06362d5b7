"""The cheatsheet on disk: ``cheatsheet/<section>/<id>.yaml``, one entry per file.

One file per entry keeps a curator's change a small, reviewable diff and lets
``git revert`` undo a single lesson. Loading is strict (the file name is the
id, the folder is the section) so that what a reviewer sees in the tree is
what the agent gets; saving rewrites in place, keeping the reviewer's comments
and key order, atomically.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from selfheal.cheatsheet.disk_guard import entry_problems
from selfheal.cheatsheet.model import SECTION_MODELS, SECTIONS, Cheatsheet, CheatsheetEntry, EntryBase
from selfheal.errors import FileFormatError
from selfheal.filecache import cached
from selfheal.yamlio import atomic_write_text, dump_yaml, line_of, parse_yaml, read_yaml, validate

ENTRY_SUFFIX = ".yaml"
__all__ = ["Cheatsheet", "delete_entry", "entry_path", "load_cheatsheet", "load_entry", "parse_entry", "save_entry"]


def entry_path(cheatsheet_dir: Path, entry: EntryBase) -> Path:
    return Path(cheatsheet_dir) / entry.section / f"{entry.id}{ENTRY_SUFFIX}"


def iter_entry_files(cheatsheet_dir: Path) -> Iterator[Path]:
    """Every candidate entry file, sorted; stray YAML files are yielded too so they get reported.

    Hidden files (editor swaps, atomic-write temporaries) are skipped.
    """
    root = Path(cheatsheet_dir)
    if not root.is_dir():
        return
    others = agent_dirs(root)
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if rel.parts[0] in others:  # another agent's cheatsheet beside a flat one
            continue
        if p.suffix in (".yaml", ".yml"):
            yield p


def agent_dirs(root: Path) -> set[str]:
    """Top-level folders of a flat cheatsheet that are other agents' cheatsheets (``<agent>/<section>/``)."""
    out: set[str] = set()
    for d in Path(root).iterdir() if Path(root).is_dir() else ():
        if d.is_dir() and d.name not in SECTIONS and any((d / sec).is_dir() for sec in SECTIONS):
            out.add(d.name)
    return out


def check_location(path: Path, cheatsheet_dir: Path) -> None:
    """The folder must be a section and the extension ``.yaml`` (before parsing the file)."""
    rel = path.relative_to(cheatsheet_dir)
    if len(rel.parts) != 2 or rel.parts[0] not in SECTIONS:
        raise FileFormatError(
            path, None, f"entries live in <cheatsheet>/<section>/<id>.yaml, section one of {', '.join(SECTIONS)}"
        )
    if path.suffix != ENTRY_SUFFIX:
        raise FileFormatError(path, None, f"entry files end in {ENTRY_SUFFIX}")


def parse_entry(data: Any, path: Path, *, section: str | None = None) -> CheatsheetEntry:
    """Validate round-trip YAML data as an entry; ``section`` is the folder it was found in."""
    if not isinstance(data, dict):
        raise FileFormatError(path, line_of(data, ()), "expected a mapping at the top level")
    sec = data.get("section")
    if sec is None:
        raise FileFormatError(path, line_of(data, ()), "missing required key 'section'")
    if not isinstance(sec, str) or sec not in SECTION_MODELS:
        raise FileFormatError(
            path, line_of(data, ("section",)), f"'section': must be one of {', '.join(SECTIONS)}, got {sec!r}"
        )
    if section is not None and sec != section:
        raise FileFormatError(
            path, line_of(data, ("section",)), f"section '{sec}' does not match its folder '{section}'"
        )
    entry: CheatsheetEntry = validate(SECTION_MODELS[sec], data, path)  # type: ignore[assignment]
    if path.stem != entry.id:
        raise FileFormatError(
            path, line_of(data, ("id",)), f"id '{entry.id}' does not match the file name '{path.name}'"
        )
    return entry


def load_entry(path: Path, cheatsheet_dir: Path) -> CheatsheetEntry:
    """Load one entry file, checking its location, schema and name (memoised by file stat)."""
    path = Path(path)
    check_location(path, Path(cheatsheet_dir))
    return cached("cheatsheet-entry", [path], lambda: _load_guarded(path))


def _load_guarded(path: Path) -> CheatsheetEntry:
    """Parse an entry file and refuse it when the content guard would (see :mod:`selfheal.cheatsheet.disk_guard`).

    A hand-written or PR'd entry never went through the curator's guard; checked
    here, an injection on disk stops the run with ``file:line`` instead of
    reaching the prompt.
    """
    data = read_yaml(path)
    entry = parse_entry(data, path, section=path.parent.name)
    problems = entry_problems(entry)
    if problems:
        field, reason = problems[0]
        raise FileFormatError(path, line_of(data, (field,)), f"{field}: refused by the content guard: {reason}")
    return entry


def load_cheatsheet(cheatsheet_dir: Path) -> Cheatsheet:
    """Load every entry under ``cheatsheet_dir``; a missing directory is an empty cheatsheet."""
    root = Path(cheatsheet_dir)
    entries: list[CheatsheetEntry] = []
    paths: dict[str, Path] = {}
    for path in iter_entry_files(root):
        entry = load_entry(path, root)
        if entry.id in paths:
            raise FileFormatError(
                path, line_of(read_yaml(path), ("id",)), f"duplicate id '{entry.id}' (also in {paths[entry.id]})"
            )
        entries.append(entry)
        paths[entry.id] = path
    entries.sort(key=lambda e: (SECTIONS.index(e.section), e.id))
    return Cheatsheet(root=root, entries=entries, paths=paths)


# -- saving -----------------------------------------------------------------


def _yaml_value(value: Any) -> Any:
    """Plain Python -> round-trip YAML value that reads well in a diff."""
    if isinstance(value, datetime):
        utc = value.astimezone(UTC).replace(microsecond=0)
        return parse_yaml(utc.strftime("%Y-%m-%dT%H:%M:%SZ"))  # dumps as 2026-01-02T03:04:05Z
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value if value.endswith("\n") else value + "\n")
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[k] = _yaml_value(v)
        return out
    if isinstance(value, list):
        seq = CommentedSeq([_yaml_value(v) for v in value])
        if not any(isinstance(v, (dict, list)) for v in value):
            seq.fa.set_flow_style()  # tags: [a, b] reads better than a block list
        return seq
    return value


def _entry_dict(entry: EntryBase, file_keys: set[str] | None = None) -> dict[str, Any]:
    """Entry fields in reviewing order (id, section, task_type, content, status, tags, source).

    For a new file (``file_keys`` None) empty tags are left out; for an existing
    file, keys it does not spell out stay out while they hold their default.
    """
    data = entry.model_dump(mode="python")
    head = ("id", "section", "task_type")
    tail = ("status", "tags", "source")
    order = [*head, *entry.content_fields()]
    order += [k for k in data if k not in order and k not in tail] + list(tail)
    out = {k: data[k] for k in order}
    if isinstance(out.get("source"), dict) and out["source"].get("author") is None:
        out["source"] = {k: v for k, v in out["source"].items() if k != "author"}  # learned entries have none
    fields = type(entry).model_fields
    for key in list(out):
        if key in ("id", "section", "source"):
            continue
        absent = (key not in file_keys) if file_keys is not None else (key == "tags")
        default = fields[key].get_default(call_default_factory=True)
        if absent and out[key] == default:
            del out[key]
    return out


def _update_map(node: CommentedMap, new: dict[str, Any], old: dict[str, Any]) -> None:
    """Change only the keys whose value changed: comments, order and styles stay."""
    for key in [k for k in node if k not in new]:
        del node[key]
    previous: str | None = None
    for key, value in new.items():
        if key not in node:  # a new key goes after its predecessor in reviewing order
            pos = list(node).index(previous) + 1 if previous in node else 0
            node.insert(pos, key, _yaml_value(value))
        elif key in old and old[key] == value:
            pass
        elif isinstance(value, dict) and isinstance(node[key], CommentedMap):
            _update_map(node[key], value, old.get(key) or {})
        else:
            node[key] = _yaml_value(value)
        previous = key


def save_entry(cheatsheet_dir: Path, entry: EntryBase) -> Path:
    """Create or update ``<section>/<id>.yaml``; an entry whose section changed moves file."""
    root = Path(cheatsheet_dir)
    path = entry_path(root, entry)
    moved_from: Path | None = None
    if not path.exists():
        for sec in SECTIONS:
            other = root / sec / path.name
            if sec != entry.section and other.exists():
                moved_from = other
                break
    source = path if path.exists() else moved_from
    if source is None:
        data = _yaml_value(_entry_dict(entry))
        data["source"].fa.set_flow_style()  # one line, as in hand-written entries
        text = dump_yaml(data)
    else:
        data = read_yaml(source)
        if not isinstance(data, CommentedMap):
            raise FileFormatError(source, 1, "expected a mapping at the top level")
        keys = {str(k) for k in data}
        try:
            old = _entry_dict(parse_entry(data, source), keys)
        except FileFormatError:
            old = {}  # a broken file is rewritten from the entry, still keeping its comments
        _update_map(data, _entry_dict(entry, keys), old)
        text = dump_yaml(data)
    atomic_write_text(path, text)
    if moved_from is not None:
        moved_from.unlink()
    return path


def delete_entry(cheatsheet_dir: Path, entry_id: str) -> Path | None:
    """Delete an entry's file (ACE REMOVE); returns the path removed, or None if absent."""
    for sec in SECTIONS:
        p = Path(cheatsheet_dir) / sec / f"{entry_id}{ENTRY_SUFFIX}"
        if p.exists():
            p.unlink()
            return p
    return None
