"""The lambda_ops domain: AWS Lambda operations over boto3, simulated or real.

``open()`` gives one environment per run: a simulated account seeded from a
scenario (the default, offline), an empty simulated account, or the real
account of the configured profile. ``verify()`` judges the run from the
account's final state — only where a scenario says what success is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from selfheal import Verdict
from lambda_ops import scenario as scenarios
from lambda_ops.aws import AwsClients, SimulatedAccount, real_clients
from lambda_ops.checks import verify
from lambda_ops.classify import classify_task
from lambda_ops.scenario import Scenario
from lambda_ops.state import read_function_state
from lambda_ops.tools import TOOL_NAMES, build_tools
from selfheal.errors import FileFormatError, ScenarioError
from selfheal.yamlio import line_of, read_yaml

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from selfheal import Settings


#: tools that change the account (everything else only reads)
CHANGING_TOOLS = frozenset({"update_memory", "update_timeout", "set_reserved_concurrency",
                            "remove_reserved_concurrency", "update_alias", "set_provisioned_concurrency"})
#: task types that ask for a fix (``lambda_*``); others (cloudwatch_query, general) ask a question
FIX_TASK_PREFIX = "lambda_"
NO_CHANGE_NUDGE = (
    "You have not changed anything yet, but the task asks you to fix something. Based on the evidence "
    "above, make the change with the right tool now; if the evidence really shows that no change is "
    "needed, say why in one sentence."
)


class LambdaOpsSession:
    """One run's environment: the task, its tools, and a verifier of the final state."""

    def __init__(
        self,
        *,
        task: str,
        task_type: str,
        scenario: Scenario | None,
        clients: AwsClients,
        account: SimulatedAccount | None,
        mode: str,
    ) -> None:
        self.task = task
        self.task_type = task_type
        self.scenario: str | None = scenario.name if scenario is not None else None
        self.scenario_spec = scenario
        self.clients = clients
        self.account = account
        self.mode = mode
        self.tools: list[BaseTool] = build_tools(clients)
        self._closed = False

    @property
    def now(self) -> datetime:
        """The environment's current time: frozen for a simulated account (same on every replay)."""
        return self.clients.clock()

    def verify(self, answer: str = "") -> Verdict:
        """Checks of the scenario on the account's current state; passed=None without a scenario.

        ``answer`` (the agent's final answer) is not used: the account's state is the evidence.
        """
        if self.scenario_spec is None:
            return Verdict(None, [], f"no scenario: nothing to verify ({self.mode} account)")
        return verify(self.scenario_spec, self.clients)

    def premature_answer(self, tool_calls: list[dict[str, Any]]) -> str | None:
        """selfheal's nudge hook: a fix was asked for and no change went through."""
        if not self.task_type.startswith(FIX_TASK_PREFIX):
            return None
        changed = any(c.get("name") in CHANGING_TOOLS and c.get("status", "success") == "success"
                      and not str(c.get("output", "")).lstrip().startswith(("Error", '{"error"'))
                      for c in tool_calls)
        return None if changed else NO_CHANGE_NUDGE

    def export_state(self, function_name: str) -> dict[str, Any] | None:
        """A function's current configuration as a flat record (None if it does not exist)."""
        return read_function_state(self.clients.lambda_, function_name)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.account is not None:
            self.account.close()

    def __enter__(self) -> LambdaOpsSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class LambdaOpsDomain:
    """The reference operational domain (a selfheal AgentPlugin)."""

    name = "lambda_ops"

    def classify(self, task: str) -> str:
        return classify_task(task)

    def load_scenario(self, settings: Settings, name: str) -> Scenario:
        return scenarios.load_scenario(scenarios.scenario_path(settings.scenarios_dir, name))

    def open(self, settings: Settings, *, task: str | None = None, scenario: str | None = None) -> LambdaOpsSession:
        """Open an environment; with ``scenario`` the task defaults to the scenario's task."""
        spec = self.load_scenario(settings, scenario) if scenario else None
        if task is None or not task.strip():
            if spec is None:
                raise ScenarioError("nothing to do: give a task or a scenario")
            task = spec.task
        task_type = spec.task_type if spec is not None else self.classify(task)
        if settings.aws.mode == "real":
            clients = real_clients(settings)
            return LambdaOpsSession(
                task=task, task_type=task_type, scenario=spec, clients=clients, account=None, mode="real"
            )
        account = SimulatedAccount(spec, region=settings.aws.region).open()
        try:
            return LambdaOpsSession(
                task=task,
                task_type=task_type,
                scenario=spec,
                clients=account.clients,
                account=account,
                mode="simulated",
            )
        except BaseException:
            account.close()
            raise

    def list_scenarios(self, settings: Settings) -> list[str]:
        return scenarios.list_scenarios(settings.scenarios_dir)

    def describe_scenarios(self, settings: Settings) -> list[dict[str, str]]:
        """name, task_type, split, task and success of every scenario (a malformed file is an error)."""
        rows = []
        for name in self.list_scenarios(settings):
            spec = scenarios.load_scenario(settings.scenarios_dir / f"{name}.yaml")
            rows.append(
                {
                    "name": spec.name,
                    "task_type": spec.task_type,
                    "split": spec.split,
                    "task": spec.task,
                    "success": spec.success,
                }
            )
        return rows

    def tool_names(self) -> list[str]:
        """The tools' names without opening an environment (for linting context overrides)."""
        return list(TOOL_NAMES)

    def scenario_dir(self, settings: Settings) -> Path:
        return settings.scenarios_dir

    def validate_scenario(self, path: Path) -> int:
        """Validate a scenario file (the keys beyond selfheal's example header are ours).

        Returns the number of state checks (each ``checks:`` item, plus one for
        ``unchanged:``). A file with keys a scenario does not have and no
        ``functions:`` is reported at its first unknown key.
        """
        path = Path(path)
        raw = read_yaml(path)
        if hasattr(raw, "get") and "functions" not in raw:
            unknown = [k for k in raw if k not in scenarios.Scenario.model_fields and k != "reference"]
            if unknown:
                raise FileFormatError(
                    path,
                    line_of(raw, (unknown[0],)),
                    f"unknown key '{unknown[0]}' (a lambda_ops scenario declares functions:)",
                )
        try:
            spec = scenarios.load_scenario(path)
        except FileFormatError:
            raise
        except ScenarioError as exc:
            raise FileFormatError(path, None, exc.message) from None
        return len(spec.checks) + (1 if spec.unchanged else 0)

    @contextmanager
    def prewarm(self, settings: Settings) -> Iterator[None]:
        """Keep the simulated AWS mock started for a whole experiment.

        moto patches the process once for all open simulated accounts and stops
        when the last one closes; run one example after another and it would be
        started and stopped for every example (~80 ms each, a third of selfheal's
        per-example overhead). An empty account held open keeps it started.
        """
        if settings.aws.mode != "simulated":
            yield
            return
        with SimulatedAccount(None, region=settings.aws.region):
            yield


#: The plug-in's public name (the class is the reference implementation of selfheal's AgentPlugin).
LambdaOpsAgent = LambdaOpsDomain
