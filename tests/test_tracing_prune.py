"""Retention: ``LocalTraceStore.prune`` drops whole old traces, their feedback and outbox rows."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selfheal.tracing import FeedbackRecord, LocalTraceStore, RunRecord, TraceStoreError
from selfheal.tracing import store as store_module
from selfheal.tracing.sync import LangSmithOutbox

NOW = datetime.now(UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalTraceStore]:
    s = LocalTraceStore(tmp_path / "traces.sqlite")
    yield s
    s.close()


def trace(
    start: datetime,
    *,
    children: int = 3,
    session_id: uuid.UUID | None = None,
    child_gap: timedelta = timedelta(seconds=1),
) -> list[RunRecord]:
    """A root and ``children`` child runs starting ``child_gap`` apart after the root."""
    root_id = uuid.uuid4()
    order = f"{start:%Y%m%dT%H%M%S%fZ}{root_id}"
    runs = [
        RunRecord(
            id=root_id,
            name="LangGraph",
            run_type="chain",
            start_time=start,
            end_time=start + child_gap * (children + 1),
            trace_id=root_id,
            dotted_order=order,
            session_id=session_id,
            inputs={"task": "x" * 2000},
        )
    ]
    for i in range(children):
        t = start + child_gap * (i + 1)
        rid = uuid.uuid4()
        runs.append(
            RunRecord(
                id=rid,
                name=f"step-{i}",
                run_type="llm",
                start_time=t,
                end_time=t,
                parent_run_id=root_id,
                trace_id=root_id,
                dotted_order=f"{order}.{t:%Y%m%dT%H%M%S%fZ}{rid}",
                session_id=session_id,
                inputs={"messages": "y" * 2000},
            )
        )
    return runs


def trace_sizes(store: LocalTraceStore) -> dict[str, int]:
    with store._read() as conn:
        return {
            r[0]: r[1]
            for r in conn.execute("SELECT trace_id, COUNT(*) FROM runs GROUP BY trace_id")
        }


def test_prunes_whole_old_traces_and_keeps_recent_ones(store: LocalTraceStore) -> None:
    # A long trace: its root is 31 days old, its last child only 29 days old.
    long_old = trace(NOW - timedelta(days=31), children=2, child_gap=timedelta(days=1))
    old = trace(NOW - timedelta(days=40))
    recent = trace(NOW - timedelta(days=2))
    store.write_runs(long_old + old + recent)

    assert store.prune(timedelta(days=30)) == 2

    assert trace_sizes(store) == {str(recent[0].trace_id): 4}
    assert store.get_trace(long_old[0].trace_id) == []
    assert store.prune(timedelta(days=30)) == 0


def test_feedback_and_langsmith_outbox_rows_go_with_their_trace(store: LocalTraceStore) -> None:
    old, kept = trace(NOW - timedelta(days=60)), trace(NOW - timedelta(hours=1))
    store.write_runs(old + kept)
    on_child = store.add_feedback(FeedbackRecord(run_id=old[2].id, key="correctness", score=0))
    on_trace = store.add_feedback(
        FeedbackRecord(trace_id=old[0].trace_id, key="note", comment="by trace")
    )
    keep = store.add_feedback(FeedbackRecord(run_id=kept[1].id, key="correctness", score=1))
    outbox = LangSmithOutbox(store.path)
    try:
        outbox.add_trace(old[0].trace_id)
        outbox.add_trace(kept[0].trace_id)
        for fb in (on_child, on_trace, keep):
            outbox.add_feedback(fb.id, fb.run_id)

        assert store.prune(timedelta(days=30)) == 1

        assert [f.id for f in store.list_feedback()] == [keep.id]
        assert {(p.kind, p.id) for p in outbox.pending()} == {
            ("trace", str(kept[0].trace_id)),
            ("feedback", str(keep.id)),
        }
    finally:
        outbox.close()


def test_project_scope_and_unknown_project(store: LocalTraceStore) -> None:
    ops, other = store.ensure_project("ops"), store.ensure_project("other")
    a = trace(NOW - timedelta(days=90), session_id=ops.id)
    b = trace(NOW - timedelta(days=90), session_id=other.id)
    store.write_runs(a + b)
    assert store.prune(timedelta(days=30), project="nope") == 0
    assert store.prune(timedelta(days=30), project="ops") == 1
    assert set(trace_sizes(store)) == {str(b[0].trace_id)}
    assert store.prune(timedelta(days=30), project=other.id) == 1
    assert store.count_runs() == 0


def test_batches_are_whole_traces_and_a_failed_batch_leaves_its_traces_intact(
    store: LocalTraceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = [trace(NOW - timedelta(days=100 + i)) for i in range(5)]
    store.write_runs([r for t in traces for r in t])
    real = store_module._delete_traces
    calls: list[list[str]] = []

    def failing_second_batch(conn: sqlite3.Connection, trace_ids: list[str]) -> None:
        calls.append(list(trace_ids))
        real(conn, trace_ids)  # deletes the runs, then the batch fails before commit
        if len(calls) == 2:
            raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store_module, "_delete_traces", failing_second_batch)
    with pytest.raises(TraceStoreError, match="disk I/O error"):
        store.prune(timedelta(days=30), batch_traces=2)
    sizes = trace_sizes(store)
    assert len(calls[0]) == 2 and not set(calls[0]) & set(sizes)  # first batch committed
    assert len(sizes) == 3 and set(sizes.values()) == {4}  # nothing partial
    assert set(calls[1]) <= set(sizes)  # second batch rolled back whole

    monkeypatch.setattr(store_module, "_delete_traces", real)
    assert store.prune(timedelta(days=30), batch_traces=2) == 3
    assert store.count_runs() == 0


def test_vacuum_shrinks_the_file_and_later_prunes_reclaim_incrementally(
    store: LocalTraceStore,
) -> None:
    store.write_runs([r for i in range(60) for r in trace(NOW - timedelta(days=50, minutes=i))])
    store.write_runs(trace(NOW))

    def size() -> int:
        with store._read() as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return store.path.stat().st_size

    before = size()
    assert store.prune(timedelta(days=30), vacuum=True) == 60
    after = size()
    assert after < before / 3
    with store._read() as conn:
        assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on

    store.write_runs([r for i in range(60) for r in trace(NOW - timedelta(days=50, minutes=i))])
    grown = size()
    assert store.prune(timedelta(days=30)) == 60
    assert size() < grown / 2  # freed without another full VACUUM
    assert store.count_runs() == 4


def test_orphan_children_and_bad_arguments(store: LocalTraceStore) -> None:
    orphan_child = trace(NOW - timedelta(days=90))[1:]  # its root was never written
    store.write_runs(orphan_child)
    assert store.prune(timedelta(days=30)) == 0  # no root start to judge it by
    assert store.count_runs() == 3
    with pytest.raises(ValueError):
        store.prune(timedelta(days=-1))
    with pytest.raises(ValueError):
        store.prune(timedelta(days=1), batch_traces=0)


def test_prune_waits_for_background_writes(store: LocalTraceStore) -> None:
    from selfheal.tracing.store import encode_run

    store.submit_encoded([encode_run(r) for r in trace(NOW - timedelta(days=45))])
    assert store.prune(timedelta(days=30)) == 1
    assert store.count_runs() == 0
