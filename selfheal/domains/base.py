"""What the agent needs from an operational domain, and nothing more.

A domain classifies tasks, opens an environment for one run (simulated from a
scenario, or real), exposes its tools as LangChain tools, and verifies the
outcome from evidence in that environment — never from the model's claim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

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
class DomainSession(Protocol):
    """One environment for one run: its tools, then a verification of its final state."""

    task: str
    task_type: str
    scenario: str | None
    tools: list[BaseTool]

    def verify(self) -> Verdict: ...

    def close(self) -> None: ...


class Domain(Protocol):
    name: str

    def classify(self, task: str) -> str:
        """task text -> task_type (e.g. lambda_timeout)."""
        ...

    def open(self, settings: Settings, *, task: str | None, scenario: str | None) -> DomainSession:
        """Open an environment. With ``scenario`` the task defaults to the scenario's task."""
        ...

    def list_scenarios(self, settings: Settings) -> list[str]: ...

    def describe_scenarios(self, settings: Settings) -> list[dict[str, str]]:
        """name, task_type and task of every scenario (for listings)."""
        ...

    def tool_names(self) -> list[str]:
        """Names of the domain's tools, without opening an environment (for lint)."""
        ...


def get_domain(name: str) -> Domain:
    """The registered domain for an agent name (lazy import: domains pull boto3/moto)."""
    from selfheal.errors import ConfigError

    if name == "lambda_ops":
        from selfheal.domains.lambda_ops.domain import LambdaOpsDomain

        return LambdaOpsDomain()
    raise ConfigError(f"agent '{name}': no such domain (known: lambda_ops)")
