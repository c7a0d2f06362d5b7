"""The reference scenario suite of lambda_ops.

Every scenario file: loads with a fixed split; its playbook's right fix passes
all checks (and the right answer matches ``expect`` for questions), the
tempting wrong fix fails, touching a decoy fails. Held-out scenarios share no
function names or near-identical wording with the train scenarios of their type,
so only a general lesson can transfer. Tool outputs do not depend on the wall
clock: the same calls give byte-identical outputs on different days.
"""

from __future__ import annotations

import importlib.util
import re
import statistics
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from helpers.lambda_ops import (
    PLAYBOOK,
    SCENARIOS_DIR,
    assert_original_evidence,
    expect_matches,
    scenario,
    simulated,
)

from selfheal.config import load_settings
from lambda_ops.checks import verify
from lambda_ops.clock import SIMULATED_NOW
from lambda_ops.domain import LambdaOpsDomain
from lambda_ops.scenario import SPLITS, Scenario, list_scenarios, load_scenario
from selfheal.errors import FileFormatError

ALL = list_scenarios(SCENARIOS_DIR)
SPECS: dict[str, Scenario] = {n: scenario(n) for n in ALL}
ORIGINAL = {"lambda_timeout", "lambda_memory", "lambda_cold_start", "lambda_throttling", "lambda_cost", "lambda_errors"}
SEED_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _warm_moto() -> None:
    """Pay moto's one-off imports before timing any seeding."""
    with simulated(SPECS["lambda_cold_start"]):
        pass


# -- the files ------------------------------------------------------------------


def test_suite_size_types_and_splits() -> None:
    assert len(ALL) >= 40
    types = Counter(s.task_type for s in SPECS.values())
    assert "general" not in types
    assert len(types) >= 8, types
    splits = Counter(s.split for s in SPECS.values())
    # >= 20 held-out test scenarios, so a real difference between two contexts can be significant
    assert 22 <= splits["train"] <= 30 and 7 <= splits["dev"] <= 10 and 20 <= splits["test"] <= 30, splits
    for task_type in types:
        per = Counter(s.split for s in SPECS.values() if s.task_type == task_type)
        assert 2 <= per["train"] <= 4 and per["dev"] >= 1 and 2 <= per["test"] <= 4, (task_type, per)


def test_every_file_declares_its_split_and_keeps_ids_out() -> None:
    for name, spec in SPECS.items():
        text = (SCENARIOS_DIR / f"{name}.yaml").read_text(encoding="utf-8")
        assert re.search(r"^split: (train|dev|test)$", text, re.MULTILINE), name
        assert spec.split in SPLITS and spec.id is None and spec.success.strip()
        if spec.task_type == "cloudwatch_query":
            assert spec.expect.get("regex") or spec.expect.get("contains"), name
            assert sorted(spec.unchanged) == sorted(f.name for f in spec.functions), "a question changes nothing"
        else:
            assert spec.checks and spec.unchanged, name


def test_a_file_without_split_is_rejected(tmp_path: Path) -> None:
    text = (SCENARIOS_DIR / "lambda_cost.yaml").read_text(encoding="utf-8").replace("split: train\n", "")
    path = tmp_path / "lambda_cost.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(FileFormatError, match="split"):
        load_scenario(path)


def test_the_domain_exposes_dataset_fields(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={}, overrides={"paths": {"evals": str(SCENARIOS_DIR.parents[1])}})
    domain = LambdaOpsDomain()
    spec = domain.load_scenario(settings, "query_p99_week")
    assert (spec.split, spec.task_type, spec.metadata) == ("train", "cloudwatch_query", {})
    assert spec.expect["regex"] and spec.success
    rows = {r["name"]: r for r in domain.describe_scenarios(settings)}
    assert set(rows) == set(ALL) and rows["query_declined_count"]["split"] == "test"
    with domain.open(settings, scenario="errors_loyalty_points") as session:
        assert session.now == SIMULATED_NOW
        assert session.task == SPECS["errors_loyalty_points"].task


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _jaccard(a: str, b: str) -> float:
    ta, tb = _tokens(a), _tokens(b)
    return len(ta & tb) / len(ta | tb)


