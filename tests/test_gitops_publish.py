"""publish_change: branches, commits with trailers, identity, push rules, rate limits, body files."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import git
import pytest

from helpers.gitrepo import isolate_git, make_repo, snapshot
from selfheal.errors import SelfhealError
from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange, parse_trailers
from selfheal.gitops.publish import publish_change, push_branch
from selfheal.gitops.settings import GitopsSettings

TODAY = date(2026, 3, 14)
VPC = "cheatsheet/heuristics/heur-vpc-before-memory.yaml"
NEW = "cheatsheet/heuristics/heur-cold-vpc-eni.yaml"


class WithGitops:
    """Settings plus a gitops section (until config.py defines one)."""

    def __init__(self, settings: Any, **gitops: Any) -> None:
        self._settings = settings
        self.gitops = GitopsSettings(**gitops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._settings, name)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    return make_repo(tmp_path)


def _change(repo, *, title: str = "Learn VPC cold start lesson", rule: str = "Check NAT and VPC endpoints first.",
            kind: str = "curate") -> ChangeSet:
    old = (repo.root / VPC).read_text()
    new_vpc = old.replace("status: active", "status: retired")
    entry = (
        "id: heur-cold-vpc-eni\nsection: heuristics\ntask_type: lambda_latency\n"
        f"condition: Cold starts in a VPC function\nrule: {rule}\nstatus: candidate\n"
        "source: {kind: curator, runs: [run-1, run-2], created: 2026-03-14T10:00:00Z}\n"
    )
    return ChangeSet(
        kind=kind,  # type: ignore[arg-type]
        title=title,
        summary=["ADD heur-cold-vpc-eni: 2 failed runs hit ENI cold starts", "RETIRE heur-vpc-before-memory: success 0.2 after 10 uses"],
        files=[FileChange(path=VPC, content=new_vpc), FileChange(path=NEW, content=entry)],
        trace_ids=["run-1", "run-2"],
        eval_summary=EvalSummary(baseline_rate=0.625, candidate_rate=0.75, n=8, p_value=0.25, dataset="lambda_ops",
                                 split="test", report_markdown="<!-- selfheal-eval -->\n| metric | base | cand |\n|---|---|---|\n| success | 5/8 | 6/8 |"),
        model="openai:gpt-4o-mini",
    )


def test_publish_commits_on_a_new_branch_without_touching_the_working_tree(repo):
    change = _change(repo)
    # the user has work in progress: a modified tracked file and an untracked one
    (repo.root / VPC).write_text((repo.root / VPC).read_text() + "# my note\n")
    repo.write("scratch.txt", "wip\n")
    before = snapshot(repo.root)
    head_before = repo.head()

    result = publish_change(repo.settings(), change, today=TODAY)

    assert result.branch == "selfheal/curate/2026-03-14-learn-vpc-cold-start-lesson"
    assert snapshot(repo.root) == before
    assert repo.head() == head_before and repo.git("branch", "--show-current").strip() == "main"
    assert len(repo.git("worktree", "list").splitlines()) == 1
    g = git.Repo(repo.root)
    commit = g.commit(result.branch)
    assert commit.hexsha == result.commit
    assert commit.parents[0].hexsha == g.commit("origin/main").hexsha
    msg = commit.message
    assert msg.splitlines()[0] == "Learn VPC cold start lesson"
    assert "ADD heur-cold-vpc-eni: 2 failed runs hit ENI cold starts" in msg
    trailers = parse_trailers(msg)
    assert trailers["Selfheal-Kind"] == "curate"
    assert trailers["Selfheal-Eval"] == "baseline 62.5% -> candidate 75.0% (n=8, p=0.25)"
    assert trailers["Selfheal-Traces"] == "run-1, run-2"
    assert trailers["Selfheal-Model"] == "openai:gpt-4o-mini"
    assert trailers["Selfheal-Version"]
    assert set(trailers["Selfheal-Entries"].split(", ")) == {"heur-vpc-before-memory", "heur-cold-vpc-eni"}
    # the committed tree has the change; the user's note is not in it
    assert "status: retired" in g.git.show(f"{result.branch}:{VPC}")
    assert "# my note" not in g.git.show(f"{result.branch}:{VPC}")
    assert g.git.show(f"{result.branch}:{NEW}").startswith("id: heur-cold-vpc-eni")
    # pushed to origin, default branch untouched there
    assert result.pushed
    assert repo.git("ls-remote", "origin", result.branch).split()[0] == result.commit
    assert repo.git("ls-remote", "origin", "main").split()[0] == head_before


def test_commit_identity_is_the_configured_one_when_git_has_none(repo):
    repo.git("config", "--unset", "user.name")
    repo.git("config", "--unset", "user.email")
    assert repo.git("config", "user.email", check=False) == ""  # no identity anywhere
    result = publish_change(repo.settings(), _change(repo), today=TODAY)
    commit = git.Repo(repo.root).commit(result.commit)
    assert (commit.author.name, commit.author.email) == ("selfheal bot", "selfheal@users.noreply.github.com")
    assert (commit.committer.name, commit.committer.email) == ("selfheal bot", "selfheal@users.noreply.github.com")

    custom = WithGitops(repo.settings(), author_name="Ops Bot", author_email="ops-bot@acme.test")
    result2 = publish_change(custom, _change(repo, title="Another lesson", rule="Other."), today=TODAY, force=True)
    commit2 = git.Repo(repo.root).commit(result2.commit)
    assert commit2.author.email == commit2.committer.email == "ops-bot@acme.test"


def test_branch_name_collision_gets_a_suffix(repo):
    first = publish_change(repo.settings(), _change(repo), today=TODAY)
    second = publish_change(repo.settings(), _change(repo, rule="Check ENI limits too."), today=TODAY, force=True)
    third = publish_change(repo.settings(), _change(repo, rule="Third version."), today=TODAY, force=True)
    assert second.branch == first.branch + "-2"
    assert third.branch == first.branch + "-3"
    assert len({first.commit, second.commit, third.commit}) == 3


def test_the_same_change_is_not_published_twice(repo):
    first = publish_change(repo.settings(), _change(repo), today=TODAY)
    again = publish_change(repo.settings(), _change(repo), today=TODAY + timedelta(days=1), force=True)
    assert again.branch == first.branch and again.updated and again.commit is None
    assert repo.git("branch", "--list", "selfheal/*").split() == [first.branch]


def test_never_pushes_to_the_default_branch(repo):
    g = git.Repo(repo.root)
    with pytest.raises(SelfhealError, match="refusing to push to the default branch 'main'"):
        push_branch(g, "origin", "main", default="main")
    with pytest.raises(SelfhealError, match="default branch"):
        push_branch(g, "origin", "origin/main", default="main")
    main_before = repo.git("ls-remote", "origin", "main")
    publish_change(repo.settings(), _change(repo), today=TODAY)
    assert repo.git("ls-remote", "origin", "main") == main_before


def test_without_a_token_the_pr_body_is_written_with_how_to_open_it(repo):
    result = publish_change(repo.settings(), _change(repo), today=TODAY)
    assert result.pr_url is None
    path = repo.root / ".selfheal" / "prs" / "selfheal-curate-2026-03-14-learn-vpc-cold-start-lesson.md"
    assert result.pr_body_path == str(path)
    body = path.read_text()
    assert f"<!-- selfheal-change: {result.fingerprint} -->" in body
    assert "| success | 5/8 | 6/8 |" in body                      # the eval report
    assert "**`heur-vpc-before-memory`** · heuristics — changed" in body
    assert "status: `active` → `retired`" in body
    assert "**`heur-cold-vpc-eni`** · heuristics — added" in body
    assert "- rule: Check NAT and VPC endpoints first." in body
    assert "`run-1`" in body and "<details><summary>Raw diff (2 files)</summary>" in body
    assert f"gh pr create --head {result.branch}" in (result.open_hint or "")


def test_instruction_changes_are_described_by_id(repo):
    ctx_path = "prompts/lambda_ops/context.yaml"
    text = (repo.root / ctx_path).read_text()
    new = text.replace(
        "text: Set timeout (seconds) or memory (MB) to about twice the observed need, not the maximum.",
        "text: Set timeout or memory to twice the observed need.",
    ).replace("version: 1", "version: 2")
    change = ChangeSet(kind="optimize", title="Shorter headroom rule", summary=["UPDATE ins-headroom: shorter"],
                       files=[FileChange(path=ctx_path, content=new)])
    result = publish_change(repo.settings(), change, dry_run=True, today=TODAY)
    assert result.commit is None and result.dry_run
    assert not repo.git("branch", "--list", "selfheal/*").strip()      # dry run: no branch
    assert result.entries == ["ins-headroom"]
    assert "**`ins-headroom`** — changed" in result.body
    assert "| text | Set timeout (seconds) or memory (MB) to about twice the observed need, not the maximum. " \
           "| Set timeout or memory to twice the observed need. |" in result.body
    assert "| version | 1 | 2 |" in result.body


def test_publish_without_remote_keeps_the_branch_local(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    local = make_repo(tmp_path, origin=False)
    result = publish_change(local.settings(), _change(local), today=TODAY)
    assert not result.pushed and result.base == "main"
    assert local.git("rev-parse", result.branch).strip() == result.commit
    assert "git push" in (result.open_hint or "")


def test_rate_limit_per_day_and_force(repo):
    s = WithGitops(repo.settings(), max_prs_per_day=1, min_runs_between=0)
    publish_change(s, _change(repo), today=TODAY)
    with pytest.raises(SelfhealError, match=r"rate limit: 1 improvement PRs in the last 24 h \(gitops.max_prs_per_day = 1\)"):
        publish_change(s, _change(repo, rule="second"), today=TODAY)
    assert len(repo.git("branch", "--list", "selfheal/*").split()) == 1   # nothing created by the refusal
    publish_change(s, _change(repo, rule="second"), today=TODAY, force=True)
    # rollbacks are never throttled
    publish_change(s, _change(repo, rule="third", kind="rollback", title="Revert lesson"), today=TODAY)


def test_rate_limit_needs_new_runs_since_the_last_pr_of_that_kind(repo):
    from helpers.trace_fixtures import TraceSpec, make_trace
    from selfheal.tracing.schema import utcnow
    from selfheal.tracing.store import LocalTraceStore

    s = WithGitops(repo.settings(), max_prs_per_day=10, min_runs_between=2)
    publish_change(s, _change(repo), today=TODAY)
    with pytest.raises(SelfhealError, match=r"only 0 root run\(s\) traced since the last curate PR"):
        publish_change(s, _change(repo, rule="second"), today=TODAY)
    publish_change(s, _change(repo, rule="an optimize", kind="optimize", title="Optimize"), today=TODAY)  # other kind
    with LocalTraceStore(s.trace_store_path) as store:
        project = store.ensure_project(s.tracing.project)
        for i in range(2):
            store.write_runs(make_trace(TraceSpec(f"r{i}", "lambda_timeout", True, 1.0, [], age=timedelta(0)),
                                        project.id, utcnow()))
        store.flush()
    publish_change(s, _change(repo, rule="second"), today=TODAY)
