"""Load ``prompts/<agent>/context.yaml`` and its template, with ``file:line`` errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfheal.cheatsheet.disk_guard import context_text_problems
from selfheal.context.model import CONTEXT_FILENAME, AgentContext, ContextFile
from selfheal.errors import FileFormatError
from selfheal.filecache import cached
from selfheal.yamlio import line_of, read_yaml, validate


def duplicate_ids(data: Any, ctx: ContextFile) -> list[tuple[int | None, str]]:
    """(line, message) for every id used twice among instructions and examples."""
    located = [("instructions", i, x.id) for i, x in enumerate(ctx.instructions)]
    located += [("examples", i, x.id) for i, x in enumerate(ctx.examples)]
    seen: dict[str, str] = {}
    found: list[tuple[int | None, str]] = []
    for key, i, item_id in located:
        if item_id in seen:
            found.append((line_of(data, (key, i, "id")), f"duplicate id '{item_id}' (first at {seen[item_id]})"))
        else:
            seen[item_id] = f"{key}[{i}]"
    return found


def read_template(ctx: ContextFile, prompts_dir: Path, data: Any, path: Path) -> str:
    """The template text named by ``system:``; a missing file points at that key's line."""
    template_path = prompts_dir / ctx.system
    try:
        return template_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(
            path, line_of(data, ("system",)), f"template '{ctx.system}' not found in {prompts_dir}"
        ) from None
    except UnicodeDecodeError as exc:
        raise FileFormatError(template_path, None, f"not UTF-8 text ({exc.reason})") from None


def load_context(prompts_dir: Path) -> AgentContext:
    """Load and validate the agent's context from ``prompts_dir``."""
    prompts_dir = Path(prompts_dir)
    path = prompts_dir / CONTEXT_FILENAME
    if not path.is_file():
        raise FileFormatError(path, None, "context file not found (expected context.yaml in the prompts directory)")
    return cached("context", _watched_files(prompts_dir), lambda: _load(prompts_dir, path))


def _watched_files(prompts_dir: Path) -> list[Path]:
    """Every file under the prompts directory: context.yaml and whatever template it names."""
    return sorted(p for p in prompts_dir.rglob("*") if p.is_file())


def _load(prompts_dir: Path, path: Path) -> AgentContext:
    data = read_yaml(path)
    ctx = validate(ContextFile, data, path)
    dups = duplicate_ids(data, ctx)
    if dups:
        line, message = dups[0]
        raise FileFormatError(path, line, message)
    refused = context_text_problems(ctx)
    if refused:  # hand-written context never went through the curator's guard: checked on load
        loc, reason = refused[0]
        where = ".".join(map(str, loc))
        raise FileFormatError(path, line_of(data, loc), f"{where}: refused by the content guard: {reason}")
    template = read_template(ctx, prompts_dir, data, path)
    return AgentContext(**ctx.model_dump(), template=template, source_dir=prompts_dir)
