"""The local trace store: what a user (CLI, evaluator, optimizer) reads back from it."""

from __future__ import annotations

import math
import sqlite3
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langsmith import schemas as ls_schemas
from pydantic import BaseModel

from selfheal.tracing import (
    ExampleRecord,
    FeedbackRecord,
    FeedbackSource,
    LocalTraceStore,
    RunNotFoundError,
    RunRecord,
    TraceStore,
    TraceStoreError,
)
from selfheal.tracing.migrations import CURRENT_VERSION, MIGRATIONS
from selfheal.tracing.serde import is_truncated


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = LocalTraceStore(tmp_path / "state" / "traces.sqlite")
    yield s
    s.close()


def make_trace(
    session_id: uuid.UUID | None,
    *,
    start: datetime | None = None,
    children: int = 2,
    metadata: dict[str, Any] | None = None,
    error: bool = False,
) -> list[RunRecord]:
    """A root chain run with ``children`` llm runs under it, dotted orders like LangChain's."""
    start = start or datetime.now(UTC)
    root_id = uuid.uuid4()
    root_order = start.strftime("%Y%m%dT%H%M%S%fZ") + str(root_id)
    runs = [
        RunRecord(
            id=root_id,
            name="LangGraph",
            run_type="chain",
            start_time=start,
            end_time=start + timedelta(seconds=2),
            inputs={"task": "fix latency"},
            outputs=None if error else {"answer": "done"},
            error="ValueError('boom')" if error else None,
            extra={"metadata": dict(metadata or {})},
            trace_id=root_id,
            dotted_order=root_order,
            session_id=session_id,
            status="error" if error else "success",
            total_tokens=10 * children,
        )
    ]
    for i in range(children):
        t = start + timedelta(milliseconds=10 * (i + 1))
        cid = uuid.uuid4()
        runs.append(
            RunRecord(
                id=cid,
                name=f"model-{i}",
                run_type="llm",
                start_time=t,
                end_time=t + timedelta(milliseconds=5),
                inputs={"messages": [[{"type": "human", "content": f"step {i}"}]]},
                outputs={"generations": []},
                parent_run_id=root_id,
                trace_id=root_id,
                dotted_order=root_order + "." + t.strftime("%Y%m%dT%H%M%S%fZ") + str(cid),
                session_id=session_id,
                prompt_tokens=7,
                completion_tokens=3,
                total_tokens=10,
            )
        )
    return runs


