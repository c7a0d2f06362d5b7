"""Feedback on runs: stored LangSmith-style, by full id or unique prefix, delivered when configured."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.langsmith_stub import LangSmithStub
from helpers.trace_fixtures import Dataset, Tool, TraceSpec, build_dataset, make_trace

from selfheal.config import Settings, load_settings
from selfheal.errors import FileFormatError, SelfhealError
from selfheal.interact.feedback import (
    AmbiguousRunIdError,
    feedback_by_run,
    parse_correction,
    record_feedback,
    resolve_run_id,
)
from selfheal.tracing.analysis import analyze
from selfheal.tracing.errors import RunNotFoundError
from selfheal.tracing.store import LocalTraceStore


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return load_settings(tmp_path, env={})


@pytest.fixture()
def data(settings: Settings) -> Dataset:
    with LocalTraceStore(settings.trace_store_path) as store:
        return build_dataset(store, settings.tracing.project)


def test_feedback_is_stored_and_visible_to_analysis(settings: Settings, data: Dataset) -> None:
    root = data.roots["r2"]
    fb = record_feedback(
        settings, str(root.id)[:13], score=0.0, comment="raised memory, not timeout",
        correction={"action": "update_timeout", "timeout_s": 12},
    )  # fmt: skip
    assert fb.run_id == root.id and fb.trace_id == root.trace_id
    with LocalTraceStore(settings.trace_store_path) as store:
        stored = store.list_feedback(run_ids=[root.id], key="user_score")
        assert len(stored) == 1
        assert stored[0].score == 0.0 and stored[0].comment == "raised memory, not timeout"
        assert stored[0].correction == {"action": "update_timeout", "timeout_s": 12}
        assert stored[0].source is not None and stored[0].source.metadata == {"source": "cli"}
        a = analyze(store, project=settings.tracing.project, since=timedelta(days=7), task_type="lambda_timeout")
    scores = {f.key: f for f in a.overall.feedback}["user_score"]
    assert (scores.count, scores.mean) == (3, pytest.approx(1 / 3))  # r1 1.0, r3 0.0, r2 0.0


def test_prefix_resolution_is_like_git(settings: Settings, data: Dataset) -> None:
    with LocalTraceStore(settings.trace_store_path) as store:
        root = data.roots["r1"]
        assert resolve_run_id(store, str(root.id)) == root.id
        child = next(r for r in data.runs if r.trace_id == root.id and r.run_type == "tool")
        assert resolve_run_id(store, str(child.id)[:20]) == child.id
        with pytest.raises(RunNotFoundError, match="no run id starts with"):
            resolve_run_id(store, "ffffffff-ffff")
        with pytest.raises(RunNotFoundError, match="not found"):
            resolve_run_id(store, str(uuid.uuid4()))
        with pytest.raises(SelfhealError, match="not a run id"):
            resolve_run_id(store, "ab")
        with pytest.raises(SelfhealError, match="not a run id"):
            resolve_run_id(store, "xyz-not-hex")


def test_ambiguous_prefix_is_one_line_and_roots_win(settings: Settings) -> None:
    with LocalTraceStore(settings.trace_store_path) as store:
        session = store.ensure_project("selfheal").id
        now = datetime.now(UTC)
        # Two traces whose ids share a prefix, as uuid7 ids made in the same millisecond do.
        fixed = []
        for tag in ("a", "b"):
            runs = make_trace(TraceSpec(tag, "t", True, 1.0, [Tool("x")]), session, now)
            ids = {r.id: uuid.UUID(f"0123abcd-0000-7000-8000-0000000000{tag}{n}") for n, r in enumerate(runs)}
            for run in runs:
                fixed.append(run.model_copy(update={
                    "id": ids[run.id], "trace_id": ids[run.trace_id],
                    "parent_run_id": ids[run.parent_run_id] if run.parent_run_id else None,
                }))  # fmt: skip
        store.write_runs(fixed)
        with pytest.raises(AmbiguousRunIdError) as info:
            resolve_run_id(store, "0123abcd")
        message = str(info.value)
        assert "\n" not in message and "give more characters" in message
        assert "0123abcd-0000-7000-8000-0000000000a0" in message  # the candidate roots are named
        assert "0123abcd-0000-7000-8000-0000000000b0" in message
        # A prefix shared by one root and only its own children names the root...
        assert resolve_run_id(store, "0123ABCD-0000-7000-8000-0000000000B") == fixed[4].id
        # ...and a longer one still reaches a child.
        assert resolve_run_id(store, "0123abcd-0000-7000-8000-0000000000b3") == fixed[7].id


def test_unknown_and_ambiguous_ids_fail_record_feedback(settings: Settings, data: Dataset) -> None:
    with pytest.raises(RunNotFoundError):
        record_feedback(settings, "ffffffff", score=1)
    with pytest.raises(SelfhealError, match="finite number"):
        record_feedback(settings, str(data.roots["r1"].id), score=float("nan"))
    with pytest.raises(SelfhealError, match="key"):
        record_feedback(settings, str(data.roots["r1"].id), score=1, key=" ")
    with LocalTraceStore(settings.trace_store_path) as store:
        assert len(store.list_feedback()) == len(data.feedback)  # nothing half-written


def test_corrections_from_text_and_files(tmp_path: Path) -> None:
    assert parse_correction("set timeout to 12 s") == "set timeout to 12 s"
    assert parse_correction(None) is None
    good = tmp_path / "fix.json"
    good.write_text(json.dumps({"timeout_s": 12}))
    assert parse_correction(f"@{good}") == {"timeout_s": 12}
    note = tmp_path / "fix.txt"
    note.write_text("raise the timeout\n")
    assert parse_correction("@fix.txt", base=tmp_path) == "raise the timeout"
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "timeout_s": 12,\n  oops\n}\n')
    with pytest.raises(FileFormatError) as info:
        parse_correction(f"@{bad}")
    assert str(info.value).startswith(f"{bad}:3: invalid JSON")
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(FileFormatError, match="JSON object or string"):
        parse_correction(f"@{listed}")
    with pytest.raises(SelfhealError, match="not found"):
        parse_correction(f"@{tmp_path / 'missing.json'}")


def test_feedback_by_run_groups_for_curation(settings: Settings, data: Dataset) -> None:
    with LocalTraceStore(settings.trace_store_path) as store:
        ids = [data.roots[k].id for k in ("r1", "r2", "r3")]
        grouped = feedback_by_run(store, ids)
        assert set(grouped) == {data.roots["r1"].id, data.roots["r3"].id}
        assert {f.key for f in grouped[data.roots["r3"].id]} == {"user_score", "correctness"}
        only = feedback_by_run(store, ids, key="correctness")
        assert list(only) == [data.roots["r3"].id]


@pytest.fixture()
def stub() -> Iterator[LangSmithStub]:
    with LangSmithStub() as s:
        yield s


def test_feedback_goes_to_langsmith_when_configured(tmp_path: Path, stub: LangSmithStub) -> None:
    settings = load_settings(
        tmp_path,
        env={},
        overrides={"tracing": {"langsmith": True, "langsmith_api_key": "ls-test", "langsmith_endpoint": stub.url}},
    )
    with LocalTraceStore(settings.trace_store_path) as store:
        data = build_dataset(store, settings.tracing.project, other_project=False)
    fb = record_feedback(settings, str(data.roots["r4"].id), score=0.5, comment="slow", correction="raise to 12 s")
    sent = stub.feedback.get(str(fb.id))
    assert sent is not None, stub.requests
    assert sent["key"] == "user_score" and sent["score"] == 0.5 and sent["comment"] == "slow"
    assert sent["correction"] == {"text": "raise to 12 s"}
    assert str(sent["run_id"]) == str(data.roots["r4"].id)
    with LocalTraceStore(settings.trace_store_path) as store:  # and it is kept locally
        assert [f.id for f in store.list_feedback(run_ids=[data.roots["r4"].id])] == [fb.id]


def test_a_score_outside_0_to_1_is_refused_before_anything_is_stored(settings: Settings, data: Dataset) -> None:
    for score in (1.5, -0.01):
        with pytest.raises(SelfhealError, match="from 0 to 1"):
            record_feedback(settings, str(data.roots["r1"].id), score=score)
    with LocalTraceStore(settings.trace_store_path) as store:
        assert len(store.list_feedback()) == len(data.feedback)
