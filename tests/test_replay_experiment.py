"""The committed online-learning experiment reproduces offline, example for example.

`evals/lambda_ops/experiments/online-learning/` holds the cheatsheet the local
model learned over the train split and the paired report of
`selfheal eval --split test --against <seed>`; `evals/lambda_ops/replay/` holds
every model response of that eval. Replaying it — no model, no network — must
give the same verdict for every example on both sides. It was recorded on the 11
scenarios of the test split as it was then; scenarios added to the split since
are not in its cache, so the replay evaluates exactly the recorded examples.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import git
import pytest

from selfheal.config import load_settings
from selfheal.evaluation.evaluate import evaluate

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "evals" / "lambda_ops" / "experiments" / "online-learning"
REPLAY = REPO / "evals" / "lambda_ops" / "replay"

pytestmark = pytest.mark.skipif(
    not (EXPERIMENT / "results.json").is_file() or not REPLAY.is_dir(),
    reason="no committed experiment",
)


def _seed_repo(tmp_path: Path) -> Path:
    """A repo whose HEAD holds the seed cheatsheet and whose working tree the learned one."""
    # The experiment froze the context it ran with (the live template has moved on since).
    shutil.copytree(EXPERIMENT / "prompts", tmp_path / "prompts" / "lambda_ops")
    shutil.copytree(REPO / "evals", tmp_path / "evals", ignore=shutil.ignore_patterns("replay", "experiments"))
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    shutil.copytree(EXPERIMENT / "seed-cheatsheet", tmp_path / "cheatsheet")
    repo = git.Repo.init(tmp_path)
    with repo.config_writer() as cw:
        cw.set_value("user", "name", "test")
        cw.set_value("user", "email", "test@example.invalid")
    repo.git.add(A=True)
    repo.index.commit("seed")
    shutil.rmtree(tmp_path / "cheatsheet")
    shutil.copytree(EXPERIMENT / "cheatsheet", tmp_path / "cheatsheet")
    repo.close()
    return tmp_path


def _verdicts(side: dict) -> dict[str, tuple[bool, str]]:
    return {r["name"]: (r["passed"], r["status"]) for r in side["results"]}


def test_the_learned_vs_seed_eval_replays_identically(tmp_path: Path) -> None:
    recorded = json.loads((EXPERIMENT / "results.json").read_text())
    root = _seed_repo(tmp_path)
    settings = load_settings(
        root,
        env={},
        # recorded before the loop nudged early answers (thresholds.nudges): replay it as it ran
        overrides={"model": {"provider": "local", "cache_mode": "replay", "cache_dir": str(REPLAY)},
                   "thresholds": {"nudges": 0, "refuse_repeats": False}},
    )
    recorded_names = sorted({r["name"] for r in recorded["baseline"]["results"]})
    assert len(recorded_names) == 11  # the test split when it was recorded
    out = evaluate(settings, split="test", against="HEAD", names=recorded_names, progress=False, save=False)
    assert out.baseline is not None and out.comparison is not None
    ok = [r for r in recorded["baseline"]["results"] + recorded["candidate"]["results"] if r["status"] == "ok"]
    assert ok, "the recorded experiment has no example that ran to the end"
    # Examples that ran to the end replay to the same verdict; an example that errored while
    # recording (none replayable) errors again rather than inventing a verdict.
    for side, result in (("baseline", out.baseline), ("candidate", out.candidate)):
        want = _verdicts(recorded[side])
        got = {r.name: (r.passed, r.status if want[r.name][1] == "ok" else want[r.name][1]) for r in result.results}
        assert got == want, side
    assert out.candidate.model == recorded["candidate"]["model"]
