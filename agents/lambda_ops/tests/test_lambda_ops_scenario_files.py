"""Scenario files: every mistake is a file:line error; names resolve or list the known ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.lambda_ops import SCENARIOS_DIR

from lambda_ops.generators import log_lines, metric_points
from lambda_ops.scenario import list_scenarios, load_scenario, scenario_path
from selfheal.errors import FileFormatError, ScenarioError

GOOD = """\
name: demo
task_type: lambda_timeout
split: train
task: api times out
success: timeout raised
functions:
  - name: api
    memory_mb: 512
    timeout_s: 3
  - name: other
    memory_mb: 256
    timeout_s: 3
metrics:
  - {function: api, metric: Duration, pattern: constant, base: 2900}
logs:
  - function: api
    report: {every_periods: 1}
checks:
  - {function: api, field: timeout_s, op: gte, value: 10}
unchanged: [other]
"""


def write(tmp_path: Path, text: str, name: str = "demo") -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def test_good_file_loads(tmp_path: Path) -> None:
    scn = load_scenario(write(tmp_path, GOOD))
    assert scn.name == "demo" and scn.function("api").timeout_s == 3
    assert scn.hours == 48 and scn.period_s == 300


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("    memory_mb: 512\n", "    memory_mb: 512\n    memroy: 1\n", "memroy", "unknown key"),
        ("    memory_mb: 512\n", "    memory_mb: 64\n", "memory_mb: 64", "greater than or equal to 128"),
        ("op: gte, value: 10}", "op: bigger, value: 10}", "op: bigger", "op"),
        ("field: timeout_s, op", "field: timeoutt, op", "timeoutt", "unknown field 'timeoutt'"),
        ("  - {function: api, field", "  - {function: apx, field", "function: apx", "unknown function 'apx'"),
        ("metric: Duration, pattern", "metric: Latency, pattern", "Latency", "metric"),
        ("unchanged: [other]", "unchanged: [nobody]", "unchanged", "unknown function 'nobody'"),
        ("pattern: constant, base: 2900}", "pattern: step, base: 2900}", "pattern: step", "needs 'to'"),
        ("name: demo\n", "name: demo2\n", "name: demo2", "must match the file name"),
        ("task: api times out\n", "task: [unclosed\n", "task: [unclosed", "invalid YAML"),
        ("split: train\n", "split: holdout\n", "split: holdout", "'train', 'dev' or 'test'"),
        ("task: api times out\n", "task: api times out\nexpect: [42]\n", "expect: [42]", "dictionary"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, old: str, new: str, needle: str, message: str) -> None:
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = write(tmp_path, text)
    with pytest.raises(FileFormatError) as err:
        load_scenario(path)
    assert err.value.path == path
    assert message in err.value.detail
    expected = line_of(text, needle)
    assert err.value.line is not None and abs(err.value.line - expected) <= 1, (err.value.line, expected, str(err.value))
    assert str(err.value).startswith(f"{path}:{err.value.line}: ")


def test_dataset_keys_pass_through(tmp_path: Path) -> None:
    text = GOOD.replace(
        "success: timeout raised\n",
        "success: timeout raised\nexpect:\n  regex: ['\\b10 s']\n  tool_calls: {required: [update_timeout]}\n"
        "metadata: {author: ops, difficulty: 2}\n",
    )
    scn = load_scenario(write(tmp_path, text))
    assert scn.expect == {"regex": ["\\b10 s"], "tool_calls": {"required": ["update_timeout"]}}
    assert scn.metadata == {"author": "ops", "difficulty": 2} and scn.id is None and scn.split == "train"
    assert type(scn.expect["tool_calls"]) is dict and type(scn.expect["regex"]) is list  # plain, not ruamel


def test_alias_must_point_to_a_published_version(tmp_path: Path) -> None:
    text = GOOD.replace(
        "    timeout_s: 3\n  - name: other",
        "    timeout_s: 3\n    versions:\n      - {version: 2, deployed_hours_ago: 5}\n"
        "    aliases:\n      - {name: live, version: \"3\"}\n  - name: other",
    )
    with pytest.raises(FileFormatError) as err:
        load_scenario(write(tmp_path, text))
    assert "unpublished version '3'" in err.value.detail
    assert err.value.line == line_of(text, "name: live")


def test_report_lines_need_a_duration_series(tmp_path: Path) -> None:
    text = GOOD.replace("  - {function: api, metric: Duration, pattern: constant, base: 2900}\n", "")
    text = text.replace("metrics:\n", "metrics: []\n")
    with pytest.raises(FileFormatError) as err:
        load_scenario(write(tmp_path, text))
    assert "need a Duration metric" in err.value.detail and err.value.line == line_of(text, "report:")


def test_scenario_names_resolve_or_list_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    write(tmp_path, GOOD.replace("name: demo", "name: zeta"), "zeta")
    assert list_scenarios(tmp_path) == ["demo", "zeta"]
    assert list_scenarios(tmp_path / "missing") == []
    assert scenario_path(tmp_path, "zeta") == tmp_path / "zeta.yaml"
    assert scenario_path(tmp_path, str(tmp_path / "demo.yaml")) == tmp_path / "demo.yaml"
    with pytest.raises(ScenarioError, match=r"unknown scenario 'nope' \(known: demo, zeta\)"):
        scenario_path(tmp_path, "nope")


def test_shipped_scenarios_all_load() -> None:
    names = list_scenarios(SCENARIOS_DIR)
    assert len(names) >= 40
    for n in names:
        scn = load_scenario(SCENARIOS_DIR / f"{n}.yaml")
        assert scn.unchanged and scn.success and scn.split
        # a question is judged on its answer (expect); everything else on the account's state
        assert scn.checks or (scn.task_type == "cloudwatch_query" and scn.expect)


def test_generated_data_is_deterministic_and_in_the_past(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    scn = load_scenario(SCENARIOS_DIR / "lambda_errors.yaml")
    now = datetime(2026, 3, 1, 12, 0, 7, tzinfo=timezone.utc)
    assert log_lines(scn, now) == log_lines(scn, now)
    points = [metric_points(scn, m, now) for m in scn.metrics]
    assert points == [metric_points(scn, m, now) for m in scn.metrics]
    assert all(p.timestamp < now for series in points for p in series)
    lines = log_lines(scn, now)["payments-api"]
    assert all(ln.timestamp_ms <= now.timestamp() * 1000 for ln in lines)
    # errors come from version 7's streams, as Lambda names them
    assert all("[7]" in ln.stream for ln in lines if "KeyError" in ln.message)


def test_any_of_alternatives_are_checked_too(tmp_path: Path) -> None:
    text = GOOD.replace(
        "  - {function: api, field: timeout_s, op: gte, value: 10}\n",
        "  - any_of:\n      - {function: api, field: timeout_s, op: gte, value: 10}\n"
        "      - {function: ap1, field: memory_mb, op: gte, value: 1024}\n",
    )
    with pytest.raises(FileFormatError) as err:
        load_scenario(write(tmp_path, text))
    assert "unknown function 'ap1'" in err.value.detail and err.value.line == line_of(text, "ap1")
    mixed = text.replace("  - any_of:\n", "  - function: api\n    any_of:\n").replace("ap1", "api")
    with pytest.raises(FileFormatError, match="either 'any_of' or function/field/op"):
        load_scenario(write(tmp_path, mixed))
