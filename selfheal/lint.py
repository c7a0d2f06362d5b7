"""``selfheal lint``: check every context, template, cheatsheet entry, dataset and scenario file; report all problems.

The loaders stop at the first error (a run must not start on a broken
context); lint keeps going so a reviewer sees every ``file:line`` at once,
and adds checks a loader cannot make alone: ids unique across all files,
template variables, references to tools that do not exist, and the token
budget of the prompt the agent would actually get.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateSyntaxError, meta, nodes
from pydantic import BaseModel, ValidationError

from selfheal.cheatsheet.disk_guard import context_text_problems, entry_problems
from selfheal.cheatsheet.guard import INVISIBLE
from selfheal.cheatsheet.model import SECTION_MODELS, CheatsheetEntry, Heuristic, Source
from selfheal.cheatsheet.store import check_location, iter_entry_files
from selfheal.config import Settings
from selfheal.context.model import CONTEXT_FILENAME, AgentContext, ContextFile
from selfheal.context.render import (
    TEMPLATE_VARIABLES,
    UNTRUSTED_CLOSE,
    USED_PREFIX,
    check_template_depth,
    make_environment,
    prompt_text,
    render_system_prompt,
    template_error_line,
    untrusted_open,
)
from selfheal.errors import FileFormatError, SelfhealError
from selfheal.tokens import count_tokens
from selfheal.yamlio import line_of, read_yaml, to_plain, validation_message

Severity = Literal["error", "warning"]

# A tool named in prose: snake_case that is called ``name(``, backticked, or starts with a tool verb.
_SNAKE = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+"
_VERBS = "get|list|set|update|remove|search|put|delete|describe|create|invoke|publish|tag"
_TOOL_REF = re.compile(rf"`({_SNAKE})`|\b({_SNAKE})\(|\b((?:{_VERBS})_[a-z0-9_]*[a-z0-9])\b")
_USED_LINE = re.compile(r"^\s*USED:\s*(.*)$", re.MULTILINE)
_SAMPLE_TASK = "checkout-api times out after 3 seconds"
_SAMPLE_ENTRY = Heuristic(
    id="heur-lint-sample",
    condition="a sample condition",
    rule="a sample rule",
    status="active",
    source=Source(kind="lint", created="2026-01-01T00:00:00Z"),  # type: ignore[arg-type]
)
_SAMPLE_LEARNED = Heuristic(
    id="heur-lint-learned-sample",
    condition="a lint sample learned condition",
    rule="a lint sample learned rule",
    status="candidate",
    source=Source(kind="curator", created="2026-01-01T00:00:00Z"),  # type: ignore[arg-type]
)


@dataclass(frozen=True)
class LintIssue:
    path: Path
    line: int | None
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.message}"

    def format(self, root: Path | None = None) -> str:
        """``path:line: message``, the path relative to ``root`` when it lies inside it."""
        if root is None or not self.path.is_absolute():
            return str(self)
        try:
            rel = self.path.relative_to(root)
        except ValueError:
            return str(self)
        return str(LintIssue(rel, self.line, self.message, self.severity))

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "line": self.line, "message": self.message, "severity": self.severity}


class _Collector:
    """Issues with paths made relative to the repository root."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.issues: list[LintIssue] = []

    def rel(self, path: Path) -> Path:
        try:
            return Path(path).resolve().relative_to(self.root)
        except ValueError:
            return Path(path)

    def add(self, path: Path, line: int | None, message: str, severity: Severity = "error") -> None:
        self.issues.append(LintIssue(self.rel(path), line, message, severity))

    def add_error(self, exc: FileFormatError) -> None:
        self.add(exc.path, exc.line, exc.detail)


def _validation_issues(model: type[BaseModel], data: Any, path: Path, out: _Collector) -> BaseModel | None:
    """Validate, reporting every schema error (not only the first)."""
    if not isinstance(data, dict):
        out.add(path, line_of(data, ()), "expected a mapping at the top level")
        return None
    try:
        return model.model_validate(to_plain(data))
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err.get("loc", ()))
            out.add(path, line_of(data, loc), validation_message(dict(err)))
        return None