def _numbers(spec: Scenario) -> set[float]:
    return {
        float(c.value)
        for chk in spec.checks
        for c in chk.conditions()
        if isinstance(c.value, (int, float)) and not isinstance(c.value, bool)
    }


HELD_OUT = [n for n in ALL if SPECS[n].split != "train"]


@pytest.mark.parametrize("name", HELD_OUT)
def test_held_out_scenarios_can_only_be_solved_by_a_general_lesson(name: str) -> None:
    spec = SPECS[name]
    own = {f.name for f in spec.functions}
    train = [s for s in SPECS.values() if s.split == "train" and s.task_type == spec.task_type]
    assert train
    for tr in train:
        raw = (SCENARIOS_DIR / f"{tr.name}.yaml").read_text(encoding="utf-8")
        leaked = sorted(fn for fn in own if re.search(rf"(?<![\w-]){re.escape(fn)}(?![\w-])", raw))
        assert not leaked, f"{name}: {leaked} also appear in train scenario {tr.name}"
        assert _jaccard(spec.task, tr.task) < 0.6, f"{name}'s task is a near-copy of {tr.name}'s"
        if spec.task_type == "cloudwatch_query":
            assert spec.expect != tr.expect
        else:
            assert not _numbers(spec) <= _numbers(tr), f"{name} reuses the thresholds of {tr.name}"


def test_the_jaccard_guard_would_catch_a_copy() -> None:
    task = SPECS["lambda_timeout"].task
    assert _jaccard(task, task.replace("checkout-api", "quote-calculator")) >= 0.6


def _table_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scenario_table", SCENARIOS_DIR / "_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_lists_every_scenario_as_in_its_file() -> None:
    table = _table_module()
    readme = (SCENARIOS_DIR / "README.md").read_text(encoding="utf-8")
    assert table.with_table(readme, table.render_table(SCENARIOS_DIR, SPECS.values())) == readme, "run _table.py"
    for name, spec in SPECS.items():
        assert f"| `{name}` | {spec.task_type} | {spec.split} |" in readme


# -- the playbook on the simulated account ----------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_right_fix_passes_wrong_fix_and_decoys_fail(name: str) -> None:
    spec = SPECS[name]
    play = PLAYBOOK[name]
    with simulated(spec) as (account, box):
        SEED_TIMES[name] = account.seed_seconds
        for tool, args, needle in play.get("evidence", []):
            msg = box.call(tool, **args)
            assert msg.status == "success", msg.content
            assert needle in msg.content, f"{tool}{args}: {needle!r} not in {msg.content[:600]}"
        if name in ORIGINAL:
            assert_original_evidence(name, spec, box)

        untouched = verify(spec, account.clients)
        if spec.task_type == "cloudwatch_query":
            assert untouched.passed is True, untouched.summary  # answering changes nothing
            assert expect_matches(spec.expect, play["answer"]), play["answer"]
            assert not expect_matches(spec.expect, play["wrong_answer"]), play["wrong_answer"]
        else:
            assert untouched.passed is False, untouched.summary

        box.run(play["wrong"])
        wrong = verify(spec, account.clients)
        assert wrong.passed is False, f"the tempting wrong fix must not pass: {wrong.summary}"

        box.run(play["revert"])
        box.run(play["fix"])
        fixed = verify(spec, account.clients)
        assert fixed.passed is True, fixed.summary

        box.run(play["decoy"])
        collateral = verify(spec, account.clients)
        failed = [c for c in collateral.checks if not c.passed]
        assert collateral.passed is False and len(failed) == 1, collateral.summary
        assert "unchanged" in failed[0].description and "->" in failed[0].detail


