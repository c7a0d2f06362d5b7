"""``curate --pr`` / ``optimize --pr``: everything publishing needs is checked before any model call,
``--base`` is honoured, and the report says what happened (pushed or not, PR or body) with the commands
that finish it by hand."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from helpers.curation import (
    LESSON_ADD,
    REPO,
    TIMEOUT_ENTRY,
    curator_json,
    make_learning_repo,
    reflection_json,
    wrong_fix_script,
)
from helpers.github_stub import GitHubStub
from helpers.gitrepo import git, isolate_git, make_repo
from helpers.openai_stub import OpenAIStub

from selfheal.agent.runner import run_task
from selfheal.cli.main import main
from selfheal.config import load_settings
from selfheal.gitops.ledger import RateLimitError
from selfheal.gitops.preflight import plan_publish
from selfheal.gitops.repo import GitError
from selfheal.models.embeddings import FakeEmbedder
from selfheal.models.fakes import ScriptedChatModel
from selfheal.optimize.offline import curate_offline

CURATOR_REPLIES = [reflection_json({TIMEOUT_ENTRY: "harmful"}), curator_json(LESSON_ADD)] * 2


def _two_failed_runs(root: Path) -> None:
    settings = load_settings(root, env={})
    for _ in range(2):
        run_task(settings, scenario="lambda_timeout", model=ScriptedChatModel(wrong_fix_script()), learn=False)


@pytest.fixture()
def learning_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate_git(monkeypatch, tmp_path)
    root = tmp_path / "agent"
    root.mkdir()
    make_learning_repo(root, monkeypatch)
    (root / ".gitignore").write_text(".selfheal/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Dana")
    git(root, "config", "user.email", "dana@example.com")
    _two_failed_runs(root)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return root


@dataclass
class Done:
    exit_code: int
    output: str


def run_cli(args: list[str]) -> Done:
    """The console entry point (one-line errors, exit codes) with stdout and stderr together."""
    runner = CliRunner()
    result = runner.invoke(click.Command("t", callback=lambda: main(args)), [])
    code = result.exit_code if not isinstance(result.exception, SystemExit) else int(result.exception.code or 0)
    return Done(code, result.output)


def _curate(root: Path, stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch, *args: str) -> Done:
    monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    return run_cli(["--repo", str(root), "curate", "--pr", *args])


def test_a_fresh_repository_fails_on_the_base_branch_before_any_model_call(learning_repo, monkeypatch):
    with OpenAIStub() as stub:
        for reply in CURATOR_REPLIES:
            stub.reply_text(reply)
        out = _curate(learning_repo, stub, monkeypatch)              # no commit yet: no 'main' to branch from
        assert out.exit_code == 2, out.output
        assert "base branch 'main' not found" in out.output and "--base" in out.output
        assert "Traceback" not in out.output
        assert stub.bodies == []                                      # not one model request spent

        git(learning_repo, "add", "-A")
        git(learning_repo, "commit", "-q", "-m", "agent files")
        out = _curate(learning_repo, stub, monkeypatch, "--base", "release")
        assert out.exit_code == 2 and "base branch 'release' not found" in out.output
        assert stub.bodies == []

        # The same command that can publish: the model is called, and the report is honest.
        out = _curate(learning_repo, stub, monkeypatch)
        assert out.exit_code == 0, out.output
        assert len(stub.bodies) == 4
    text = " ".join(out.output.split())
    assert "Published" not in out.output
    assert "not pushed: no remote 'origin'" in text
    assert "no pull request opened (the branch was not pushed); its body is in" in text
    (branch,) = [b.strip(" *") for b in git(learning_repo, "branch").splitlines() if "selfheal/curate/" in b]
    assert "to finish by hand:" in out.output
    assert f"git remote add origin <URL> && git push -u origin {branch}" in text
    assert f"gh pr create --head {branch} --base main --title" in text


def test_base_is_honoured(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    monkeypatch.setattr("selfheal.models.embeddings.make_embedder", lambda settings: FakeEmbedder(64))
    repo = make_repo(tmp_path)
    shutil.copytree(REPO / "evals", repo.root / "evals")
    repo.commit_all("datasets")
    repo.git("push", "-q", "origin", "main")
    repo.git("checkout", "-q", "-b", "release")
    repo.write("RELEASE.md", "release branch\n")
    release_head = repo.commit_all("release notes")
    repo.git("push", "-q", "origin", "release")
    repo.git("checkout", "-q", "main")
    _two_failed_runs(repo.root)

    settings = repo.settings()
    report = curate_offline(settings, model=ScriptedChatModel(list(CURATOR_REPLIES)), embedder=FakeEmbedder(64),
                            publish=True, base="release")
    pub = report.published
    assert pub is not None and pub.base == "release" and pub.pushed
    assert repo.git("rev-parse", f"{pub.commit}^").strip() == release_head      # branched from release, not main
    assert git(repo.origin, "rev-parse", f"refs/heads/{pub.branch}").strip() == pub.commit
    assert pub.not_pushed is None and pub.finish[0].startswith(f"gh pr create --head {pub.branch} --base release")


def test_optimize_pr_takes_base_and_checks_it_first(learning_repo, monkeypatch):
    git(learning_repo, "add", "-A")
    git(learning_repo, "commit", "-q", "-m", "agent files")
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        out = run_cli(["--repo", str(learning_repo), "optimize", "--pr", "--base", "nosuch"])
        assert out.exit_code == 2 and "base branch 'nosuch' not found" in out.output, out.output
        assert stub.bodies == []
    for command in ("optimize", "curate"):
        out = run_cli(["--repo", str(learning_repo), command, "--base", "main"])
        assert out.exit_code == 2 and "--base only applies with --pr" in out.output


def _pr_env(monkeypatch, stub: GitHubStub) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", stub.token)
    monkeypatch.setenv("GITHUB_API_URL", stub.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", stub.repo)


def test_the_rate_limit_counts_the_repositorys_bot_prs_not_a_local_file(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    repo = make_repo(tmp_path)
    settings = repo.settings(gitops={"max_prs_per_day": 2})
    now = datetime.now(UTC)
    with GitHubStub(origin=repo.origin) as stub:
        _pr_env(monkeypatch, stub)
        stub.seed_pr("selfheal/optimize/old", created_at=now - timedelta(days=2), merged=True, state="closed")
        stub.seed_pr("selfheal/curate/rejected", created_at=now - timedelta(hours=3), state="closed")  # not merged
        stub.seed_pr("feature/human", created_at=now - timedelta(hours=2))
        stub.seed_pr("selfheal/optimize/merged", created_at=now - timedelta(hours=2), merged=True, state="closed")
        plan = plan_publish(settings, "optimize")                    # one counted: still allowed
        assert plan.open_pr and plan.base == "main" and plan.push
        stub.seed_pr("selfheal/optimize/open", created_at=now - timedelta(hours=1))
        with pytest.raises(RateLimitError, match=r"2 improvement PRs in the last 24 h on acme/agent"):
            plan_publish(settings, "optimize")
        assert plan_publish(settings, "optimize", force=True).open_pr          # --force overrides
        assert plan_publish(settings, "rollback").open_pr                       # rollbacks are never throttled
        assert stub.calls("GET", "/pulls")[-1][2]["state"] == ["all"]


def test_in_github_actions_a_missing_token_or_remote_fails_up_front(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    repo = make_repo(tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/agent")
    with pytest.raises(GitError, match="no GitHub token to open the pull request on acme/agent: .*SELFHEAL_BOT_TOKEN"):
        plan_publish(repo.settings(), "optimize")
    bare = make_repo(tmp_path, origin=False, name="local")
    with pytest.raises(GitError, match="no remote 'origin' to push to"):
        plan_publish(bare.settings(), "optimize")
    monkeypatch.delenv("GITHUB_ACTIONS")
    plan = plan_publish(repo.settings(), "optimize")                   # a workstation: a note, not an error
    assert not plan.open_pr and any("no GitHub token" in n for n in plan.notes)
