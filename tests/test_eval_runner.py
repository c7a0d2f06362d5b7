"""The concurrent eval runner: experiments in the trace store, timeouts, retries, errors, -j determinism."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfheal.config import load_settings
from selfheal.evaluation import runner as eval_runner
from selfheal.evaluation.dataset import load_dataset
from selfheal.evaluation.experiments import list_experiments, load_experiment
from selfheal.evaluation.runner import is_transient, run_experiment
from selfheal.errors import ModelError, SelfhealError
from selfheal.tracing.store import LocalTraceStore
from selfheal.versioning import content_version
from helpers.eval_fixtures import AgentScript, make_repo, model_factory

SPLITS = {"lambda_timeout": "test", "lambda_memory": "test", "lambda_cost": "test", "lambda_errors": "dev"}


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, SPLITS)


@pytest.fixture()
def script() -> Iterator[AgentScript]:
    s = AgentScript({"lambda_memory": "wrong"})
    yield s
    s.release.set()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eval_runner, "RETRY_BASE_S", 0.01)


def test_experiment_is_stored_langsmith_style(repo: Path, script: AgentScript) -> None:
    settings = load_settings(repo, env={})
    ds = load_dataset(settings)
    cheatsheet_before = content_version(settings.cheatsheet_dir, settings.root)
    result = run_experiment(settings, ds, split="test", jobs=2, model_factory=model_factory(script), progress=False)

    assert [r.name for r in result.results] == [e.name for e in ds.select("test")]
    verdict = {r.name: r.passed for r in result.results}
    assert verdict == {"lambda_cost": True, "lambda_memory": False, "lambda_timeout": True}
    assert result.name.startswith(f"lambda_ops-test-{ds.hash[:7]}-") and result.dataset_hash == ds.hash
    assert result.passed == 2 and result.n == 3

    with LocalTraceStore(settings.trace_store_path) as store:
        project = store.get_project(result.name)
        dataset_rec = store.get_dataset("lambda_ops")
        assert project is not None and dataset_rec is not None
        assert str(project.id) == result.experiment_id and project.reference_dataset_id == dataset_rec.id
        assert project.metadata["dataset_hash"] == ds.hash
        stored_examples = {str(e.id) for e in store.list_examples(dataset_rec.id, split="test")}
        assert stored_examples == {e.id for e in ds.select("test")}
        roots = store.list_runs(result.name, is_root=True)
        assert {str(r.reference_example_id) for r in roots} == stored_examples
        assert all(r.metadata["experiment"] == result.name and "eval" in r.tags for r in roots)
        memory = next(r for r in result.results if r.name == "lambda_memory")
        feedback = {f.key: f for f in store.list_feedback(run_ids=[memory.run_id])}
        assert feedback["state_checks"].score < 1 and "image-resizer" in (feedback["state_checks"].comment or "")
        assert feedback["passed"].score == 0.0

        again = load_experiment(store, result.name)
        assert again == result
        assert load_experiment(store, result.experiment_id) == result
        assert [e.name for e in list_experiments(store, "lambda_ops")] == [result.name]
        assert list_experiments(store, "other") == []
        with pytest.raises(SelfhealError, match="unknown experiment 'nope'"):
            load_experiment(store, "nope")
    # learning is off during an eval: the cheatsheet files are untouched
    assert content_version(settings.cheatsheet_dir, settings.root) == cheatsheet_before


def test_parallel_gives_the_same_verdicts_as_serial(repo: Path, script: AgentScript) -> None:
    settings = load_settings(repo, env={})
    ds = load_dataset(settings)
    serial = run_experiment(settings, ds, split="test", jobs=1, model_factory=model_factory(script), progress=False)
    parallel = run_experiment(settings, ds, split="test", jobs=4, model_factory=model_factory(script), progress=False)
    assert serial.name != parallel.name
    assert [(r.name, r.passed, r.score) for r in serial.results] == [
        (r.name, r.passed, r.score) for r in parallel.results
    ]
    assert {r.status for r in parallel.results} == {"ok"} and parallel.jobs == 4


def test_timeout_is_recorded_while_others_finish(repo: Path) -> None:
    settings = load_settings(repo, env={})
    ds = load_dataset(settings)
    script = AgentScript({"lambda_cost": "hang"})
    try:
        started = time.monotonic()
        result = run_experiment(
            settings, ds, split="test", names=["lambda_cost", "lambda_timeout"], jobs=2, timeout_s=3,
            model_factory=model_factory(script), progress=False,
        )  # fmt: skip
        elapsed = time.monotonic() - started
    finally:
        script.release.set()
    by = {r.name: r for r in result.results}
    assert by["lambda_cost"].status == "timeout" and not by["lambda_cost"].passed
    assert by["lambda_cost"].error == "no result within 3s"
    assert by["lambda_timeout"].status == "ok" and by["lambda_timeout"].passed
    assert elapsed < 15


def test_transient_model_error_is_retried(repo: Path) -> None:
    settings = load_settings(repo, env={})
    script = AgentScript({"lambda_timeout": "transient_once"})
    result = run_experiment(
        settings, load_dataset(settings), split="test", names=["lambda_timeout"],
        model_factory=model_factory(script), progress=False,
    )  # fmt: skip
    (only,) = result.results
    assert only.status == "ok" and only.passed and only.attempts == 2
    assert script.calls["lambda_timeout"] == 3  # the failed call, then tool call + answer


def test_permanent_error_is_recorded_and_the_eval_continues(repo: Path) -> None:
    settings = load_settings(repo, env={})
    script = AgentScript({"lambda_timeout": "permanent"})
    result = run_experiment(
        settings, load_dataset(settings), split="test", names=["lambda_timeout", "lambda_cost"], jobs=2,
        model_factory=model_factory(script), progress=False,
    )  # fmt: skip
    by = {r.name: r for r in result.results}
    bad = by["lambda_timeout"]
    assert bad.status == "error" and bad.attempts == 1 and not bad.passed
    assert bad.error == "ModelError: model endpoint http://127.0.0.1:9/v1 rejected the API key (HTTP 401): bad key"
    assert bad.run_id is not None  # the errored trace is linked
    assert by["lambda_cost"].passed and by["lambda_cost"].status == "ok"
    with LocalTraceStore(settings.trace_store_path) as store:
        run = store.get_run(bad.run_id)
        assert run is not None and run.status == "error" and str(run.reference_example_id) == bad.example_id


def test_transient_classification() -> None:
    assert is_transient(ModelError("model endpoint http://x/v1 timed out: read timed out"))
    assert is_transient(ModelError("model endpoint http://x/v1 failed with HTTP 503: busy"))
    assert is_transient(ModelError("model endpoint http://x/v1 is rate limiting (HTTP 429): slow down"))
    assert is_transient(ModelError("cannot reach model endpoint http://x/v1: Connection refused"))
    assert not is_transient(ModelError("model endpoint http://x/v1 rejected the API key (HTTP 401): no"))
    assert not is_transient(ValueError("timed out"))
    flagged = ModelError("odd")
    flagged.transient = True  # type: ignore[attr-defined]
    assert is_transient(flagged)


def test_bad_arguments_are_user_errors(repo: Path) -> None:
    settings = load_settings(repo, env={})
    ds = load_dataset(settings)
    with pytest.raises(SelfhealError, match="no examples in split 'train'"):
        run_experiment(settings, ds, split="train", progress=False)
    with pytest.raises(SelfhealError, match="--jobs must be at least 1"):
        run_experiment(settings, ds, jobs=0, progress=False)


def test_ctrl_c_cancels_pending_examples_and_keeps_finished_ones(
    repo: Path, script: AgentScript, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(repo, env={})
    real_wait = eval_runner.wait
    state = {"finished": 0}

    def interrupted_wait(pending, timeout=None, return_when=None):  # type: ignore[no-untyped-def]
        if state["finished"]:
            raise KeyboardInterrupt
        done, rest = real_wait(pending, timeout=timeout, return_when=return_when)
        state["finished"] += len(done)
        return done, rest

    monkeypatch.setattr(eval_runner, "wait", interrupted_wait)
    with pytest.raises(eval_runner.EvalInterrupted) as info:
        run_experiment(settings, load_dataset(settings), split="test", jobs=1,
                       model_factory=model_factory(script), progress=False)  # fmt: skip
    partial = info.value.partial
    assert info.value.exit_code == 130 and "interrupted" in str(info.value)
    assert 1 <= partial.n < 3 and all(r.status == "ok" for r in partial.results), [r.error for r in partial.results]
