"""selfheal history / blame / rollback against temporary repositories."""

from __future__ import annotations

import json
from datetime import date

import git
import pytest

from helpers.gitrepo import isolate_git, make_repo, snapshot
from selfheal.cli.main import main
from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange, parse_trailers
from selfheal.gitops.history import blame, improvement_history
from selfheal.gitops.publish import publish_change

TODAY = date(2026, 3, 14)
VPC = "cheatsheet/heuristics/heur-vpc-before-memory.yaml"
TIMEOUT = "cheatsheet/heuristics/heur-timeout-low-memory.yaml"
CTX = "prompts/lambda_ops/context.yaml"


def run_cli(repo, args, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(["-C", str(repo.root), *args])
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture
def repo(tmp_path, monkeypatch):
    isolate_git(monkeypatch, tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no folding of the columns the tests read
    return make_repo(tmp_path)


def _retire(repo, path=VPC, title="Retire the VPC heuristic", traces=("run-a", "run-b")):
    text = (repo.root / path).read_text().replace("status: active", "status: retired")
    change = ChangeSet(kind="curate", title=title, summary=["RETIRE: success 0.2 after 10 uses"],
                       files=[FileChange(path=path, content=text)], trace_ids=list(traces),
                       eval_summary=EvalSummary(baseline_rate=0.625, candidate_rate=0.75, n=8, p_value=0.25))
    return publish_change(repo.settings(), change, today=TODAY, force=True)


def _merge(repo, branch: str, number: int) -> str:
    repo.git("fetch", "-q", "origin")
    repo.git("merge", "-q", "--no-ff", "-m", f"Merge pull request #{number} from acme/{branch}", branch)
    return repo.head()


def test_history_lists_improvements_newest_first_with_eval_and_pr(repo, capsys):
    first = _retire(repo)
    _merge(repo, first.branch, 12)
    repo.write("README.md", "human work\n")
    repo.commit_all("Docs")                                        # not an improvement
    second = _retire(repo, TIMEOUT, title="Retire the timeout heuristic", traces=("run-c",))
    items = improvement_history(repo.settings())
    assert [i.title for i in items] == ["Retire the timeout heuristic", "Retire the VPC heuristic"]
    newest, oldest = items
    assert newest.sha == second.commit and newest.pr_number is None and newest.kind == "curate"
    assert oldest.pr_number == 12 and oldest.entries == ["heur-vpc-before-memory"]
    assert oldest.eval == "baseline 62.5% -> candidate 75.0% (n=8, p=0.25)"
    assert oldest.traces == ["run-a", "run-b"]

    code, out, _ = run_cli(repo, ["history", "--json", "--limit", "1"], capsys)
    assert code == 0
    assert [i["sha"] for i in json.loads(out)] == [second.commit]
    code, out, _ = run_cli(repo, ["history"], capsys)
    assert code == 0 and "#12" in out and first.commit[:7] in out and "Docs" not in out


def test_history_takes_the_pr_from_the_publish_record_and_shows_squash_copies_once(repo):
    from selfheal.gitops.ledger import PublishRecord, append_record, read_records

    result = _retire(repo)
    rec = read_records(repo.settings())[-1]
    append_record(repo.settings(), PublishRecord(**{**rec.model_dump(), "pr_number": 31,
                                                    "pr_url": "https://github.com/acme/agent/pull/31"}))
    # squash-merge into main: same message with " (#31)" appended to the subject
    msg = git.Repo(repo.root).commit(result.commit).message
    subject, rest = msg.split("\n", 1)
    repo.git("merge", "-q", "--squash", result.branch)
    repo.git("commit", "-q", "-m", f"{subject} (#31)\n{rest}")
    items = improvement_history(repo.settings())
    assert len(items) == 1 and items[0].pr_number == 31


def test_blame_lists_every_commit_behind_an_entry_with_its_runs(repo, capsys):
    published = _retire(repo)
    _merge(repo, published.branch, 4)
    text = (repo.root / VPC).read_text().replace("memory won't speed up network calls", "memory won't fix the network")
    repo.write(VPC, text)
    human = repo.commit_all("Reword the VPC rule")
    result = blame(repo.settings(), "heur-vpc-before-memory")
    assert result.kind == "entry" and result.path == VPC and result.status == "retired"
    assert [c.sha for c in result.commits] == [human, published.commit, result.commits[-1].sha]
    assert result.commits[0].change == "changed: rule" and result.commits[0].author == "Dana Developer"
    assert result.commits[1].change == "changed: status active -> retired"
    assert result.commits[1].traces == ["run-a", "run-b"] and result.commits[1].kind == "curate"
    assert result.commits[2].change == "created"

    code, out, _ = run_cli(repo, ["blame", "heur-vpc-before-memory"], capsys)
    assert code == 0 and "run-a, run-b" in out and "selfheal curate" in out


def test_blame_finds_instructions_and_unknown_ids_fail(repo, capsys):
    text = (repo.root / CTX).read_text().replace("not the maximum.", "never the maximum.")
    repo.write(CTX, text)
    changed = repo.commit_all("Tighten headroom")
    repo.write(CTX, text.replace("  - id: ins-rollback-deploys\n", "  - id: ins-rollback-deploys\n", 1))
    result = blame(repo.settings(), "ins-headroom")
    assert result.kind == "instruction" and result.exists
    assert [(c.sha, c.change) for c in result.commits][0] == (changed, "changed: text")
    assert result.commits[-1].change == "created"
    code, out, err = run_cli(repo, ["blame", "ins-nope"], capsys)
    assert code == 2 and err.startswith("error: unknown entry or instruction 'ins-nope'") and err.count("\n") == 1


# -- rollback ---------------------------------------------------------------------------


def test_rollback_commit_directly_reverts_with_trailers(repo, capsys):
    published = _retire(repo)
    _merge(repo, published.branch, 5)
    code, out, err = run_cli(repo, ["rollback", published.commit[:10], "--no-pr", "--yes"], capsys)
    assert code == 0, err
    assert "status: active" in (repo.root / VPC).read_text()
    msg = git.Repo(repo.root).head.commit.message
    assert msg.startswith('Revert "Retire the VPC heuristic"')
    t = parse_trailers(msg)
    assert t["Selfheal-Kind"] == "rollback" and t["Selfheal-Reverts"] == published.commit
    assert t["Selfheal-Entries"] == "heur-vpc-before-memory"
    assert git.Repo(repo.root).head.commit.author.name == "selfheal bot"
    assert repo.git("status", "--porcelain").strip() == ""


def test_rollback_one_entry_leaves_the_rest_of_the_commit(repo, capsys):
    both = (repo.root / VPC).read_text().replace("status: active", "status: retired")
    other = (repo.root / TIMEOUT).read_text().replace("status: active", "status: retired")
    change = ChangeSet(kind="curate", title="Retire two", summary=[], files=[
        FileChange(path=VPC, content=both), FileChange(path=TIMEOUT, content=other)])
    published = publish_change(repo.settings(), change, today=TODAY)
    _merge(repo, published.branch, 6)
    code, out, err = run_cli(repo, ["rollback", "heur-vpc-before-memory", "--no-pr", "--yes"], capsys)
    assert code == 0, err
    assert "status: active" in (repo.root / VPC).read_text()
    assert "status: retired" in (repo.root / TIMEOUT).read_text()       # the rest of that commit stays
    t = parse_trailers(git.Repo(repo.root).head.commit.message)
    assert t["Selfheal-Reverts"] == published.commit and t["Selfheal-Entries"] == "heur-vpc-before-memory"


def test_rollback_an_instruction_restores_its_text_keeping_comments(repo, capsys):
    text = (repo.root / CTX).read_text()
    repo.write(CTX, text.replace("not the maximum.", "never the maximum."))
    repo.commit_all("Tighten headroom")
    code, _, err = run_cli(repo, ["rollback", "ins-headroom", "--no-pr", "--yes"], capsys)
    assert code == 0, err
    restored = (repo.root / CTX).read_text()
    assert "not the maximum." in restored and "never the maximum." not in restored
    assert "# Context of the lambda_ops agent." in restored and "version: 2" in restored


def test_rollback_as_a_pr_branch_leaves_the_working_tree_alone(repo, capsys):
    published = _retire(repo)
    _merge(repo, published.branch, 7)
    repo.git("push", "-q", "origin", "main")
    before, head = snapshot(repo.root), repo.head()
    code, out, err = run_cli(repo, ["rollback", "heur-vpc-before-memory", "--yes"], capsys)
    assert code == 0, err
    assert snapshot(repo.root) == before and repo.head() == head
    branch = next(b for b in repo.git("branch", "--list", "selfheal/rollback/*").split() if b != "*")
    assert "status: active" in repo.git("show", f"{branch}:{VPC}")
    assert "PR body:" in out


@pytest.mark.parametrize("state", ["modified", "staged", "merge", "detached", "unknown"])
def test_rollback_refusals_change_nothing(repo, capsys, state):
    published = _retire(repo)
    _merge(repo, published.branch, 8)
    if state == "modified":
        repo.write(TIMEOUT, (repo.root / TIMEOUT).read_text() + "# wip\n")
    elif state == "staged":
        repo.write("new.txt", "staged\n")
        repo.git("add", "new.txt")
    elif state == "merge":
        repo.git("checkout", "-q", "-b", "side", "HEAD~1")
        repo.write(VPC, "id: x\n")
        repo.commit_all("side edit")
        repo.git("checkout", "-q", "main")
        repo.git("merge", "side", check=False)                    # conflicts, MERGE_HEAD left behind
    elif state == "detached":
        repo.git("checkout", "-q", "--detach", "HEAD")
    before = snapshot(repo.root)
    head = repo.head()
    target = "nope-123" if state == "unknown" else published.commit
    code, out, err = run_cli(repo, ["rollback", target, "--no-pr", "--yes"], capsys)
    expected = {"modified": "uncommitted changes in cheatsheet/heuristics/heur-timeout-low-memory.yaml",
                "staged": "uncommitted changes in new.txt", "merge": "a merge is in progress",
                "detached": "HEAD is detached", "unknown": "unknown commit or entry 'nope-123'"}[state]
    assert code == 2 and err.startswith(f"error: {expected}") and err.count("\n") == 1
    assert snapshot(repo.root) == before and repo.head() == head


def test_a_revert_conflict_is_aborted_and_names_the_files(repo, capsys):
    published = _retire(repo)
    _merge(repo, published.branch, 9)
    repo.write(VPC, (repo.root / VPC).read_text().replace("status: retired", "status: candidate"))
    repo.commit_all("Human re-tries the heuristic")
    before, head = snapshot(repo.root), repo.head()
    code, _, err = run_cli(repo, ["rollback", published.commit, "--no-pr", "--yes"], capsys)
    assert code == 2 and f"conflicts in {VPC}" in err
    assert snapshot(repo.root) == before and repo.head() == head
    assert repo.git("status", "--porcelain").strip() == ""
    assert not (repo.root / ".git" / "REVERT_HEAD").exists()


def test_cli_rollback_refuses_a_dirty_tree_before_asking_anything(repo, capsys, monkeypatch):
    """No confirmation prompt for a rollback that cannot happen: the refusal comes first."""
    import sys

    monkeypatch.setattr(sys, "stdin", None)   # any prompt would fail loudly
    (repo.root / VPC).write_text((repo.root / VPC).read_text() + "# local edit\n")
    before = snapshot(repo.root)
    code, out, err = run_cli(repo, ["rollback", "HEAD"], capsys)
    assert code == 2 and "uncommitted changes" in err and "Roll back" not in err
    assert snapshot(repo.root) == before
