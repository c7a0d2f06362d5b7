"""Every column of every committed learning table replays offline, example for example.

``evals/<agent>/experiments/learning/columns.yaml`` lists the columns of the
learning table (bench/learning_table.py); each column with results froze the
prompts and cheatsheet it ran with and names the response cache it was
recorded into. Replaying a column — no model, no network — must give the
recorded verdict for every example that ran to the end; an example that
recorded no verdict must not turn into a pass. Without a manifest yet, the
column test skips; the replay machinery itself is checked on the committed
sql_analyst baseline (two of its examples), so it is known to work before the
first table is committed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.learning_table import load_manifest, load_results, replay_column, run_column
from selfheal.evaluation.results import ExperimentResult

REPO = Path(__file__).resolve().parents[1]
MANIFESTS = sorted(REPO.glob("evals/*/experiments/*/columns.yaml"))  # the learning table, the loop study


def _columns() -> list[tuple[Path, str]]:
    out = []
    for m in MANIFESTS:
        manifest, _ = load_manifest(m)
        out += [(m, c.id) for c in manifest.columns if c.status == "ok" and c.results]
    return out


COLUMNS = _columns()


def assert_same_verdicts(recorded: ExperimentResult, replayed: ExperimentResult) -> None:
    want = {r.name: r for r in recorded.results}
    got = {r.name: r for r in replayed.results}
    assert sorted(got) == sorted(want)
    for name, rec in want.items():
        if rec.status == "ok":
            assert (got[name].passed, got[name].status) == (rec.passed, "ok"), name
        else:  # recorded without a verdict: it must not become a pass on replay
            assert not got[name].passed, name
        if rec.model_s is not None:  # recorded with generation times: the replay reports the same model time
            assert got[name].model_s == pytest.approx(rec.model_s, rel=0.1, abs=2.0), name


@pytest.fixture(autouse=True)
def _scratch_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQL_ANALYST_CACHE_DIR", str(tmp_path / "db"))  # the agent's generated database


@pytest.mark.skipif(not COLUMNS, reason="no study committed (evals/*/experiments/*/columns.yaml)")
@pytest.mark.parametrize(("manifest", "column"), COLUMNS or [(None, None)],
                         ids=[f"{m.parts[-4]}-{m.parts[-2]}-{c}" for m, c in COLUMNS] or ["none"])
def test_a_committed_column_replays_identically(manifest: Path, column: str, tmp_path: Path) -> None:
    recorded, replayed = replay_column(manifest, column, tmp_path / "repo")
    assert any(r.status == "ok" for r in recorded.results), "the column has no example that ran to the end"
    assert_same_verdicts(recorded, replayed)


BASELINE = REPO / "evals" / "sql_analyst" / "experiments" / "baseline"


@pytest.mark.skipif(not (BASELINE / "test.json").is_file(), reason="no committed sql_analyst baseline")
def test_the_replay_of_a_column_gives_the_recorded_verdicts(tmp_path: Path) -> None:
    pytest.importorskip("sql_analyst")
    report = json.loads((BASELINE / "test.json").read_text())["experiment"]
    ok = [r for r in report["results"] if r["status"] == "ok"]
    passed = next((r for r in ok if r["passed"]), None)
    failed = next(r for r in ok if not r["passed"])
    report["results"] = [r for r in (passed, failed) if r is not None]
    study = tmp_path / "evals" / "sql_analyst" / "experiments" / "learning"
    study.mkdir(parents=True)
    (study / "seed.json").write_text(json.dumps(report))
    (study / "columns.yaml").write_text(f"""\
agent: sql_analyst
columns:
  - id: seed
    results: seed.json
    prompts: {BASELINE / 'prompts' / 'sql_analyst'}
    cheatsheet: {REPO / 'cheatsheet' / 'sql_analyst'}
    cache: {REPO / 'evals' / 'sql_analyst' / 'replay'}
    overrides: {{thresholds: {{refuse_repeats: false}}}}   # recorded before the loop refused repeated calls
""")
    recorded, replayed = replay_column(study / "columns.yaml", "seed", tmp_path / "repo")
    assert len(replayed.results) == len(report["results"])
    assert replayed.cache_mode == "replay"
    assert_same_verdicts(recorded, replayed)
    # a flipped record is caught: the comparison is not vacuous
    flipped = recorded.model_copy(update={"results": [r.model_copy(update={"passed": not r.passed})
                                                      for r in recorded.results]})
    with pytest.raises(AssertionError):
        assert_same_verdicts(flipped, replayed)


ONLINE = REPO / "evals" / "lambda_ops" / "experiments" / "online-learning"


@pytest.mark.skipif(not (ONLINE / "results.json").is_file(), reason="no committed online-learning experiment")
def test_a_paired_file_side_with_overrides_replays_a_pass(tmp_path: Path) -> None:
    """The seed side of lambda_ops' paired experiment: a pass and a failure, recorded before nudges and refusals."""
    paired = json.loads((ONLINE / "results.json").read_text())
    side = paired["baseline"]
    passed = next(r for r in side["results"] if r["passed"])
    failed = next(r for r in side["results"] if r["status"] == "ok" and not r["passed"])
    side["results"] = [passed, failed]
    study = tmp_path / "evals" / "lambda_ops" / "experiments" / "learning"
    study.mkdir(parents=True)
    (study / "paired.json").write_text(json.dumps({"baseline": side, "candidate": paired["candidate"]}))
    (study / "columns.yaml").write_text(f"""\
columns:
  - id: seed
    results: paired.json
    side: baseline
    prompts: {ONLINE / 'prompts'}
    cheatsheet: {ONLINE / 'seed-cheatsheet'}
    cache: {REPO / 'evals' / 'lambda_ops' / 'replay'}
    overrides: {{thresholds: {{nudges: 0, refuse_repeats: false}}}}
""")
    recorded, replayed = replay_column(study / "columns.yaml", "seed", tmp_path / "repo")
    assert sorted(r.passed for r in replayed.results) == [False, True]
    assert_same_verdicts(recorded, replayed)


SQL_STUDY = REPO / "evals" / "sql_analyst" / "experiments" / "learning"


@pytest.mark.skipif(not (SQL_STUDY / "seed" / "test.json").is_file(), reason="no committed sql_analyst table")
def test_a_columns_test_run_writes_its_results_once(tmp_path: Path) -> None:
    """``learning_table.py --run``: the same scratch repository as the replay; a recorded column is never rerun."""
    pytest.importorskip("sql_analyst")
    from selfheal.errors import SelfhealError

    study = tmp_path / "evals" / "sql_analyst" / "experiments" / "learning"
    study.mkdir(parents=True)
    (study / "columns.yaml").write_text(f"""\
agent: sql_analyst
columns:
  - id: seed
    results: seed/test.json
    prompts: {SQL_STUDY / 'seed' / 'prompts'}
    cheatsheet: {SQL_STUDY / 'seed' / 'cheatsheet'}
    cache: {SQL_STUDY / 'replay'}
""")
    ran = run_column(study / "columns.yaml", "seed", tmp_path / "run1", cache_mode="replay")
    written = load_results(study / "seed" / "test.json")
    recorded = load_results(SQL_STUDY / "seed" / "test.json")
    assert [(r.name, r.passed) for r in written.results] == [(r.name, r.passed) for r in ran.results]
    assert_same_verdicts(recorded, written)
    with pytest.raises(SelfhealError, match="already recorded"):
        run_column(study / "columns.yaml", "seed", tmp_path / "run2", cache_mode="replay")

