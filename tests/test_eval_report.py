"""Reports a reviewer reads in a PR comment, a CI job parses, or a developer sees in a terminal."""

from __future__ import annotations

import io
import json

from helpers.eval_results import example, experiment, pair
from rich.console import Console

from selfheal.evaluation.compare import Comparison, compare
from selfheal.evaluation.gate import GateConfig, decide, decide_single
from selfheal.evaluation.report import MARKER, render_table, to_dict, to_json, to_markdown


def _regression() -> tuple[Comparison, object]:
    base, cand = pair("PPPPPPFF", "PPPPPFFF", task_type="lambda_timeout")
    c = compare(base, cand)
    return c, decide(c, GateConfig(margin=0.05))


def test_markdown_comparison_has_marker_headline_flips_types_details_and_provenance() -> None:
    c, d = _regression()
    md = to_markdown(comparison=c, decision=d)
    assert md.startswith(MARKER + "\n## selfheal eval")
    assert "**Verdict: ❌ failed**" in md
    assert "success rate fell 12.5 points (75.0% -> 62.5%), more than the 5-point margin" in md
    # headline: both rates with Wilson intervals and the paired p-value
    assert "| success rate | 75.0% (6/8) | 62.5% (5/8) | -12.5 pts |" in md
    assert "[40.9%, 92.9%]" in md  # Wilson 6/8
    assert "| McNemar p (paired) | - | - | 1 (1 pass→fail, 0 fail→pass) |" in md
    # flips with run ids
    assert "| ex5 | lambda_timeout | pass → fail | `run-ex5-p` | `run-ex5-f` |" in md
    assert "### By task type" in md and "| lambda_timeout | 8 |" in md
    assert "<details><summary>All 8 paired examples</summary>" in md and "</details>" in md
    # provenance of both sides
    assert "### Provenance" in md
    assert "| git ref | HEAD @ 1234567890ab | working tree |" in md
    assert "`bbbbbbbbbbbb`" in md and "`eeeeeeeeeeee-dirty`" in md  # context / cheatsheet versions
    assert "`aaaaaaaaaaaa`" in md and "replay" in md and "`scripted:test`" in md
    assert "dataset is the instrument" in md


def test_markdown_lists_unpaired_examples_and_escapes_table_cells() -> None:
    base = experiment([example("a", True), example("gone", True)], git_ref="main")
    cand = experiment([example("a", False, status="error", error="model said |no|"), example("new", True)])
    md = to_markdown(comparison=compare(base, cand))
    assert "**Verdict: not gated**" in md
    assert "### Not paired" in md and "| gone | lambda_timeout | baseline |" in md
    assert "| new | lambda_timeout | candidate |" in md
    assert "model said \\|no\\|" in md


def test_markdown_for_a_single_experiment() -> None:
    result = experiment([example("a", True, task_type="oom"), example("b", False, task_type="timeout",
                                                                       status="timeout")])
    md = to_markdown(single=result, decision=decide_single(result, GateConfig(min_success_rate=0.9)))
    assert md.startswith(MARKER)
    assert "| success rate | 50.0% (1/2) |" in md
    assert "below the required 90.0%" in md
    assert "| timeout | 1 | 0.0% (0/1) |" in md and "| b | timeout | timeout |" in md
    assert "| git ref | working tree |" in md


def test_json_has_stable_keys_and_round_trips() -> None:
    c, d = _regression()
    data = json.loads(to_json(comparison=c, decision=d))
    assert list(data) == ["schema_version", "verdict", "decision", "experiment", "summary", "comparison"]
    assert data["verdict"] == "fail" and data["experiment"] is None
    assert Comparison.model_validate(data["comparison"]) == c
    assert data["comparison"]["overall"]["mcnemar_p"] == 1.0
    single = experiment([example("a", True)])
    data = to_dict(single=single)
    assert list(data) == ["schema_version", "verdict", "decision", "experiment", "summary", "comparison"]
    assert data["verdict"] is None and data["summary"]["overall"]["rate"] == 1.0
    assert data["experiment"]["results"][0]["name"] == "a"


def test_terminal_rendering_shows_rates_flips_and_provenance() -> None:
    c, d = _regression()
    console = Console(file=io.StringIO(), width=140, color_system=None)
    render_table(console, comparison=c, decision=d)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "75.0% (6/8)" in text and "62.5% (5/8)" in text
    assert "ex5" in text and "pass → fail" in text
    assert "gate failed" in text and "bbbbbbbbbbbb" in text