def test_store_satisfies_protocol_and_creates_parent_dirs(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "traces.sqlite"
    with LocalTraceStore(path) as s:
        assert isinstance(s, TraceStore)
    assert path.is_file()


def test_trace_round_trips_in_execution_order_with_children(store: LocalTraceStore) -> None:
    project = store.ensure_project("ops")
    runs = make_trace(project.id, children=3)
    store.write_runs(reversed(runs))  # write order must not matter

    trace = store.get_trace(runs[0].trace_id)
    assert [r.id for r in trace] == [r.id for r in runs]
    root = trace[0]
    assert root.is_root and root.child_run_ids == [r.id for r in runs[1:]]
    assert all(r.parent_run_id == root.id for r in trace[1:])
    assert root.inputs == {"task": "fix latency"} and root.outputs == {"answer": "done"}
    assert root.latency == pytest.approx(2.0)
    assert root.start_time == runs[0].start_time and root.start_time.tzinfo is not None
    child = store.get_run(runs[1].id)
    assert child is not None and (child.prompt_tokens, child.completion_tokens) == (7, 3)
    assert store.get_run(uuid.uuid4()) is None


def test_rewriting_a_run_replaces_it(store: LocalTraceStore) -> None:
    runs = make_trace(None, children=0)
    store.write_runs(runs)
    store.write_runs([runs[0].model_copy(update={"status": "error", "error": "late failure"})])
    got = store.get_run(runs[0].id)
    assert got is not None and got.status == "error" and got.error == "late failure"
    assert store.count_runs() == 1


def test_list_runs_filters_and_orders_newest_first(store: LocalTraceStore) -> None:
    ops = store.ensure_project("ops")
    other = store.ensure_project("other")
    now = datetime.now(UTC)
    old = make_trace(
        ops.id,
        start=now - timedelta(days=10),
        metadata={"task_type": "lambda_latency", "success": True},
    )
    failed = make_trace(
        ops.id,
        start=now - timedelta(hours=2),
        metadata={"task_type": "lambda_latency", "success": False},
        error=True,
    )
    recent = make_trace(
        ops.id,
        start=now - timedelta(hours=1),
        metadata={"task_type": "lambda_memory", "success": True},
    )
    elsewhere = make_trace(other.id, start=now, metadata={"task_type": "lambda_latency"})
    for t in (old, failed, recent, elsewhere):
        store.write_runs(t)

    roots = store.list_runs("ops", is_root=True)
    assert [r.id for r in roots] == [recent[0].id, failed[0].id, old[0].id]
    assert len(store.list_runs("ops")) == 9
    assert len(store.list_runs("ops", is_root=False)) == 6
    assert {r.run_type for r in store.list_runs("ops", run_type="llm")} == {"llm"}
    assert [r.id for r in store.list_runs("ops", is_root=True, since=timedelta(days=7))] == [
        recent[0].id,
        failed[0].id,
    ]
    assert [r.id for r in store.list_runs(since=now - timedelta(minutes=1), is_root=True)] == [
        elsewhere[0].id
    ]
    assert [r.id for r in store.list_runs("ops", status="error")] == [failed[0].id]
    assert [r.id for r in store.list_runs("ops", is_root=True, metadata={"success": False})] == [
        failed[0].id
    ]
    assert [
        r.id for r in store.list_runs(is_root=True, metadata={"task_type": "lambda_latency"})
    ] == [
        elsewhere[0].id,
        failed[0].id,
        old[0].id,
    ]
    assert [
        r.id
        for r in store.list_runs("ops", metadata={"task_type": "lambda_latency", "success": True})
    ] == [old[0].id]
    assert len(store.list_runs("ops", limit=2)) == 2
    assert store.list_runs("nope") == []
    assert len(store.list_runs(ops.id, is_root=True)) == 3
    assert [r.name for r in store.list_runs("ops", name="model-1")] == ["model-1"] * 3


def test_metadata_filter_on_unindexed_key_and_bad_filters(store: LocalTraceStore) -> None:
    a = make_trace(None, children=0, metadata={"context_version": "abc123", "attempts": 2})
    b = make_trace(None, children=0, metadata={"context_version": "def456"})
    store.write_runs(a + b)
    assert [r.id for r in store.list_runs(metadata={"context_version": "abc123"})] == [a[0].id]
    assert [r.id for r in store.list_runs(metadata={"attempts": 2})] == [a[0].id]
    assert [r.id for r in store.list_runs(metadata={"attempts": None})] == [b[0].id]
    with pytest.raises(ValueError, match="scalar"):
        store.list_runs(metadata={"attempts": [1, 2]})
    with pytest.raises(ValueError, match="letters"):
        store.list_runs(metadata={"a'b": 1})


def test_metadata_filters_on_root_runs_use_an_index(store: LocalTraceStore) -> None:
    store.write_runs(make_trace(None, metadata={"task_type": "lambda_latency", "success": True}))
    statements: list[str] = []
    assert store._conn is not None
    store._conn.set_trace_callback(statements.append)
    store.list_runs(is_root=True, metadata={"task_type": "lambda_latency"})
    store._conn.set_trace_callback(None)
    query = next(s for s in statements if s.startswith("SELECT"))
    plan = " ".join(row[3] for row in store._conn.execute("EXPLAIN QUERY PLAN " + query))
    assert "ix_runs_meta_task_type" in plan


def test_merge_metadata_updates_filters(store: LocalTraceStore) -> None:
    runs = make_trace(None, metadata={"task_type": "lambda_latency"})
    store.write_runs(runs)
    merged = store.merge_metadata(
        runs[0].id, {"success": False, "error_type": "Timeout", "latency": 1.5}
    )
    assert merged.metadata == {
        "task_type": "lambda_latency",
        "success": False,
        "error_type": "Timeout",
        "latency": 1.5,
    }
    assert [r.id for r in store.list_runs(metadata={"error_type": "Timeout"})] == [runs[0].id]
    store.merge_metadata(str(runs[0].id), {"success": True})
    assert [r.id for r in store.list_runs(metadata={"success": True})] == [runs[0].id]
    with pytest.raises(RunNotFoundError, match="not found"):
        store.merge_metadata(uuid.uuid4(), {"success": True})
    with pytest.raises(TraceStoreError, match="invalid run id"):
        store.merge_metadata("not-a-uuid", {"success": True})


class _Opaque:
    def __repr__(self) -> str:
        return "<opaque thing>"


class _Config(BaseModel):
    memory_mb: int
    at: datetime


def test_payloads_with_non_json_objects_are_stored(store: LocalTraceStore) -> None:
    when = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    msg = AIMessage(
        "raising memory",
        tool_calls=[{"name": "update_memory", "args": {"mb": 1024}, "id": "call-1"}],
        usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7},
    )
    runs = make_trace(None, children=0)
    runs[0] = runs[0].model_copy(
        update={
            "inputs": {
                "message": msg,
                "config": _Config(memory_mb=512, at=when),
                "when": when,
                "ids": {uuid.UUID(int=1)},
                "raw": b"\x00\xff",
                "thing": _Opaque(),
                "error": TimeoutError("3 s"),
                "ratio": math.nan,
            }
        }
    )
    store.write_runs(runs)
    got = store.get_run(runs[0].id)
    assert got is not None
    inputs = got.inputs
    assert inputs["message"]["type"] == "ai"
    assert inputs["message"]["tool_calls"][0]["args"] == {"mb": 1024}
    assert inputs["message"]["usage_metadata"]["total_tokens"] == 7
    assert inputs["config"] == {"memory_mb": 512, "at": "2026-11-20T10:30:00Z"}
    assert inputs["when"] == "2026-11-20T10:30:00Z"
    assert inputs["ids"] == [str(uuid.UUID(int=1))]
    assert inputs["thing"] == "<opaque thing>"
    assert inputs["error"] == {"type": "TimeoutError", "message": "3 s"}
    assert inputs["ratio"] is None
    assert isinstance(inputs["raw"], str)


