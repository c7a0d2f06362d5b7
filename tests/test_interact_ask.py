"""`selfheal ask`: plain-words questions -> a validated filter -> a summary, on the local store and LangSmith."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import run_cli
from helpers.langsmith_stub import LangSmithStub
from helpers.openai_stub import OpenAIStub
from helpers.trace_fixtures import Dataset, build_dataset

from selfheal.config import load_settings
from selfheal.interact.ask import parse_question
from selfheal.interact.vocabulary import Vocabulary, agent_vocabulary
from selfheal.tracing.filters import parse_filter
from selfheal.tracing.store import LocalTraceStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture()
def data(repo: Path) -> Dataset:
    settings = load_settings(repo, env={})
    with LocalTraceStore(settings.trace_store_path) as store:
        return build_dataset(store, settings.tracing.project)


@pytest.fixture()
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        yield stub


def ask_json(repo: Path, question: str, capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    code, out, err = run_cli(["-C", str(repo), "ask", question, "--json", *extra], capsys)
    assert code == 0, err
    return json.loads(out)


def ids(data: Dataset, *keys: str) -> set[str]:
    return {str(data.roots[k].id) for k in keys}


def test_failed_runs_in_a_window_need_no_model(repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    got = ask_json(repo, "show me all failed Lambda optimizations in the last 2 days", capsys)
    t = got["translation"]
    assert not t["used_model"] and t["unmatched"] == ""
    assert 'eq(metadata_key, "success")' in t["filter"] and "gte(start_time" in t["filter"]
    parse_filter(t["filter"])
    assert got["matched"] == 3  # r3, r5 (timeouts) and m2 (memory); the 30-day-old failure is outside
    assert {e["id"] for e in got["examples"]} == ids(data, "r3", "r5", "m2")
    overall = got["analysis"]["overall"]
    assert overall["runs"] == 3 and overall["success_rate"] == 0.0
    assert overall["error_types"] == {"timeout": 2, "model_error": 1}

    code, out, err = run_cli(["-C", str(repo), "ask", "failed runs in the last 2 days"], capsys)
    assert code == 0, err
    assert out.startswith("filter: and(gte(start_time,") and '"failed" → the task failed' in out
    assert "3 run(s) in selfheal (local) · success 0%" in out and str(data.roots["r5"].id) in out


def test_task_type_and_tool_phrases(repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    got = ask_json(repo, "timeouts that called search_logs", capsys)
    t = got["translation"]
    assert t["tools"] == ["search_logs"] and t["tree_filter"] == 'and(eq(run_type, "tool"), eq(name, "search_logs"))'
    assert '"lambda_timeout"' in t["filter"]
    assert {e["id"] for e in got["examples"]} == ids(data, "r1", "r2", "r5")
    got = ask_json(repo, "memory runs with negative feedback", capsys)
    assert got["matched"] == 0  # m1 was scored 0.5: not negative
    got = ask_json(repo, "runs with negative feedback", capsys)
    assert {e["id"] for e in got["examples"]} == ids(data, "r3")


def test_the_model_translates_the_rest_and_is_validated(
    repo: Path, data: Dataset, model: OpenAIStub, capsys: pytest.CaptureFixture[str]
) -> None:
    model.reply_text('{"filter": "gt(latency, \\"5s\\")"}')
    got = ask_json(repo, "slow failed runs", capsys)
    t = got["translation"]
    assert t["used_model"] and t["unmatched"] == "slow" and t["model_clause"] == "gt(latency, 5.0)"
    assert {e["id"] for e in got["examples"]} == ids(data, "r5", "old")
    sent = json.dumps(model.bodies[0])
    assert "slow" in sent and "lambda_timeout" in sent  # the model sees the agent's task types

    # Invalid twice: one clear line, exit 2, nothing run.
    model.reply_text('{"filter": "slowness(latency)"}')
    model.reply_text("I think you mean slow runs.")
    code, out, err = run_cli(["-C", str(repo), "ask", "slow failed runs"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: cannot translate 'slow' into a trace filter") and err.count("\n") == 1
    # Unrelated: the model says so.
    model.reply_text('{"filter": null, "reason": "a question about the weather"}')
    code, out, err = run_cli(["-C", str(repo), "ask", "weather in paris"], capsys)
    assert code == 2 and out == "" and "a question about the weather" in err


def test_ask_on_langsmith(
    repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with LangSmithStub() as stub:
        monkeypatch.setenv("LANGSMITH_TRACING", "true")
        monkeypatch.setenv("LANGSMITH_API_KEY", "ls-test")
        monkeypatch.setenv("LANGSMITH_ENDPOINT", stub.url)
        from selfheal.tracing.langsmith_backend import close_client, deliver_runs, make_client, run_payload

        client = make_client(load_settings(repo))
        try:
            deliver_runs(client, create=[run_payload(r, "selfheal") for r in data.runs
                                         if r.trace_id != data.roots["x"].id])
        finally:
            close_client(client)
        got = ask_json(repo, "failed memory runs in the last 2 days", capsys, "--source", "langsmith")
        assert got["source"] == "langsmith"
        assert {e["id"] for e in got["examples"]} == ids(data, "m2")
        got = ask_json(repo, "timeouts that called search_logs", capsys, "--source", "langsmith")
        assert {e["id"] for e in got["examples"]} == ids(data, "r1", "r2", "r5")


@pytest.mark.parametrize(
    ("agent", "question", "task_type"),
    [("lambda_ops", "failed timeout fixes since monday", "lambda_timeout"),
     ("sql_analyst", "failed revenue questions since monday", "revenue")],
)
def test_task_types_come_from_each_agent(tmp_path: Path, agent: str, question: str, task_type: str) -> None:
    pytest.importorskip(agent)
    shutil.copytree(REPO / "evals" / agent, tmp_path / "evals" / agent)
    (tmp_path / "selfheal.yaml").write_text(f"agent: {agent}\n")
    settings = load_settings(tmp_path, env={})
    vocab = agent_vocabulary(settings)
    assert task_type in vocab.task_types and vocab.tools
    now = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)  # a Wednesday
    t = parse_question(question, vocab, now=now)
    assert t.unmatched == "" or t.unmatched == "fixes"
    assert f'eq(metadata_value, "{task_type}")' in (t.filter or "")
    assert 'gte(start_time, "2026-11-30T00:00:00Z")' in (t.filter or "")


def test_time_phrases() -> None:
    vocab = Vocabulary("a")
    now = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)
    cases = {
        "runs today": ['gte(start_time, "2026-12-02T00:00:00Z")'],
        "runs yesterday": ['gte(start_time, "2026-12-01T00:00:00Z")', 'lt(start_time, "2026-12-02T00:00:00Z")'],
        "this week": ['gte(start_time, "2026-11-30T00:00:00Z")'],
        "last 3 days": ['gte(start_time, "2026-11-29T15:30:00Z")'],
        "errored runs since friday": ['gte(start_time, "2026-11-27T00:00:00Z")', 'eq(status, "error")'],
        "interrupted runs": ['eq(status, "pending")'],
    }
    for question, parts in cases.items():
        t = parse_question(question, vocab, now=now)
        assert t.unmatched == "", question
        for part in parts:
            assert part in (t.filter or ""), (question, t.filter)
