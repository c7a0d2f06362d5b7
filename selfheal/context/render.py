"""Render the agent's system prompt from its Jinja template.

StrictUndefined turns a typo in a reviewed template into an error naming the
template line instead of a silently empty section in production. The
template gets plain views (ids, one-line texts), never live objects, so what
it can reach is exactly :data:`TEMPLATE_VARIABLES`; it runs sandboxed because
optimizers render candidate templates they generated themselves.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    FunctionLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    meta,
)
from jinja2.lexer import operators as OPERATORS
from jinja2.sandbox import SandboxedEnvironment

from selfheal.cheatsheet.model import EntryBase
from selfheal.context.model import AgentContext, Example, Instruction
from selfheal.errors import FileFormatError

# What the renderer passes to the template (lint checks templates against it).
# ``examples`` are the fixed few-shot examples (first in the prompt, the same for every
# task); ``task_examples`` the ones retrieved for this task when the context holds more
# than ``context.max_examples`` (see selfheal.context.examples), shown in the per-task part.
TEMPLATE_VARIABLES: frozenset[str] = frozenset(
    {"task", "task_type", "version", "instructions", "examples", "task_examples", "entries", "tools"}
)
USED_PREFIX = "USED:"
#: Entry sources a reviewer wrote (seed lessons, hand-written files); any other source is learned or taught text.
TRUSTED_SOURCES: frozenset[str] = frozenset({"seed", "manual"})
UNTRUSTED_CLOSE = "</untrusted>"


def untrusted_open(kind: str) -> str:
    """The marker that opens a learned entry's text: ``<untrusted source="curator">``."""
    safe = re.sub(r"[^a-z0-9_-]", "", kind.casefold())[:20] or "unknown"
    return f'<untrusted source="{safe}">'


def prompt_text(entry: EntryBase) -> str:
    """An entry's text as the prompt shows it: learned and taught entries wrapped in the untrusted marker.

    Done by code, not left to templates: whatever a template does with
    ``entry.text``, text that came from traces or users arrives marked as data
    (the guard refuses the marker inside entry text, so it cannot be closed early).
    """
    text = entry.text()
    if entry.source.kind in TRUSTED_SOURCES:
        return text
    return f"{untrusted_open(entry.source.kind)}{text}{UNTRUSTED_CLOSE}"


@dataclass(frozen=True)
class PromptEntry:
    """A cheatsheet entry as the template sees it; ``str()`` is ``[id] text``.

    ``candidate``: a curated lesson not yet proven by runs; templates mark it
    (``[id] (unproven) text``) so the agent weighs it below proven entries.
    """

    id: str
    section: str
    text: str
    candidate: bool = False

    def __str__(self) -> str:
        mark = " (unproven)" if self.candidate else ""
        return f"[{self.id}]{mark} {self.text}"


@dataclass(frozen=True)
class PromptTool:
    name: str
    description: str

    def __str__(self) -> str:
        return f"{self.name}: {self.description}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def effective_tools(ctx: AgentContext, tools: Sequence[tuple[str, str]]) -> list[PromptTool]:
    """The tools in code order, each with the context's description override if it has one."""
    return [PromptTool(name, _one_line(ctx.tool_description(name, desc))) for name, desc in tools]


