"""Is the model's answer premature? The observation the loop gives back once before accepting it.

A small model often answers after one look: one empty log search, then "the
function looks fine". The loop asks again, at most ``thresholds.nudges``
times, with what it observed: the agent's own session says what a finished
run needs (its optional ``premature_answer`` hook: e.g. "the task asks for a
change and none was made", which only the agent can know), and, for any
agent, an empty last tool result is not evidence of anything yet. The nudge is
a user turn in the conversation and a line in the run record, so the trace
shows it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

EMPTY_RESULT = (
    "The last tool result was empty: nothing matched, which is not evidence either way. Before you "
    "answer, look again another way (another filter or pattern, a wider time range, another tool)."
)


REFUSED = "Not run again:"


def repeated_call(previous: Sequence[dict[str, Any]], call: dict[str, Any]) -> str | None:
    """The observation given instead of running ``call`` again when it repeats the call just made.

    At temperature 0 a small model that got an error (``no table named
    'sales'``) often sends the very same call until the step limit: the same
    arguments give the same result, so running it again only spends a step.
    The loop answers with the earlier result and asks for another call. Only
    the immediately preceding call counts: reading a configuration again after
    a change is legitimate.
    """
    if not previous:
        return None
    if call_key(previous[-1]) != call_key(call):
        return None
    ran = previous[-1]  # the call that really ran: refusals in a row quote it, not each other
    for earlier in reversed(previous):
        if call_key(earlier) != call_key(call):
            break
        ran = earlier
        if not str(earlier.get("output") or "").startswith(REFUSED):
            break
    return (
        f"{REFUSED} this exact {call.get('name')} call was just made (step {ran.get('step')}) and returned: "
        f"{str(ran.get('output') or '')[:300]} — the same arguments give the same result. Use what it said: "
        "change the arguments, call another tool, or answer."
    )


def call_key(call: dict[str, Any]) -> str:
    """A call's identity: its tool and arguments (argument order does not matter)."""
    return json.dumps([call.get("name"), call.get("args") or {}], sort_keys=True, default=str)


def same_result(step: int, content: Any) -> str:
    """The tool message for a call made earlier in the run that returned exactly the same again.

    A small model circles (customers, segments, regions, employees, customers, ...):
    each call differs from the one before it, so only the earlier identical call
    with the identical result shows that nothing was learned. A call whose result
    changed (a configuration read again after an update) is not flagged.
    """
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    head = text if len(text) <= 300 else text[:300] + "…"
    return (f"Same result as step {step}, where this exact call was already made: {head} — calling it again "
            "tells you nothing new. Use what you have: change the arguments, call another tool, or answer.")


def looks_empty(content: Any) -> bool:
    """A tool result that found nothing: empty text, ``[]``/``{}``, or an object whose lists are all empty."""
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    text = text.strip()
    if text in ("", "[]", "{}", "null", "None"):
        return True
    try:
        data = json.loads(text)
    except ValueError:
        return False
    if isinstance(data, list):
        return not data
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        return bool(lists) and all(not v for v in lists)
    return False


def _last_tool_result(messages: Sequence[BaseMessage]) -> ToolMessage | None:
    """The last tool result before the model's final reply (None when that reply followed no call)."""
    for msg in reversed(messages[:-1] if messages and isinstance(messages[-1], AIMessage) else messages):
        if isinstance(msg, ToolMessage):
            return msg
        if isinstance(msg, AIMessage):
            return None
    return None


def premature_answer(session: Any, messages: Sequence[BaseMessage], tool_calls: Sequence[dict[str, Any]]) -> str | None:
    """The observation to give back if answering now is premature, else None."""
    hook = getattr(session, "premature_answer", None)
    if callable(hook):
        said = hook([dict(c) for c in tool_calls])
        if said:
            return str(said)
    last = _last_tool_result(messages)
    if last is not None and getattr(last, "status", "success") != "error" and looks_empty(last.content):
        return EMPTY_RESULT
    return None
