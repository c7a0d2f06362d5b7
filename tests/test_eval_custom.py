"""A team's own evaluators (``module:function`` in dataset.yaml, LangSmith's shape) score examples."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from selfheal.config import load_settings
from selfheal.errors import ConfigError, FileFormatError
from selfheal.evaluation import runner as eval_runner
from selfheal.evaluation.dataset import load_dataset
from selfheal.evaluation.runner import run_experiment
from helpers.eval_fixtures import DATASET_YAML, AgentScript, make_repo, model_factory

EVALS = textwrap.dedent('''
    def mentions_timeout(run, example):
        """LangSmith's classic shape: (run, example) -> {key, score, comment}."""
        text = run.outputs["output"].lower()
        return {"key": "mentions_timeout", "score": "timeout" in text,
                "comment": f"task {example.inputs['task'][:20]!r}"}

    def few_calls(outputs, reference_outputs):
        """The newer keyword shape, returning a plain number."""
        return 1.0 if len(outputs["tool_calls"]) <= 3 else 0.25

    def broken(run, example):
        raise RuntimeError("the team's bug")
''')


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eval_runner, "RETRY_BASE_S", 0.01)


@pytest.fixture()
def script() -> Iterator[AgentScript]:
    s = AgentScript({}, answer="Raised the timeout. USED: none")
    yield s
    s.release.set()


def _repo(tmp_path: Path, custom: str) -> Path:
    ds = DATASET_YAML.replace("  pass_threshold: 0.75\n", "  pass_threshold: 0.75\n" + custom)
    root = make_repo(tmp_path, {"lambda_timeout": "test"}, dataset_yaml=ds)
    (root / "team_evals.py").write_text(EVALS)
    return root


def test_custom_evaluators_score_with_langsmith_shapes(tmp_path: Path, script: AgentScript) -> None:
    root = _repo(tmp_path, "  custom:\n    - {function: 'team_evals:mentions_timeout', weight: 2, required: true}\n"
                           "    - {function: 'team_evals:few_calls'}\n"
                           "    - {function: 'team_evals:broken', weight: 0.5}\n")
    settings = load_settings(root, env={})
    result = run_experiment(settings, load_dataset(settings), split="test", model_factory=model_factory(script),
                            progress=False)
    scores = {s.key: s for s in result.results[0].scores}
    assert scores["mentions_timeout"].score == 1.0 and scores["mentions_timeout"].required
    assert scores["mentions_timeout"].comment.startswith("task ")
    assert scores["few_calls"].score == 1.0
    assert scores["broken"].score == 0.0 and "RuntimeError: the team's bug" in scores["broken"].comment
    assert result.results[0].status == "ok"  # a failing evaluator is a score, not an errored example


def test_a_required_custom_evaluator_fails_the_example(tmp_path: Path) -> None:
    s = AgentScript({}, answer="Changed memory. USED: none")
    try:
        root = _repo(tmp_path, "  custom:\n    - {function: 'team_evals:mentions_timeout', required: true}\n")
        settings = load_settings(root, env={})
        result = run_experiment(settings, load_dataset(settings), split="test", model_factory=model_factory(s),
                                progress=False)
    finally:
        s.release.set()
    assert result.results[0].passed is False


@pytest.mark.parametrize(("spec", "message"), [
    ("team_evals:nope", "evaluator 'team_evals:nope': team_evals has no attribute 'nope'"),
    ("missing_mod:fn", "evaluator 'missing_mod:fn': cannot import missing_mod: ModuleNotFoundError"),
])
def test_a_bad_evaluator_is_one_config_error_before_any_example(tmp_path: Path, spec: str, message: str) -> None:
    root = _repo(tmp_path, f"  custom:\n    - {{function: '{spec}'}}\n")
    settings = load_settings(root, env={})
    with pytest.raises(ConfigError) as info:
        run_experiment(settings, load_dataset(settings), split="test", progress=False,
                       model_factory=lambda: (_ for _ in ()).throw(AssertionError("no model should be built")))
    assert str(info.value).startswith(message)


def test_a_malformed_evaluator_name_is_a_file_line_error(tmp_path: Path) -> None:
    root = _repo(tmp_path, "  custom:\n    - {function: 'not a path'}\n")
    with pytest.raises(FileFormatError, match=r"dataset.yaml:\d+"):
        load_dataset(load_settings(root, env={}))
