"""Shared helpers for the lambda_ops tests: scenario paths, tool calls, intended fixes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from langchain_core.messages import ToolMessage

from selfheal.domains.lambda_ops.aws import SimulatedAccount
from selfheal.domains.lambda_ops.scenario import Scenario, load_scenario
from selfheal.domains.lambda_ops.tools import build_tools

REPO = Path(__file__).resolve().parents[2]
SCENARIOS_DIR = REPO / "evals" / "lambda_ops" / "scenarios"

# (tool, args) steps per scenario. "fix" is what a careful operator does; "wrong" is the
# tempting mistake the scenario is built to catch, "revert" undoes it; "decoy" is a
# collateral change that must fail the run on its own.
Step = tuple[str, dict[str, Any]]
PLAYBOOK: dict[str, dict[str, list[Step]]] = {
    "lambda_timeout": {
        "wrong": [("update_memory", {"function_name": "checkout-api", "memory_mb": 1024})],
        "revert": [("update_memory", {"function_name": "checkout-api", "memory_mb": 512})],
        "fix": [("update_timeout", {"function_name": "checkout-api", "timeout_s": 10})],
        "decoy": [("update_timeout", {"function_name": "checkout-worker", "timeout_s": 10})],
    },
    "lambda_memory": {
        "wrong": [("update_timeout", {"function_name": "image-resizer", "timeout_s": 120})],
        "revert": [("update_timeout", {"function_name": "image-resizer", "timeout_s": 30})],
        "fix": [("update_memory", {"function_name": "image-resizer", "memory_mb": 1024})],
        "decoy": [("update_memory", {"function_name": "thumbnail-cache", "memory_mb": 512})],
    },
    "lambda_cold_start": {
        "wrong": [("update_memory", {"function_name": "search-api", "memory_mb": 2048})],
        "revert": [("update_memory", {"function_name": "search-api", "memory_mb": 1024})],
        "fix": [("set_provisioned_concurrency", {"function_name": "search-api", "qualifier": "live", "concurrency": 8})],
        "decoy": [("update_memory", {"function_name": "search-indexer", "memory_mb": 3008})],
    },
    "lambda_throttling": {
        "wrong": [("set_reserved_concurrency", {"function_name": "orders-processor", "concurrency": 20})],
        "revert": [],
        "fix": [("set_reserved_concurrency", {"function_name": "orders-processor", "concurrency": 50})],
        "decoy": [("set_reserved_concurrency", {"function_name": "reports-api", "concurrency": 200})],
    },
    "lambda_cost": {
        "wrong": [("update_memory", {"function_name": "invoice-api", "memory_mb": 128})],
        "revert": [],
        "fix": [("update_memory", {"function_name": "invoice-api", "memory_mb": 512})],
        "decoy": [("update_memory", {"function_name": "invoice-exporter", "memory_mb": 1024})],
    },
    "lambda_errors": {
        "wrong": [("update_memory", {"function_name": "payments-api", "memory_mb": 2048})],
        "revert": [("update_memory", {"function_name": "payments-api", "memory_mb": 1024})],
        "fix": [("update_alias", {"function_name": "payments-api", "alias": "live", "version": 6})],
        "decoy": [("update_alias", {"function_name": "payments-webhook", "alias": "live", "version": "2"})],
    },
}


def scenario(name: str) -> Scenario:
    return load_scenario(SCENARIOS_DIR / f"{name}.yaml")


class Toolbox:
    """The tools of one account, invoked the way the agent loop invokes them (tool calls)."""

    def __init__(self, account: SimulatedAccount) -> None:
        self.account = account
        self.tools = {t.name: t for t in build_tools(account.clients)}
        self._n = 0

    def call(self, name: str, **args: Any) -> ToolMessage:
        self._n += 1
        msg = self.tools[name].invoke({"name": name, "args": args, "id": f"call-{self._n}", "type": "tool_call"})
        assert isinstance(msg, ToolMessage)
        return msg

    def ok(self, name: str, **args: Any) -> dict[str, Any]:
        """Call a tool that must succeed; its JSON result as a dict."""
        import json

        msg = self.call(name, **args)
        assert msg.status == "success", msg.content
        return json.loads(msg.content)

    def run(self, steps: list[Step]) -> None:
        for name, args in steps:
            self.ok(name, **args)


@contextmanager
def simulated(spec: Scenario | None, **kwargs: Any) -> Iterator[tuple[SimulatedAccount, Toolbox]]:
    with SimulatedAccount(spec, **kwargs) as account:
        yield account, Toolbox(account)
