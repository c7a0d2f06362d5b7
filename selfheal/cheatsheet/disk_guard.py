"""The content guard on files: entry and context texts are checked when they are loaded, not only when learned.

A curator's ADD passes :class:`~selfheal.cheatsheet.guard.ContentGuard`
before it is written; an entry written by hand, merged from a pull request or
edited in place never did. Loading runs the same guard over every text that
can reach the prompt -- the fields of every non-retired entry, and the
context's instructions, examples and tool descriptions -- so an injection on
disk is refused with ``file:line: field: category: ...`` and the run does not
start (the choice here is *refuse*, not quarantine: a reviewer fixes or
deletes the file; ``selfheal lint`` reports the same lines as errors).
Length is not judged here (the token budget is lint's), and there is no tool
list at load time: destructive calls in any spelling, shell and code
execution are refused, calls to other tools are lint's warnings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from selfheal.cheatsheet.guard import ContentGuard
from selfheal.cheatsheet.model import EntryBase

__all__ = ["context_text_problems", "entry_problems", "example_problems", "text_problems"]

#: Big enough that no file text is refused for its length (the guard skips scanning past 20x this).
_MAX_CHARS = 1_000_000
_GUARD: ContentGuard | None = None


def _guard() -> ContentGuard:
    global _GUARD
    if _GUARD is None:  # built once: compiling the redactor's patterns is the slow part
        _GUARD = ContentGuard(max_chars=_MAX_CHARS, min_chars=0)
    return _GUARD


def text_problems(text: str, *, field: str = "") -> list[str]:
    """The guard's rejection reasons for one text (``"injection: 'ignore all…'"``), length excepted."""
    verdict = _guard().check(text, field=field)
    if verdict.ok:
        return []
    return [r for r in verdict.reasons if not r.startswith("length:")]


def entry_problems(entry: EntryBase) -> list[tuple[str, str]]:
    """(field, reason) for every field of an entry the guard refuses; retired entries never reach a prompt."""
    if entry.status == "retired":
        return []
    found: list[tuple[str, str]] = []
    for name in entry.content_fields():
        found += [(name, r) for r in text_problems(str(getattr(entry, name)), field=name)]
    return found


def _example_texts(example: Any) -> Iterator[tuple[str, str]]:
    yield "task", example.task
    yield "trajectory", example.trajectory


def example_problems(example: Any) -> list[tuple[str, str]]:
    """(field, reason) for every text of one few-shot example the guard refuses, as loading its context would."""
    return [(name, r) for name, text in _example_texts(example) for r in text_problems(text, field=name)]


def _context_texts(context: Any) -> Iterator[tuple[tuple[Any, ...], str]]:
    for i, ins in enumerate(context.instructions):
        yield ("instructions", i, "text"), ins.text
    for i, ex in enumerate(context.examples):
        for name, text in _example_texts(ex):
            yield ("examples", i, name), text
    for name, desc in context.tools.items():
        yield ("tools", name), desc


def context_text_problems(context: Any) -> list[tuple[tuple[Any, ...], str]]:
    """(key path, reason) for every instruction, example and tool description of a context the guard refuses."""
    return [(loc, r) for loc, text in _context_texts(context) for r in text_problems(text, field=loc[-1])]
