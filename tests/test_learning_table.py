"""The learning table (bench/learning_table.py) on a synthetic study with known numbers.

Four columns on a 10-example test split: the seed (3/10), a learned cheatsheet
(7/10: six fail->pass, two pass->fail), a full rewrite (one example missing,
one cache miss) and a column that was not run. Every figure a reader takes from
the table is checked against a value worked out by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.learning_table import LearningCost, _example_time, build_table, learning_cost, main, to_markdown
from selfheal.errors import SelfhealError
from selfheal.evaluation.columns import Column, column_stats, compare_columns
from tests.helpers.eval_results import example, experiment

NAMES = [f"e{i}" for i in range(10)]
SEED = {"e0", "e1", "e2"}
LEARNED = {"e0", "e3", "e4", "e5", "e6", "e7", "e8"}
REWRITE = {"e0", "e2"}


def _conventions(name: str) -> list[str]:
    i = int(name[1:])
    out = ["cents"] if i < 5 else ["cancelled"]
    return out + (["cancelled"] if i == 0 else [])


def _exp(passing: set[str], names: list[str] = NAMES, statuses: dict[str, str] | None = None,
         tokens: int = 1000, latency: float = 2.0):
    statuses = statuses or {}
    return experiment([
        example(n, n in passing, task_type="t_even" if int(n[1:]) % 2 == 0 else "t_odd",
                status=statuses.get(n, "ok"), tokens=tokens, latency_s=latency)
        for n in names])


def _write_study(tmp_path: Path) -> Path:
    evals = tmp_path / "evals"
    ds = evals / "toy"
    ds.mkdir(parents=True)
    (ds / "dataset.yaml").write_text("name: toy\nagent: toy\nexamples: [examples.yaml]\n")
    items = "".join(
        f"  - name: {n}\n    task: question {n}\n    task_type: {'t_even' if int(n[1:]) % 2 == 0 else 't_odd'}\n"
        f"    split: test\n    metadata: {{conventions: [{', '.join(_conventions(n))}]}}\n" for n in NAMES)
    (ds / "examples.yaml").write_text("examples:\n" + items)
    study = ds / "experiments" / "learning"
    for col in ("seed", "learned", "rewrite"):
        (study / col / "prompts").mkdir(parents=True)
        (study / col / "prompts" / "context.yaml").write_text("version: 1\nsystem: system.md.j2\n")
        (study / col / "prompts" / "README.md").write_text("not part of the context " * 50)
    for col, n_entries in (("seed", 2), ("learned", 3), ("rewrite", 1)):
        for i in range(n_entries):
            d = study / col / "cheatsheet" / "heuristics"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"heur-{i}.yaml").write_text(f"id: heur-{i}\nrule: check the thing number {i} first\n")
    # the full rewrite's per-task-type copy of its one text counts once
    (study / "rewrite" / "cheatsheet" / "heuristics" / "heur-0-copy.yaml").write_text(
        "id: heur-0-copy\ntask_type: other\nrule: check the thing number 0 first\n")
    (study / "seed" / "test.json").write_text(_exp(SEED).model_dump_json())
    # a --format json report wrapping the experiment, as `selfheal eval --json` writes
    (study / "learned" / "test.json").write_text(json.dumps(
        {"schema_version": 1, "experiment": _exp(LEARNED, tokens=3000, latency=4.0).model_dump(mode="json")}))
    (study / "learned" / "optimize.json").write_text(json.dumps({"cost": [
        {"phase": "collect", "model_calls": 40, "tokens": 50_000, "wall_s": 600.0},
        {"phase": "reflect", "model_calls": 5, "tokens": 7_000, "wall_s": 100.0},
        {"phase": "confirm", "model_calls": 30, "tokens": 40_000, "wall_s": 500.0},
        {"phase": "total", "model_calls": 75, "tokens": 97_000, "wall_s": 1200.0}]}))
    # paired file (baseline/candidate), one example missing, one cache miss
    (study / "rewrite" / "paired.json").write_text(json.dumps({
        "baseline": _exp(SEED).model_dump(mode="json"),
        "candidate": _exp(REWRITE, NAMES[:9], {"e8": "cache_miss"}).model_dump(mode="json")}))
    (study / "rewrite" / "log.jsonl").write_text(
        '{"kind": "step", "tokens": 1200, "wall_s": 30.5, "model_calls": 1}\n'
        '{"kind": "step", "tokens": 1300, "wall_s": 29.5, "model_calls": 1}\n'
        '{"kind": "summary", "tokens": 99999}\n')
    manifest = study / "columns.yaml"
    manifest.write_text("""\
