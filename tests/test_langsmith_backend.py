"""LangSmith delivery and reads, driving the real ``langsmith.Client`` against a loopback stub."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from selfheal.config import Settings, load_settings
from selfheal.errors import ConfigError
from selfheal.tracing import FeedbackRecord, LocalTraceStore, RunRecord
from selfheal.tracing.callbacks import LangSmithGuard, TracingHandle, tracing_callbacks
from selfheal.tracing.langsmith_backend import (
    LangSmithTraceReader,
    close_client,
    make_client,
    run_payload,
)
from selfheal.tracing.sync import LangSmithOutbox, sync_pending
from selfheal.tracing.tracer import LocalTracer
from helpers.langsmith_stub import GRAPH_INPUT, Blackhole, LangSmithStub, build_graph

PROJECT = "ops-agent"


@pytest.fixture
def stub() -> Iterator[LangSmithStub]:
    with LangSmithStub(page_size=3) as s:
        yield s


def _settings(root: Path, endpoint: str, *, key: str | None = "ls-test-key") -> Settings:
    tracing: dict[str, Any] = {"langsmith": True, "langsmith_endpoint": endpoint, "project": PROJECT}
    if key is not None:
        tracing["langsmith_api_key"] = key
    return load_settings(root, env={}, overrides={"tracing": tracing})


@pytest.fixture
def settings(tmp_path: Path, stub: LangSmithStub) -> Settings:
    return _settings(tmp_path, stub.url)


@pytest.fixture
def store(settings: Settings) -> Iterator[LocalTraceStore]:
    with LocalTraceStore(settings.trace_store_path) as s:
        yield s


def _run_graph(handle: TracingHandle) -> uuid.UUID:
    run_id = uuid.uuid4()
    with handle.context():
        build_graph().invoke(GRAPH_INPUT, config=handle.config(run_id=run_id))
    return run_id


def _pending(store: LocalTraceStore) -> list[Any]:
    outbox = LangSmithOutbox(store.path)
    try:
        return outbox.pending()
    finally:
        outbox.close()


def test_langsmith_gets_the_local_trace_with_identical_ids(
    settings: Settings, store: LocalTraceStore, stub: LangSmithStub
) -> None:
    handle = tracing_callbacks(settings, store)
    assert handle.langsmith
    run_id = _run_graph(handle)
    assert handle.finish(5.0)

    local = store.get_trace(run_id)
    assert len(local) >= 6  # graph, agent x2, chat model x2, tools, the tool itself...
    assert {r.run_type for r in local} >= {"chain", "llm", "tool"}
    assert stub.run_ids == {str(r.id) for r in local}
    for run in local:
        sent = stub.runs[str(run.id)]
        assert sent["trace_id"] == str(run.trace_id) == str(run_id)
        assert sent["dotted_order"] == run.dotted_order
        assert sent.get("parent_run_id") == (str(run.parent_run_id) if run.parent_run_id else None)
        assert sent["name"] == run.name and sent["run_type"] == run.run_type
        assert sent["session_id"] == stub.session_id(PROJECT)
    tool_run = next(r for r in local if r.run_type == "tool")
    assert stub.runs[str(tool_run.id)]["outputs"] == tool_run.outputs
    assert _pending(store) == []


def test_metadata_stamped_after_the_run_and_feedback_reach_langsmith(
    settings: Settings, store: LocalTraceStore, stub: LangSmithStub
) -> None:
    handle = tracing_callbacks(settings, store)
    run_id = _run_graph(handle)
    handle.merge_metadata(run_id, {"success": True, "error_type": None})
    feedback = handle.add_feedback(FeedbackRecord(run_id=run_id, key="correct", score=1, comment="ok"))
    assert handle.finish(5.0)

    assert stub.runs[str(run_id)]["extra"]["metadata"]["success"] is True
    sent = stub.feedback[str(feedback.id)]
    assert sent["run_id"] == str(run_id) and sent["key"] == "correct" and sent["score"] == 1
    assert sent["session_id"] == stub.session_id(PROJECT)
    assert _pending(store) == []


def test_an_outage_leaves_traces_pending_and_sync_delivers_them_later(
    settings: Settings, store: LocalTraceStore, stub: LangSmithStub
) -> None:
    stub.set_mode("fail")
    handle = tracing_callbacks(settings, store)
    run_id = _run_graph(handle)
    started = time.monotonic()
    assert handle.finish(5.0) is False
    assert time.monotonic() - started < 3.0
    assert stub.run_ids == set()
    [item] = _pending(store)
    assert (item.kind, item.id, item.attempts) == ("trace", str(run_id), 1)
    assert "500" in (item.last_error or "")

    report = sync_pending(settings, store)  # still failing
    assert (report.sent, report.failed, report.remaining) == (0, 1, 1)
    assert _pending(store)[0].attempts == 2

    stub.set_mode("ok")
    report = sync_pending(settings, store)
    assert (report.sent, report.failed, report.remaining) == (1, 0, 0)
    local = store.get_trace(run_id)
    assert stub.run_ids == {str(r.id) for r in local}
    assert all(stub.runs[str(r.id)]["dotted_order"] == r.dotted_order for r in local)
    assert sync_pending(settings, store).sent == 0


def test_sync_is_bounded_against_an_endpoint_that_never_answers(tmp_path: Path) -> None:
    with Blackhole() as hole:
        settings = _settings(tmp_path, hole.url)
        with LocalTraceStore(settings.trace_store_path) as store:
            tracer = LocalTracer(store, project_name=PROJECT)
            build_graph().invoke(GRAPH_INPUT, config={"callbacks": [tracer]})
            tracer.flush()
            LangSmithOutbox(store.path).add_trace(tracer.root_run_ids[0])
            started = time.monotonic()
            report = sync_pending(settings, store, deadline_s=1.0)
            assert time.monotonic() - started < 2.5
            assert (report.sent, report.failed, report.remaining) == (0, 1, 1)
            assert hole.connections >= 1


def test_langsmith_on_without_a_key_stays_local(tmp_path: Path, stub: LangSmithStub) -> None:
    settings = _settings(tmp_path, stub.url, key=None)
    assert settings.tracing.langsmith
    with LocalTraceStore(settings.trace_store_path) as store:
        handle = tracing_callbacks(settings, store)
        assert not handle.langsmith
        assert any(isinstance(cb, LangSmithGuard) for cb in handle.callbacks)
        run_id = _run_graph(handle)
        assert handle.finish(1.0)
        assert store.get_run(run_id) is not None
        assert _pending(store) == []
        with pytest.raises(ConfigError, match="LANGSMITH_API_KEY"):
            sync_pending(settings, store)
    assert stub.requests == []


def test_run_payload_names_the_project_and_keeps_ids(tmp_path: Path) -> None:
    trace = uuid.uuid4()
    example = uuid.uuid4()
    run = RunRecord(
        id=trace,
        name="graph",
        run_type="chain",
        start_time="2026-01-02T03:04:05Z",
        trace_id=trace,
        dotted_order=f"20260102T030405000000Z{trace}",
        session_id=uuid.uuid4(),
        reference_example_id=example,
        extra={"metadata": {"task_type": "latency"}},
    )
    payload = run_payload(run, "exp-1")
    assert payload["session_name"] == "exp-1"
    assert "session_id" not in payload and "reference_example_id" not in payload
    assert payload["extra"]["metadata"] == {
        "task_type": "latency",
        "reference_example_id": str(example),
    }
    assert run.metadata == {"task_type": "latency"}  # the record is not mutated
    assert (payload["id"], payload["trace_id"], payload["dotted_order"]) == (
        trace,
        trace,
        run.dotted_order,
    )


def test_reader_returns_langsmith_runs_as_local_records(
    settings: Settings, store: LocalTraceStore, stub: LangSmithStub
) -> None:
    handle = tracing_callbacks(settings, store)
    first = _run_graph(handle)
    second = _run_graph(handle)
    handle.merge_metadata(second, {"success": True})
    assert handle.finish(5.0)

    client = make_client(settings)
    try:
        reader = LangSmithTraceReader(client, PROJECT)
        roots = reader.list_runs(is_root=True)
        assert [r.id for r in roots] == [second, first]  # newest first, like the local store
        assert all(isinstance(r, RunRecord) and r.status == "success" for r in roots)

        remote = reader.get_trace(first)  # more runs than one stub page: cursors followed
        local = store.get_trace(first)
        assert [r.id for r in remote] == [r.id for r in local]
        assert [r.parent_run_id for r in remote] == [r.parent_run_id for r in local]
        assert [r.child_run_ids for r in remote] == [r.child_run_ids for r in local]

        assert [r.id for r in reader.list_runs(is_root=True, metadata={"success": True})] == [second]
        tools = reader.list_runs(run_type="tool")
        assert len(tools) == 2 and {r.trace_id for r in tools} == {first, second}
        assert reader.list_runs(is_root=True, limit=1)[0].id == second

        got = reader.get_run(second)
        assert got is not None and got.metadata["success"] is True
        assert got.start_time == store.get_run(second).start_time  # type: ignore[union-attr]
        assert reader.get_run(uuid.uuid4()) is None
        assert reader.list_runs("no-such-project") == []
    finally:
        close_client(client)
