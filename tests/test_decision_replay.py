"""The protocol comparison in the README replays: each recorded decision comes back the same, offline.

``bench/decisions/compare.py`` recorded the embedded model's responses under
``evals/decisions/replay/``; this replays the decisions of every committed
result file through the same probe runner (no model loaded) and checks the
tool chosen and the verdict the README reports.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from selfheal.config import load_settings
from selfheal.evaluation.probe_report import ProbeReport
from selfheal.evaluation.probe_runner import decide
from selfheal.evaluation.probes import load_probes, score_decision
from selfheal.models.providers import make_chat_model

REPO = Path(__file__).resolve().parents[1]
RESULTS = sorted((REPO / "bench" / "results" / "decisions").glob("*.json"))


def _compare_module():  # type: ignore[no-untyped-def]
    """bench/decisions/compare.py, loaded as a module (it is a script, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("decision_compare", REPO / "bench" / "decisions" / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMPARE = _compare_module()
PROTOCOLS = dict(COMPARE.PROTOCOLS)  # compare.py's protocol table (one definition: the bench script's)

pytestmark = pytest.mark.skipif(not RESULTS, reason="no committed protocol comparison")


@pytest.mark.parametrize("result", RESULTS, ids=lambda p: p.stem)
def test_every_recorded_decision_replays_to_the_same_verdict(result: Path) -> None:
    report = ProbeReport.model_validate_json(result.read_text())
    probes = {p.id: p for p in load_probes([REPO / "evals" / "decisions"])}
    settings = load_settings(REPO, env={}, overrides={"model": {
        **PROTOCOLS[result.stem], "provider": "local", "cache_mode": "replay",
        "cache_dir": str(REPO / "evals" / "decisions" / "replay")}})
    model = make_chat_model(settings)
    replayed = 0
    for recorded in report.scores:
        probe = probes[recorded.probe_id]
        if recorded.decision.error or probe.expect.verify:
            continue  # an error has no response; environment-judged arguments need the scenario (builder's tests)
        decision = decide(model, probe)
        assert not decision.error, (recorded.probe_id, decision.error)
        score = score_decision(probe, decision)
        assert (decision.tool, score.correct) == (recorded.decision.tool, recorded.correct), recorded.probe_id
        replayed += 1
    assert replayed >= len(report.scores) // 2


@pytest.mark.parametrize("result", RESULTS[:1], ids=lambda p: p.stem)
def test_a_narrower_rerun_keeps_the_other_decisions_and_their_time(result: Path, tmp_path: Path) -> None:
    """``compare.py --agents X`` merges into the saved report: every decision's time stays counted."""
    saved = ProbeReport.model_validate_json(result.read_text())
    rerun_ids = {s.probe_id for s in saved.scores[:3]}
    rerun = saved.model_copy(update={"scores": saved.scores[:3], "wall_seconds": 12.0})
    path = tmp_path / result.name
    path.write_text(result.read_text())
    merged = COMPARE._merged(rerun, path)
    assert sorted(s.probe_id for s in merged.scores) == sorted(s.probe_id for s in saved.scores)
    kept = sum(s.decision.seconds for s in saved.scores if s.probe_id not in rerun_ids)
    assert merged.wall_seconds == pytest.approx(12.0 + kept, abs=0.1)
    assert merged.wall_seconds > rerun.wall_seconds
