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


def _protocols() -> dict[str, dict[str, object]]:
    """compare.py's protocol table (one definition: the bench script's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("decision_compare", REPO / "bench" / "decisions" / "compare.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(module.PROTOCOLS)


PROTOCOLS = _protocols()

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
