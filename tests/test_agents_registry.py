"""Agent plug-ins are found by entry point or ``agent_factory``; every failure is one readable line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfheal.agents import AgentPlugin, get_agent
from selfheal.agents.registry import agent_sources
from selfheal.cli.main import main
from selfheal.config import load_settings
from selfheal.errors import ConfigError

_GOOD = '''
from selfheal.agents import Verdict


class Session:
    def __init__(self, task):
        self.task = task
        self.task_type = "general"
        self.scenario = None
        self.tools = []

    def verify(self, answer=""):
        return Verdict(None, [], "nothing to check")

    def close(self):
        pass


class Agent:
    name = "team_bot"

    def classify(self, task):
        return "general"

    def open(self, settings, *, task=None, scenario=None):
        return Session(task)

    def tool_names(self):
        return []

    def list_scenarios(self, settings):
        return []

    def describe_scenarios(self, settings):
        return []

    def validate_scenario(self, path):
        return 0


def make_agent():
    return Agent()


def broken():
    raise RuntimeError("no credentials for the ticket system")


def not_an_agent():
    return object()
'''


def _repo(tmp_path: Path, factory: str | None, agent: str = "team_bot") -> Path:
    lines = [f"agent: {agent}"]
    if factory:
        lines.append(f"agent_factory: {factory}")
    (tmp_path / "selfheal.yaml").write_text("\n".join(lines) + "\n")
    (tmp_path / "team_bot_agent.py").write_text(_GOOD)
    return tmp_path


def test_a_factory_in_the_repository_is_imported_with_the_root_on_sys_path(tmp_path: Path) -> None:
    settings = load_settings(_repo(tmp_path, "team_bot_agent:make_agent"), env={})
    agent = get_agent(settings)
    assert isinstance(agent, AgentPlugin) and agent.name == "team_bot"
    session = agent.open(settings, task="do it", scenario=None)
    assert session.verify("done").passed is None


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("no_such_module_xyz:make_agent", ["cannot import", "no_such_module_xyz", "ModuleNotFoundError"]),
        ("team_bot_agent:missing", ["cannot import", "AttributeError", "missing"]),
        ("team_bot_agent:broken", ["raised RuntimeError", "no credentials"]),
        ("team_bot_agent:not_an_agent", ["not an AgentPlugin", "missing: name, classify"]),
    ],
)
def test_factory_failures_are_one_line_config_errors(tmp_path: Path, factory: str, words: list[str]) -> None:
    settings = load_settings(_repo(tmp_path, factory), env={})
    with pytest.raises(ConfigError) as info:
        get_agent(settings)
    message = info.value.message
    assert "\n" not in message and message.startswith("agent 'team_bot': ")
    assert factory in message
    for word in words:
        assert word in message


def test_unknown_agent_lists_the_known_ones(tmp_path: Path) -> None:
    settings = load_settings(_repo(tmp_path, None, agent="support_bot"), env={})
    with pytest.raises(ConfigError) as info:
        get_agent(settings)
    assert "agent 'support_bot': no such agent (known: " in info.value.message
    assert "agent_factory" in info.value.message


def test_a_malformed_factory_setting_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _repo(tmp_path, "just_a_module")
    with pytest.raises(SystemExit) as info:
        main(["-C", str(tmp_path), "agents"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "agent_factory" in err and "module:factory" in err and "Traceback" not in err


def test_agents_command_lists_the_configured_factory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _repo(tmp_path, "team_bot_agent:make_agent")
    with pytest.raises(SystemExit) as info:
        main(["-C", str(tmp_path), "agents", "--json"])
    assert info.value.code == 0
    rows = json.loads(capsys.readouterr().out)
    mine = [r for r in rows if r["name"] == "team_bot"]
    assert mine == [
        {"name": "team_bot", "kind": "factory", "target": "team_bot_agent:make_agent",
         "dist": None, "version": None, "configured": True}
    ]
    settings = load_settings(tmp_path, env={})
    assert agent_sources(settings)[0].describe() == "agent_factory team_bot_agent:make_agent"


def test_global_agent_option_selects_another_agent_of_the_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _repo(tmp_path, "team_bot_agent:make_agent")
    # the file's factory belongs to the file's agent: another agent is looked up by name
    with pytest.raises(SystemExit) as info:
        main(["-C", str(tmp_path), "--agent", "support_bot", "scenarios"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: agent 'support_bot': no such agent") and err.count("\n") == 1

    (tmp_path / "selfheal.yaml").write_text(
        "agent: support_bot\nagent_factory:\n  team_bot: team_bot_agent:make_agent\n"
    )
    monkeypatch.setenv("SELFHEAL_AGENT", "support_bot")
    with pytest.raises(SystemExit) as info:
        main(["-C", str(tmp_path), "--agent", "team_bot", "scenarios", "--json"])
    assert info.value.code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out) == []
    settings = load_settings(tmp_path, env={}, overrides={"agent": "team_bot"})
    assert settings.agent == "team_bot" and get_agent(settings).name == "team_bot"


def test_a_bad_agent_option_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _repo(tmp_path, None)
    with pytest.raises(SystemExit) as info:
        main(["-C", str(tmp_path), "--agent", "no spaces please", "agents"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: agent 'no spaces please': ") and err.count("\n") == 1
