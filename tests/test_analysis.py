"""Trace analysis: exact numbers on hand-made traces, locally and through LangSmith's real client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import langsmith_stub
from helpers.langsmith_stub import LangSmithStub
from helpers.trace_fixtures import Dataset, Tool, TraceSpec, build_dataset, make_trace

from selfheal.config import load_settings
from selfheal.tracing.analysis import Analysis, analyze, error_signature, tool_failure
from selfheal.tracing.langsmith_backend import (
    LangSmithTraceReader,
    close_client,
    deliver_feedback,
    deliver_runs,
    ensure_project,
    make_client,
    run_payload,
)
from selfheal.tracing.store import LocalTraceStore

PROJECT = "ops"


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[LocalTraceStore]:
    with LocalTraceStore(tmp_path / "traces.sqlite") as s:
        yield s


@pytest.fixture()
def data(store: LocalTraceStore) -> Dataset:
    return build_dataset(store, PROJECT)


def test_success_rates_latency_and_tokens_per_task_type(store: LocalTraceStore, data: Dataset) -> None:
    a = analyze(store, project=PROJECT, since=timedelta(days=7))
    o, t, m = a.overall, a.by_task_type["lambda_timeout"], a.by_task_type["lambda_memory"]
    assert set(a.by_task_type) == {"lambda_timeout", "lambda_memory"}
    # The 30-day-old run and the other project's run are out.
    assert (o.runs, o.with_outcome, o.successes) == (8, 7, 4)
    assert o.success_rate == pytest.approx(4 / 7)
    assert (t.runs, t.successes, t.success_rate) == (5, 3, pytest.approx(0.6))
    # m3 has no outcome yet: counted as a run, left out of the rate.
    assert (m.runs, m.with_outcome, m.success_rate) == (3, 2, 0.5)
    # Latency percentiles as numpy's linear interpolation: [1,2,3,4,10] and [1,2,2,3,4,4,6,10].
    assert (t.latency.p50, t.latency.p95) == (pytest.approx(3.0), pytest.approx(8.8))
    assert (m.latency.p50, m.latency.p95) == (pytest.approx(4.0), pytest.approx(5.8))
    assert (o.latency.p50, o.latency.p95) == (pytest.approx(3.5), pytest.approx(8.6))
    assert (t.tokens.total, t.tokens.per_run, t.tokens.prompt) == (1500, 300, 1180)
    # m2's model never answered: it has no token count and does not drag the mean down.
    assert (m.tokens.total, m.tokens.runs_counted, m.tokens.per_run) == (100, 2, 50)
    assert o.error_types == {"timeout": 2, "model_error": 1}


def test_errors_are_clustered_by_normalised_message(store: LocalTraceStore, data: Dataset) -> None:
    errors = analyze(store, project=PROJECT, since=timedelta(days=7)).overall.errors
    by_sig = {c.signature: c for c in errors}
    timeout = by_sig["timeout after <n> seconds"]
    # One raised by the tool (run.error), one returned as a ToolMessage with status error.
    assert timeout.count == 2
    assert set(timeout.run_ids) == {data.roots["r3"].id, data.roots["r5"].id}
    assert timeout.sources == {"invoke_function": 2}
    assert timeout.example == "timeout after 3.00 seconds"  # the newest occurrence
    names = by_sig["Function <name> not found"]
    assert names.count == 2 and names.sources == {"update_timeout": 1, "update_memory": 1}
    # The model error shows on the llm run, its node and the root: counted once, traceback dropped.
    model = by_sig["ModelError: rate limited for request <hex>"]
    assert model.count == 1 and model.example == "ModelError: rate limited for request 5f3a9c2b1d"
    assert [c.signature for c in errors][:2] == ["Function <name> not found", "timeout after <n> seconds"]
    assert "boom" not in " ".join(by_sig)  # the old run's error is out of the window


def test_tool_usage_error_rates_and_frequent_sequences(store: LocalTraceStore, data: Dataset) -> None:
    a = analyze(store, project=PROJECT, since=timedelta(days=7))
    tools = {s.name: s for s in a.overall.tools}
    assert (tools["get_function_configuration"].calls, tools["get_function_configuration"].errors) == (8, 0)
    assert (tools["update_timeout"].calls, tools["update_timeout"].errors) == (4, 1)
    assert tools["update_timeout"].error_rate == 0.25 and tools["update_timeout"].runs == 3
    assert tools["invoke_function"].error_rate == 1.0
    assert tools["update_memory"].error_rate == 0.5
    seqs = [(s.tools, s.runs) for s in a.overall.sequences]
    assert seqs == [
        (["get_function_configuration", "search_logs"], 3),
        (["get_function_configuration", "search_logs", "update_timeout"], 2),
        (["get_function_configuration", "get_metrics"], 2),
        (["search_logs", "update_timeout"], 2),
    ]
    assert [(s.tools, s.runs) for s in a.by_task_type["lambda_memory"].sequences] == [
        (["get_function_configuration", "get_metrics"], 2)
    ]


def test_cheatsheet_entry_helpfulness(store: LocalTraceStore, data: Dataset) -> None:
    a = analyze(store, project=PROJECT, since=timedelta(days=7))
    t = {e.entry_id: e for e in a.by_task_type["lambda_timeout"].entries}
    assert (t["heur-a"].retrieved, t["heur-a"].used) == (5, 3)
    assert (t["heur-a"].success_rate_used, t["heur-a"].success_rate_not_used, t["heur-a"].lift) == (1.0, 0.0, 1.0)
    assert (t["heur-b"].used, t["heur-b"].success_rate_used) == (2, 0.5)
    assert t["heur-b"].success_rate_not_used == pytest.approx(2 / 3)
    assert t["heur-b"].lift == pytest.approx(-1 / 6)
    m = {e.entry_id: e for e in a.by_task_type["lambda_memory"].entries}["heur-m"]
    # Runs that did not use it have no known outcome (m3): no comparison is claimed.
    assert (m.retrieved, m.used, m.success_rate_used, m.runs_not_used, m.lift) == (3, 2, 0.5, 0, None)
    overall_a = {e.entry_id: e for e in a.overall.entries}["heur-a"]
    assert overall_a.success_rate_not_used == 0.25  # r3, r5, m1, m2


def test_feedback_scores_per_key(store: LocalTraceStore, data: Dataset) -> None:
    a = analyze(store, project=PROJECT, since=timedelta(days=7))
    overall = {f.key: f for f in a.overall.feedback}
    assert (overall["user_score"].count, overall["user_score"].mean) == (3, 0.5)  # old run's 1.0 excluded
    timeout = {f.key: f for f in a.by_task_type["lambda_timeout"].feedback}
    assert (timeout["user_score"].count, timeout["user_score"].mean) == (2, 0.5)
    assert (timeout["correctness"].count, timeout["correctness"].mean) == (1, 0.0)
    assert {f.key for f in a.by_task_type["lambda_memory"].feedback} == {"user_score"}


def test_task_type_filter_and_window(store: LocalTraceStore, data: Dataset) -> None:
    a = analyze(store, project=PROJECT, since=timedelta(days=7), task_type="lambda_memory")
    assert a.overall.runs == 3 and set(a.by_task_type) == {"lambda_memory"}
    assert {s.name for s in a.overall.tools} == {"get_function_configuration", "get_metrics", "update_memory"}
    everything = analyze(store, project=PROJECT, since=None)
    assert everything.overall.runs == 9
    until = analyze(store, project=PROJECT, since=None, until=datetime.now(UTC) - timedelta(days=1))
    assert until.overall.runs == 1 and until.overall.errors[0].signature == "boom"
    assert analyze(store, project="nope", since=None).overall.runs == 0


def test_signatures_fold_what_varies() -> None:
    assert error_signature("timeout after 3.00 seconds") == error_signature("timeout after 6.02 seconds")
    assert error_signature(
        "ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:123456789012:function:a"
    ) == "ResourceNotFoundException: Function not found: <arn>"
    assert error_signature("request 0f8fad5b-d9cb-469f-a165-70867728950e failed") == "request <id> failed"
    assert error_signature("bad token 0xdeadbeef at 2026-11-20T10:30:00Z") == "bad token <hex> at <time>"
    assert error_signature("ValueError('no such function \"x\"')") == "ValueError: no such function <name>"
    assert error_signature("the function's config") == "the function's config"  # apostrophes are not quotes
    assert error_signature("timeout after 3 seconds") != error_signature("timeout after 3 minutes")


def test_tool_failure_reads_error_status_and_tool_messages(store: LocalTraceStore) -> None:
    session = store.ensure_project(PROJECT).id
    runs = make_trace(
        TraceSpec("k", "t", True, 1.0, [Tool("a", error="boom"), Tool("b", message_error="nope"), Tool("c")]),
        session,
        datetime.now(UTC),
    )
    tools = [r for r in runs if r.run_type == "tool"]
    assert [tool_failure(r) for r in tools] == ["boom", "nope", None]


def test_scales_to_thousands_of_runs_without_loading_trees(store: LocalTraceStore) -> None:
    session = store.ensure_project(PROJECT).id
    now = datetime.now(UTC)
    runs = []
    for i in range(1500):
        failing = Tool("update_timeout", message_error=f"timeout after {i}.5 seconds")
        tools = [Tool("get_function_configuration"), failing]
        runs.extend(make_trace(TraceSpec(f"s{i}", "lambda_timeout", i % 3 != 0, 1 + i % 7, tools,
                                         age=timedelta(minutes=1 + i)), session, now))  # fmt: skip
    store.write_runs(runs)

    class Counting:
        """The store, refusing whole-tree reads and counting queries."""

        def __init__(self, inner: LocalTraceStore) -> None:
            self.inner, self.queries = inner, 0

        def list_runs(self, *args: Any, **kwargs: Any) -> Any:
            self.queries += 1
            return self.inner.list_runs(*args, **kwargs)

        def list_feedback(self, **kwargs: Any) -> Any:
            return self.inner.list_feedback(**kwargs)

        def get_trace(self, trace_id: Any) -> Any:
            raise AssertionError("analysis must not load whole traces")

    source = Counting(store)
    started = time.perf_counter()
    a = analyze(source, project=PROJECT, since=timedelta(days=7))
    took = time.perf_counter() - started
    assert a.overall.runs == 1500 and a.overall.success_rate == pytest.approx(1000 / 1500)
    assert [(c.signature, c.count) for c in a.overall.errors] == [("timeout after <n> seconds", 1500)]
    assert source.queries == 3  # roots, tools, errored children (roots carry token counts)
    assert took < 10, took


# -- the same analysis, read from LangSmith ----------------------------------------------
class _FeedbackHandler(langsmith_stub._Handler):
    """The stub plus ``GET /feedback`` (``Client.list_feedback``), which the shared stub lacks."""

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> tuple[int, Any]:
        if method == "GET" and path == "/feedback":
            runs = set(query.get("run") or [])
            offset = int((query.get("offset") or ["0"])[0])
            limit = int((query.get("limit") or ["100"])[0])
            now = datetime.now(UTC).isoformat()
            with self.stub._lock:
                items = [
                    {"created_at": now, "modified_at": now, **fb}
                    for fb in self.stub.feedback.values()
                    if not runs or str(fb.get("run_id")) in runs
                ]
            return 200, items[offset : offset + limit]
        return super()._route(method, path, query, body)


@pytest.fixture()
def stub() -> Iterator[LangSmithStub]:
    s = LangSmithStub(page_size=4)  # several pages per query
    s._server.RequestHandlerClass = _FeedbackHandler
    with s:
        yield s


def _without_volatile(a: Analysis) -> dict[str, Any]:
    data = a.model_dump(mode="json")
    data.pop("generated_at")
    return data


def test_the_same_analysis_through_langsmith(
    tmp_path: Path, store: LocalTraceStore, data: Dataset, stub: LangSmithStub
) -> None:
    settings = load_settings(
        tmp_path,
        env={},
        overrides={"tracing": {"langsmith": True, "langsmith_api_key": "ls-test", "langsmith_endpoint": stub.url}},
    )
    client = make_client(settings)
    try:
        by_project: dict[uuid.UUID, str] = {p.id: p.name for p in store.list_projects()}
        deliver_runs(client, create=[run_payload(r, by_project[r.session_id]) for r in data.runs])  # type: ignore[index]
        project_id = ensure_project(client, PROJECT)
        for fb in data.feedback:
            deliver_feedback(client, fb, project_id=project_id)
        assert stub.wait_for_runs(str(r.id) for r in data.runs)

        since = datetime.now(UTC) - timedelta(days=7)
        remote = analyze(LangSmithTraceReader(client, PROJECT), project=PROJECT, since=since)
        local = analyze(store, project=PROJECT, since=since)
    finally:
        close_client(client)
    # LangSmith sent no token counts here (it derives them): they came from the llm runs' outputs.
    assert remote.overall.tokens.total == 1600
    assert _without_volatile(remote) == _without_volatile(local)
    assert remote.overall.success_rate == pytest.approx(4 / 7)
