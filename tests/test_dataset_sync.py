"""Dataset push/pull with LangSmith (real langsmith.Client against the loopback stub), and LangSmith experiments."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfheal.cli.main import cli
from selfheal.config import load_settings
from selfheal.evaluation.dataset import load_dataset
from selfheal.evaluation.langsmith_sync import LangSmithSyncError, pull_dataset, push_dataset
from selfheal.evaluation.runner import run_experiment
from selfheal.tracing.langsmith_backend import close_client, make_client
from helpers.eval_fixtures import AgentScript, LangSmithDatasetStub, langsmith_env, make_repo, model_factory

PLAIN = """\
# kept comment
name: explain-timeouts
task: Explain what a Lambda timeout is.
task_type: general
split: dev
expect:
  contains: [timeout]   # inline comment
"""


@pytest.fixture()
def stub() -> Iterator[LangSmithDatasetStub]:
    with LangSmithDatasetStub() as s:
        yield s


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path, {"lambda_timeout": "test", "lambda_memory": "train"})
    (root / "evals" / "lambda_ops" / "examples").mkdir()
    (root / "evals" / "lambda_ops" / "examples" / "explain.yaml").write_text(PLAIN)
    return root


def _client(repo: Path, stub: LangSmithDatasetStub):
    return make_client(load_settings(repo, env=langsmith_env(stub)))


def test_push_creates_then_updates_with_the_same_ids(repo: Path, stub: LangSmithDatasetStub) -> None:
    settings = load_settings(repo, env=langsmith_env(stub))
    ds = load_dataset(settings)
    client = _client(repo, stub)
    try:
        first = push_dataset(client, ds)
        assert sorted(first.created) == ["explain-timeouts", "lambda_memory", "lambda_timeout"] and not first.updated
        remote = {e["id"]: e for e in stub.dataset_examples("lambda_ops")}
        assert set(remote) == {e.id for e in ds.examples}
        timeout = ds.get("lambda_timeout")
        assert timeout is not None
        got = remote[timeout.id]
        assert got["inputs"] == {"task": timeout.task, "scenario": "lambda_timeout"}
        assert got["metadata"]["dataset_split"] == ["test"] and got["metadata"]["task_type"] == "lambda_timeout"
        assert got["outputs"]["success"] == timeout.success

        second = push_dataset(client, ds)
        assert sorted(second.updated) == sorted(first.created) and not second.created
        assert len(stub.dataset_examples("lambda_ops")) == 3 and len(stub.datasets) == 1
        assert second.dataset_id == first.dataset_id
    finally:
        close_client(client)


def test_pull_applies_remote_edits_by_id_and_adds_new_examples(repo: Path, stub: LangSmithDatasetStub) -> None:
    settings = load_settings(repo, env=langsmith_env(stub))
    ds = load_dataset(settings)
    client = _client(repo, stub)
    try:
        push_dataset(client, ds)
        explain = ds.get("explain-timeouts")
        assert explain is not None
        ids_before = {e.name: e.id for e in ds.examples}
        client.update_example(
            explain.id,
            inputs={"task": "Explain Lambda timeouts briefly.", "scenario": None},
            outputs={"success": "", "expect": {"contains": ["timeout", "seconds"]}, "reference_outputs": {}},
            metadata={"name": "explain-timeouts", "task_type": "general", "owner": "sre"},
            split="test",
        )
        client.create_example(
            inputs={"task": "What limits a Lambda's memory?", "scenario": None},
            reference_outputs={"success": "", "expect": {"contains": ["10240"]}, "reference_outputs": {}},
            metadata={"name": "memory-limit", "task_type": "general"},
            split="train",
            dataset_id=stub.dataset_examples("lambda_ops")[0]["dataset_id"],
        )
        report = pull_dataset(client, ds)
    finally:
        close_client(client)
    assert report.changed == {"explain-timeouts": ["expect", "metadata", "split", "task"]}
    assert report.added == ["examples/memory-limit.yaml"]

    text = (repo / "evals" / "lambda_ops" / "examples" / "explain.yaml").read_text()
    assert text.startswith("# kept comment\n") and "split: test" in text
    again = load_dataset(settings)
    by = {e.name: e for e in again.examples}
    assert by["explain-timeouts"].task == "Explain Lambda timeouts briefly."
    assert by["explain-timeouts"].expect.contains == ["timeout", "seconds"]
    assert by["explain-timeouts"].metadata == {"owner": "sre"}
    assert {n: by[n].id for n in ids_before} == ids_before  # ids kept
    assert by["memory-limit"].split == "train" and by["memory-limit"].expect.contains == ["10240"]
    # the new file's id is LangSmith's: pushing again creates nothing
    client = _client(repo, stub)
    try:
        assert push_dataset(client, again).created == []
        assert pull_dataset(client, again).lines() == ["nothing changed"]
    finally:
        close_client(client)


def test_pull_of_an_unknown_dataset_is_a_user_error(repo: Path, stub: LangSmithDatasetStub) -> None:
    client = _client(repo, stub)
    try:
        with pytest.raises(LangSmithSyncError, match="LangSmith has no dataset 'lambda_ops'"):
            pull_dataset(client, load_dataset(load_settings(repo, env={})))
    finally:
        close_client(client)


def test_eval_with_langsmith_creates_an_experiment_on_the_dataset(repo: Path, stub: LangSmithDatasetStub) -> None:
    settings = load_settings(repo, env=langsmith_env(stub))
    ds = load_dataset(settings)
    script = AgentScript()
    result = run_experiment(settings, ds, split="test", model_factory=model_factory(script), progress=False)
    (only,) = result.results
    assert only.passed
    session = stub.sessions[result.name]
    remote_ds = next(iter(stub.datasets.values()))
    assert session["reference_dataset_id"] == remote_ds["id"]
    assert result.extra["langsmith"] == {"dataset_id": remote_ds["id"], "project_id": session["id"]}
    assert {e["id"] for e in stub.dataset_examples("lambda_ops")} == {e.id for e in ds.examples}
    assert stub.wait_for_runs([only.run_id])
    root = stub.runs[only.run_id]
    assert root["session_id"] == session["id"]
    assert root["extra"]["metadata"]["reference_example_id"] == only.example_id
    assert str(root["reference_example_id"]) == only.example_id  # linked to the example for real
    feedback = {f["key"]: f for f in stub.feedback.values() if str(f.get("run_id")) == only.run_id}
    assert feedback["state_checks"]["score"] == 1.0 and feedback["passed"]["score"] == 1.0


def test_cli_list_show_push_pull(repo: Path, stub: LangSmithDatasetStub, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    base = ["--repo", str(repo)]
    out = runner.invoke(cli, [*base, "dataset", "list", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows[0]["name"] == "lambda_ops" and rows[0]["examples"] == 3 and rows[0]["test"] == 1
    out = runner.invoke(cli, [*base, "dataset", "show", "lambda_ops", "--split", "dev", "--json"])
    shown = json.loads(out.output)
    assert [e["name"] for e in shown["examples"]] == ["explain-timeouts"]
    assert shown["examples"][0]["file"] == "examples/explain.yaml"

    out = runner.invoke(cli, [*base, "dataset", "push", "lambda_ops"])
    assert out.exit_code != 0 and "LangSmith is not configured" in str(out.exception or out.output)
    for key, value in langsmith_env(stub).items():
        monkeypatch.setenv(key, value)
    out = runner.invoke(cli, [*base, "dataset", "push", "lambda_ops"])
    assert out.exit_code == 0, out.output
    assert "3 created, 0 updated" in out.output
    out = runner.invoke(cli, [*base, "dataset", "pull", "lambda_ops"])
    assert out.exit_code == 0 and out.output.strip() == "nothing changed"