def _read(path: Path, out: _Collector) -> Any:
    """The file's YAML data, or None after reporting why not (an empty file is an error, not an empty mapping)."""
    try:
        data = read_yaml(path)
    except FileFormatError as exc:
        out.add_error(exc)
        return None
    if data is None:
        out.add(path, None, "empty file (nothing but whitespace or comments)")
    return data


def _invisible_lines(text: str) -> list[tuple[int, str]]:
    """(line, 'U+202E') for every line of ``text`` holding an invisible or bidi-control character."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        m = INVISIBLE.search(line)
        if m and not (n == 1 and m.start() == 0 and m.group(0) == "\ufeff"):  # a leading BOM is harmless
            found.append((n, f"U+{ord(m.group(0)):04X}"))
    return found


def _tool_refs(text: str) -> set[str]:
    return {a or b or c for a, b, c in _TOOL_REF.findall(text)}


# -- context ------------------------------------------------------------------


def _lint_template(ctx: AgentContext, out: _Collector) -> bool:
    """Syntax and undeclared variables of the template; True when it compiles."""
    path = ctx.template_path
    env = make_environment(ctx.source_dir, ctx.system, ctx.template, str(path))
    try:
        check_template_depth(env, ctx.template, str(path))
    except FileFormatError as exc:
        out.add_error(exc)
        return False
    try:
        ast = env.parse(ctx.template, ctx.system, str(path))
    except TemplateSyntaxError as exc:
        out.add(path, exc.lineno, f"template syntax error: {exc.message}")
        return False
    unknown = meta.find_undeclared_variables(ast) - TEMPLATE_VARIABLES - set(env.globals)
    for name in sorted(unknown):
        lines = [n.lineno for n in ast.find_all(nodes.Name) if n.name == name and n.ctx == "load"]
        known = ", ".join(sorted(TEMPLATE_VARIABLES))
        out.add(path, min(lines) if lines else None, f"undefined variable '{name}' (the renderer provides: {known})")
    return not unknown


def _raw_items(data: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    items = data.get(key) if isinstance(data, dict) else None
    return [(i, x) for i, x in enumerate(items) if isinstance(x, dict)] if isinstance(items, list) else []


def _context_texts(data: Any) -> list[tuple[tuple[Any, ...], str]]:
    """(key path, text) of every prose field that may name a tool."""
    texts: list[tuple[tuple[Any, ...], str]] = []
    for key, field in (("instructions", "text"), ("examples", "trajectory")):
        texts += [((key, i, field), str(x.get(field, ""))) for i, x in _raw_items(data, key)]
    tools = data.get("tools") if isinstance(data, dict) else None
    if isinstance(tools, dict):
        texts += [(("tools", name), str(desc)) for name, desc in tools.items()]
    return texts


def _lint_context(
    settings: Settings, known_tools: set[str] | None, out: _Collector
) -> tuple[AgentContext | None, dict[str, tuple[Path, int | None]]]:
    """Context file checks, as far as the file allows; returns the context (if renderable) and its ids."""
    prompts_dir = settings.prompts_dir
    path = prompts_dir / CONTEXT_FILENAME
    ids: dict[str, tuple[Path, int | None]] = {}
    if not path.is_file():
        out.add(path, None, "context file not found")
        return None, ids
    data = _read(path, out)
    if data is None:
        return None, ids
    file = _validation_issues(ContextFile, data, path, out)

    # Checks on the raw data go on even when the schema failed.
    first_at: dict[str, str] = {}
    for key in ("instructions", "examples"):
        for i, item in _raw_items(data, key):
            entry_id = item.get("id")
            if not isinstance(entry_id, str):
                continue
            line = line_of(data, (key, i, "id"))
            if entry_id in first_at:
                out.add(path, line, f"duplicate id '{entry_id}' (first at {first_at[entry_id]})")
            else:
                first_at[entry_id] = f"{key}[{i}]"
                ids[entry_id] = (path, line)
    if known_tools is not None:
        tools = data.get("tools") if isinstance(data, dict) else None
        for name in tools if isinstance(tools, dict) else {}:
            if name not in known_tools:
                out.add(path, line_of(data, ("tools", name)), f"tools: '{name}' is not a tool of this agent")
        for loc, text in _context_texts(data):
            for ref in sorted(_tool_refs(text) - known_tools):
                out.add(path, line_of(data, loc), f"'{ref}' is not a tool of this agent")

    if isinstance(file, ContextFile):  # what the loader refuses: injections, invisible characters, ...
        for loc, reason in context_text_problems(file):
            out.add(path, line_of(data, loc), f"{'.'.join(map(str, loc))}: {reason}")

    system = data.get("system") if isinstance(data, dict) else None
    if not isinstance(system, str) or not system or "/" in system:
        return None, ids  # reported by the schema check
    template_path = prompts_dir / system
    try:
        template = template_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        out.add(path, line_of(data, ("system",)), f"template '{system}' not found")
        return None, ids
    except UnicodeDecodeError as exc:
        out.add(template_path, None, f"not UTF-8 text ({exc.reason})")
        return None, ids
    if not template.strip():
        out.add(template_path, None, "empty template")
        return None, ids
    for line, char in _invisible_lines(template):
        out.add(template_path, line, f"invisible or bidi-control character {char} in the template")
    base = file.model_dump() if isinstance(file, ContextFile) else {"version": 0, "system": system}
    ctx = AgentContext(**base, template=template, source_dir=prompts_dir)
    if not _lint_template(ctx, out) or not isinstance(file, ContextFile) or len(first_at) < len(ctx.ids):
        return None, ids
    return ctx, ids


# -- cheatsheet -----------------------------------------------------------------


def _check_entry(path: Path, data: Any, out: _Collector) -> CheatsheetEntry | None:
    """Every problem of one entry file: section, schema (all errors), id vs file name."""
    if not isinstance(data, dict):
        out.add(path, line_of(data, ()), "expected a mapping at the top level")
        return None
    folder = path.parent.name
    section = data.get("section")
    if section is None:
        out.add(path, line_of(data, ()), "missing required key 'section'")
    elif not isinstance(section, str) or section not in SECTION_MODELS:
        out.add(path, line_of(data, ("section",)), f"'section': must be one of {', '.join(SECTION_MODELS)}")
    elif section != folder:
        out.add(path, line_of(data, ("section",)), f"section '{section}' does not match its folder '{folder}'")
    model = SECTION_MODELS.get(str(section)) or SECTION_MODELS[folder]
    entry = _validation_issues(model, data, path, out)
    if entry is None:
        return None
    if data.get("id") != path.stem:
        out.add(path, line_of(data, ("id",)), f"id '{data.get('id')}' does not match the file name '{path.name}'")
    return entry  # type: ignore[return-value]


def _lint_cheatsheet(
    settings: Settings, ids: dict[str, tuple[Path, int | None]], known_tools: set[str] | None, out: _Collector
) -> list[CheatsheetEntry]:
    root = settings.cheatsheet_dir
    entries: list[CheatsheetEntry] = []
    for path in iter_entry_files(root):
        try:
            check_location(path, root)
        except FileFormatError as exc:
            out.add_error(exc)
            continue
        data = _read(path, out)
        entry = _check_entry(path, data, out) if data is not None else None
        if entry is None:
            continue
        id_line = line_of(data, ("id",))
        if entry.id in ids:
            first, first_line = ids[entry.id]
            where = f"{out.rel(first)}:{first_line}" if first_line else str(out.rel(first))
            out.add(path, id_line, f"duplicate id '{entry.id}' (also at {where})")
        else:
            ids[entry.id] = (path, id_line)
        refused = entry_problems(entry)  # what loading refuses: the guard's categories, invisible characters
        for field, reason in refused:
            out.add(path, line_of(data, (field,)), f"{field}: {reason}")
        if known_tools is not None:
            for field in entry.content_fields():
                for ref in sorted(_tool_refs(str(getattr(entry, field))) - known_tools):
                    out.add(path, line_of(data, (field,)), f"'{ref}' is not a tool of this agent", "warning")
        if not refused:
            entries.append(entry)
    return entries


# -- whole prompt ----------------------------------------------------------------


def _lint_prompt(
    ctx: AgentContext,
    entries: Sequence[CheatsheetEntry],
    tools: Sequence[tuple[str, str]],
    settings: Settings,
    out: _Collector,
) -> None:
    """Trial render with the longest active entries: strict errors, USED contract, token budget."""
    top_k = settings.thresholds.top_k
    active = [e for e in entries if e.status == "active"]
    longest: list[Any] = sorted(active, key=lambda e: (-count_tokens(e.text()), e.id))[:top_k]
    if not longest:  # still exercise the template's entry loop
        longest = [_SAMPLE_ENTRY]
    tools = tools or [(name, "") for name in ctx.tools]
    # With more examples than a prompt shows, a run gets max_examples of them: budget the longest ones.
    shown = settings.context.max_examples
    task_examples = (sorted(ctx.examples, key=lambda e: (-count_tokens(f"{e.task}\n{e.trajectory}"), e.id))[:shown]
                     if len(ctx.examples) > shown else None)
    try:
        prompt = render_system_prompt(ctx, task=_SAMPLE_TASK, task_type="general", entries=longest, tools=tools,
                                      task_examples=task_examples)
    except FileFormatError as exc:
        out.add_error(exc)
        return
    except Exception as exc:  # anything else the template does at render time
        out.add(ctx.template_path, template_error_line(exc, str(ctx.template_path)), f"template error: {exc}")
        return
    _lint_markers(ctx, tools, out)
    if USED_PREFIX not in prompt:
        out.add(
            ctx.template_path,
            None,
            f"the prompt never asks for the '{USED_PREFIX} <ids>' line: entry helpful/harmful tagging will see no ids",
            "warning",
        )
    budget = settings.thresholds.context_token_budget
    used = count_tokens(prompt)
    if used > budget:
        out.add(
            ctx.template_path,
            None,
            f"rendered prompt is ~{used} tokens with the {len(longest)} longest active entries, "
            f"over the budget of {budget} (thresholds.context_token_budget)",
        )


def _lint_markers(ctx: AgentContext, tools: Sequence[tuple[str, str]], out: _Collector) -> None:
    """A learned candidate entry must reach the prompt with its untrusted marker and marked unproven.

    The untrusted marker is put around the text by code; a template can still
    cut it off (slicing, ``replace``) or leave out the candidate mark. A
    template that shows no entry text at all is fine: nothing learned reaches
    the model then.
    """
    try:
        prompt = render_system_prompt(ctx, task=_SAMPLE_TASK, task_type="general", entries=[_SAMPLE_LEARNED],
                                      tools=tools)
    except Exception:  # noqa: BLE001 - render errors are reported by the trial render
        return
    bare = _SAMPLE_LEARNED.text()
    if bare not in prompt:
        return
    if prompt_text(_SAMPLE_LEARNED) not in prompt:
        out.add(ctx.template_path, None,
                f"the template removes the '{untrusted_open('curator')}…{UNTRUSTED_CLOSE}' marker around learned "
                "entries: learned text would read as trusted instructions")
    line = next(ln for ln in prompt.splitlines() if bare in ln)
    if not re.search(r"unproven|candidate|unverified|untested", line, re.IGNORECASE):
        out.add(ctx.template_path, None,
                "the template does not mark candidate entries (e.g. '{% if entry.candidate %} (unproven){% endif %}'):"
                " unproven learned lessons would read like proven ones", "warning")


def _lint_example_ids(ctx: AgentContext, entry_ids: set[str], out: _Collector) -> None:
    """``USED:`` lines in examples should name entries that exist (the model copies them)."""
    data = read_yaml(ctx.context_path)
    for i, ex in enumerate(ctx.examples):
        for match in _USED_LINE.findall(ex.trajectory):
            for ref in re.findall(r"[a-z0-9][a-z0-9_-]*", match):
                if ref != "none" and ref not in entry_ids:
                    out.add(
                        ctx.context_path,
                        line_of(data, ("examples", i, "trajectory")),
                        f"example '{ex.id}' says USED: {ref}, which is no cheatsheet entry",
                        "warning",
                    )


# -- datasets and scenarios -----------------------------------------------------------


def _lint_datasets(settings: Settings, out: _Collector) -> None:
    """Every dataset under ``paths.evals`` (spec, each example and scenario file) and the agent's stray scenarios.

    Scenario files are validated by their dataset agent's own loader
    (``validate_scenario``), the same one ``eval`` and ``run --scenario`` use.
    """
    from selfheal.agents.registry import get_agent
    from selfheal.errors import SelfhealError
    from selfheal.evaluation.dataset import check_dataset_dir, datasets_root, list_datasets

    covered: set[Path] = set()
    for name in list_datasets(settings):
        errors, files = check_dataset_dir(
            datasets_root(settings) / name, lambda agent: get_agent(settings, agent).validate_scenario
        )
        covered.update(p.resolve() for p in files)
        for exc in errors:
            out.add_error(exc)
    scenarios = settings.scenarios_dir
    stray = [p for p in sorted(scenarios.glob("*.yaml")) if p.resolve() not in covered] if scenarios.is_dir() else []
    if not stray:
        return
    try:
        validate_scenario = get_agent(settings).validate_scenario
    except SelfhealError:
        return  # the agent itself is reported by the caller
    for path in stray:
        try:
            validate_scenario(path)
        except FileFormatError as exc:
            out.add_error(exc)
        except SelfhealError as exc:
            out.add(path, None, exc.message)


def lint_repository(
    settings: Settings,
    *,
    known_tools: set[str] | None = None,
    tools: Iterable[tuple[str, str]] | None = None,
    datasets: bool = True,
) -> list[LintIssue]:
    """Every issue in the agent's context, cheatsheet, dataset and scenario files, sorted by file and line.

    ``tools`` are the domain's (name, description) pairs: they make tool names
    known and feed the token budget. Without either, tool references are not checked.
    ``datasets=False`` leaves out datasets and scenarios (what a run does not read).
    """
    tool_list = list(tools or [])
    if tool_list and known_tools is None:
        known_tools = {name for name, _ in tool_list}
    if not tool_list and known_tools:
        tool_list = [(name, "") for name in sorted(known_tools)]
    out = _Collector(settings.root)
    ctx, ids = _lint_context(settings, known_tools, out)
    entries = _lint_cheatsheet(settings, ids, known_tools, out)
    if ctx is not None:
        _lint_prompt(ctx, entries, tool_list, settings, out)
        _lint_example_ids(ctx, {e.id for e in entries}, out)
    if datasets:
        _lint_datasets(settings, out)
    return sorted(out.issues, key=lambda i: (str(i.path), i.line or 0, i.message))


class LintFailed(SelfhealError):
    """``run``/``eval`` refuse to start on files ``selfheal lint`` calls an error (exit 2, the lint lines)."""


def refuse_lint_errors(settings: Settings, *, known_tools: set[str] | None = None, datasets: bool = False) -> None:
    """Raise :class:`LintFailed` listing every lint error of the files a run reads.

    Loaders stop at their first error and some problems (a template over the
    token budget, a template dropping the untrusted marker) no loader sees; a
    run or an evaluation on such files would spend model time on a broken
    prompt, or error every example and still exit 0.
    """
    issues = [i for i in lint_repository(settings, known_tools=known_tools, datasets=datasets)
              if i.severity == "error"]
    if len(issues) == 1:
        raise LintFailed(f"{issues[0].format(settings.root)} (`selfheal lint` checks every file)")
    if issues:
        lines = "\n".join(i.format(settings.root) for i in issues)
        raise LintFailed(f"{len(issues)} lint errors; fix them or run `selfheal lint`:\n{lines}")
