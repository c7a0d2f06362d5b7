"""The whole selfheal flow on the second reference agent, sql_analyst, with a scripted model.

Every command a team uses works on an agent other than lambda_ops: lint,
scenarios, run (verified from the query's result, not the claim), online
learning into the agent's own cheatsheet folder, traces and feedback, eval
with --against and --gate, blame and rollback of a learned entry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import run_cli
from helpers.curation import call, curator_json, reflection_json
from helpers.gitrepo import git, isolate_git
from helpers.openai_stub import OpenAIStub

from selfheal.agent.runner import run_task
from selfheal.config import load_settings
from selfheal.models.fakes import ScriptedChatModel
from selfheal.yamlio import read_yaml

pytest.importorskip("sql_analyst")

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["customers_active_buyers_fy2025", "customers_by_region"]
NAIVE = "SELECT COUNT(DISTINCT customer_id) FROM orders"


def gold(name: str) -> str:
    return str(read_yaml(REPO / "evals" / "sql_analyst" / "scenarios" / f"{name}.yaml")["gold_sql"])


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_git(monkeypatch, tmp_path)
    root = tmp_path / "analytics"
    (root / "evals" / "sql_analyst" / "scenarios").mkdir(parents=True)
    shutil.copytree(REPO / "prompts" / "sql_analyst", root / "prompts" / "sql_analyst")
    shutil.copytree(REPO / "cheatsheet" / "sql_analyst", root / "cheatsheet" / "sql_analyst")
    shutil.copy(REPO / "evals" / "sql_analyst" / "dataset.yaml", root / "evals" / "sql_analyst" / "dataset.yaml")
    for i, name in enumerate(QUESTIONS):
        text = (REPO / "evals" / "sql_analyst" / "scenarios" / f"{name}.yaml").read_text()
        text = text.replace("split: train", "split: test").replace("split: dev", "split: test")
        (root / "evals" / "sql_analyst" / "scenarios" / f"{name}.yaml").write_text(text)
    (root / "selfheal.yaml").write_text("agent: sql_analyst\nembeddings: {provider: none}\n")
    (root / ".gitignore").write_text(".selfheal/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "seed")
    monkeypatch.setenv("SQL_ANALYST_CACHE_DIR", str(tmp_path / "db"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.setenv("SELFHEAL_EMBEDDINGS_PROVIDER", "none")
    return root


def test_lint_scenarios_and_runs_verified_by_the_query_result(repo: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = run_cli(["-C", str(repo), "lint"], capsys)
    assert code == 0 and "0 error(s)" in err, out + err
    code, out, _ = run_cli(["-C", str(repo), "scenarios", "--json"], capsys)
    assert [r["name"] for r in json.loads(out)] == sorted(QUESTIONS)
    q = QUESTIONS[0]
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        stub.reply_tool_calls([("list_tables", {})])
        stub.reply_tool_calls([("run_sql", {"query": gold(q)})])
        stub.reply_text("Counted them.\nUSED: none")
        code, out, err = run_cli(["-C", str(repo), "run", "--scenario", q, "--no-learn", "--json"], capsys)
        assert code == 0, err
        ok = json.loads(out)
        stub.reply_tool_calls([("run_sql", {"query": NAIVE})])
        stub.reply_text("There are many customers, definitely right.\nUSED: none")
        code, out, err = run_cli(["-C", str(repo), "run", "--scenario", q, "--no-learn", "--json"], capsys)
    assert ok["success"] is True and ok["verified"] is True
    bad = json.loads(out)
    assert code == 1 and bad["success"] is False and bad["verified"] is True  # the claim is not the verdict
    assert "first differing value" in bad["checks"][0]["detail"]
    # traces and feedback work on this agent's runs
    code, out, _ = run_cli(["-C", str(repo), "traces", "list", 'eq(metadata.success, false)', "--json"], capsys)
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == [bad["run_id"]]
    code, out, err = run_cli(["-C", str(repo), "feedback", bad["run_id"], "--score", "0",
                              "--comment", "forgot the conventions"], capsys)
    assert code == 0, err


def test_online_learning_writes_the_agents_own_cheatsheet_and_blame_and_rollback_follow_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    q = QUESTIONS[0]
    lesson = {"op": "ADD", "section": "code_snippets", "task_type": "customers",
              "fields": {"purpose": "Count real customers only (every customer figure)",
                         "snippet": "JOIN customers c ON c.id = o.customer_id WHERE c.email NOT LIKE '%@brightcart.io'",
                         "language": "sql"},
              "reason": "the run counted internal test accounts"}
    model = ScriptedChatModel([call("run_sql", {"query": NAIVE}), "Done.\nUSED: none",
                               reflection_json(error="counted test accounts"), curator_json(lesson)])
    settings = load_settings(repo, env={"SQL_ANALYST_CACHE_DIR": str(repo.parent / "db")})
    out = run_task(settings, scenario=q, model=model)
    assert not out.success
    learned = sorted((repo / "cheatsheet" / "sql_analyst").rglob("*.yaml"))
    assert len(learned) == 1 and learned[0].parent.name == "code_snippets"
    assert "@brightcart.io" in learned[0].read_text()
    assert not (repo / "cheatsheet" / "code_snippets").exists()  # never into another agent's folders
    entry_id = learned[0].stem
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", f"learn {entry_id}")
    code, out, err = run_cli(["-C", str(repo), "blame", entry_id], capsys)
    assert code == 0 and "created" in out and "cheatsheet/sql_analyst/code_snippets" in out, out + err
    code, out, err = run_cli(["-C", str(repo), "rollback", entry_id, "--no-pr", "--yes"], capsys)
    assert code == 0, out + err
    assert not learned[0].exists()


def test_eval_against_the_base_and_the_gate(repo: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def script(stub: OpenAIStub, queries: list[str]) -> None:
        for query in queries:
            stub.reply_tool_calls([("run_sql", {"query": query})])
            stub.reply_text("Here it is.\nUSED: none")

    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        script(stub, [gold(QUESTIONS[0]), gold(QUESTIONS[1])])
        code, out, err = run_cli(["-C", str(repo), "eval", "--split", "test", "--format", "json"], capsys)
        assert code == 0, err
        report = json.loads(out)
        # base (HEAD) passes both; the candidate (working tree) forgets a convention on one
        script(stub, [gold(QUESTIONS[0]), gold(QUESTIONS[1]), gold(QUESTIONS[0]), NAIVE])
        code, out, err = run_cli(["-C", str(repo), "eval", "--split", "test", "--against", "HEAD", "--gate",
                                  "--margin", "0.1"], capsys)
    results = report["experiment"]["results"]
    assert [r["passed"] for r in results] == [True, True]
    assert code == 1, out + err  # a 50-point drop fails the gate