def test_seeding_is_fast() -> None:
    """< 1.5 s per scenario once moto is imported (median; max bounded for a shared CPU)."""
    for name in ("lambda_errors", "cold_start_price_api", "query_p99_fortnight"):
        if name not in SEED_TIMES:
            with simulated(SPECS[name]) as (account, _):
                SEED_TIMES[name] = account.seed_seconds
    assert statistics.median(SEED_TIMES.values()) < 1.5, SEED_TIMES
    assert max(SEED_TIMES.values()) < 3.0, SEED_TIMES


# -- the frozen clock ---------------------------------------------------------------

CLOCK_SCENARIOS = ["lambda_errors", "cold_start_price_api", "config_pc_old_version", "query_timeout_count_logs"]


@contextmanager
def wall_clock_at(monkeypatch: pytest.MonkeyPatch, instant: datetime) -> Iterator[None]:
    """Pretend the machine's clock says ``instant``: for moto's stamps and for our wall clock."""
    import moto.awslambda.models
    import moto.cloudwatch.models
    import moto.core.utils
    import moto.logs.models

    from lambda_ops import clock

    naive = instant.astimezone(timezone.utc).replace(tzinfo=None)
    with monkeypatch.context() as mp:
        for module in (moto.core.utils, moto.awslambda.models, moto.cloudwatch.models, moto.logs.models):
            mp.setattr(module, "utcnow", lambda: naive)
        mp.setattr(clock, "wall_clock", lambda: instant)
        yield


def _transcript(name: str) -> tuple[list[str], datetime]:
    """Every tool output of a playbook run, and when moto thinks the log group was created."""
    from moto.logs.models import logs_backends

    spec = SPECS[name]
    play = PLAYBOOK[name]
    first = spec.functions[0].name
    steps: list[tuple[str, dict[str, Any]]] = [(t, a) for t, a, _ in play.get("evidence", [])]
    steps += [
        ("list_functions", {}),
        ("get_function_configuration", {"function_name": first}),
        ("list_versions", {"function_name": first}),
        ("get_function_metrics", {"function_name": first, "hours": 24}),
        ("search_logs", {"function_name": first, "hours": 48, "limit": 10}),
        ("get_account_concurrency", {}),
        *play["wrong"], *play["revert"], *play["fix"], *play["decoy"],
        ("update_memory", {"function_name": first, "memory_mb": 1600}),
        ("get_function_configuration", {"function_name": first}),
        ("update_memory", {"function_name": "no-such-function", "memory_mb": 256}),
    ]
    with simulated(spec) as (account, box):
        out = [f"{tool} {args} -> {(m := box.call(tool, **args)).status}: {m.content}" for tool, args in steps]
        raw = logs_backends[account.account_id][account.region].groups[f"/aws/lambda/{first}"].creation_time
    return out, raw


@pytest.mark.parametrize("name", CLOCK_SCENARIOS)
def test_tool_outputs_do_not_depend_on_the_wall_clock(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monday = datetime(2026, 1, 5, 9, 30, 17, tzinfo=timezone.utc)
    with wall_clock_at(monkeypatch, monday):
        first, raw_first = _transcript(name)
    with wall_clock_at(monkeypatch, monday + timedelta(days=9, hours=7, minutes=13)):
        second, raw_second = _transcript(name)
    assert (raw_first.day, raw_second.day) == (5, 14)  # moto did see the patched wall clock
    assert first == second
    text = "\n".join(first)
    assert "2026-01" not in text and "last_modified" in text
    assert '"last_modified": "2025-06-02T12:00Z"' in text  # the in-session change happened at the frozen now
    assert "123456789012" in text  # error messages show a stable account id


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    package = Path(__file__).resolve().parents[1] / "lambda_ops"
    wall = re.compile(r"datetime\.now\(|datetime\.utcnow\(|\btime\.time\(|date\.today\(")
    assert (package / "clock.py").is_file()
    offenders = [p.name for p in package.glob("*.py") if p.name != "clock.py" and wall.search(p.read_text())]
    assert offenders == []
