"""The lambda_ops domain: sessions from settings, isolation of simulated accounts, real mode."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers.lambda_ops import REPO, scenario

from selfheal.config import Settings, load_settings
from selfheal import AgentSession, Settings, get_agent
from lambda_ops import aws
from lambda_ops.aws import SimulatedAccount, real_clients
from selfheal.errors import ConfigError, ScenarioError


def settings(tmp_path: Path, **aws_over: object) -> Settings:
    over: dict[str, object] = {"paths": {"evals": str(REPO / "evals")}}
    if aws_over:
        over["aws"] = aws_over
    return load_settings(tmp_path, env={}, overrides=over)


def test_open_a_scenario_session(tmp_path: Path) -> None:
    domain = get_agent(Settings())
    s = settings(tmp_path)
    assert "lambda_timeout" in domain.list_scenarios(s)
    with domain.open(s, task=None, scenario="lambda_timeout") as session:  # type: ignore[attr-defined]
        assert isinstance(session, AgentSession)
        assert session.scenario == "lambda_timeout" and session.task_type == "lambda_timeout"
        assert session.task == scenario("lambda_timeout").task
        assert len(session.tools) == 12
        assert session.verify().passed is False
        state = session.export_state("checkout-api")
        assert state is not None and state["timeout_s"] == 3
        assert session.export_state("ghost") is None
        tools = {t.name: t for t in session.tools}
        tools["update_timeout"].invoke({"function_name": "checkout-api", "timeout_s": 12})
        verdict = session.verify()
        assert verdict.passed is True and verdict.summary == "all 4 checks passed"
    session.close()  # idempotent


def test_a_task_without_scenario_gets_an_empty_account_and_no_verdict(tmp_path: Path) -> None:
    domain = get_agent(Settings())
    session = domain.open(settings(tmp_path), task="orders-api is throttled, please fix", scenario=None)
    try:
        assert session.task_type == "lambda_throttling" and session.scenario is None
        listed = {t.name: t for t in session.tools}["list_functions"].invoke({})
        assert listed == {"count": 0, "functions": []}
        verdict = session.verify()
        assert verdict.passed is None and verdict.checks == []
    finally:
        session.close()


def test_nothing_to_do_and_unknown_scenarios_are_user_errors(tmp_path: Path) -> None:
    domain = get_agent(Settings())
    with pytest.raises(ScenarioError, match="give a task or a scenario"):
        domain.open(settings(tmp_path), task=None, scenario=None)
    with pytest.raises(ScenarioError, match=r"unknown scenario 'lambda_nope' \(known: .*lambda_timeout"):
        domain.open(settings(tmp_path), task=None, scenario="lambda_nope")


def test_simulated_accounts_are_isolated_and_leave_no_trace() -> None:
    env_before = dict(os.environ)
    first = SimulatedAccount(scenario("lambda_timeout")).open()
    second = SimulatedAccount(scenario("lambda_cost")).open()
    try:
        assert dict(os.environ) == env_before  # explicit fake credentials, no env patching
        names = lambda acct: sorted(  # noqa: E731
            f["FunctionName"] for f in acct.clients.lambda_.list_functions()["Functions"]
        )
        assert names(first) == ["checkout-api", "checkout-worker"]
        assert names(second) == ["invoice-api", "invoice-exporter"]
        first.close()
        assert names(second) == ["invoice-api", "invoice-exporter"]  # still served after the other closed
    finally:
        first.close()
        second.close()
    assert aws._mock_users == 0
    assert dict(os.environ) == env_before


def test_seeding_failures_are_scenario_errors_and_release_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    from lambda_ops import seed

    def boom(*_: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(seed, "_put_logs", boom)
    with pytest.raises(ScenarioError, match="scenario 'lambda_cost': seeding the simulated account failed: disk full"):
        SimulatedAccount(scenario("lambda_cost")).open()
    assert aws._mock_users == 0


def test_real_mode_uses_real_clients_and_does_not_judge_without_a_scenario(tmp_path: Path) -> None:
    s = settings(tmp_path, mode="real", region="eu-west-1")
    session = get_agent(Settings()).open(s, task="why is checkout-api slow?", scenario=None)
    try:
        assert session.clients.region == "eu-west-1"  # type: ignore[attr-defined]
        assert session.clients.lambda_.meta.region_name == "eu-west-1"  # type: ignore[attr-defined]
        assert session.account is None  # type: ignore[attr-defined]
        assert session.verify().passed is None
    finally:
        session.close()


def test_real_mode_with_an_unknown_profile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="AWS profile 'nope-profile' not found"):
        real_clients(settings(tmp_path, mode="real", profile="nope-profile"))


def test_scenarios_can_be_opened_concurrently() -> None:
    """A concurrent evaluation opens several simulated accounts from worker threads."""
    from concurrent.futures import ThreadPoolExecutor

    def run(name: str) -> tuple[str, list[str], bool | None]:
        spec = scenario(name)
        with SimulatedAccount(spec) as acct:
            names = sorted(f["FunctionName"] for f in acct.clients.lambda_.list_functions()["Functions"])
            from lambda_ops.checks import verify

            return name, names, verify(spec, acct.clients).passed

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(run, ["lambda_errors", "lambda_memory", "lambda_throttling"]))
    assert results == [
        ("lambda_errors", ["payments-api", "payments-webhook"], False),
        ("lambda_memory", ["image-resizer", "thumbnail-cache"], False),
        ("lambda_throttling", ["orders-processor", "reports-api"], False),
    ]
    assert aws._mock_users == 0


def test_scenario_listing_and_tool_names_need_no_environment(tmp_path: Path) -> None:
    domain = get_agent(Settings())
    rows = domain.describe_scenarios(settings(tmp_path))  # type: ignore[attr-defined]
    by_name = {r["name"]: r for r in rows}
    assert by_name["lambda_errors"]["task_type"] == "lambda_errors"
    assert by_name["lambda_errors"]["task"] == scenario("lambda_errors").task
    assert "update_alias" in domain.tool_names()  # type: ignore[attr-defined]
    assert aws._mock_users == 0
