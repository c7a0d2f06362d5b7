"""sql_analyst's baseline on its test split replays offline, example for example.

``evals/sql_analyst/replay/`` holds every response the embedded model gave in
``selfheal --agent sql_analyst eval --split test`` (cache mode record);
``evals/sql_analyst/experiments/baseline/test.json`` is that eval's report.
Replaying it — no model, no network, the database regenerated from code —
must give the same verdict for every question.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from selfheal.config import load_settings
from selfheal.evaluation.evaluate import evaluate

pytest.importorskip("sql_analyst")

REPO = Path(__file__).resolve().parents[1]
REPORT = REPO / "evals" / "sql_analyst" / "experiments" / "baseline" / "test.json"
REPLAY = REPO / "evals" / "sql_analyst" / "replay"

pytestmark = pytest.mark.skipif(not REPORT.is_file() or not REPLAY.is_dir(), reason="no committed baseline")


def test_the_test_split_baseline_replays_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQL_ANALYST_CACHE_DIR", str(tmp_path / "db"))
    recorded = json.loads(REPORT.read_text())["experiment"]
    # the prompts as they were when the baseline was recorded (frozen beside the report)
    shutil.copytree(REPORT.parent / "prompts" / "sql_analyst", tmp_path / "prompts" / "sql_analyst")
    shutil.copytree(REPO / "cheatsheet" / "sql_analyst", tmp_path / "cheatsheet" / "sql_analyst")
    shutil.copytree(REPO / "evals" / "sql_analyst", tmp_path / "evals" / "sql_analyst",
                    ignore=shutil.ignore_patterns("replay", "experiments"))
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    settings = load_settings(tmp_path, env={}, overrides={
        "agent": "sql_analyst",
        "model": {"provider": "local", "cache_mode": "replay", "cache_dir": str(REPLAY)},
        # recorded before the loop refused repeated calls: replay it as it ran
        "thresholds": {"refuse_repeats": False},
    })
    out = evaluate(settings, split="test", progress=False, save=False)
    want = {r["name"]: (r["passed"], r["status"]) for r in recorded["results"]}
    got = {r.name: (r.passed, r.status) for r in out.candidate.results}
    assert got == want
    assert out.candidate.model == recorded["model"]
