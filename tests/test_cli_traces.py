"""`selfheal traces ...` and `selfheal feedback` as a user meets them: output, JSON and exit codes."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import run_cli
from helpers.langsmith_stub import LangSmithStub
from helpers.trace_fixtures import Dataset, build_dataset

from selfheal.config import load_settings
from selfheal.tracing.store import LocalTraceStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps at 80 columns when not on a terminal
    return tmp_path


@pytest.fixture()
def data(repo: Path) -> Dataset:
    settings = load_settings(repo, env={})
    with LocalTraceStore(settings.trace_store_path) as store:
        return build_dataset(store, settings.tracing.project)


def cli_json(repo: Path, args: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    code, out, err = run_cli(["-C", str(repo), *args, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_list_roots_with_a_filter(repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    rows = cli_json(repo, ["traces", "list", "eq(metadata.success, false)", "--since", "7d"], capsys)
    assert {r["id"] for r in rows} == {str(data.roots[k].id) for k in ("r3", "r5", "m2")}
    assert all(r["parent_run_id"] is None for r in rows)
    rows = cli_json(repo, ["traces", "list", "--task-type", "lambda_memory", "--status", "error"], capsys)
    assert [r["id"] for r in rows] == [str(data.roots["m2"].id)]
    assert rows[0]["error"] == "ModelError: rate limited for request 5f3a9c2b1d"
    # Without --since the 30-day-old run is there; newest first; --limit bounds.
    rows = cli_json(repo, ["traces", "list", "--limit", "20"], capsys)
    assert rows[0]["id"] == str(data.roots["r1"].id)
    assert rows[-1]["id"] == str(data.roots["old"].id) and len(rows) == 9
    assert len(cli_json(repo, ["traces", "list", "--limit", "2"], capsys)) == 2


def test_list_child_runs_and_the_table(repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    rows = cli_json(repo, ["traces", "list", 'and(eq(run_type, "tool"), neq(error, null))', "--all-runs"], capsys)
    assert sorted(r["name"] for r in rows) == ["invoke_function", "invoke_function"]  # r3 and "old"
    code, out, _ = run_cli(["-C", str(repo), "traces", "list", "eq(metadata.success, false)", "--since", "7d"], capsys)
    assert code == 0
    assert "3 run(s) in selfheal" in out and "failed (timeout)" in out and "failed (model_error)" in out
    assert str(data.roots["r3"].id)[:13] in out and "10.00s" in out


def test_bad_filter_exits_2_with_a_caret(repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["-C", str(repo), "traces", "list", 'and(eq(status, "error"), eqq(name, "x"))'], capsys)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith("error: filter: unknown comparator 'eqq' at column 26")
    assert lines[1] == '  and(eq(status, "error"), eqq(name, "x"))'
    assert lines[2] == "  " + " " * 25 + "^"
    code, _, err = run_cli(["-C", str(repo), "traces", "list", "--since", "7 days"], capsys)
    assert code == 2 and "is not a duration" in err and "7d" in err


def test_show_renders_the_tree_with_tools_and_errors(
    repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    root = data.roots["r4"]
    code, out, err = run_cli(["-C", str(repo), "traces", "show", str(root.id)[:13]], capsys)
    assert code == 0, err
    assert str(root.id) in out and "lambda_timeout" in out and "success" in out
    assert "chain selfheal:lambda_ops" in out and "└── chain execute_task" in out.replace("├", "└")
    assert "tool get_function_configuration" in out and 'args: function_name="checkout-api"' in out
    assert "error: Function 'checkout-api' not found" in out  # a ToolMessage with status error
    assert "used_entries" in out and "heur-a, heur-b" in out
    data_json = cli_json(repo, ["traces", "show", str(root.id)], capsys)
    tools = [r for r in data_json["runs"] if r["run_type"] == "tool"]
    assert [t["name"] for t in tools] == ["get_function_configuration", "update_timeout", "update_timeout"]
    assert [t["tool_error"] for t in tools] == [None, "Function 'checkout-api' not found", None]

    code, _, err = run_cli(["-C", str(repo), "traces", "show", "ffffffff"], capsys)
    assert code == 2 and err.startswith("error: no run id starts with 'ffffffff'") and err.count("\n") == 1


def test_show_a_real_run(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from langchain_core.messages import AIMessage

    from selfheal.agent.runner import run_task
    from selfheal.models.fakes import ScriptedChatModel

    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, repo / name)

    def call(name: str, args: dict[str, Any], i: int) -> AIMessage:
        return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"c{i}"}])

    model = ScriptedChatModel([
        call("get_function_configuration", {"function_name": "checkout-api"}, 0),
        call("update_timeout", {"function_name": "no-such-fn", "timeout_s": 10}, 1),
        call("update_timeout", {"function_name": "checkout-api", "timeout_s": 10}, 2),
        "Raised the timeout.\nUSED: heur-timeout-low-memory",
    ])  # fmt: skip
    outcome = run_task(load_settings(repo, env={}), scenario="lambda_timeout", model=model)
    code, out, err = run_cli(["-C", str(repo), "traces", "show", outcome.run_id], capsys)
    assert code == 0, err
    assert "tool update_timeout" in out and "ResourceNotFoundException" in out
    assert "llm ScriptedChatModel" in out and "tok" in out and "retrieve_from_cheatsheet" in out
    stats = cli_json(repo, ["traces", "stats"], capsys)
    tools = {t["name"]: t for t in stats["overall"]["tools"]}
    assert tools["update_timeout"]["calls"] == 2 and tools["update_timeout"]["error_rate"] == 0.5
    assert stats["overall"]["success_rate"] == (1.0 if outcome.success else 0.0)
    assert stats["overall"]["tokens"]["total"] == outcome.usage["total_tokens"]


def test_stats_tables(repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["-C", str(repo), "traces", "stats", "--since", "7d"], capsys)
    assert code == 0, err
    assert "8 run(s) in selfheal" in out
    assert "60% 3/5" in out and "50% 1/2" in out and "57% 4/7" in out
    assert "timeout after <n> seconds" in out and "Function <name> not found" in out
    assert "invoke_function" in out and "100%" in out
    assert "get_function_configuration → search_logs" in out
    assert "heur-a" in out and "+75%" in out  # 100% of runs using it vs 1 in 4 without
    s = cli_json(repo, ["traces", "stats", "--task-type", "lambda_timeout"], capsys)
    assert s["overall"]["runs"] == 5 and s["overall"]["latency"]["p95"] == pytest.approx(8.8)
    assert cli_json(repo, ["traces", "stats", "--since", "all"], capsys)["overall"]["runs"] == 9


def test_feedback_then_stats_shows_the_score(
    repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fix = tmp_path / "fix.json"
    fix.write_text('{"timeout_s": 12}')
    root = data.roots["m3"]
    code, out, err = run_cli(
        ["-C", str(repo), "feedback", str(root.id)[:13], "--score", "0.25", "--comment", "meh",
         "--correction", f"@{fix}"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert f"Recorded user_score = 0.25 on run {root.id}" in out
    stats = cli_json(repo, ["traces", "stats", "--task-type", "lambda_memory"], capsys)
    assert stats["overall"]["feedback"] == [
        {"key": "user_score", "count": 2, "scored": 2, "mean": 0.375, "min": 0.25, "max": 0.5}
    ]
    code, out, _ = run_cli(["-C", str(repo), "traces", "stats", "--task-type", "lambda_memory"], capsys)
    assert "0.38 (n=2)" in out and "User feedback" in out
    shown = cli_json(repo, ["traces", "show", str(root.id)], capsys)
    given = [(f["score"], f["comment"], f["correction"]) for f in shown["feedback"]]
    assert given == [(0.25, "meh", {"timeout_s": 12})]


def test_feedback_errors_are_one_line(repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["-C", str(repo), "feedback", "deadbeef", "--score", "1"], capsys)
    assert code == 2 and err.startswith("error: no run id starts with") and err.count("\n") == 1
    bad = repo / "bad.json"
    bad.write_text("{\n oops\n}")
    root = str(data.roots["r1"].id)
    code, _, err = run_cli(["-C", str(repo), "feedback", root, "--score", "1", "--correction", f"@{bad}"], capsys)
    assert code == 2 and err == f"error: {bad}:2: invalid JSON: Expecting property name enclosed in double quotes\n"
    code, _, err = run_cli(["-C", str(repo), "feedback", root, "--score", "nan"], capsys)
    assert code == 2 and "finite" in err
    code, _, err = run_cli(["-C", str(repo), "feedback", root], capsys)
    assert code == 2 and "--score" in err


def test_prune_needs_confirmation_then_removes_old_traces(
    repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["-C", str(repo), "traces", "prune", "--older-than", "7d"], capsys)
    assert code == 2 and "1 trace(s) would be deleted" in err and "--yes" in err
    assert len(cli_json(repo, ["traces", "list", "--since", "all"], capsys)) == 9  # nothing deleted
    code, out, err = run_cli(["-C", str(repo), "traces", "prune", "--older-than", "7d", "--yes"], capsys)
    assert code == 0, err
    assert out.startswith("Removed 1 trace(s) started before")
    ids = {r["id"] for r in cli_json(repo, ["traces", "list", "--since", "all"], capsys)}
    assert str(data.roots["old"].id) not in ids and len(ids) == 8
    code, out, _ = run_cli(["-C", str(repo), "traces", "prune", "--older-than", "7d"], capsys)
    assert code == 0 and out.startswith("No traces started before")


def test_sync_and_langsmith_source_without_langsmith_exit_2(
    repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["-C", str(repo), "traces", "sync"], capsys)
    assert code == 2 and err.startswith("error: LangSmith is not configured") and err.count("\n") == 1
    code, _, err = run_cli(["-C", str(repo), "traces", "stats", "--source", "langsmith"], capsys)
    assert code == 2 and "LangSmith is not configured" in err


@pytest.fixture()
def stub() -> Iterator[LangSmithStub]:
    with LangSmithStub() as s:
        yield s


def test_sync_and_list_from_langsmith(
    repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str], stub: LangSmithStub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    monkeypatch.setenv("LANGSMITH_API_KEY", "ls-test")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", stub.url)
    # Feedback given while LangSmith is configured is delivered at once (nothing pending).
    code, out, err = run_cli(["-C", str(repo), "feedback", str(data.roots["r2"].id), "--score", "1"], capsys)
    assert code == 0, err
    assert "LangSmith has not confirmed" not in out and len(stub.feedback) == 1
    code, out, err = run_cli(["-C", str(repo), "traces", "sync"], capsys)
    assert code == 0 and out == "Nothing pending for LangSmith.\n"
    # Hand-made traces never went through the tracer: put them there and read them back.
    from selfheal.tracing.langsmith_backend import close_client, deliver_runs, make_client, run_payload

    client = make_client(load_settings(repo))
    try:
        deliver_runs(client, create=[run_payload(r, "selfheal") for r in data.runs if r.trace_id != data.roots["x"].id])
    finally:
        close_client(client)
    rows = cli_json(
        repo, ["traces", "list", 'eq(name, "selfheal:lambda_ops")', "--source", "langsmith", "--since", "7d"], capsys
    )
    assert {r["id"] for r in rows} == {str(data.roots[k].id) for k in ("r1", "r2", "r3", "r4", "r5", "m1", "m2", "m3")}
    code, _, err = run_cli(["-C", str(repo), "traces", "list", "eq(nme, 1)", "--source", "langsmith"], capsys)
    assert code == 2 and "^" in err
    show = ["-C", str(repo), "traces", "show", str(data.roots["r3"].id), "--source", "langsmith"]
    code, out, err = run_cli(show, capsys)
    assert code == 0, err
    assert "tool invoke_function" in out and "error: timeout after 3.00 seconds" in out
