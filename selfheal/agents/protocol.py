"""What selfheal needs from an agent, and nothing more.

An agent plug-in classifies tasks, opens an environment for one run (simulated
from a scenario file, or real), exposes its tools as LangChain tools, verifies
the outcome from evidence in that environment (never from the model's claim),
and owns the schema of its own example files. ``prewarm`` is optional.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from selfheal.config import Settings


@dataclass(frozen=True)
class CheckResult:
    """One state check on the environment after the run."""

    description: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """Evidence-based outcome. ``passed`` is None when the environment has no checks."""

    passed: bool | None
    checks: list[CheckResult] = field(default_factory=list)
    summary: str = ""


@runtime_checkable
class AgentSession(Protocol):
    """One environment for one run: its tools, then a verification of its final state."""

    task: str
    task_type: str
    scenario: str | None
    tools: list[BaseTool]

    def verify(self, answer: str = "") -> Verdict:
        """Judge the run from the environment's state; ``answer`` is the agent's final answer."""
        ...

    def close(self) -> None:
        """Release the environment (idempotent)."""
        ...


@runtime_checkable
class AgentPlugin(Protocol):
    """An agent selfheal can run, evaluate and improve (registered by entry point or factory)."""

    name: str

    def classify(self, task: str) -> str:
        """task text -> task_type (e.g. lambda_timeout); cheatsheet entries and metrics key on it."""
        ...

    def open(self, settings: Settings, *, task: str | None, scenario: str | None) -> AgentSession:
        """Open an environment. With ``scenario`` the task defaults to the scenario's task."""
        ...

    def tool_names(self) -> list[str]:
        """Names of the agent's tools, without opening an environment (for lint)."""
        ...

    def list_scenarios(self, settings: Settings) -> list[str]:
        """Names of the scenarios ``open(scenario=...)`` accepts."""
        ...

    def describe_scenarios(self, settings: Settings) -> list[dict[str, str]]:
        """name, task_type and task (plus anything useful) of every scenario, for listings."""
        ...

    def validate_scenario(self, path: Path) -> int:
        """Validate an example file with agent-owned keys; return its number of state checks.

        Raises :class:`selfheal.errors.FileFormatError` (``file:line: message``) on a bad file.
        """
        ...


#: Method names every plug-in must have (``prewarm`` is optional).
REQUIRED_METHODS: tuple[str, ...] = (
    "classify",
    "open",
    "tool_names",
    "list_scenarios",
    "describe_scenarios",
    "validate_scenario",
)


class PrematureAnswerAware(Protocol):
    """Optional session hook: say when answering now would be premature (see ``selfheal.agent.nudges``).

    Called with the run's tool calls so far (name, args, status, output) when the
    model answers; a returned line is given back to the model once (``thresholds.nudges``),
    e.g. "the task asks for a change and none was made". Return None to accept the answer.
    """

    def premature_answer(self, tool_calls: list[dict[str, Any]]) -> str | None: ...


class Prewarmable(Protocol):
    """Optional plug-in hook: keep expensive environment machinery started for a whole experiment."""

    def prewarm(self, settings: Settings) -> AbstractContextManager[None]: ...
