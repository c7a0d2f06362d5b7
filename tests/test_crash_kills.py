"""SIGKILL at random points of ``run``, ``curate``, ``curate --pr``, ``eval --against HEAD``, ``optimize``.

Each lane is a committed repository with its own slow chat stub; the commands
are started in turn (shuffled) and each is killed once the stub has answered
a random number of its requests (0: while it starts) plus a random fraction
of a reply's delay -- or, for 40% of the kills of curate, curate --pr, eval
and optimize, just after its critical window opened (the curate journal
written, the worktree or scratch dir registered) -- so kills land everywhere
from startup to the final writes.
After every kill: no half-written file (every YAML/JSON parses, every SQLite
database passes ``PRAGMA integrity_check``). After the lane: ``selfheal
doctor`` repairs, a second ``doctor --dry-run`` finds nothing, no temp dir,
worktree or unfinished branch is left, every killed run is listed as
interrupted, the user's tree is byte-identical to what completed commands
made of it, and the next ``run`` and ``curate --pr`` work.

The short variant (10 kills) runs in the normal suite; ``SELFHEAL_LONG_TESTS=1``
runs >= 50 kills and prints what each kill left and what doctor repaired.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers.crash_repo import files, git, half_written, make_committed_repo, tree_hashes
from helpers.reliability import record
from helpers.slow_chat_stub import SlowChatStub

LONG = os.environ.get("SELFHEAL_LONG_TESTS") == "1"

#: command -> (arguments, model requests it makes when it runs to the end, writes the user's tree)
COMMANDS: dict[str, tuple[list[str], int, bool]] = {
    "run": (["run", "--scenario", "lambda_timeout", "--no-learn"], 2, False),
    "curate": (["curate", "--force", "--limit", "2"], 4, True),
    "curate --pr": (["curate", "--pr", "--force", "--limit", "2"], 4, False),
    "eval --against HEAD": (["eval", "--against", "HEAD", "--split", "dev"], 4, False),
    "optimize": (["optimize", "--example", "lambda_timeout"], 8, False),
}


#: command -> what shows it is inside its critical window (a change journaled, a worktree or scratch dir registered)
MARKERS: dict[str, tuple[str, ...]] = {
    "curate": ("journal",),
    "curate --pr": ('"kind": "worktree"', '"kind": "branch"'),
    "eval --against HEAD": ('"kind": "worktree"',),
    "optimize": ('"kind": "dir"',),
}


def _marked(repo: Path, name: str) -> bool:
    state = repo / ".selfheal"
    if MARKERS[name] == ("journal",):
        return (state / "journal").is_dir() and any((state / "journal").glob("*.json"))
    try:
        text = (state / "scratch.json").read_text()
    except OSError:
        return False
    return any(marker in text for marker in MARKERS[name])


@dataclass
class Kill:
    command: str
    after_requests: int
    killed: bool
    seconds: float
    left: dict[str, int] = field(default_factory=dict)


@dataclass
class LaneResult:
    kills: list[Kill]
    repairs: list[str]
    interrupted_in_store: int


def _env(stub: SlowChatStub, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "LANGSMITH_", "LANGCHAIN_", "SELFHEAL_", "GITHUB_", "GH_"))}
    env.update(OPENAI_BASE_URL=stub.url, OPENAI_API_KEY="sk-test-not-real", SELFHEAL_EMBEDDINGS_PROVIDER="none",
               TMPDIR=str(tmp), AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_DEFAULT_REGION="us-east-1")
    return env


def _cli(repo: Path, args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "selfheal.cli.main", "-C", str(repo), *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _debris(repo: Path, tmp: Path) -> dict[str, set[str]]:
    """What is lying around now, by kind (ids or paths), to tell what each kill left."""
    state = repo / ".selfheal"
    found: dict[str, set[str]] = {
        "temp dirs": {p.name for p in tmp.iterdir() if p.name.startswith("selfheal-")},
        "worktrees": {line for line in git(repo, "worktree", "list", "--porcelain").splitlines()
                      if line.startswith("worktree ")} - {f"worktree {repo}"},
        "journals": {p.name for p in (state / "journal").glob("*.json")} if (state / "journal").is_dir() else set(),
        "temp files": {str(p.relative_to(repo)) for p in files(repo) if p.name.startswith(".")
                       and p.name.endswith(".tmp")},
    }
    try:
        reg = json.loads((state / "scratch.json").read_text())
        found["registry entries"] = {i["id"] for i in reg["items"]}
    except FileNotFoundError:
        found["registry entries"] = set()
    store = state / "traces.sqlite"
    found["open runs"] = set()
    if store.exists():
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=30) as conn:
            found["open runs"] = {r[0] for r in conn.execute(
                "SELECT id FROM runs WHERE parent_run_id IS NULL AND status = 'pending'")}
        conn.close()
    return found


def _wait_for(stub: SlowChatStub, target: int, proc: subprocess.Popen[str], limit_s: float = 60) -> None:
    deadline = time.monotonic() + limit_s
    while stub.requests < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)


def _journal_left(repo: Path) -> bool:
    folder = repo / ".selfheal" / "journal"
    return folder.is_dir() and any(folder.glob("*.json"))


def _lane(root: Path, seed: int, kills: int) -> LaneResult:
    rng = random.Random(seed)
    tmp = root / "tmp"
    tmp.mkdir(parents=True)
    repo = make_committed_repo(root / "repo")
    with SlowChatStub(delay_s=0.12) as stub:
        env = _env(stub, tmp)
        first = _cli(repo, COMMANDS["run"][0], env)  # runs to curate from
        assert first.returncode in (0, 1), first.stderr[-2000:]
        baseline = tree_hashes(repo)
        seen = _debris(repo, tmp)
        done: list[Kill] = []
        order: list[str] = []
        while sum(k.killed for k in done) < kills and len(done) < 3 * kills:
            if not order:  # every command in turn, in a shuffled order
                order = rng.sample(list(COMMANDS), len(COMMANDS))
            name = order.pop()
            args, requests, writes_tree = COMMANDS[name]
            # -1: aim at the critical window (journal written, worktree or scratch dir registered)
            after = -1 if name in MARKERS and rng.random() < 0.4 else rng.randint(0, requests)
            start = stub.requests
            began = time.monotonic()
            proc = subprocess.Popen([sys.executable, "-m", "selfheal.cli.main", "-C", str(repo), *args], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if after == -1:
                deadline = time.monotonic() + 90
                while not _marked(repo, name) and proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0, 0.02 if name == "curate" else 0.3))  # curate's window: milliseconds
            elif after == 0:
                time.sleep(rng.uniform(0.2, 2.5))  # while it imports, loads, opens stores
            else:
                _wait_for(stub, start + after, proc)
                # after its last model reply a command writes (tree, branch, PR, traces): cover that tail
                time.sleep(rng.uniform(0, 2.0 if after == requests else stub.delay_s * 1.5))
            killed = proc.poll() is None
            if killed:
                proc.send_signal(signal.SIGKILL)
            _out, err = proc.communicate(timeout=180)
            if not killed:
                assert proc.returncode in (0, 1), f"{name} failed on its own: {err[-2000:]}"
            assert half_written(repo) == [], f"half-written files after killing {name}"
            if writes_tree and not _journal_left(repo):
                baseline = tree_hashes(repo)  # the change finished (or never started): it is the user's now
            now = _debris(repo, tmp)
            left = {kind: len(ids - seen.get(kind, set())) for kind, ids in now.items()}
            done.append(Kill(name, after, killed, round(time.monotonic() - began, 2),
                             {k: v for k, v in left.items() if v}))
            seen = now

        report = _cli(repo, ["doctor", "--json"], env)
        assert report.returncode == 0, report.stderr[-2000:]
        repairs = json.loads(report.stdout)["repairs"]
        again = _cli(repo, ["doctor", "--dry-run", "--json"], env)
        assert again.returncode == 0, again.stderr[-2000:]
        second = json.loads(again.stdout)
        assert second["repairs"] == [] and second["notes"] == [], second

        assert half_written(repo) == []
        assert tree_hashes(repo) == baseline, "the user's tree changed"
        after_doctor = _debris(repo, tmp)
        assert {k: v for k, v in after_doctor.items() if v} == {}, after_doctor
        checked_out = [line for line in git(repo, "worktree", "list", "--porcelain").splitlines()
                       if line.startswith("branch ")]
        assert checked_out == ["branch refs/heads/main"]
        listed = _cli(repo, ["traces", "list", "--json", "--limit", "10000"], env)  # the default project
        statuses = Counter(r["status"] for r in json.loads(listed.stdout))
        assert not statuses.keys() & {"pending", "running"}, statuses
        with sqlite3.connect(f"file:{repo / '.selfheal' / 'traces.sqlite'}?mode=ro", uri=True) as conn:
            closed = conn.execute("SELECT COUNT(*) FROM runs WHERE parent_run_id IS NULL"
                                  " AND status = 'interrupted'").fetchone()[0]  # every project (experiments too)
        conn.close()
        assert closed == sum(line.startswith("marked run") for line in repairs)

        # The next commands work: a run to its end, and a PR whose branch is not blocked.
        nxt = _cli(repo, COMMANDS["run"][0] + ["--json"], env)
        assert nxt.returncode in (0, 1) and json.loads(nxt.stdout)["run_id"], nxt.stderr[-2000:]
        pr = _cli(repo, COMMANDS["curate --pr"][0] + ["--json"], env)
        assert pr.returncode == 0, pr.stderr[-2000:]
        published = json.loads(pr.stdout).get("published")
        if published:
            assert git(repo, "rev-parse", "--verify", f"refs/heads/{published['branch']}").strip()
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
        assert tree_hashes(repo) == baseline
    return LaneResult(done, repairs, closed)


def _run_lanes(tmp_path: Path, lanes: int, kills_per_lane: int, seed: int) -> list[LaneResult]:
    with ThreadPoolExecutor(lanes) as pool:
        futures = [pool.submit(_lane, tmp_path / f"lane{i}", seed + i, kills_per_lane) for i in range(lanes)]
        return [f.result() for f in futures]


def _summary(results: list[LaneResult], seconds: float, cpu: float) -> dict[str, Any]:
    kills = [k for r in results for k in r.kills if k.killed]
    left: Counter[str] = Counter()
    for k in kills:
        left.update(k.left)
    repairs: Counter[str] = Counter()
    for r in results:
        for line in r.repairs:
            repairs[" ".join(line.split()[:2])] += 1
    everything = [k for r in results for k in r.kills]
    return {
        "commands": len(everything),
        "killed": len(kills),
        "finished_before_the_kill": len(everything) - len(kills),
        "killed_by_command": dict(Counter(k.command for k in kills if k.killed)),
        "kills_that_left_something": sum(bool(k.left) for k in kills),
        "left_by_kills": dict(left),
        "doctor_repairs": dict(repairs),
        "interrupted_runs_in_store": sum(r.interrupted_in_store for r in results),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "per_kill": [k.__dict__ for k in everything],
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kills_leave_nothing_doctor_cannot_repair(tmp_path: Path) -> None:
    started, cpu = time.monotonic(), _children_cpu()
    lanes, per_lane = (3, 17) if LONG else (2, 5)
    results = _run_lanes(tmp_path, lanes, per_lane, seed=1400)
    summary = _summary(results, time.monotonic() - started, _children_cpu() - cpu)
    print(json.dumps(summary, indent=1))
    assert summary["killed"] >= (50 if LONG else 8)
    record("kills", tried=summary["killed"], held=summary["killed"], unit="SIGKILLs",
           note="run, curate, curate --pr, eval --against, optimize killed at random points; "
                f"{summary['finished_before_the_kill']} finished first; nothing half-written, doctor left a clean state, "
                "the user's tree byte-identical")
