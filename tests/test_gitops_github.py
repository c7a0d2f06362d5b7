"""Pull requests through GitHub's REST API (real httpx client against a loopback stub)."""

from __future__ import annotations

import subprocess
import sys
from datetime import date

import git
import pytest

from helpers.github_stub import GitHubStub
from helpers.gitrepo import isolate_git, make_repo
from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange
from selfheal.gitops.comments import EVAL_MARKER, main as comments_main, upsert_pr_comment
from selfheal.gitops.github import GitHub, GitHubError, parse_repo_slug
from selfheal.gitops.publish import NOTES_REF, publish_change

TODAY = date(2026, 3, 14)
ENTRY = "cheatsheet/strategies/strat-errors-read-logs.yaml"


@pytest.fixture
def env(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    repo = make_repo(tmp_path)
    with GitHubStub(repo="acme/agent", origin=repo.origin) as stub:
        monkeypatch.setenv("GITHUB_TOKEN", stub.token)
        monkeypatch.setenv("GITHUB_API_URL", stub.url)
        monkeypatch.setenv("GITHUB_REPOSITORY", "acme/agent")
        yield repo, stub


def _change(repo, action: str = "Read the last 50 error lines first.") -> ChangeSet:
    text = (repo.root / ENTRY).read_text()
    key = "action: "
    start = text.index(key) + len(key)
    end = text.index("\n", start)
    new = text[:start] + action + text[end:]
    return ChangeSet(
        kind="curate",
        title="Sharper error-reading strategy",
        summary=["UPDATE strat-errors-read-logs: 3 runs read the whole log"],
        files=[FileChange(path=ENTRY, content=new)],
        trace_ids=["9d1c0a3e-0000-4000-8000-000000000001"],
        eval_summary=EvalSummary(baseline_rate=0.5, candidate_rate=0.75, n=4, p_value=0.5,
                                 report_markdown="## Eval report\nsuccess 2/4 -> 3/4"),
    )


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://github.com/acme/agent.git", "acme/agent"),
        ("https://github.com/acme/agent", "acme/agent"),
        ("https://x-access-token:abc@github.com/acme/agent.git", "acme/agent"),
        ("git@github.com:acme/agent.git", "acme/agent"),
        ("git@github.com:acme/agent", "acme/agent"),
        ("ssh://git@github.example.com:2222/acme/agent.git", "acme/agent"),
        ("file:///tmp/origin.git", None),
        ("/tmp/origin.git", None),
    ],
)
def test_owner_and_repo_from_remote_urls(url, slug):
    assert parse_repo_slug(url) == slug


def test_publish_opens_a_labelled_pr_with_the_eval_report(env):
    repo, stub = env
    result = publish_change(repo.settings(), _change(repo), today=TODAY)
    assert result.pr_number == 1 and result.pr_url == "https://github.example/acme/agent/pull/1"
    assert result.pr_body_path is None
    (_, _, _, sent), = stub.calls("POST", "/pulls")
    assert sent["head"] == result.branch and sent["base"] == "main"
    assert sent["title"] == "Sharper error-reading strategy"
    body = sent["body"]
    assert "## Eval report\nsuccess 2/4 -> 3/4" in body
    assert "baseline 50.0% -> candidate 75.0% (n=4, p=0.5)" in body
    assert "**`strat-errors-read-logs`** · strategies — changed" in body
    assert "Read the last 50 error lines first." in body
    assert f"<!-- selfheal-change: {result.fingerprint} -->" in body
    assert stub.issue_labels[1] == ["selfheal", "selfheal:curate"]
    assert {"selfheal", "selfheal:curate"} <= set(stub.labels)
    assert len(stub.calls("POST", "/labels")) == 3   # two labels created, one add to the PR
    note = git.Repo(repo.root).git.notes("--ref", NOTES_REF, "show", result.commit)
    assert note == "Selfheal-PR: https://github.example/acme/agent/pull/1"


