"""`selfheal cheatsheet list | show | search`: entries with counters, trace lift, provenance and commits."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import run_cli
from helpers.gitrepo import WorkRepo, isolate_git, make_repo
from helpers.trace_fixtures import Tool, TraceSpec, make_trace

from selfheal.cheatsheet.counters import STATE_FILENAME, CounterStore
from selfheal.tracing.schema import utcnow
from selfheal.tracing.store import LocalTraceStore

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = "heur-timeout-low-memory"
VPC = "heur-vpc-before-memory"


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WorkRepo:
    isolate_git(monkeypatch, tmp_path)
    monkeypatch.setenv("SELFHEAL_EMBEDDINGS_PROVIDER", "fake")
    monkeypatch.setenv("COLUMNS", "220")
    repo = make_repo(tmp_path, origin=False)
    settings = repo.settings()
    fn = {"function_name": "checkout-api"}
    specs = [
        TraceSpec("a", "lambda_timeout", True, 1.0, [Tool("update_timeout", fn)], retrieved=[TIMEOUT], used=[TIMEOUT]),
        TraceSpec("b", "lambda_timeout", True, 1.0, [Tool("update_timeout", fn)], retrieved=[TIMEOUT], used=[TIMEOUT]),
        TraceSpec("c", "lambda_timeout", True, 1.0, [Tool("update_timeout", fn)], retrieved=[TIMEOUT]),
        TraceSpec("d", "lambda_timeout", False, 1.0, [Tool("update_memory", fn)], retrieved=[TIMEOUT, VPC], used=[VPC],
                  error_type="timeout"),
        TraceSpec("old", "lambda_timeout", False, 1.0, [], used=[TIMEOUT], age=timedelta(days=60)),
    ]  # fmt: skip
    with LocalTraceStore(settings.trace_store_path) as store:
        session = store.ensure_project(settings.tracing.project).id
        now = utcnow()
        runs = [r for s in specs for r in make_trace(s, session, now)]
        store.write_runs(runs)
    counters = CounterStore(settings.state_dir / STATE_FILENAME)
    try:
        for i in range(2):
            counters.record_use(TIMEOUT, run_id=f"run-{i}", tag="helpful", success=True)
        counters.record_use(VPC, run_id="run-9", tag="harmful", success=False)
    finally:
        counters.close()
    return repo


def cli_json(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run_cli(["-C", str(root), "cheatsheet", *args, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_list_with_counters_lift_and_filters(work: WorkRepo, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {r["id"]: r for r in cli_json(work.root, capsys, "list")}
    assert set(rows) == {TIMEOUT, VPC, "strat-errors-read-logs", "fail-reserved-zero"}
    t = rows[TIMEOUT]
    assert (t["helpful"], t["harmful"], t["uses"]) == (2, 0, 2) and t["last_used"]
    tr = t["traces"]  # a, b used it and succeeded; c and d did not: 1 of 2 succeeded
    assert (tr["used"], tr["runs_used"], tr["success_rate_used"]) == (2, 2, 1.0)
    assert (tr["runs_not_used"], tr["success_rate_not_used"], tr["lift"]) == (2, 0.5, 0.5)
    assert tr["baseline"] == "task type"
    v = rows[VPC]
    assert (v["helpful"], v["harmful"]) == (0, 1) and v["traces"]["baseline"] == "all runs"
    assert v["traces"]["lift"] == -1.0 and v["source_kind"] == "seed"
    assert {r["id"] for r in cli_json(work.root, capsys, "list", "--section", "heuristics")} == {VPC, TIMEOUT}
    assert [r["id"] for r in cli_json(work.root, capsys, "list", "--task-type", "lambda_timeout")] == [TIMEOUT]
    assert cli_json(work.root, capsys, "list", "--status", "retired") == []
    everything = {r["id"]: r for r in cli_json(work.root, capsys, "list", "--since", "all")}
    assert everything[TIMEOUT]["traces"]["runs_used"] == 3  # the 60-day-old run counts now
    code, out, err = run_cli(["-C", str(work.root), "cheatsheet", "list"], capsys)
    assert code == 0, err
    assert "4 entries" in out and "+50%" in out and "2/0" in out


def test_show_has_provenance_and_commits(work: WorkRepo, capsys: pytest.CaptureFixture[str]) -> None:
    v = cli_json(work.root, capsys, "show", TIMEOUT)
    assert v["path"] == f"cheatsheet/heuristics/{TIMEOUT}.yaml" and v["fields"]["condition"]
    assert [c["subject"] for c in v["commits"]] == ["Initial agent files"] and v["commits"][0]["change"] == "created"
    assert v["traces"]["lift"] == 0.5
    code, out, err = run_cli(["-C", str(work.root), "cheatsheet", "show", TIMEOUT], capsys)
    assert code == 0 and "Initial agent files" in out and "lift +50%" in out
    code, _, err = run_cli(["-C", str(work.root), "cheatsheet", "show", "heur-nope"], capsys)
    assert code == 2 and err.startswith("error: no cheatsheet entry 'heur-nope'") and err.count("\n") == 1


def test_search_by_embedding_then_lexical(work: WorkRepo, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    got = cli_json(work.root, capsys, "search", "check VPC configuration before memory", "-k", "2")
    assert got["method"] == "embedding" and len(got["entries"]) == 2 and got["entries"][0]["score"] is not None
    monkeypatch.setenv("SELFHEAL_EMBEDDINGS_PROVIDER", "none")
    got = cli_json(work.root, capsys, "search", "VPC configuration", "--status", "active")
    assert got["method"] == "lexical" and got["entries"][0]["id"] == VPC and "BM25" in got["note"]
    got = cli_json(work.root, capsys, "search", "VPC configuration", "--section", "strategies")
    assert got["entries"] == []


def test_list_on_sql_analyst(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "analytics"
    shutil.copytree(REPO / "prompts" / "sql_analyst", root / "prompts" / "sql_analyst")
    folder = root / "cheatsheet" / "sql_analyst" / "code_snippets"
    folder.mkdir(parents=True)
    (folder / "code-real-customers.yaml").write_text(
        "id: code-real-customers\nsection: code_snippets\ntask_type: customers\npurpose: Count real customers\n"
        "snippet: \"WHERE c.email NOT LIKE '%@brightcart.io'\"\nlanguage: sql\nstatus: candidate\n"
        "source: {kind: user, runs: [], created: 2026-11-01T00:00:00Z, author: Sam <sam@example.com>}\n"
    )
    (root / "selfheal.yaml").write_text("agent: sql_analyst\nembeddings: {provider: none}\n")
    [row] = cli_json(root, capsys, "list", "--task-type", "customers")
    assert row["id"] == "code-real-customers" and row["author"] == "Sam <sam@example.com>"
    assert row["traces"] is None and row["uses"] == 0  # no traces, no counters: nothing created either
    assert not (root / ".selfheal").exists()
    got = cli_json(root, capsys, "search", "real customers email")
    assert got["method"] == "lexical" and got["entries"][0]["id"] == "code-real-customers"
