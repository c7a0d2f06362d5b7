"""The words an agent's runs can be asked about: its task types, its tools, its own name.

``ask`` matches question phrases against these, so "failed revenue questions"
means ``task_type = revenue`` for sql_analyst and "timeouts" means
``lambda_timeout`` for lambda_ops, without naming any agent in code. Task
types come from the plug-in's scenarios, the cheatsheet and recent traces;
tools from the plug-in. A plug-in that cannot be loaded still leaves the
cheatsheet and the traces to learn from.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfheal.config import Settings

log = logging.getLogger("selfheal.interact")

__all__ = ["Vocabulary", "agent_vocabulary", "stem", "words"]

#: Recent root runs scanned for task types.
_TRACE_SAMPLE = 500


@dataclass(frozen=True)
class Vocabulary:
    agent: str
    task_types: tuple[str, ...] = ()
    tools: tuple[str, ...] = ()
    #: Words naming the agent or its whole domain ("lambda", "ops"): they select nothing.
    agent_words: frozenset[str] = field(default_factory=frozenset)


def words(text: str) -> list[str]:
    """Lower-case words (letters and digits) of ``text``."""
    return re.findall(r"[a-z0-9]+", text.lower())


def stem(word: str) -> str:
    """A crude English stem, enough to match "timeouts"/"timeout", "refunds"/"refund"."""
    for suffix in ("ies", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "ies":
                return word[:-3] + "y"
            if suffix == "es" and not word.endswith(("ses", "xes", "zes", "ches", "shes")):
                continue
            return word[: -len(suffix)]
    return word


def agent_vocabulary(settings: Settings, reader: Any | None = None) -> Vocabulary:
    """Task types and tools of the configured agent (plug-in, cheatsheet, traces)."""
    task_types: set[str] = set()
    tools: list[str] = []
    try:
        from selfheal.agents.registry import get_agent

        plugin = get_agent(settings)
        tools = list(plugin.tool_names())
        for row in plugin.describe_scenarios(settings):
            if row.get("task_type"):
                task_types.add(str(row["task_type"]))
    except Exception as exc:  # the traces and the cheatsheet still say a lot
        log.info("agent plug-in unavailable for the vocabulary: %s", exc)
    try:
        from selfheal.cheatsheet.store import load_cheatsheet

        task_types.update(e.task_type for e in load_cheatsheet(settings.cheatsheet_dir) if not e.is_general)
    except Exception as exc:
        log.info("cheatsheet unavailable for the vocabulary: %s", exc)
    if reader is not None:
        try:
            for run in reader.list_runs(settings.tracing.project, is_root=True, limit=_TRACE_SAMPLE):
                tt = run.metadata.get("task_type")
                if isinstance(tt, str) and tt:
                    task_types.add(tt)
            for run in reader.list_runs(settings.tracing.project, run_type="tool", is_root=False,
                                        limit=_TRACE_SAMPLE):
                if run.name and run.name not in tools:
                    tools.append(run.name)
        except Exception as exc:
            log.info("traces unavailable for the vocabulary: %s", exc)
    task_types.discard("general")
    task_types.discard("unknown")
    agent_words = set(words(settings.agent.replace("_", " ")))
    token_sets = [set(words(t.replace("_", " "))) for t in task_types]
    if len(token_sets) > 1:  # a word every task type shares names the domain ("lambda")
        agent_words |= set.intersection(*token_sets)
    return Vocabulary(
        agent=settings.agent,
        task_types=tuple(sorted(task_types)),
        tools=tuple(dict.fromkeys(tools)),
        agent_words=frozenset(agent_words),
    )
