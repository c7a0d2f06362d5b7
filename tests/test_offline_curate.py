"""``selfheal curate``: stored failures and low scores -> one working-tree change (or a dry run)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.curation import (
    LESSON_ADD,
    TIMEOUT_ENTRY,
    curator_json,
    entry_files,
    make_learning_repo,
    reflection_json,
    right_fix_script,
    wrong_fix_script,
)

from selfheal.agent.runner import run_task
from selfheal.cheatsheet.counters import CounterStore
from selfheal.cheatsheet.store import load_cheatsheet
from selfheal.config import Settings, load_settings
from selfheal.interact.feedback import record_feedback
from selfheal.models.embeddings import FakeEmbedder
from selfheal.models.fakes import ScriptedChatModel
from selfheal.optimize.offline import curate_offline, parse_since, select_runs
from selfheal.tracing.store import LocalTraceStore


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return make_learning_repo(tmp_path, monkeypatch)


def _stored_runs(settings: Settings) -> tuple[list[str], str, str]:
    """Two failed runs, one success scored low by a user, one plain success (learning off)."""
    failed = [
        run_task(settings, scenario="lambda_timeout", model=ScriptedChatModel(wrong_fix_script()), learn=False).run_id
        for _ in range(2)
    ]
    low = run_task(settings, scenario="lambda_timeout", model=ScriptedChatModel(right_fix_script()), learn=False)
    record_feedback(settings, low.run_id, score=0.0, comment="it took far too long")
    fine = run_task(settings, scenario="lambda_timeout", model=ScriptedChatModel(right_fix_script()), learn=False)
    return failed, low.run_id, fine.run_id


def _curator_model() -> ScriptedChatModel:
    # Newest first: the low-scored success, then the two failures (both teach the same lesson).
    return ScriptedChatModel(
        [
            reflection_json({TIMEOUT_ENTRY: "helpful"}, error="none", key_insight="Slow but right."),
            curator_json(),
            reflection_json({TIMEOUT_ENTRY: "harmful"}),
            curator_json(LESSON_ADD),
            reflection_json({TIMEOUT_ENTRY: "harmful"}),
            curator_json(LESSON_ADD),
        ]
    )


def test_stored_failures_become_one_working_tree_change_with_a_summary(repo: Path) -> None:
    settings = load_settings(repo, env={})
    failed, low, fine = _stored_runs(settings)
    before = entry_files(settings.cheatsheet_dir)

    report = curate_offline(settings, model=_curator_model(), embedder=FakeEmbedder(64))

    assert {r.run_id for r in report.runs} == {*failed, low}  # the plain success is not curated
    assert all(r.insight for r in report.runs) and report.applied and not report.dry_run
    (line,) = [c for c in report.changes if c.startswith("ADD ")]
    assert "timeout check failed" in line  # each summary line carries its reason
    (path,) = report.files
    assert path.startswith("cheatsheet/failure_patterns/fail-")
    assert f"+++ b/{path}" in report.diff and "+status: candidate" in report.diff

    # The duplicate ADD of the two failures collapsed into one entry citing both runs.
    after = entry_files(settings.cheatsheet_dir)
    assert set(after) - set(before) == {path.removeprefix("cheatsheet/")}
    learned = load_cheatsheet(settings.cheatsheet_dir).get(Path(path).stem)
    assert learned is not None and sorted(learned.source.runs) == sorted(failed)

    # Counters got this batch's tags and were folded; the runs are stamped as curated.
    with CounterStore.from_settings(settings) as counters:
        stats = counters.get(TIMEOUT_ENTRY)
        assert (stats.helpful, stats.harmful) == (1, 2)
        assert counters.pending_since_fold() == {}
    again = curate_offline(settings, model=ScriptedChatModel([]), embedder=FakeEmbedder(64))
    assert not again.runs and not again.files and "no runs to curate" in again.errors[0]


def test_dry_run_writes_nothing(repo: Path) -> None:
    settings = load_settings(repo, env={})
    failed, low, _ = _stored_runs(settings)
    before = entry_files(settings.cheatsheet_dir)

    report = curate_offline(settings, model=_curator_model(), embedder=FakeEmbedder(64), dry_run=True)

    assert report.dry_run and not report.applied and report.files and report.diff
    assert entry_files(settings.cheatsheet_dir) == before
    with CounterStore.from_settings(settings) as counters:
        assert counters.all() == {}
    store = LocalTraceStore.from_settings(settings)
    try:  # not stamped: a real batch still picks them up
        picked = select_runs(store, settings, since=None, filter=None, limit=10)
        assert {str(r.id) for r in picked} == {*failed, low}
    finally:
        store.close()


def test_filter_selects_runs_and_malformed_curator_output_changes_nothing(repo: Path) -> None:
    settings = load_settings(repo, env={})
    run_task(settings, scenario="lambda_timeout", model=ScriptedChatModel(wrong_fix_script()), learn=False)
    fine = run_task(
        settings, scenario="lambda_timeout", model=ScriptedChatModel(right_fix_script()), learn=False
    ).run_id
    before = entry_files(settings.cheatsheet_dir)
    model = ScriptedChatModel([reflection_json(), "ADD a lesson about timeouts please"])
    report = curate_offline(
        settings, filter=f'eq(id, "{fine}")', model=model, embedder=FakeEmbedder(64)
    )
    assert [r.run_id for r in report.runs] == [fine]
    assert "curation rejected: no JSON object" in report.runs[0].error
    assert not report.files and entry_files(settings.cheatsheet_dir) == before


def test_since_windows_parse() -> None:
    assert parse_since("7d") == timedelta(days=7)
    assert parse_since("12h") == timedelta(hours=12)
    assert parse_since(None) is None
    from selfheal.errors import SelfhealError

    with pytest.raises(SelfhealError, match="--since"):
        parse_since("last tuesday")


def test_cli_reports_when_there_is_nothing_to_curate(repo: Path) -> None:
    from selfheal.cli.main import cli

    runner = CliRunner()
    out = runner.invoke(cli, ["--repo", str(repo), "curate", "--dry-run"])
    assert out.exit_code == 0, out.output
    assert "no runs to curate" in out.output and "No change to the cheatsheet." in out.output
    out = runner.invoke(cli, ["--repo", str(repo), "curate", "--json"])
    data = json.loads(out.output)
    assert data["files"] == {} and data["runs"] == []


def test_curate_with_pr_publishes_one_branch_and_leaves_the_working_tree_alone(
    repo: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--pr: the change set goes through the git flow (branch + commit with trailers + PR body file)."""
    import git as gitpython
    from helpers.gitrepo import isolate_git, snapshot

    isolate_git(monkeypatch, tmp_path_factory.mktemp("home"))
    (repo / ".gitignore").write_text(".selfheal/\n")
    work = gitpython.Repo.init(repo, initial_branch="main")
    with work.config_writer() as cw:
        cw.set_value("user", "name", "dev")
        cw.set_value("user", "email", "dev@example.invalid")
    work.git.add(A=True)
    work.git.commit("-q", "-m", "agent files")
    bare = tmp_path_factory.mktemp("origin") / "origin.git"
    gitpython.Repo.init(bare, bare=True, initial_branch="main")
    work.create_remote("origin", bare.as_uri()).push("main")

    settings = load_settings(repo, env={})
    _stored_runs(settings)
    before = snapshot(repo)
    report = curate_offline(settings, model=_curator_model(), embedder=FakeEmbedder(64), publish=True)

    assert snapshot(repo) == before  # nothing written to the user's tree
    pub = report.published
    assert pub is not None and pub.branch.startswith("selfheal/curate/")
    assert pub.pushed and pub.branch in [r.name for r in gitpython.Repo(bare).branches]
    message = work.commit(pub.commit).message
    assert "Selfheal-Kind: curate" in message and "Selfheal-Traces:" in message
    assert pub.pr_body_path and Path(pub.pr_body_path).is_file()  # no GITHUB_TOKEN: the body for a manual PR
    work.close()