def test_huge_payloads_are_truncated_with_a_marker(tmp_path: Path) -> None:
    with LocalTraceStore(tmp_path / "t.sqlite", max_payload_chars=2_000) as s:
        runs = make_trace(None, children=1)
        runs[0] = runs[0].model_copy(
            update={"inputs": {"log": "x" * 50_000, "function": "checkout-api"}}
        )
        runs[1] = runs[1].model_copy(
            update={"outputs": {"lines": [f"line {i}" for i in range(5_000)]}}
        )
        s.write_runs(runs)
        root = s.get_run(runs[0].id)
        child = s.get_run(runs[1].id)
    assert root is not None and child is not None
    # Long strings are cut first, keeping the structure and the small fields.
    assert root.inputs["function"] == "checkout-api"
    assert root.inputs["log"].startswith("xxx") and "truncated" in root.inputs["log"]
    assert len(root.inputs["log"]) < 2_000
    # A payload that is big by structure is replaced whole, with its size and a preview.
    assert child.outputs is not None and is_truncated(child.outputs)
    assert child.outputs["original_chars"] > 2_000
    assert child.outputs["preview"].startswith('{"lines":["line 0"')


def test_concurrent_writes_from_four_threads_are_all_stored(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    store = LocalTraceStore(path)
    project = store.ensure_project("eval")
    written: list[list[RunRecord]] = [[] for _ in range(4)]
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for _ in range(25):
                trace = make_trace(project.id, children=3)
                store.write_runs(trace)
                written[n].append(trace[0])
                store.list_runs("eval", limit=5)  # reads interleave with writes
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert store.count_runs("eval") == 4 * 25 * 4
    assert store.count_runs("eval", is_root=True) == 100
    store.close()

    # A second process (here: a second store object) sees everything after reopening.
    with LocalTraceStore(path) as again:
        assert again.migrated_from == CURRENT_VERSION
        assert again.count_runs("eval") == 400
        for roots in written:
            for root in roots:
                assert len(again.get_trace(root.trace_id)) == 4


def test_closed_store_says_so(tmp_path: Path) -> None:
    s = LocalTraceStore(tmp_path / "t.sqlite")
    s.close()
    with pytest.raises(TraceStoreError, match="closed"):
        s.list_runs()


def test_feedback_is_attached_to_runs(store: LocalTraceStore) -> None:
    runs = make_trace(None)
    store.write_runs(runs)
    fb = store.add_feedback(
        FeedbackRecord(
            run_id=runs[0].id,
            key="user_score",
            score=True,
            comment="fixed it",
            correction={"action": "check VPC first"},
            source=FeedbackSource(type="app", user_id="alice"),
        )
    )
    assert fb.trace_id == runs[0].trace_id
    store.add_feedback(
        FeedbackRecord(run_id=runs[1].id, key="correctness", score=0.25, value="partial")
    )
    assert [f.key for f in store.list_feedback(run_ids=[runs[0].id])] == ["user_score"]
    (got,) = store.list_feedback(key="user_score")
    assert got.score == 1 and got.correction == {"action": "check VPC first"}
    assert got.source is not None and got.source.user_id == "alice"
    assert store.list_feedback(key="correctness")[0].value == "partial"
    assert len(store.list_feedback()) == 2
    assert store.list_feedback(run_ids=[]) == []
    with pytest.raises(RunNotFoundError):
        store.add_feedback(FeedbackRecord(run_id=uuid.uuid4(), key="x", score=1))


def test_datasets_and_examples(store: LocalTraceStore) -> None:
    ds = store.ensure_dataset("lambda_ops", description="scenarios")
    assert store.ensure_dataset("lambda_ops").id == ds.id
    assert store.get_dataset("missing") is None
    store.upsert_examples(
        [
            ExampleRecord(
                dataset_id=ds.id, inputs={"task": "a"}, metadata={"dataset_split": ["train"]}
            ),
            ExampleRecord(
                dataset_id=ds.id,
                inputs={"task": "b"},
                outputs={"ok": True},
                metadata={"dataset_split": "test"},
            ),
        ]
    )
    assert [e.inputs["task"] for e in store.list_examples(ds.id)] == ["a", "b"]
    assert [e.inputs["task"] for e in store.list_examples(ds.id, split="test")] == ["b"]
    got = store.get_dataset("lambda_ops")
    assert got is not None and got.description == "scenarios"


def test_records_accept_langsmith_objects() -> None:
    rid = uuid.uuid4()
    ls_run = ls_schemas.Run(
        id=rid,
        name="agent",
        run_type="chain",
        start_time=datetime.now(UTC),
        trace_id=rid,
        dotted_order="20260101T000000000000Z" + str(rid),
        inputs={"task": "t"},
        extra={"metadata": {"task_type": "lambda_latency"}},
        status="success",
        total_tokens=12,
    )
    rec = RunRecord.model_validate(ls_run.model_dump())
    assert (
        rec.id == rid and rec.metadata == {"task_type": "lambda_latency"} and rec.total_tokens == 12
    )
    fb = FeedbackRecord.model_validate(
        {"run_id": rid, "key": "k", "feedback_source": {"type": "model"}}
    )
    assert fb.source is not None and fb.source.type == "model"


# -- schema versions ---------------------------------------------------------


def _make_v1_store(path: Path) -> uuid.UUID:
    """A file as selfheal's first trace schema left it, holding one root run."""
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[1](conn)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    rid = uuid.uuid4()
    conn.execute(
        "INSERT INTO runs (id, name, run_type, start_time, start_us, extra, trace_id,"
        " dotted_order, status)"
        " VALUES (?, 'old', 'chain', '2026-01-01T00:00:00.000000Z', 0, ?, ?, ?, 'success')",
        (
            str(rid),
            '{"metadata": {"task_type": "lambda_latency", "success": true}}',
            str(rid),
            "x" + str(rid),
        ),
    )
    conn.close()
    return rid


def test_store_from_older_schema_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    rid = _make_v1_store(path)
    with LocalTraceStore(path) as s:
        assert s.migrated_from == 1
        assert [
            r.id for r in s.list_runs(metadata={"task_type": "lambda_latency", "success": True})
        ] == [rid]
    version = sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchone()[0]
    assert version == CURRENT_VERSION


def test_store_from_newer_selfheal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    LocalTraceStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE schema_version SET version = ?", (CURRENT_VERSION + 1,))
    conn.close()
    with pytest.raises(TraceStoreError, match=r"new\.sqlite: .*newer than this selfheal supports"):
        LocalTraceStore(path)


def test_foreign_database_and_garbage_file_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "app.db"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE users (id INTEGER)")
    conn.commit()
    conn.close()
    with pytest.raises(TraceStoreError, match=r"app\.db: not a selfheal trace store"):
        LocalTraceStore(foreign)

    garbage = tmp_path / "notes.txt"
    garbage.write_text("this is not a database\n" * 100)
    with pytest.raises(TraceStoreError, match=r"notes\.txt: not a usable trace store"):
        LocalTraceStore(garbage)
