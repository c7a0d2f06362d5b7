"""lambda_ops is found as an installed plug-in and owns its scenario files' schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.lambda_ops import SCENARIOS_DIR

from selfheal import AgentPlugin, FileFormatError, Settings, get_agent
from selfheal.agents.registry import agent_sources


def test_the_entry_point_names_its_distribution() -> None:
    source = {s.name: s for s in agent_sources(Settings())}["lambda_ops"]
    assert (source.kind, source.target, source.dist) == ("entry_point", "lambda_ops.plugin:make_agent", "selfheal-lambda-ops")
    assert isinstance(get_agent(Settings()), AgentPlugin)


def test_validate_scenario_counts_checks_and_reports_file_line(tmp_path: Path) -> None:
    agent = get_agent(Settings())
    text = (SCENARIOS_DIR / "lambda_timeout.yaml").read_text()
    assert agent.validate_scenario(SCENARIOS_DIR / "lambda_timeout.yaml") >= 1
    bad = tmp_path / "lambda_timeout.yaml"
    bad.write_text(text.replace("functions:", "functionz:", 1))
    with pytest.raises(FileFormatError) as info:
        agent.validate_scenario(bad)
    assert str(info.value).startswith(f"{bad}:") and "functionz" in str(info.value)


def test_prewarm_keeps_the_simulated_account_started() -> None:
    agent = get_agent(Settings())
    with agent.prewarm(Settings()):  # type: ignore[attr-defined]
        session = agent.open(Settings(), task="list my functions", scenario=None)
        session.close()


def test_the_agent_uses_only_selfheals_public_api() -> None:
    import ast

    public = {"selfheal", "selfheal.errors", "selfheal.yamlio"}
    package = Path(__file__).resolve().parents[1] / "lambda_ops"
    used: set[str] = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "selfheal":
                used.add(node.module)
            elif isinstance(node, ast.Import):
                used.update(a.name for a in node.names if a.name.split(".")[0] == "selfheal")
    assert used and used <= public, sorted(used - public)