def make_environment(search_dir: Path | None, name: str, source: str, filename: str) -> SandboxedEnvironment:
    """A strict, sandboxed environment serving ``source`` as ``name`` (includes from ``search_dir``)."""
    primary = FunctionLoader(lambda n: (source, filename, lambda: True) if n == name else None)
    loaders: list[BaseLoader] = [primary]
    if search_dir is not None:
        loaders.append(FileSystemLoader(str(search_dir)))
    return SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template_error_line(exc: BaseException, filename: str) -> int | None:
    """The template line an error was raised at (Jinja maps frames to template lines)."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    return line


#: Deepest nesting of blocks ({% if %}, {% for %}, ...) a template may have (Python's compiler allows 20 loops).
MAX_TEMPLATE_DEPTH = 15
#: Deepest nesting of brackets in one tag.
MAX_BRACKET_DEPTH = 30
#: Most chained operators (filters, attribute lookups, ``not``, calls, subscripts) in one tag: each one
#: nests the generated Python code (Python's parser allows 200 nested parentheses).
MAX_TAG_CHAIN = 60
_BLOCKS = frozenset({"if", "for", "macro", "call", "filter", "with", "block", "autoescape", "trans", "raw"})
_OPEN = frozenset({"lparen", "lbracket", "lbrace"})
_CLOSE = frozenset({"rparen", "rbracket", "rbrace"})
_CHAIN = frozenset({"pipe", "dot", "lparen", "lbracket", "sub", "add"})


def check_template_depth(env: SandboxedEnvironment, source: str, filename: str) -> None:
    """Refuse templates nested too deeply before Jinja's recursive parser and compiler see them.

    Jinja parses and compiles by recursion: a few hundred nested ``{% if %}``,
    brackets or chained filters raise RecursionError (a traceback, or worse,
    a half-compiled template). The lexer is iterative, so the depth is
    measured on its tokens and a deep template is a ``file:line`` error.
    Syntax errors are left to the parser, which reports them with their line.
    """
    blocks = 0
    brackets = 0
    chain = 0
    try:
        for lineno, raw, value in env.lexer.tokeniter(source, None, filename):
            token = OPERATORS.get(value, raw) if raw == "operator" else raw
            if token in ("block_begin", "variable_begin"):
                brackets = chain = 0
                expect_name = token == "block_begin"
                continue
            if token == "name" and expect_name:
                expect_name = False
                if value in _BLOCKS:
                    blocks += 1
                elif value.startswith("end") and value[3:] in _BLOCKS:
                    blocks = max(0, blocks - 1)
            elif token in _OPEN:
                brackets += 1
            elif token in _CLOSE:
                brackets = max(0, brackets - 1)
            if token in _CHAIN or (token == "name" and value == "not"):
                chain += 1
            if blocks > MAX_TEMPLATE_DEPTH:
                raise FileFormatError(filename, lineno, f"blocks nested deeper than {MAX_TEMPLATE_DEPTH} levels")
            if brackets > MAX_BRACKET_DEPTH:
                raise FileFormatError(filename, lineno, f"brackets nested deeper than {MAX_BRACKET_DEPTH} levels")
            if chain > MAX_TAG_CHAIN:
                raise FileFormatError(filename, lineno, f"more than {MAX_TAG_CHAIN} chained operators in one tag")
    except TemplateSyntaxError:
        return


@lru_cache(maxsize=16)
def _compile(source_dir: str | None, name: str, source: str) -> Template:
    filename = str(Path(source_dir or ".") / name)
    env = make_environment(Path(source_dir) if source_dir else None, name, source, filename)
    check_template_depth(env, source, filename)
    try:
        return env.get_template(name)
    except TemplateSyntaxError as exc:
        where = Path(exc.filename) if exc.filename else Path(filename)
        raise FileFormatError(where, exc.lineno, f"template syntax error: {exc.message}") from None
    except (RecursionError, SyntaxError, MemoryError) as exc:  # an included template the pre-scan did not see
        raise FileFormatError(filename, None, f"template too deeply nested to compile ({type(exc).__name__})") from None


@lru_cache(maxsize=16)
def _variables(source_dir: str | None, name: str, source: str) -> frozenset[str]:
    filename = str(Path(source_dir or ".") / name)
    env = make_environment(Path(source_dir) if source_dir else None, name, source, filename)
    try:
        return frozenset(meta.find_undeclared_variables(env.parse(source, name, filename)))
    except TemplateSyntaxError:
        return frozenset()


def template_variables(ctx: AgentContext) -> frozenset[str]:
    """The variables the context's template reads (its own text; includes are not followed)."""
    return _variables(str(ctx.source_dir) if ctx.source_dir else None, ctx.system, ctx.template)


def _example_view(e: Example) -> Example:
    return Example(id=e.id, task=e.task, trajectory=e.trajectory.strip("\n"))


def get_template(ctx: AgentContext) -> Template:
    """The context's compiled template (cached on its text)."""
    return _compile(str(ctx.source_dir) if ctx.source_dir else None, ctx.system, ctx.template)


def render_system_prompt(
    ctx: AgentContext,
    *,
    task: str,
    task_type: str,
    entries: Sequence[EntryBase],
    tools: Sequence[tuple[str, str]],
    task_examples: Sequence[Example] | None = None,
) -> str:
    """The system prompt for one run: context + retrieved entries + tool descriptions.

    ``task_examples``: the examples retrieved for this task (a context with
    more than ``context.max_examples``); they replace the fixed ``examples``
    and go to the per-task part, so the fixed prefix stays byte-identical
    across tasks. A template that does not read ``task_examples`` gets them
    as ``examples`` instead (shown, at the cost of the cached prefix).
    """
    template = get_template(ctx)
    fixed: Sequence[Example] = ctx.examples
    per_task: list[Example] = []
    if task_examples is not None:
        fixed, per_task = [], list(task_examples)
        if "task_examples" not in template_variables(ctx):
            fixed, per_task = per_task, []
    variables = {
        "task": task,
        "task_type": task_type,
        "version": ctx.version,
        "instructions": [Instruction(id=i.id, text=_one_line(i.text)) for i in ctx.instructions],
        "examples": [_example_view(e) for e in fixed],
        "task_examples": [_example_view(e) for e in per_task],
        "entries": [PromptEntry(e.id, e.section, prompt_text(e), e.status == "candidate") for e in entries],
        "tools": effective_tools(ctx, tools),
    }
    try:
        return template.render(**variables)
    except Exception as exc:  # a broken template is a user error when it points into the template
        line = template_error_line(exc, template.filename or "")
        if not isinstance(exc, TemplateError) and line is None:
            raise
        raise FileFormatError(ctx.template_path, line, f"template error: {exc}") from None