split: test
reference: seed
columns:
  - id: seed
    label: seed context
    results: seed/test.json
    prompts: seed/prompts
    cheatsheet: seed/cheatsheet
    learning: {tokens: 0, wall_s: 0, model_calls: 0}
  - id: learned
    label: online-learned
    results: learned/test.json
    prompts: learned/prompts
    cheatsheet: learned/cheatsheet
    learning: {from: learned/optimize.json}
  - id: rewrite
    label: full rewrite (DC-Cu)
    results: rewrite/paired.json
    side: candidate
    prompts: rewrite/prompts
    cheatsheet: rewrite/cheatsheet
    learning: {from: rewrite/log.jsonl, note: two train runs}
  - id: demos
    label: bootstrapped demos
    status: not run
    reason: no train example passed
""")
    return manifest


def test_every_figure_of_the_table_matches_the_hand_computed_one(tmp_path: Path) -> None:
    manifest = _write_study(tmp_path)
    t = build_table(manifest, evals_root=tmp_path / "evals")
    cols = {c.id: c for c in t.table.columns}
    assert [c.id for c in t.table.columns] == ["seed", "learned", "rewrite", "demos"]  # manifest order

    seed, learned, rewrite, demos = cols["seed"], cols["learned"], cols["rewrite"], cols["demos"]
    assert (seed.passed, seed.n) == (3, 10)
    assert seed.ci is not None and (seed.ci.low, seed.ci.high) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    assert (learned.passed, learned.n) == (7, 10)
    assert learned.ci is not None and (learned.ci.low, learned.ci.high) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    assert learned.delta_points == pytest.approx(40.0)
    assert (learned.fail_to_pass, learned.pass_to_fail) == (6, 2)
    assert learned.pass_to_fail_names == ["e1", "e2"]
    assert learned.mcnemar_p == pytest.approx(74 / 256)  # 2 * P(X <= 2), X ~ Bin(8, 1/2)
    assert learned.mean_tokens == 3000 and learned.mean_latency_s == 4.0

    # paired on the 9 examples both have; the cache miss is a failure and counted as no verdict
    assert (rewrite.passed, rewrite.n, rewrite.no_verdict, rewrite.n_paired) == (2, 9, 1, 9)
    assert rewrite.missing_here == ["e9"]
    assert rewrite.delta_points == pytest.approx(-100 / 9)
    assert (rewrite.fail_to_pass, rewrite.pass_to_fail, rewrite.mcnemar_p) == (0, 1, 1.0)

    assert demos.status == "not run" and demos.reason == "no train example passed" and demos.rate is None

    assert t.learning["learned"]["tokens"] == 57_000  # confirm (the test run) and total are not learning
    assert t.learning["learned"]["wall_s"] == 700.0 and t.learning["learned"]["model_calls"] == 45
    with_confirm = learning_cost(LearningCost.model_validate(
        {"from": "learned/optimize.json", "exclude_phases": []}), manifest.parent)
    assert with_confirm["tokens"] == 97_000  # confirm on dev (optimize --test-split dev) is part of choosing
    assert t.learning["rewrite"] == {"tokens": 2500, "wall_s": 60.0, "model_calls": 2, "note": "two train runs"}
    # the README beside the prompts is not context; the rewrite's single entry shows as a smaller context
    assert [t.context[c]["entries"] for c in ("seed", "learned", "rewrite")] == [2, 3, 1]
    assert t.context["rewrite"]["tokens"] < t.context["seed"]["tokens"] < t.context["learned"]["tokens"]
    assert t.context["demos"] is None

    # conventions are found without being asked for (examples carry them)
    assert t.group_by == ["conventions"]
    conv = {g.group: g.cells for g in t.table.groups if g.kind == "conventions"}
    assert {k: (v.passed, v.n) for k, v in conv["cents"].items()} == {"seed": (3, 5), "learned": (3, 5),
                                                                       "rewrite": (2, 5)}
    assert {k: (v.passed, v.n) for k, v in conv["cancelled"].items()} == {"seed": (1, 6), "learned": (5, 6),
                                                                           "rewrite": (1, 5)}
    types = {g.group: g.cells for g in t.table.groups if g.kind == "task_type"}
    assert (types["t_odd"]["learned"].passed, types["t_odd"]["learned"].n) == (3, 5)  # e3, e5, e7

    md = to_markdown(t)
    assert "| seed context | 3/10 (30.0%) | [10.8%, 60.3%] | – | – |" in md
    assert "| online-learned | 7/10 (70.0%) | [39.7%, 89.2%] | +40.0 pts | 0.289 | 6 | 2 | 0 | 57,000 |" in md
    assert "| bootstrapped demos | not run: no train example passed |" in md
    assert "### Success per conventions" in md and "| cancelled | 1/6 | 5/6 | 1/5 |" in md
    assert "online-learned: fail→pass e3, e4, e5, e6, e7, e8; pass→fail e1, e2" in md
    assert "1 example(s) only in seed" in md


def test_the_script_writes_markdown_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _write_study(tmp_path)
    monkeypatch.setattr("bench.learning_table.ROOT", tmp_path)  # its evals/ is the study's dataset
    assert main([str(manifest), "--json", "--group-by", "conventions"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [c["status"] for c in data["table"]["columns"]] == ["ok", "ok", "ok", "not run"]
    out = tmp_path / "table.md"
    assert main([str(manifest), "--output", str(out)]) == 0
    assert out.read_text().startswith("## Learning table: toy (test split)")


def test_a_bad_manifest_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "columns.yaml"
    bad.write_text("agent: toy\ncolumns:\n  - id: seed\n  - id: x\n    status: not run\n")
    with pytest.raises(SelfhealError, match="give 'results'"):
        build_table(bad)
    bad.write_text("agent: toy\ncolumns:\n  - id: x\n    status: not run\n")
    assert main([str(bad)]) == 2
    assert "says why" in capsys.readouterr().err


def test_columns_need_distinct_ids_and_a_known_reference() -> None:
    exp = _exp(SEED)
    with pytest.raises(ValueError, match="duplicate"):
        compare_columns([Column("a", "a", exp), Column("a", "b", exp)], "a")
    with pytest.raises(ValueError, match="reference"):
        compare_columns([Column("a", "a", exp)], "seed")
    # a reference that was not run: every column still reports its own numbers, nothing paired
    t = compare_columns([Column("seed", "seed", None, "crashed"), Column("b", "b", exp)], "seed")
    assert t.columns[1].passed == 3 and t.columns[1].mcnemar_p is None


def test_a_replayed_column_shows_the_model_time_its_responses_were_recorded_with() -> None:
    def column(latency: float, model_s: list[float | None]) -> str:
        result = experiment([example(f"e{i}", True, latency_s=latency).model_copy(update={"model_s": s})
                             for i, s in enumerate(model_s)])
        return _example_time(column_stats(Column(id="c", label="c", result=result), None))

    assert column(0.02, [30.0, 40.0]) == "0.0 s (model 35.0 s recorded)"  # replayed: ~0 s of wall time
    assert column(37.0, [30.0, 40.0]) == "37.0 s"                         # live: the wall time says it
    assert column(0.02, [30.0, None]) == "0.0 s"  # an old recording without times: no partial mean
