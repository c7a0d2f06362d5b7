"""A verified run -> a demonstration: the tool calls that mattered, redacted, within a token bound.

A small model copies what it is shown. A raw trajectory teaches its noise as
well (the call that failed, the look-up repeated three times, the table it
described and never used), and it costs prompt tokens on every run. So:

1. failed calls go (an error status, or a result that is an error message);
2. repeated identical calls (same tool, same arguments) keep only the first;
3. the last call stays (the change that fixed it, the query that answered);
4. an earlier call stays when its result was *used*: it tells a word (a
   name, a column, a number — beyond echoing its own arguments) found in the
   arguments of a call kept after it, or in the final answer. This is
   followed backwards, so the look-up that found the table a later look-up
   described is kept too; a search that found nothing tells nothing.

It knows no agent's tools: what was used is read from the data flow between
calls. Every text is redacted before it can reach ``context.yaml``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from selfheal.context.model import DemoProvenance
from selfheal.optimize.demos.model import DemoCall, Demonstration, demo_id

if TYPE_CHECKING:
    from selfheal.redact import Redactor

#: Result text kept per call, then shorter while a demo is over its token bound.
RESULT_CHARS = (160, 80, 40, 0)
ANSWER_CHARS = 300
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*[A-Za-z0-9]|\d")
_USED_LINE = re.compile(r"^\s*\**USED\**\s*:.*$", re.IGNORECASE | re.MULTILINE)
# Words that say nothing about which result was used (SQL keywords, JSON literals, filler).
_COMMON = frozenset("""
select from where join left right inner outer on and or not null is in as by group order having limit
distinct count sum avg min max case when then else end like between asc desc with union all
true false none the a an of to for with was is are it this that and or no yes ok
""".split())


def _salient(word: str) -> bool:
    return word not in _COMMON and (len(word) >= 3 or (word.isdigit() and len(word) >= 2))


def _words(value: Any) -> set[str]:
    """Names and numbers in a value; ``c.email`` also counts as ``email``, ``timeout_s`` as ``timeout``.

    Of a dict of arguments only the values count (the keys are the tool's schema, not data).
    """
    if isinstance(value, dict):
        value = list(value.values())
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    out: set[str] = set()
    for word in _WORD.findall(text.lower()):
        out.update(w for w in (word, *re.split(r"[._]", word)) if _salient(w))
    return out


def _failed(call: dict[str, Any]) -> bool:
    if str(call.get("status") or "success") == "error":
        return True
    return str(call.get("output") or "").lstrip().lower().startswith("error")


def _key(call: dict[str, Any]) -> str:
    return f"{call.get('name')}\0{json.dumps(call.get('args'), sort_keys=True, default=str)}"


def shorten_calls(tool_calls: Sequence[dict[str, Any]], final_answer: str) -> list[dict[str, Any]]:
    """The calls that mattered, in their order (see the module's rules)."""
    seen: set[str] = set()
    calls: list[dict[str, Any]] = []
    for call in tool_calls:
        if _failed(call) or _key(call) in seen:
            continue
        seen.add(_key(call))
        calls.append(dict(call))
    if not calls:
        return []
    kept = [len(calls) - 1]
    needed = _words(calls[-1].get("args")) | _words(final_answer)
    for i in range(len(calls) - 2, -1, -1):
        # What a result says beyond echoing its own arguments (a search that found nothing says nothing).
        told = _words(calls[i].get("output") or "") - _words(calls[i].get("args"))
        if told & needed:
            kept.append(i)
            needed |= _words(calls[i].get("args"))
    return [calls[i] for i in sorted(kept)]


def _one_line(text: str, limit: int) -> str:
    line = " ".join(str(text).split())
    if limit <= 0:
        return ""
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def answer_line(final_answer: str) -> str:
    """The final answer without its ``USED:`` line, on one line."""
    return _one_line(_USED_LINE.sub("", final_answer or ""), ANSWER_CHARS)


def build_demonstration(
    *,
    task: str,
    task_type: str,
    tool_calls: Sequence[dict[str, Any]],
    final_answer: str,
    used_entries: Sequence[str],
    provenance: DemoProvenance,
    redactor: Redactor,
    max_tokens: int,
) -> Demonstration | None:
    """The demonstration of one verified run, or None when nothing fits ``max_tokens``.

    Over the bound, results are cut shorter (160, 80, 40 characters, none),
    then the earliest kept look-ups are dropped; the last call never is.
    """
    kept = shorten_calls(tool_calls, final_answer)
    if not kept:
        return None
    dropped = len(tool_calls) - len(kept)
    safe_task = redactor.redact_text(" ".join(task.split()))
    answer = redactor.redact_text(answer_line(final_answer))
    safe_calls = [
        (str(c.get("name") or "?"), redactor.redact(c.get("args")), redactor.redact_text(str(c.get("output") or "")))
        for c in kept
    ]
    while safe_calls:
        for chars in RESULT_CHARS:
            calls = [DemoCall(name=n, args=a, result=_one_line(r, chars)) for n, a, r in safe_calls]
            draft = Demonstration(id="draft", task=safe_task, task_type=task_type, calls=calls, answer=answer,
                                  used=list(used_entries), provenance=provenance, dropped_calls=dropped)
            if draft.tokens <= max_tokens:
                return draft.model_copy(update={"id": demo_id(task_type, safe_task, draft.trajectory)})
        if len(safe_calls) == 1:
            return None
        safe_calls = safe_calls[1:]
        dropped += 1
    return None
