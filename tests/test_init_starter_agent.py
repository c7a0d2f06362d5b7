"""`selfheal init --agent NAME` for an agent that is not installed scaffolds a runnable starter plug-in.

End to end through the CLI, in a temporary git repository, against a loopback
OpenAI-compatible stub scripted with the model's tool calls.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from helpers.cli import run_cli
from helpers.gitrepo import git, isolate_git
from helpers.openai_stub import OpenAIStub



@pytest.fixture
def starter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    isolate_git(monkeypatch, tmp_path)
    root = tmp_path / "bot"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    code, out, err = run_cli(["init", str(root), "--agent", "support_bot", "--owner", "@acme"], capsys)
    assert code == 0, err
    assert "created support_bot_agent.py" in out
    assert "agent_factory: support_bot_agent:make_agent" in (root / "selfheal.yaml").read_text()
    yield root
    sys.modules.pop("support_bot_agent", None)


def test_the_starter_lints_lists_and_runs_a_free_task(
    starter: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(["-C", str(starter), "lint"], capsys)
    assert code == 0 and "0 error(s), 0 warning(s)" in err, out + err
    code, out, _ = run_cli(["-C", str(starter), "scenarios", "--json"], capsys)
    assert [r["name"] for r in json.loads(out)] == ["cancel-order-77", "refund-order-123"]

    with OpenAIStub() as stub:
        stub.reply_tool_calls([("lookup", {"key": "order-123"})])
        stub.reply_tool_calls([("update", {"key": "order-123", "value": "refunded"})])
        stub.reply_text("Refunded order 123.\nUSED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        monkeypatch.setenv("SELFHEAL_EMBEDDINGS_PROVIDER", "none")
        code, out, err = run_cli(["-C", str(starter), "run", "refund order 123", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["success"] is True and result["verified"] is False  # no scenario: judged from tool results
    assert [c["name"] for c in result["tool_calls"]] == ["lookup", "update"]
    assert "'paid'" not in json.dumps(result["tool_calls"])  # a free task starts from an empty store
    bound = {t["function"]["name"] for t in stub.bodies[0]["tools"]}
    assert bound == {"lookup", "update"}


def test_the_starter_scenarios_verify_from_state_and_evaluate(
    starter: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.setenv("SELFHEAL_EMBEDDINGS_PROVIDER", "none")
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        stub.reply_tool_calls([("update", {"key": "order-123", "value": "cancelled"})])
        stub.reply_text("Done.\nUSED: none")
        code, out, err = run_cli(["-C", str(starter), "run", "--scenario", "refund-order-123", "--json"], capsys)
        assert code == 1, err  # the wrong change: the verifier reads the state, not the claim
        result = json.loads(out)
        assert result["verified"] is True and result["success"] is False
        assert result["checks"][0]["detail"] == "found 'cancelled'"

        # eval: the two scenarios, then the plain example (test split, one job, in file order)
        stub.reply_tool_calls([("update", {"key": "order-77", "value": "cancelled"})])
        stub.reply_text("Cancelled order 77.\nUSED: none")
        stub.reply_tool_calls([("update", {"key": "order-123", "value": "refunded"})])
        stub.reply_text("Refunded order 123.\nUSED: none")
        stub.reply_text("I would read the current setting first.\nUSED: none")
        code, out, err = run_cli(["-C", str(starter), "eval", "--format", "json", "-j", "1"], capsys)
    assert code == 0, err
    report = json.loads(out)
    results = {r["name"]: r for r in report["experiment"]["results"]}
    assert list(results) == ["cancel-order-77", "refund-order-123", "example-explain-change"]
    assert all(r["passed"] and r["status"] == "ok" for r in results.values())
    assert results["cancel-order-77"]["scores"][0]["comment"] == "checks 2/2: all hold"


def test_a_second_agent_gets_its_own_cheatsheet_and_a_note(
    starter: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (starter / "selfheal.yaml").read_text()
    code, out, err = run_cli(["init", str(starter), "--agent", "billing-bot", "--force-missing-only"], capsys)
    assert code == 0, err
    assert (starter / "selfheal.yaml").read_text() == before
    assert (starter / "billing_bot_agent.py").is_file()
    assert (starter / "cheatsheet" / "billing-bot" / "heuristics" / "heur-example-read-before-write.yaml").is_file()
    assert "note: selfheal.yaml runs 'support_bot': add `agent_factory: {billing-bot: billing_bot_agent:make_agent}`" in out

    # as the note says: both factories in the file, then --agent picks one
    (starter / "selfheal.yaml").write_text(before.replace(
        "agent_factory: support_bot_agent:make_agent",
        "agent_factory: {support_bot: support_bot_agent:make_agent, billing-bot: billing_bot_agent:make_agent}"))
    code, out, err = run_cli(["-C", str(starter), "--agent", "billing-bot", "lint"], capsys)
    assert code == 0 and "0 error(s), 0 warning(s)" in err, out + err
    code, out, err = run_cli(["-C", str(starter), "lint"], capsys)  # the flat cheatsheet skips billing-bot's
    assert code == 0 and "0 error(s), 0 warning(s)" in err, out + err
    code, out, err = run_cli(["-C", str(starter), "--agent", "billing-bot", "scenarios", "--json"], capsys)
    assert code == 0, err
    assert [r["name"] for r in json.loads(out)] == ["cancel-order-77", "refund-order-123"]
    sys.modules.pop("billing_bot_agent", None)
