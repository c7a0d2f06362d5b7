"""`selfheal optimize`: learn on train runs in a scratch copy, keep it only if it validates."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.curation import (
    LESSON_ADD,
    curator_json,
    entry_files,
    make_learning_repo,
    reflection_json,
    right_fix_script,
    wrong_fix_script,
)

from selfheal.config import load_settings
from selfheal.models.fakes import ScriptedChatModel
from selfheal.optimize.training import optimize


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_learning_repo(tmp_path, monkeypatch)


def _optimize(repo: Path, script: list, **kw):  # type: ignore[no-untyped-def]
    settings = load_settings(repo, env={})
    model = ScriptedChatModel(script)
    report = optimize(
        settings, train_split="train", names=["lambda_timeout"], validate_split="train",
        validate_names=["lambda_timeout"], model_factory=lambda: model, progress=False, **kw,
    )
    return settings, report


def test_learned_lesson_that_validates_is_applied_and_the_user_tree_untouched_until_then(repo: Path) -> None:
    before = entry_files(repo / "cheatsheet")
    script = [
        *wrong_fix_script(),                      # train run fails
        reflection_json(),                        # reflector
        curator_json(LESSON_ADD),                 # curator adds a lesson
        *wrong_fix_script(),                      # validation, seed cheatsheet: fails
        *right_fix_script(),                      # validation, learned cheatsheet: passes
    ]
    settings, report = _optimize(repo, script, apply=False)
    assert [r.success for r in report.train] == [False]
    assert any(line.startswith("ADD ") for line in report.summary)
    (path,) = report.files
    assert path.startswith("cheatsheet/failure_patterns/")
    assert report.decision is not None and report.decision.passed
    assert "<!-- selfheal-eval -->" in report.report_markdown
    # What learning cost, per phase: the train run's calls include the learner's (reflector, curator)
    phases = {p.phase: p for p in report.cost.rows()}
    assert phases["learn"].runs == 1 and phases["learn"].model_calls == len(wrong_fix_script()) + 2
    assert phases["validate"].runs == 2 and phases["total"].wall_s > 0
    assert "### Cost" in report.report_markdown and "| learn | 1 |" in report.report_markdown
    # Without --apply the user's cheatsheet is exactly as it was.
    assert entry_files(repo / "cheatsheet") == before


def test_apply_writes_the_learned_entry(repo: Path) -> None:
    script = [*wrong_fix_script(), reflection_json(), curator_json(LESSON_ADD),
              *wrong_fix_script(), *right_fix_script()]
    _, report = _optimize(repo, script, apply=True)
    assert report.applied
    (path,) = report.files
    assert "Raise the timeout" in (repo / path).read_text()


def test_a_regression_is_not_applied(repo: Path) -> None:
    before = entry_files(repo / "cheatsheet")
    script = [*wrong_fix_script(), reflection_json(), curator_json(LESSON_ADD),
              *right_fix_script(), *wrong_fix_script()]   # seed passes, learned fails
    _, report = _optimize(repo, script, apply=True)
    assert report.decision is not None and not report.decision.passed
    assert not report.applied
    assert entry_files(repo / "cheatsheet") == before
