"""``selfheal review`` / ``selfheal approve``: open improvements listed, gated on their own commit, merged only on a pass."""

from __future__ import annotations

import importlib
import json
import shutil
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from helpers.eval_results import T0
from helpers.github_stub import GitHubStub
from helpers.gitrepo import WorkRepo, isolate_git, make_repo

from selfheal.cli.main import main
from selfheal.evaluation.results import ExampleResult, ExperimentResult
from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange
from selfheal.gitops.publish import publish_change

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 3, 14)
ENTRY = "cheatsheet/strategies/strat-errors-read-logs.yaml"
EXAMPLES = {"timeout-a": "lambda_timeout", "timeout-b": "lambda_timeout", "oom-a": "lambda_memory",
            "oom-b": "lambda_memory"}
GOOD, BAD = "# verdict: good", "# verdict: bad"


def _dataset(repo: WorkRepo) -> None:
    repo.write("evals/lambda_ops/dataset.yaml", "name: lambda_ops\nagent: lambda_ops\n")
    for name, task_type in EXAMPLES.items():
        repo.write(f"evals/lambda_ops/examples/{name}.yaml",
                   f"name: {name}\ntask: fix {name}\ntask_type: {task_type}\nsplit: test\n")
    repo.commit_all("dataset")


class MarkerRunner:
    """Stands in for run_experiment: every example passes unless the side's cheatsheet says ``bad``."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, settings: Any, dataset: Any, *, split: str = "test", names: list[str] | None = None,
                 git_ref: str | None = None, **kw: Any) -> ExperimentResult:
        text = (settings.cheatsheet_dir / "strategies/strat-errors-read-logs.yaml").read_text()
        verdict = "bad" if BAD in text else "good"
        self.calls.append({"side": "baseline" if git_ref else "candidate", "verdict": verdict,
                           "cheatsheet_dir": settings.cheatsheet_dir})
        chosen = dataset.select(split, names)
        results = [ExampleResult(example_id=ex.id, name=ex.name, split=ex.split, task_type=ex.task_type,
                                 passed=verdict == "good" or i % 2 == 1, score=1.0, run_id=None)
                   for i, ex in enumerate(chosen)]
        return ExperimentResult(
            experiment_id=str(uuid.uuid4()), name=f"{dataset.name}-{split}-{verdict}-{uuid.uuid4().hex[:4]}",
            dataset=dataset.name, dataset_hash=dataset.hash, split=split, model="scripted:fake",
            context_version="ctx", cheatsheet_version="cs", git_ref=git_ref, started_at=T0, finished_at=T0,
            results=results,
        )


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch) -> MarkerRunner:
    fake = MarkerRunner()
    monkeypatch.setattr(importlib.import_module("selfheal.evaluation.runner"), "run_experiment", fake)
    return fake


def _change(repo: WorkRepo, marker: str, title: str) -> ChangeSet:
    text = (repo.root / ENTRY).read_text()
    return ChangeSet(kind="curate", title=title, summary=[f"UPDATE strat-errors-read-logs: {title}"],
                     files=[FileChange(path=ENTRY, content=text + marker + "\n")],
                     eval_summary=EvalSummary(baseline_rate=0.5, candidate_rate=0.75, n=4, p_value=0.5))


def _publish(repo: WorkRepo, marker: str, title: str) -> str:
    return publish_change(repo.settings(), _change(repo, marker, title), today=TODAY, force=True).branch


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


@pytest.fixture()
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WorkRepo:
    isolate_git(monkeypatch, tmp_path)
    repo = make_repo(tmp_path, origin=False)
    _dataset(repo)
    return repo


def test_review_lists_open_branches_with_their_published_eval(local: WorkRepo, capsys) -> None:
    branch = _publish(local, GOOD, "Sharper error reading")
    code, out, err = cli(["-C", str(local.root), "review"], capsys)
    assert code == 0, err
    assert f"- {branch} -> main  [curate]" in out
    assert "published eval: baseline 50.0% -> candidate 75.0% (n=4, p=0.5)" in out
    assert "entries: strat-errors-read-logs" in out
    code, out, _ = cli(["-C", str(local.root), "review", "--json"], capsys)
    (item,) = json.loads(out)
    assert item["branch"] == branch and item["ahead"] == 1 and item["source"] == "local"
    assert item["eval"]["baseline_rate"] == 0.5 and item["eval"]["candidate_rate"] == 0.75
    assert item["commit"] == local.git("rev-parse", branch).strip()


def test_approve_gates_the_branch_commit_and_fast_forwards_the_base(local: WorkRepo, runner, capsys) -> None:
    branch = _publish(local, GOOD, "Sharper error reading")
    tip = local.git("rev-parse", branch).strip()
    code, out, err = cli(["-C", str(local.root), "approve", branch], capsys)
    assert code == 0, err
    # The candidate side read the branch's cheatsheet (from a temporary worktree), not the working tree.
    cand = next(c for c in runner.calls if c["side"] == "candidate")
    assert not str(cand["cheatsheet_dir"]).startswith(str(local.root)) and not cand["cheatsheet_dir"].exists()
    assert "gate passed: merged into main (fast-forward" in out
    assert local.head() == tip and GOOD in (local.root / ENTRY).read_text()
    assert len(local.git("worktree", "list").splitlines()) == 1
    # Merged: no longer open. The gate run was stored against the commit.
    code, out, _ = cli(["-C", str(local.root), "review"], capsys)
    assert out.strip() == "No open improvements: nothing to review."


def test_review_shows_the_last_gate_run_of_the_head_commit(local: WorkRepo, runner, capsys) -> None:
    branch = _publish(local, GOOD, "Sharper error reading")
    code, _, err = cli(["-C", str(local.root), "approve", branch, "--no-merge", "--json"], capsys)
    assert code == 0, err
    code, out, _ = cli(["-C", str(local.root), "review", "--json"], capsys)
    (item,) = json.loads(out)
    assert item["last_gate"]["success_rate"] == 1.0 and item["last_gate"]["n"] == 4


def test_a_failing_gate_prints_its_reasons_exits_1_and_merges_nothing(local: WorkRepo, runner, capsys) -> None:
    branch = _publish(local, BAD, "Worse error reading")
    before = local.head()
    code, out, err = cli(["-C", str(local.root), "approve", branch, "--json"], capsys)
    assert code == 1
    data = json.loads(out)
    assert data["passed"] is False and data["merged"] is False
    assert data["gate"]["baseline_rate"] == 1.0 and data["gate"]["candidate_rate"] == 0.5
    assert sorted(data["gate"]["pass_to_fail"]) == ["oom-a", "timeout-a"]
    assert "gate failed: success rate fell 50 points (100.0% -> 50.0%), more than the 5-point margin" in err
    assert local.head() == before
    code, out, err = cli(["-C", str(local.root), "approve", branch], capsys)
    assert code == 1 and "gate failed: not merged" in out


def test_a_dirty_tree_is_refused_before_any_evaluation(local: WorkRepo, runner, capsys) -> None:
    branch = _publish(local, GOOD, "Sharper error reading")
    (local.root / ENTRY).write_text((local.root / ENTRY).read_text() + "# local edit\n")
    code, out, err = cli(["-C", str(local.root), "approve", branch], capsys)
    assert code == 2 and err.strip().startswith("error: uncommitted changes in " + ENTRY)
    assert runner.calls == []


def test_unknown_branch_is_a_one_line_error(local: WorkRepo, runner, capsys) -> None:
    _publish(local, GOOD, "Sharper error reading")
    code, _, err = cli(["-C", str(local.root), "approve", "selfheal/curate/nope"], capsys)
    assert code == 2 and err.startswith("error: no open improvement 'selfheal/curate/nope' (open: selfheal/curate/")


def test_base_moved_on_and_head_elsewhere_gives_a_merge_commit(local: WorkRepo, runner, capsys) -> None:
    branch = _publish(local, GOOD, "Sharper error reading")
    local.write("NOTES.md", "unrelated\n")
    base_tip = local.commit_all("unrelated work on main")
    local.git("checkout", "-q", "-b", "topic")
    code, out, err = cli(["-C", str(local.root), "approve", branch], capsys)
    assert code == 0, err
    assert "(merge commit" in out
    parents = local.git("log", "-1", "--format=%P", "main").split()
    assert parents == [base_tip, local.git("rev-parse", branch).strip()]
    assert local.git("rev-parse", "--abbrev-ref", "HEAD").strip() == "topic"
    assert local.git("status", "--porcelain").strip() == ""


# -- GitHub --------------------------------------------------------------------------------
@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    isolate_git(monkeypatch, tmp_path)
    repo = make_repo(tmp_path)
    _dataset(repo)
    repo.git("push", "-q", "origin", "main")
    with GitHubStub(repo="acme/agent", origin=repo.origin) as stub:
        monkeypatch.setenv("GITHUB_TOKEN", stub.token)
        monkeypatch.setenv("GITHUB_API_URL", stub.url)
        monkeypatch.setenv("GITHUB_REPOSITORY", "acme/agent")
        yield repo, stub


def test_review_lists_open_prs_and_approve_merges_through_the_api(hub, runner, capsys) -> None:
    repo, stub = hub
    branch = _publish(repo, GOOD, "Sharper error reading")
    repo.git("branch", "-q", "-D", branch)  # known only on GitHub (and origin) now
    stub.pulls[99] = {"number": 99, "state": "open", "title": "A human's PR", "body": "",
                      "head": {"ref": "feature/x"}, "base": {"ref": "main"}, "html_url": "h"}
    code, out, err = cli(["-C", str(repo.root), "review", "--json"], capsys)
    assert code == 0, err
    (item,) = json.loads(out)
    assert item["pr_number"] == 1 and item["branch"] == branch and item["source"] == "both"
    assert item["eval"]["candidate_rate"] == 0.75
    code, out, err = cli(["-C", str(repo.root), "approve", "#1"], capsys)
    assert code == 0, err
    assert "gate passed: PR #1 approved and merged" in out
    assert stub.pulls[1]["merged"] is True
    (review,) = stub.reviews[1]
    assert review["state"] == "APPROVED" and "regression gate passed" in review["body"]
    (_, _, _, sent), = stub.calls("PUT", "/pulls/1/merge")
    assert sent["sha"] == repo.git("rev-parse", f"origin/{branch}").strip()


def test_own_pr_cannot_be_approved_but_is_merged_and_a_failing_pr_is_left_open(hub, runner, capsys) -> None:
    repo, stub = hub
    stub.own_prs = True
    good = _publish(repo, GOOD, "Sharper error reading")
    code, out, err = cli(["-C", str(repo.root), "approve", good, "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["merged"] and not data["approved"] and "Can not approve your own pull request" in data["notes"][-1]
    bad = _publish(repo, BAD, "Worse error reading")
    code, _, err = cli(["-C", str(repo.root), "approve", bad], capsys)
    assert code == 1 and "gate failed" in err
    assert stub.pulls[2]["state"] == "open" and not stub.calls("PUT", "/pulls/2/merge")


# -- end to end with the real runner and a scripted agent -----------------------------------
BAD_RULE = "Raise the timeout, not the memory."


def _follows_the_cheatsheet(messages: list[Any]) -> Any:
    from langchain_core.messages import AIMessage, ToolMessage

    text = "\n".join(str(m.content) for m in messages)
    if any(isinstance(m, ToolMessage) for m in messages):
        return AIMessage(content="Fixed it.\nUSED: none")
    if "checkout-api" in text:
        fn, tool, args = "checkout-api", "update_timeout", {"timeout_s": 10}
    elif BAD_RULE in text:
        fn, tool, args = "image-resizer", "update_timeout", {"timeout_s": 60}
    else:
        fn, tool, args = "image-resizer", "update_memory", {"memory_mb": 1024}
    return AIMessage(content="", tool_calls=[{"name": tool, "args": {"function_name": fn, **args}, "id": "c1"}])


@pytest.mark.timeout(90)
def test_end_to_end_lambda_ops_bad_branch_refused_good_branch_merged(tmp_path: Path, monkeypatch) -> None:
    from selfheal.interact.approve import approve
    from selfheal.models.fakes import ScriptedChatModel

    isolate_git(monkeypatch, tmp_path)
    repo = make_repo(tmp_path, origin=False)
    for name in ("prompts", "cheatsheet"):
        shutil.rmtree(repo.root / name)
        shutil.copytree(REPO / name, repo.root / name, ignore=shutil.ignore_patterns("sql_analyst"))
    repo.write("evals/lambda_ops/dataset.yaml", (REPO / "evals/lambda_ops/dataset.yaml").read_text())
    for scenario in ("lambda_timeout", "lambda_memory"):
        repo.write(f"evals/lambda_ops/scenarios/{scenario}.yaml",
                   (REPO / f"evals/lambda_ops/scenarios/{scenario}.yaml").read_text())
    repo.commit_all("agent and dataset")
    heur = "cheatsheet/heuristics/heur-oom-raise-memory.yaml"
    text = (repo.root / heur).read_text()
    bad = publish_change(repo.settings(), ChangeSet(
        kind="curate", title="Timeouts over memory", files=[FileChange(
            path=heur, content=text.replace("Raise memory 1.5-2x, not the timeout.", BAD_RULE))]), today=TODAY).branch
    good = publish_change(repo.settings(), ChangeSet(
        kind="curate", title="Comment the memory rule", files=[FileChange(path=heur, content=text + "# ok\n")]),
        today=TODAY, force=True).branch
    factory = lambda: ScriptedChatModel([_follows_the_cheatsheet], repeat=True)  # noqa: E731
    before = repo.head()
    refused = approve(repo.settings(), bad, split="all", model_factory=factory)
    assert not refused.passed and not refused.merged and repo.head() == before
    assert refused.gate is not None and refused.gate.pass_to_fail == ["lambda_memory"]
    assert "success rate fell 50 points (100.0% -> 50.0%)" in refused.reasons[-1]
    merged = approve(repo.settings(), good, split="all", model_factory=factory)
    assert merged.passed and merged.merged and merged.how == "fast-forward"
    assert repo.head() == merged.commit and (repo.root / heur).read_text().endswith("# ok\n")


@pytest.mark.timeout(90)
def test_end_to_end_sql_analyst_a_learned_convention_passes_the_gate_and_merges(tmp_path: Path, monkeypatch) -> None:
    """On the second reference agent: the branch teaching the test-account convention is gated and merged."""
    pytest.importorskip("sql_analyst")
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from selfheal.interact.approve import approve
    from selfheal.models.fakes import ScriptedChatModel
    from selfheal.yamlio import read_yaml

    isolate_git(monkeypatch, tmp_path)
    monkeypatch.setenv("SQL_ANALYST_CACHE_DIR", str(tmp_path / "db"))
    repo = make_repo(tmp_path, origin=False, name="analytics")
    shutil.copytree(REPO / "prompts" / "sql_analyst", repo.root / "prompts" / "sql_analyst")
    shutil.copytree(REPO / "cheatsheet" / "sql_analyst", repo.root / "cheatsheet" / "sql_analyst")
    repo.write("evals/sql_analyst/dataset.yaml", (REPO / "evals/sql_analyst/dataset.yaml").read_text())
    gold: dict[str, str] = {}
    for name in ("customers_active_buyers_fy2025", "customers_by_region"):
        text = (REPO / f"evals/sql_analyst/scenarios/{name}.yaml").read_text()
        repo.write(f"evals/sql_analyst/scenarios/{name}.yaml",
                   text.replace("split: train", "split: test").replace("split: dev", "split: test"))
        data = read_yaml(REPO / f"evals/sql_analyst/scenarios/{name}.yaml")
        gold[" ".join(str(data["task"]).split())] = str(data["gold_sql"])
    repo.write("selfheal.yaml", "agent: sql_analyst\nembeddings: {provider: none}\n")
    repo.commit_all("sql_analyst agent and dataset")

    def analyst(messages: list[Any]) -> AIMessage:
        """Writes the right SQL only when the cheatsheet in its prompt tells it the convention."""
        if any(isinstance(m, ToolMessage) for m in messages):
            return AIMessage(content="Here it is.\nUSED: none")
        task = " ".join(str(next(m.content for m in messages if isinstance(m, HumanMessage))).split())
        knows = "@brightcart.io" in "\n".join(str(m.content) for m in messages)
        query = gold[task] if knows else "SELECT COUNT(DISTINCT customer_id) FROM orders"
        return AIMessage(content="", tool_calls=[{"name": "run_sql", "args": {"query": query}, "id": "q1"}])

    entry = """id: code-real-customers
