"""The context of a run for graphs that build their own prompts.

A team whose graph assembles its own messages still wants selfheal's context:
the rendered system prompt (``prompts/<agent>/``), the cheatsheet entries
retrieved for the task, and afterwards, which of them the answer relied on.
:func:`prepare_context` gives all of it as one value; :func:`context_node`
is the same as a LangGraph node that writes it into the graph's state. The
versions returned are the ones a trace of the run should carry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from selfheal.agents.protocol import AgentPlugin
    from selfheal.config import Settings


@dataclass(frozen=True)
class PreparedEntry:
    """A retrieved cheatsheet entry as a prompt shows it (learned/taught text inside the untrusted marker)."""

    id: str
    section: str
    text: str
    candidate: bool
    score: float


@dataclass(frozen=True)
class PreparedContext:
    """Everything selfheal would put in front of the model for ``task``."""

    task: str
    task_type: str
    system_prompt: str
    entries: list[PreparedEntry] = field(default_factory=list)
    context_version: str = ""
    # The few-shot examples retrieved for this task (ids); None: all of them are in the fixed part.
    examples: list[str] | None = None
    cheatsheet_version: str = ""

    def used_entries(self, answer: str) -> list[str]:
        """The retrieved entries the answer's ``USED:`` line names (unknown ids dropped)."""
        from selfheal.agent.nodes import parse_used_entries

        used, _unknown = parse_used_entries(answer, {e.id for e in self.entries})
        return used

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_context(
    settings: Settings,
    task: str,
    *,
    task_type: str | None = None,
    agent: AgentPlugin | None = None,
    tools: Sequence[BaseTool] | None = None,
) -> PreparedContext:
    """Render the agent's system prompt for ``task`` with the entries retrieved for it.

    ``task_type`` defaults to the agent's classifier; ``tools`` (default: the
    agent's tool names, undescribed) supply the descriptions the template
    shows, with ``context.yaml``'s overrides applied.
    """
    from selfheal.agent.nodes import rank_entries, retrieve_task_examples
    from selfheal.agents.registry import get_agent
    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.context.loader import load_context
    from selfheal.context.render import prompt_text, render_system_prompt
    from selfheal.versioning import content_version

    plugin = agent or get_agent(settings)
    kind = task_type or plugin.classify(task)
    ctx = load_context(settings.prompts_dir)
    cheatsheet = load_cheatsheet(settings.cheatsheet_dir)
    hits = rank_entries(settings, cheatsheet, task, kind, settings.thresholds.top_k)
    described = ([(t.name, t.description or "") for t in tools] if tools is not None
                 else [(name, "") for name in plugin.tool_names()])
    examples = retrieve_task_examples(settings, ctx, task, kind)
    prompt = render_system_prompt(ctx, task=task, task_type=kind, entries=[h["entry"] for h in hits],
                                  tools=described, task_examples=examples)
    return PreparedContext(
        task=task,
        task_type=kind,
        system_prompt=prompt,
        entries=[PreparedEntry(h["entry"].id, h["entry"].section, prompt_text(h["entry"]), bool(h["candidate"]),
                               round(float(h["score"]), 4)) for h in hits],
        context_version=content_version(settings.prompts_dir, settings.root),
        examples=None if examples is None else [e.id for e in examples],
        cheatsheet_version=content_version(settings.cheatsheet_dir, settings.root),
    )


def context_node(
    settings: Settings,
    *,
    agent: AgentPlugin | None = None,
    task_key: str = "task",
    output_key: str = "selfheal_context",
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A LangGraph node: reads the task from ``state[task_key]`` (or the last human message) and
    writes :meth:`PreparedContext.as_dict` to ``state[output_key]`` for the graph's own prompt."""

    def node(state: dict[str, Any]) -> dict[str, Any]:
        task = state.get(task_key)
        if not task:
            humans = [m for m in state.get("messages", []) if getattr(m, "type", "") == "human"]
            task = str(humans[-1].content) if humans else ""
        return {output_key: prepare_context(settings, str(task), agent=agent).as_dict()}

    return node