def test_the_same_change_updates_its_pr_instead_of_opening_another(env):
    repo, stub = env
    first = publish_change(repo.settings(), _change(repo), today=TODAY)
    stub.pulls[1]["body"] = "edited by someone\n" + stub.pulls[1]["body"]
    again = publish_change(repo.settings(), _change(repo), today=date(2026, 3, 15), force=True)
    assert again.pr_number == 1 and again.updated and again.branch == first.branch
    assert len(stub.calls("POST", "/pulls")) == 1
    (_, path, _, patch), = stub.calls("PATCH", "/pulls/1")
    assert not patch["body"].startswith("edited by someone")          # body refreshed
    assert len(stub.pulls) == 1


def test_a_changed_version_of_the_change_is_pushed_to_its_open_pr(env):
    repo, stub = env
    first = publish_change(repo.settings(), _change(repo), today=TODAY)
    second = publish_change(repo.settings(), _change(repo, "Read the last 20 error lines."), today=TODAY, force=True)
    assert second.pr_number == first.pr_number and second.branch == first.branch
    assert second.commit and second.commit != first.commit
    assert git.Repo(repo.root).commit(second.commit).parents[0].hexsha == first.commit
    assert repo.git("ls-remote", "origin", first.branch).split()[0] == second.commit
    assert "Read the last 20 error lines." in stub.pulls[1]["body"]
    assert len(stub.pulls) == 1


def test_server_errors_and_rate_limits_are_retried(env):
    _, stub = env
    stub.fail_next(502, 429)
    gh = GitHub("acme/agent", stub.token, base_url=stub.url, backoff_s=0.01)
    assert gh.find_open_pr(head_branch="nope") is None
    assert len(stub.calls("GET", "/pulls")) == 3
    stub.fail_next(500, 500, 500, 500)
    with pytest.raises(GitHubError, match=r"GET /repos/acme/agent/pulls -> 500"):
        gh.find_open_pr(head_branch="nope")
    bad = GitHub("acme/agent", "wrong-token", base_url=stub.url, backoff_s=0.01)
    with pytest.raises(GitHubError, match="401: Bad credentials"):
        bad.find_open_pr(head_branch="x")
    gh.close()
    bad.close()


def test_eval_comment_is_created_once_then_updated(env, tmp_path):
    _, stub = env
    url = upsert_pr_comment("acme/agent", 7, "first report", stub.token, api_url=stub.url)
    assert url.endswith("#issuecomment-1001")
    upsert_pr_comment("acme/agent", 7, "second report", stub.token, api_url=stub.url)
    stub.comments[5000] = {"id": 5000, "issue": 7, "body": "a human comment", "html_url": "x"}
    report = tmp_path / "eval-report.md"
    report.write_text(f"{EVAL_MARKER}\nthird report\n")
    assert comments_main(["--pr", "7", "--body-file", str(report)]) == 0
    ours = [c for c in stub.comments.values() if EVAL_MARKER in c["body"]]
    assert len(ours) == 1 and ours[0]["body"] == f"{EVAL_MARKER}\nthird report\n"
    assert stub.comments[5000]["body"] == "a human comment"
    assert len(stub.calls("POST", "/comments")) == 1 and len(stub.calls("PATCH", "/comments/1001")) == 2


def test_comments_module_runs_as_a_script(env, tmp_path):
    _, stub = env
    report = tmp_path / "r.md"
    report.write_text("report body\n")
    done = subprocess.run([sys.executable, "-m", "selfheal.gitops.comments", "--pr", "3", "--body-file", str(report)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [c["body"] for c in stub.comments.values()] == [f"{EVAL_MARKER}\nreport body\n"]
    missing = subprocess.run([sys.executable, "-m", "selfheal.gitops.comments", "--pr", "3", "--body-file",
                              str(tmp_path / "nope.md")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and "nope.md" in missing.stderr