section: code_snippets
task_type: customers
purpose: Count real customers only (every customer figure)
language: sql
snippet: "JOIN customers c ON c.id = o.customer_id WHERE c.email NOT LIKE '%@brightcart.io'"
status: active
source: {kind: curator, runs: [], created: 2026-03-01T09:00:00Z}
"""
    branch = publish_change(repo.settings(), ChangeSet(kind="curate", title="Real customers only", files=[
        FileChange(path="cheatsheet/sql_analyst/code_snippets/code-real-customers.yaml", content=entry)]),
        today=TODAY).branch
    result = approve(repo.settings(), branch, model_factory=lambda: ScriptedChatModel([analyst], repeat=True))
    assert result.gate is not None and result.gate.baseline_rate == 0.0, result
    assert result.gate.candidate_rate == 1.0 and sorted(result.gate.fail_to_pass) == [
        "customers_active_buyers_fy2025", "customers_by_region"]
    assert result.passed and result.merged and repo.head() == result.commit
    assert (repo.root / "cheatsheet/sql_analyst/code_snippets/code-real-customers.yaml").is_file()


def test_with_a_remote_a_local_merge_closes_the_improvement_before_any_push(hub, runner, capsys) -> None:
    repo, stub = hub
    branch = _publish(repo, GOOD, "Sharper error reading")
    code, out, err = cli(["-C", str(repo.root), "approve", branch, "--local"], capsys)
    assert code == 0, err
    assert "fast-forward" in out and not stub.calls("PUT")
    assert repo.git("rev-parse", "origin/main").strip() != repo.head()  # not pushed
    code, out, _ = cli(["-C", str(repo.root), "review", "--local"], capsys)
    assert out.strip() == "No open improvements: nothing to review."
