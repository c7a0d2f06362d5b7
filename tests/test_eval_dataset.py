"""Datasets as files: loading, file:line errors, stable ids, split selection, content hash."""

from __future__ import annotations


from pathlib import Path

import pytest

from selfheal.config import load_settings
from selfheal.errors import FileFormatError, SelfhealError
from selfheal.evaluation.dataset import example_id, list_datasets, load_dataset
from helpers.eval_fixtures import make_repo

PLAIN = """\
# a plain example: no environment
name: explain-timeouts
task: Explain what a Lambda timeout is.
task_type: general
split: dev
expect:
  contains: [timeout]
  regex: ["\\\\d+ ?s"]
reference:
  outputs: {answer: "The maximum run time of an invocation."}
"""

LISTED = """\
examples:
  - name: list-a
    task: Say A.
    task_type: general
    split: train
  - name: list-b
    task: Say B.
    task_type: general
    split: test
    expect: {not_contains: [error]}
"""


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = make_repo(tmp_path, {"lambda_timeout": "test", "lambda_memory": "train", "lambda_cost": "dev"})
    ex = root / "evals" / "lambda_ops" / "examples"
    ex.mkdir()
    (ex / "explain.yaml").write_text(PLAIN)
    (ex / "listed.yaml").write_text(LISTED)
    return root


def _load(root: Path, name: str | None = None):
    return load_dataset(load_settings(root, env={}), name)


def _error(root: Path) -> str:
    with pytest.raises(FileFormatError) as info:
        _load(root)
    return str(info.value)


def test_loads_scenarios_and_plain_examples(repo: Path) -> None:
    ds = _load(repo)
    by = {e.name: e for e in ds.examples}
    assert set(by) == {"lambda_timeout", "lambda_memory", "lambda_cost", "explain-timeouts", "list-a", "list-b"}
    assert by["lambda_timeout"].scenario == "lambda_timeout" and by["lambda_timeout"].has_checks
    assert by["explain-timeouts"].scenario is None and not by["explain-timeouts"].has_checks
    assert by["explain-timeouts"].reference_outputs == {"answer": "The maximum run time of an invocation."}
    assert by["list-b"].expect.not_contains == ["error"] and by["list-b"].line == 6
    assert ds.spec.evaluators.pass_threshold == 0.75
    assert list_datasets(load_settings(repo, env={})) == ["lambda_ops"]


def test_ids_are_stable_across_reloads_and_pinned_ids_win(repo: Path) -> None:
    first = {e.name: e.id for e in _load(repo).examples}
    assert first == {e.name: e.id for e in _load(repo).examples}
    assert first["lambda_timeout"] == example_id("lambda_ops", "lambda_timeout")
    pinned = "0b1c5b8e-51a4-4b57-9a39-6f3a9d2c9c11"
    path = repo / "evals" / "lambda_ops" / "examples" / "explain.yaml"
    path.write_text(f"id: {pinned}\n" + PLAIN)
    assert {e.name: e.id for e in _load(repo).examples}["explain-timeouts"] == pinned


def test_split_selection(repo: Path) -> None:
    ds = _load(repo)
    assert sorted(e.name for e in ds.select("test")) == ["lambda_timeout", "list-b"]
    assert sorted(e.name for e in ds.select("dev")) == ["explain-timeouts", "lambda_cost"]
    assert len(ds.select("all")) == 6
    assert [e.name for e in ds.select("all", names=["list-a"])] == ["list-a"]
    assert [e.name for e in ds.select("all", task_types=["lambda_memory"])] == ["lambda_memory"]
    with pytest.raises(SelfhealError, match="unknown split 'val'"):
        ds.select("val")
    with pytest.raises(SelfhealError, match="no example 'nope'"):
        ds.select("all", names=["nope"])


def test_hash_changes_with_content_not_with_mtime(repo: Path) -> None:
    before = _load(repo).hash
    path = repo / "evals" / "lambda_ops" / "examples" / "explain.yaml"
    path.touch()
    assert _load(repo).hash == before
    path.write_text(PLAIN.replace("Explain", "Describe"))
    assert _load(repo).hash != before


def test_missing_split_is_a_file_line_error(repo: Path) -> None:
    path = repo / "evals" / "lambda_ops" / "examples" / "explain.yaml"
    path.write_text(PLAIN.replace("split: dev\n", ""))
    assert _error(repo).startswith(f"{path}:2: missing required key 'split'")


def test_bad_regex_is_a_file_line_error(repo: Path) -> None:
    path = repo / "evals" / "lambda_ops" / "examples" / "explain.yaml"
    path.write_text(PLAIN.replace('regex: ["\\\\d+ ?s"]', 'regex: ["(unclosed"]'))
    msg = _error(repo)
    assert msg.startswith(f"{path}:8:") and "invalid regex '(unclosed'" in msg


def test_unknown_keys_and_bad_list_items_name_their_line(repo: Path) -> None:
    path = repo / "evals" / "lambda_ops" / "examples" / "explain.yaml"
    path.write_text(PLAIN + "expected_output: nope\n")
    assert _error(repo).startswith(f"{path}:11: unknown key 'expected_output'")
    path.write_text(PLAIN)
    listed = repo / "evals" / "lambda_ops" / "examples" / "listed.yaml"
    listed.write_text(LISTED.replace("split: test", "split: prod"))
    assert _error(repo).startswith(f"{listed}:9: 'split': Input should be 'train', 'dev' or 'test'")


def test_duplicate_names_and_ids_are_errors(repo: Path) -> None:
    ex = repo / "evals" / "lambda_ops" / "examples"
    (ex / "copy.yaml").write_text(PLAIN)
    msg = _error(repo)
    assert msg.startswith(f"{ex / 'explain.yaml'}:1: duplicate example name 'explain-timeouts'")
    (ex / "copy.yaml").write_text(PLAIN.replace("explain-timeouts", "other") + f"id: {example_id('lambda_ops', 'list-a')}\n")
    assert "duplicate example id" in _error(repo)


def test_dataset_yaml_errors(repo: Path) -> None:
    spec = repo / "evals" / "lambda_ops" / "dataset.yaml"
    text = spec.read_text()
    spec.write_text(text.replace("pass_threshold: 0.75", "pass_threshold: 7.5"))
    assert _error(repo).startswith(f"{spec}:")
    assert "pass_threshold" in _error(repo)
    spec.write_text(text.replace("judge: 1}", "judge: 1, vibes: 2}"))
    assert "unknown evaluator(s) vibes" in _error(repo)


def test_unknown_dataset_lists_known(repo: Path) -> None:
    with pytest.raises(SelfhealError, match=r"unknown dataset 'nope' \(known: lambda_ops\)"):
        _load(repo, "nope")


def test_repository_dataset_loads() -> None:
    """The repo's own evals/lambda_ops dataset is valid (every scenario has a split)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "evals" / "lambda_ops" / "dataset.yaml").is_file():
        pytest.skip("no repository dataset")
    ds = load_dataset(load_settings(root, env={}))
    assert ds.examples and all(e.split in ("train", "dev", "test") for e in ds.examples)
    assert len({e.id for e in ds.examples}) == len(ds.examples)

