"""`selfheal explain`: a run's steps with their evidence, entries and instructions; the model's answer cited and checked."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.cli import run_cli
from helpers.curation import call
from helpers.openai_stub import OpenAIStub
from helpers.trace_fixtures import Dataset, build_dataset

from selfheal.config import load_settings
from selfheal.interact.explain import check_citations
from selfheal.tracing.store import LocalTraceStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name, tmp_path / name)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture()
def data(repo: Path) -> Dataset:
    settings = load_settings(repo, env={})
    with LocalTraceStore(settings.trace_store_path) as store:
        return build_dataset(store, settings.tracing.project)


@pytest.fixture()
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        yield stub


def explain_json(repo: Path, capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    code, out, err = run_cli(["-C", str(repo), "explain", *args, "--json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_structured_part_without_a_model(repo: Path, data: Dataset, capsys: pytest.CaptureFixture[str]) -> None:
    root = data.roots["r4"]
    x = explain_json(repo, capsys, str(root.id)[:13], "--no-model")
    assert x["run_id"] == str(root.id) and x["outcome"] == "success" and x["summary"] is None
    assert [s["tool"] for s in x["steps"]] == ["get_function_configuration", "update_timeout", "update_timeout"]
    assert x["steps"][1]["status"] == "error" and "not found" in x["steps"][1]["output"]
    assert x["steps"][0]["args"] == {"function_name": "checkout-api"}
    assert {e["id"]: (e["retrieved"], e["used"]) for e in x["entries"]} == {"heur-a": (True, True),
                                                                            "heur-b": (True, True)}
    assert "ins-named-function" in {i["id"] for i in x["instructions"]}
    # A child run's id explains its whole run.
    child = next(r for r in data.runs if r.trace_id == root.id and r.run_type == "tool")
    assert explain_json(repo, capsys, str(child.id), "--no-model")["run_id"] == str(root.id)
    code, out, err = run_cli(["-C", str(repo), "explain", str(root.id), "--no-model"], capsys)
    assert code == 0, err
    assert "[step:2]" in out and "update_timeout" in out and "[instruction:ins-named-function]" in out


def test_the_answer_cites_checked_ids(
    repo: Path, data: Dataset, model: OpenAIStub, capsys: pytest.CaptureFixture[str]
) -> None:
    root = data.roots["r3"]
    model.reply_text("It invoked the function, which timed out [step:2], after reading its configuration "
                     "[step:1]; heur-a was retrieved but not used [entry:heur-a].")
    x = explain_json(repo, capsys, str(root.id), "why did it fail?")
    assert x["citations"] == ["step:2", "step:1", "entry:heur-a"]
    assert not x["flagged"] and not x["retried"] and x["question"] == "why did it fail?"
    sent = json.dumps(model.bodies[0])
    assert "[step:2] called invoke_function" in sent and "why did it fail?" in sent

    # An invented id: asked once more; still invented -> removed and flagged.
    model.reply_text("Memory was raised [step:7] as [entry:heur-made-up] says.")
    model.reply_text("Memory was raised [step:9] following [instruction:ins-headroom].")
    x = explain_json(repo, capsys, str(root.id), "why?")
    assert x["retried"] and x["flagged"] and x["invalid_citations"] == ["step:9"]
    assert "[step:9]" not in x["summary"] and x["citations"] == ["instruction:ins-headroom"]
    second = json.dumps(model.bodies[-1])
    assert "not in the evidence" in second and "[step:7]" in second

    model.reply_text("Fixed on retry [step:1].")
    model.reply_text("Timed out [step:2].")
    x = explain_json(repo, capsys, str(root.id))
    assert x["retried"] is False and x["citations"] == ["step:1"]  # first answer already valid


def test_check_citations_accepts_run_prefixes() -> None:
    valid = {"run": {"0193abcd-0000-7000-8000-000000000001"}, "step": {"1"}, "entry": {"e-1"}, "instruction": set()}
    good, bad = check_citations("[run:0193abcd] [step:1] [step:2] [entry:e-1] [instruction:x] [run:01]", valid)
    assert good == ["run:0193abcd", "step:1", "entry:e-1"] and bad == ["step:2", "instruction:x", "run:01"]


def test_explain_a_real_sql_analyst_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sql_analyst")
    from selfheal.agent.runner import run_task
    from selfheal.models.fakes import ScriptedChatModel

    root = tmp_path / "analytics"
    (root / "evals" / "sql_analyst").mkdir(parents=True)
    shutil.copytree(REPO / "prompts" / "sql_analyst", root / "prompts" / "sql_analyst")
    shutil.copytree(REPO / "cheatsheet" / "sql_analyst", root / "cheatsheet" / "sql_analyst")
    shutil.copytree(REPO / "evals" / "sql_analyst" / "scenarios", root / "evals" / "sql_analyst" / "scenarios")
    (root / "selfheal.yaml").write_text("agent: sql_analyst\nembeddings: {provider: none}\n")
    monkeypatch.setenv("SQL_ANALYST_CACHE_DIR", str(tmp_path / "db"))
    settings = load_settings(root, env={"SQL_ANALYST_CACHE_DIR": str(tmp_path / "db")})
    entry = "heur-real-customers"
    (root / "cheatsheet" / "sql_analyst" / "heuristics").mkdir(parents=True, exist_ok=True)
    (root / "cheatsheet" / "sql_analyst" / "heuristics" / f"{entry}.yaml").write_text(
        f"id: {entry}\nsection: heuristics\ntask_type: customers\ncondition: Counting customers or regions\n"
        "rule: Exclude accounts whose email ends in @brightcart.io.\nstatus: active\n"
        "source: {kind: seed, runs: [], created: 2026-11-01T00:00:00Z}\n"
    )
    model = ScriptedChatModel([call("list_tables", {}), call("run_sql", {"query": "SELECT 1"}, 1),
                               f"One.\nUSED: {entry}"])
    out = run_task(settings, scenario="customers_by_region", model=model, learn=False)
    x = explain_json(root, capsys, out.run_id, "--no-model")
    assert [s["tool"] for s in x["steps"]] == ["list_tables", "run_sql"]
    assert x["steps"][1]["args"] == {"query": "SELECT 1"} and x["task_type"] == out.task_type
    assert x["outcome"].startswith("failed") and x["checks"]
    assert any(e["id"] == entry and e["used"] and e["exists"] for e in x["entries"])
