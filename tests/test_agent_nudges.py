"""The loop does not accept an early answer: one nudge with what it observed, visible in the trace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.cli import run_cli
from helpers.openai_stub import OpenAIStub
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from selfheal.agent.nudges import EMPTY_RESULT, looks_empty, premature_answer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    return tmp_path


def test_empty_results_are_recognised() -> None:
    assert looks_empty("") and looks_empty("[]") and looks_empty({"events": [], "matched": 0})
    assert looks_empty('{"function": "f", "pattern": "x", "matched": 0, "events": []}')
    assert not looks_empty('{"events": [{"msg": "Task timed out"}]}')
    assert not looks_empty("memory 512 MB, timeout 6 s")
    assert not looks_empty('{"memory_mb": 512}')  # no list at all: a record, not a search


def test_premature_answer_asks_the_session_first_then_looks_at_the_last_result() -> None:
    class Session:
        def premature_answer(self, calls: list[dict]) -> str | None:
            return "no change yet" if not calls else None

    empty = [HumanMessage(content="task"), AIMessage(content="", tool_calls=[{"name": "s", "args": {}, "id": "1"}]),
             ToolMessage(content='{"events": []}', tool_call_id="1"), AIMessage(content="all fine")]
    assert premature_answer(Session(), empty[:1] + [AIMessage(content="done")], []) == "no change yet"
    assert premature_answer(object(), empty, [{"name": "s"}]) == EMPTY_RESULT
    failed = [*empty[:2], ToolMessage(content="[]", tool_call_id="1", status="error"), empty[-1]]
    assert premature_answer(object(), failed, [{"name": "s"}]) is None  # an error is evidence of its own


def test_lambda_run_is_nudged_once_when_it_answers_without_the_fix(repo: Path, capsys: pytest.CaptureFixture[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("get_function_configuration", {"function_name": "checkout-api"})])
        stub.reply_text("The function looks fine. USED: none")  # answers after one look
        stub.reply_tool_calls([("update_timeout", {"function_name": "checkout-api", "timeout_s": 12})])
        stub.reply_text("Raised the timeout to 12 s. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        code, out, err = run_cli(["-C", str(repo), "run", "--no-learn", "--scenario", "lambda_timeout", "--json"],
                                 capsys)
        bodies = stub.bodies
    assert code == 0, err
    result = json.loads(out)
    assert result["success"] is True
    assert [c["name"] for c in result["tool_calls"]] == ["get_function_configuration", "update_timeout"]
    # the third request carried the nudge as a user turn after the early answer
    third = bodies[2]["messages"]
    assert third[-2]["role"] == "assistant" and "looks fine" in third[-2]["content"]
    assert third[-1]["role"] == "user" and "not changed anything" in third[-1]["content"]


def test_nudges_can_be_turned_off(repo: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("get_function_configuration", {"function_name": "checkout-api"})])
        stub.reply_text("The function looks fine. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        monkeypatch.setenv("SELFHEAL_THRESHOLDS_NUDGES", "0")
        code, out, _ = run_cli(["-C", str(repo), "run", "--no-learn", "--scenario", "lambda_timeout", "--json"],
                               capsys)
        assert len(stub.bodies) == 2
    assert code == 1 and json.loads(out)["success"] is False


def test_a_question_is_not_nudged_toward_a_change(repo: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("get_function_metrics", {"function_name": "orders-api", "metrics": ["Duration"],
                                                         "hours": 168})])
        stub.reply_text("p99 was about 2,480 ms. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        run_cli(["-C", str(repo), "run", "--no-learn", "--scenario", "query_p99_week", "--json"], capsys)
        assert len(stub.bodies) == 2  # answered once, accepted


def test_sql_run_is_nudged_to_run_a_query(repo: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("list_tables", {})])
        stub.reply_text("There are many customers. USED: none")
        stub.reply_tool_calls([("run_sql", {"query": "SELECT COUNT(*) FROM customers"})])
        stub.reply_text("There are N customers. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        code, out, err = run_cli(["-C", str(repo), "--agent", "sql_analyst", "run", "--no-learn",
                                  "--scenario", "customers_count", "--json"], capsys)
        bodies = stub.bodies
    assert len(bodies) == 4, err
    assert "not run a successful query" in bodies[2]["messages"][-1]["content"]
    assert [c["name"] for c in json.loads(out)["tool_calls"]] == ["list_tables", "run_sql"]


def test_a_repeated_call_is_not_run_again() -> None:
    from selfheal.agent.nudges import repeated_call

    made = [{"step": 1, "name": "describe_table", "args": {"table": "sales"}, "output": "error: no table named 'sales'"}]
    said = repeated_call(made, {"name": "describe_table", "args": {"table": "sales"}})
    assert said is not None and "no table named 'sales'" in said and "step 1" in said
    assert repeated_call(made, {"name": "describe_table", "args": {"table": "orders"}}) is None
    assert repeated_call([], {"name": "describe_table", "args": {"table": "sales"}}) is None
    # only the call just made counts: reading a configuration again after a change is legitimate
    later = [*made, {"step": 2, "name": "list_tables", "args": {}, "output": "orders"}]
    assert repeated_call(later, {"name": "describe_table", "args": {"table": "sales"}}) is None
    # refusals in a row quote the call that really ran, not the refusal before them
    refused = [*made, {"step": 2, "name": "describe_table", "args": {"table": "sales"}, "output": said}]
    again = repeated_call(refused, {"name": "describe_table", "args": {"table": "sales"}})
    assert again is not None and "step 1" in again and again.count("Not run again") == 1


def _sql_repo(tmp_path: Path) -> Path:
    root = tmp_path / "sql"
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "selfheal.yaml", root / "selfheal.yaml")
    return root


@pytest.mark.parametrize("refuse", [True, False])
def test_sql_analyst_repeating_a_failing_call_gets_the_earlier_result_instead(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, refuse: bool) -> None:
    root = _sql_repo(tmp_path)
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("describe_table", {"table": "sales"})])
        stub.reply_tool_calls([("describe_table", {"table": "sales"})])  # the same failing call again
        stub.reply_text("I could not find the table. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        monkeypatch.setenv("SELFHEAL_THRESHOLDS_NUDGES", "0")
        monkeypatch.setenv("SELFHEAL_THRESHOLDS_REFUSE_REPEATS", "true" if refuse else "false")
        monkeypatch.setenv("SELFHEAL_THRESHOLDS_RESAMPLE_REPEATS", "0")
        code, out, err = run_cli(["-C", str(root), "--agent", "sql_analyst", "run", "--no-learn",
                                  "--scenario", "customers_count", "--json"], capsys)
        bodies = stub.bodies
    assert code in (0, 1), err
    result = json.loads(out)
    second = [c for c in result["tool_calls"] if c["step"] == 2][0]
    answered = bodies[2]["messages"][-1]
    if refuse:
        assert second["status"] == "error" and "Not run again" in second["output"]
        assert answered["role"] == "tool" and "no table named 'sales'" in answered["content"]
        assert "same arguments give the same result" in answered["content"]
        # the refused call is in the trace tree too, where the model made it, marked as not run
        from selfheal.config import load_settings
        from selfheal.tracing.store import LocalTraceStore

        store = LocalTraceStore(load_settings(root, env={}).trace_store_path)
        try:
            tools = [r for r in store.get_trace(result["run_id"]) if r.run_type == "tool"]
        finally:
            store.close()
        assert [r.name for r in tools] == ["describe_table", "describe_table"]
        ran, refused = sorted(tools, key=lambda r: r.start_time)
        assert "refused" not in (ran.tags or []) and "no table named 'sales'" in json.dumps(ran.outputs)
        assert "refused" in refused.tags and "RepeatedCallRefused" in refused.error
        assert "Not run again" in refused.error and refused.inputs == {"table": "sales"}
    else:
        assert second["status"] == "success" and "Not run again" not in answered["content"]


def test_a_repeated_call_is_asked_again_with_sampling_first(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    root = _sql_repo(tmp_path)
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("describe_table", {"table": "sales"})])
        stub.reply_tool_calls([("describe_table", {"table": "sales"})])  # greedy: the same call again
        stub.reply_tool_calls([("list_tables", {})])                     # the sampled reply differs
        stub.reply_text("Tables listed. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        monkeypatch.setenv("SELFHEAL_THRESHOLDS_NUDGES", "0")
        monkeypatch.setenv("SELFHEAL_THRESHOLDS_RESAMPLE_REPEATS", "2")
        code, out, err = run_cli(["-C", str(root), "--agent", "sql_analyst", "run", "--no-learn",
                                  "--scenario", "customers_count", "--json"], capsys)
        bodies = stub.bodies
    assert code in (0, 1), err
    result = json.loads(out)
    assert [c["name"] for c in result["tool_calls"]] == ["describe_table", "list_tables"]
    assert all(c["status"] == "success" for c in result["tool_calls"])
    # the repeat was asked again with the same conversation, sampled and seeded (a recording replays)
    assert bodies[2]["messages"] == bodies[1]["messages"]
    assert bodies[2]["temperature"] == 0.7 and bodies[2]["seed"] == 1
    assert bodies[1].get("temperature", 0.0) == 0.0


def test_sql_analyst_circling_back_to_a_call_with_the_same_result_is_told_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = _sql_repo(tmp_path)
    with OpenAIStub() as stub:
        for table in ("customers", "regions", "customers"):  # a circle: no two calls in a row are the same
            stub.reply_tool_calls([("describe_table", {"table": table})])
        stub.reply_text("Done. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        monkeypatch.setenv("SELFHEAL_THRESHOLDS_NUDGES", "0")
        code, out, err = run_cli(["-C", str(root), "--agent", "sql_analyst", "run", "--no-learn",
                                  "--scenario", "customers_count", "--json"], capsys)
        bodies = stub.bodies
    assert code in (0, 1), err
    told = bodies[3]["messages"][-1]
    assert told["role"] == "tool" and told["content"].startswith("Same result as step 1")
    assert "table customers" in told["content"]  # the result is still there, shortened
    first = bodies[1]["messages"][-1]
    assert first["role"] == "tool" and first["content"].startswith("table customers")


def test_lambda_ops_reading_again_after_a_change_is_run_and_not_flagged(repo: Path, capsys: pytest.CaptureFixture[str],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("get_function_configuration", {"function_name": "checkout-api"})])
        stub.reply_tool_calls([("update_timeout", {"function_name": "checkout-api", "timeout_s": 12})])
        stub.reply_tool_calls([("get_function_configuration", {"function_name": "checkout-api"})])
        stub.reply_text("Raised the timeout to 12 s. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        code, out, err = run_cli(["-C", str(repo), "run", "--no-learn", "--scenario", "lambda_timeout", "--json"],
                                 capsys)
        bodies = stub.bodies
    assert code == 0, err
    calls = json.loads(out)["tool_calls"]
    assert [c["status"] for c in calls] == ["success", "success", "success"]  # not refused: a change came between
    assert "12" in calls[2]["output"]
    assert not bodies[3]["messages"][-1]["content"].startswith("Same result")
