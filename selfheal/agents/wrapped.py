"""A team's existing LangGraph graph as a selfheal agent, without rewriting it.

A team that already has a graph (a ``StateGraph`` over messages, or the agent
``langchain.agents.create_agent`` / ``langgraph.prebuilt.create_react_agent``
builds) keeps it. :func:`wrap_graph` turns it into an :class:`AgentPlugin`
whose sessions carry the graph as their ``executor``: selfheal renders the
system prompt from ``prompts/<name>/`` (instructions, examples, the retrieved
cheatsheet entries, the tool-description overrides), hands the graph
``{"messages": [system, task]}``, traces every node of it under the run,
verifies the outcome with the team's verifier, and curates online — the same
run record as ``selfheal run`` of a plug-in with its own tools.

Examples for ``selfheal eval`` are plain example files under
``evals/<name>/scenarios/`` (the shared header: name, task, task_type, split,
success, expect); ``selfheal run --scenario NAME`` runs one.

::

    graph = create_agent(model, tools)            # the team's agent, as it is
    agent = selfheal.wrap_graph(graph, name="support_bot", tools=tools, verify=refund_recorded)
    outcome = selfheal.run_task(selfheal.load_settings("."), "refund order 123", agent=agent)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.agents.protocol import Verdict
from selfheal.errors import FileFormatError, ScenarioError
from selfheal.yamlio import line_of, read_yaml

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from selfheal.config import Settings

#: The shared example header: the only keys a wrapped graph's example file may have.
_HEADER = ("id", "name", "task", "task_type", "split", "success", "expect", "metadata", "reference")

#: ``verify(answer)`` (or ``verify(answer, task)``): a Verdict, a bool, or None for "cannot tell".
Verifier = Callable[..., "Verdict | bool | None"]


def _as_verdict(value: Verdict | bool | None) -> Verdict:
    if isinstance(value, Verdict):
        return value
    if value is None:
        return Verdict(None, [], "the verifier could not tell")
    return Verdict(bool(value), [], "the verifier accepted the outcome" if value else "the verifier rejected it")


def _with_task(fn: Verifier) -> Callable[[str, str], Verdict | bool | None]:
    """``fn`` called as ``(answer, task)``, whichever of the two documented signatures it has
    (decided once, from its signature)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return lambda answer, task: fn(answer)
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return fn
    if sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 2:
        return fn
    return lambda answer, task: fn(answer)


class WrappedSession:
    """One run of a wrapped graph: its task, its tools (for descriptions), its executor and verifier."""

    def __init__(self, *, task: str, task_type: str, scenario: str | None, executor: Any,
                 tools: Sequence[BaseTool], verify: Callable[[str, str], Verdict | bool | None] | None) -> None:
        self.task = task
        self.task_type = task_type
        self.scenario = scenario
        self.executor = executor
        self.tools: list[BaseTool] = list(tools)
        self._verify = verify

    def verify(self, answer: str = "") -> Verdict:
        if self._verify is None:
            return Verdict(None, [], "no verifier: the outcome is unverified")
        return _as_verdict(self._verify(answer, self.task))

    def close(self) -> None:
        """Nothing to release: the graph belongs to the team."""


class WrappedAgent:
    """An :class:`~selfheal.agents.protocol.AgentPlugin` around a team's graph (see :func:`wrap_graph`)."""

    def __init__(self, graph: Any, *, name: str, tools: Sequence[BaseTool] = (), verify: Verifier | None = None,
                 classify: Callable[[str], str] | None = None) -> None:
        if not callable(getattr(graph, "invoke", None)):
            raise TypeError(f"wrap_graph: {type(graph).__name__} has no invoke(); pass a compiled graph or runnable")
        self.name = name
        self.graph = graph
        self.tools = list(tools)
        self._verify = _with_task(verify) if verify is not None else None
        self._classify = classify

    def classify(self, task: str) -> str:
        return self._classify(task) if self._classify is not None else "general"

    def _example(self, settings: Settings, scenario: str) -> dict[str, Any]:
        path = settings.scenarios_dir / f"{scenario}.yaml"
        if not path.is_file():
            known = ", ".join(self.list_scenarios(settings)) or "none"
            raise ScenarioError(f"agent '{self.name}': unknown scenario '{scenario}' (known: {known})")
        return self._read(path)

    def open(self, settings: Settings, *, task: str | None = None, scenario: str | None = None) -> WrappedSession:
        spec = self._example(settings, scenario) if scenario else {}
        if not task or not task.strip():
            if not spec:
                raise ScenarioError("nothing to do: give a task or a scenario")
            task = str(spec["task"])
        task_type = str(spec.get("task_type") or self.classify(task))
        return WrappedSession(task=task, task_type=task_type, scenario=scenario, executor=self.graph,
                              tools=self.tools, verify=self._verify)

    def tool_names(self) -> list[str]:
        return [t.name for t in self.tools]

    def list_scenarios(self, settings: Settings) -> list[str]:
        d = settings.scenarios_dir
        return sorted(p.stem for p in d.glob("*.yaml") if not p.name.startswith(("_", "."))) if d.is_dir() else []

    def describe_scenarios(self, settings: Settings) -> list[dict[str, str]]:
        rows = []
        for name in self.list_scenarios(settings):
            spec = self._example(settings, name)
            rows.append({k: str(spec.get(k, "")) for k in ("name", "task_type", "split", "task", "success")})
        return rows

    def validate_scenario(self, path: Path) -> int:
        """A wrapped graph's examples are the shared header only: any other key is a ``file:line`` error."""
        self._read(path)
        return 0

    def _read(self, path: Path) -> dict[str, Any]:
        raw = read_yaml(path)
        if not hasattr(raw, "get"):
            raise FileFormatError(path, 1, "an example must be a mapping")
        for key in raw:
            if key not in _HEADER:
                raise FileFormatError(path, line_of(raw, (key,)),
                                      f"unknown key '{key}' (an example of '{self.name}' has: {', '.join(_HEADER)})")
        return dict(raw)


def wrap_graph(graph: Any, *, name: str, tools: Sequence[BaseTool] = (), verify: Verifier | None = None,
               classify: Callable[[str], str] | None = None) -> WrappedAgent:
    """A team's messages-based graph as a selfheal agent named ``name``.

    ``tools``: the graph's tools, so their descriptions (with ``context.yaml``'s
    overrides) reach the system prompt and lint knows their names. ``verify``:
    judges a run from evidence — ``verify(answer, task)`` or ``verify(answer)``
    returning a :class:`Verdict`, a bool, or None ("cannot tell"). ``classify``:
    task text -> task type (default ``general``).
    """
    return WrappedAgent(graph, name=name, tools=tools, verify=verify, classify=classify)
