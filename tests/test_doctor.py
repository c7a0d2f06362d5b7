"""``selfheal doctor`` repairs what a killed process leaves, and a run's trace exists from its start.

The debris here is made by hand, owned by a process that is gone (a dead pid
with a start time that cannot match), so each kind is repaired
deterministically; tests/test_crash_kills.py makes the same debris with
real SIGKILLs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from helpers.crash_repo import git, make_committed_repo

from selfheal.cli.main import main
from selfheal.config import load_settings
from selfheal.journal import JOURNAL_DIR, FileEdit, TreeJournal
from selfheal.owner import ProcessOwner, current_owner, owner_alive
from selfheal.scratch import ScratchItem, read_registry, register
from selfheal.tracing.schema import RunRecord
from selfheal.tracing.store import LocalTraceStore


def _dead_owner() -> ProcessOwner:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    me = current_owner()
    return ProcessOwner(pid=int(proc.stdout), host=socket.gethostname(), boot_id=me.boot_id, started=1)


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out + err


def _open_root(owner: ProcessOwner, name: str, project: Any) -> RunRecord:
    rid = uuid4()
    now = datetime.now(UTC)
    return RunRecord(id=rid, name=name, run_type="chain", start_time=now, trace_id=rid,
                     dotted_order=now.strftime("%Y%m%dT%H%M%S%fZ") + str(rid), status="pending", session_id=project,
                     extra={"selfheal_owner": owner.model_dump(), "metadata": {"task_type": "lambda_timeout"}})


def test_owner_liveness() -> None:
    assert owner_alive(current_owner())
    assert not owner_alive(_dead_owner())
    recycled = current_owner().model_copy(update={"started": (current_owner().started or 0) + 1})
    assert not owner_alive(recycled)  # same pid, another process
    assert owner_alive(current_owner().model_copy(update={"host": "another-host"}))  # cannot tell: alive


def test_doctor_repairs_each_kind_of_debris(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    repo = make_committed_repo(tmp_path / "repo")
    settings = load_settings(repo)
    dead = _dead_owner()
    user_branch = "feature/mine"
    git(repo, "branch", user_branch)

    # A publish killed mid-commit: its worktree keeps a new branch checked out.
    wt_root = tmp_path / "tmp" / "selfheal-wt-dead"
    wt_root.mkdir()
    branch = "selfheal/curate/2026-12-02-killed"
    git(repo, "worktree", "add", "--quiet", "-b", branch, str(wt_root / "wt"), "main")
    register(settings.state_dir, ScratchItem(kind="worktree", purpose="publish", root=str(wt_root),
                                             worktree=str(wt_root / "wt"), repo=str(repo), branch=branch,
                                             delete_branch=True, owner=dead))
    # A user's branch in a worktree selfheal once registered must be freed, never deleted.
    user_root = tmp_path / "tmp" / "selfheal-wt-user"
    user_root.mkdir()
    git(repo, "worktree", "add", "--quiet", str(user_root / "wt"), user_branch)
    register(settings.state_dir, ScratchItem(kind="worktree", purpose="publish", root=str(user_root),
                                             worktree=str(user_root / "wt"), repo=str(repo), branch=user_branch,
                                             owner=dead))
    # An eval --against checkout from an older selfheal: no registry entry at all.
    legacy = tmp_path / "tmp" / "selfheal-eval-legacy"
    legacy.mkdir()
    git(repo, "worktree", "add", "--quiet", "--detach", str(legacy / "worktree"), "HEAD")
    # An optimize scratch copy.
    scratch = tmp_path / "tmp" / "selfheal-optimize-dead"
    (scratch / "cheatsheet").mkdir(parents=True)
    register(settings.state_dir, ScratchItem(kind="dir", purpose="optimize", root=str(scratch), owner=dead))
    # A curate killed half-way through writing the working tree.
    entry = repo / "cheatsheet" / "heuristics" / "heur-timeout-low-memory.yaml"
    before = entry.read_text()
    new_rel = "cheatsheet/failure_patterns/fail-half-written-batch.yaml"
    journal = TreeJournal(purpose="curate", root=str(repo), owner=dead, files={
        "cheatsheet/heuristics/heur-timeout-low-memory.yaml": FileEdit(before=before, after=before + "# learned\n"),
        new_rel: FileEdit(before=None, after="id: fail-half-written-batch\n"),
    })
    jpath = settings.state_dir / JOURNAL_DIR / "j1.json"
    jpath.parent.mkdir(parents=True)
    jpath.write_text(journal.model_dump_json())
    entry.write_text(before + "# learned\n")  # the first file was written, the second never was
    cut = repo / "cheatsheet" / "failure_patterns" / ".fail-half-written-batch.yaml.zz99yy88.tmp"
    cut.write_text("id: fail-half")  # ... its atomic write was cut short (a fresh temp file)
    # An atomic write killed between write and rename.
    stray = repo / "cheatsheet" / "heuristics" / ".heur-x.yaml.abcd1234.tmp"
    stray.write_text("id: heur-x\nrule: half")
    os.utime(stray, (1, 1))
    # Runs: one killed, one still running in this process.
    with LocalTraceStore.from_settings(settings) as store:
        project = store.ensure_project(settings.tracing.project).id
        killed = _open_root(dead, "killed run", project)
        running = _open_root(current_owner(), "live run", project)
        store.write_runs([killed, running])

    code, out = _cli(["-C", str(repo), "traces", "list", "--json"], capsys)
    assert code == 0
    assert {r["name"]: r["status"] for r in json.loads(out)} == {"killed run": "interrupted", "live run": "running"}

    code, out = _cli(["-C", str(repo), "doctor", "--dry-run", "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["dry_run"] and len(report["repairs"]) >= 7, report
    assert (wt_root / "wt").exists() and jpath.exists() and stray.exists()  # a dry run changes nothing

    code, out = _cli(["-C", str(repo), "doctor"], capsys)
    assert code == 0, out
    lines = out.strip().splitlines()
    assert any("stale worktree" in line and "selfheal-wt-dead" in line for line in lines), out
    assert any(f"deleted unfinished branch {branch}" in line for line in lines), out
    assert any("unregistered selfheal worktree" in line and "selfheal-eval-legacy" in line for line in lines), out
    assert any("selfheal-optimize-dead" in line for line in lines), out
    assert any("restored cheatsheet/heuristics/heur-timeout-low-memory.yaml" in line for line in lines), out
    assert not any(f"restored {new_rel}" in line for line in lines), out  # never written: nothing to undo
    assert any(".fail-half-written-batch.yaml.zz99yy88.tmp" in line for line in lines), out
    assert any(".heur-x.yaml.abcd1234.tmp" in line for line in lines), out
    assert any("marked run" in line and "killed run" in line for line in lines), out

    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not list((tmp_path / "tmp").iterdir())
    assert git(repo, "branch", "--list", branch) == ""  # selfheal's unfinished branch: gone
    assert user_branch in git(repo, "branch", "--list", user_branch)  # the user's: freed, kept
    assert entry.read_text() == before and not (repo / new_rel).exists() and not stray.exists()
    assert not cut.exists()
    assert read_registry(settings.state_dir).items == [] and not jpath.exists()
    with LocalTraceStore.from_settings(settings) as store:
        assert store.get_run(killed.id).status == "interrupted"  # type: ignore[union-attr]
        assert store.get_run(running.id).status == "pending"  # type: ignore[union-attr]

    code, out = _cli(["-C", str(repo), "doctor", "--dry-run", "--json"], capsys)
    assert code == 0 and json.loads(out)["repairs"] == [] and json.loads(out)["notes"] == []
    code, out = _cli(["-C", str(repo), "traces", "list", "--status", "interrupted", "--json"], capsys)
    assert [r["name"] for r in json.loads(out)] == ["killed run"]


def test_root_trace_is_written_when_the_run_starts(tmp_path: Path) -> None:
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from selfheal.tracing.tracer import LocalTracer

    class State(TypedDict):
        seen: list[Any]

    store = LocalTraceStore(tmp_path / "traces.sqlite")
    tracer = LocalTracer(store)
    other = LocalTraceStore(tmp_path / "traces.sqlite")  # another reader, as another process would be

    def node(state: State) -> State:
        tracer.flush()
        return {"seen": [(r.status, r.extra.get("selfheal_owner", {}).get("pid"))
                         for r in other.list_runs(is_root=True)]}

    graph = StateGraph(State)
    graph.add_node("work", node)
    graph.add_edge(START, "work")
    graph.add_edge("work", END)
    out = graph.compile().invoke({"seen": []}, config={"callbacks": [tracer]})
    assert out["seen"] == [("pending", os.getpid())]  # open while it runs, naming this process
    tracer.flush()
    (root,) = other.list_runs(is_root=True)
    assert root.status == "success" and len(other.get_trace(root.id)) == 2  # closed: the whole tree
    store.close()
    other.close()


def test_a_killed_publish_does_not_rename_the_next_pr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next publish sweeps the dead one's worktree and unfinished branch: no ``-2`` suffix."""
    from helpers.gitrepo import isolate_git, make_repo

    from selfheal.gitops.changeset import ChangeSet, FileChange
    from selfheal.gitops.publish import publish_change

    isolate_git(monkeypatch, tmp_path)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    repo = make_repo(tmp_path)
    settings = repo.settings()
    entry = ("id: heur-cold-vpc-eni\nsection: heuristics\ntask_type: lambda_latency\n"
             "condition: Cold starts in a VPC function\nrule: Check NAT first.\nstatus: candidate\n")
    change = ChangeSet(kind="curate", title="Learn a cold start lesson", summary=["ADD heur-cold-vpc-eni"],
                       files=[FileChange(path="cheatsheet/heuristics/heur-cold-vpc-eni.yaml", content=entry)])
    today = datetime(2026, 3, 14, tzinfo=UTC).date()
    branch = change.branch_name(today)
    dead = _dead_owner()
    killed = tmp_path / "tmp" / "selfheal-wt-killed"
    killed.mkdir()
    git(repo.root, "worktree", "add", "--quiet", "-b", branch, str(killed / "wt"), "main")
    for item in (ScratchItem(kind="branch", purpose="publish", repo=str(repo.root), branch=branch,
                             delete_branch=True, owner=dead),
                 ScratchItem(kind="worktree", purpose="publish", root=str(killed), worktree=str(killed / "wt"),
                             repo=str(repo.root), branch=branch, delete_branch=True, owner=dead)):
        register(settings.state_dir, item)

    result = publish_change(settings, change, today=today, push=False)
    assert result.branch == branch and result.commit
    assert git(repo.root, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not killed.exists() and read_registry(settings.state_dir).items == []
