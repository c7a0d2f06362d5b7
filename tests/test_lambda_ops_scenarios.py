"""Each shipped scenario: loads, seeds fast, fails untouched, passes only after the right fix."""

from __future__ import annotations

import statistics

import pytest
from helpers.lambda_ops import PLAYBOOK, SCENARIOS_DIR, Toolbox, scenario, simulated

from selfheal.domains.lambda_ops.checks import verify
from selfheal.domains.lambda_ops.scenario import TASK_TYPES, Scenario, list_scenarios

SEED_TIMES: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _warm_moto() -> None:
    """Pay moto's one-off imports (ec2 alone ~1 s) before timing any seeding."""
    with simulated(scenario("lambda_cold_start")):
        pass


def test_there_is_a_scenario_per_lambda_task_type() -> None:
    names = list_scenarios(SCENARIOS_DIR)
    types = {scenario(n).task_type for n in names}
    assert {t for t in TASK_TYPES if t.startswith("lambda_")} <= types
    assert set(PLAYBOOK) <= set(names)


@pytest.mark.parametrize("name", sorted(PLAYBOOK))
def test_checks_fail_untouched_and_pass_only_after_the_intended_fix(name: str) -> None:
    spec = scenario(name)
    assert spec.unchanged, "every scenario needs a decoy that must stay unchanged"
    play = PLAYBOOK[name]
    with simulated(spec) as (account, box):
        SEED_TIMES[name] = account.seed_seconds
        untouched = verify(spec, account.clients)
        assert untouched.passed is False, untouched.summary
        assert_evidence(name, spec, box)

        box.run(play["wrong"])
        wrong = verify(spec, account.clients)
        assert wrong.passed is False, f"the tempting wrong fix must not pass: {wrong.summary}"

        box.run(play["revert"])
        box.run(play["fix"])
        fixed = verify(spec, account.clients)
        assert fixed.passed is True, fixed.summary
        assert all(c.passed for c in fixed.checks)

        box.run(play["decoy"])
        collateral = verify(spec, account.clients)
        assert collateral.passed is False
        failed = [c for c in collateral.checks if not c.passed]
        assert len(failed) == 1 and "unchanged" in failed[0].description
        assert "->" in failed[0].detail  # names what changed


def test_throttling_also_accepts_removing_the_reservation() -> None:
    spec = scenario("lambda_throttling")
    with simulated(spec) as (account, box):
        box.ok("remove_reserved_concurrency", function_name="orders-processor")
        assert verify(spec, account.clients).passed is True


def test_seeding_is_fast() -> None:
    """< 1.5 s per scenario once moto is imported (median; max bounded for a shared CPU)."""
    if len(SEED_TIMES) < len(PLAYBOOK):
        for name in PLAYBOOK:
            if name not in SEED_TIMES:
                with simulated(scenario(name)) as (account, _):
                    SEED_TIMES[name] = account.seed_seconds
    print("seed seconds:", {k: round(v, 3) for k, v in sorted(SEED_TIMES.items())})
    assert statistics.median(SEED_TIMES.values()) < 1.5, SEED_TIMES
    assert max(SEED_TIMES.values()) < 3.0, SEED_TIMES


def assert_evidence(name: str, spec: Scenario, box: Toolbox) -> None:
    """The data a careful operator needs is really in the account (not just in the YAML)."""
    fn = spec.checks[0].conditions()[0].function
    assert fn is not None
    metrics = box.ok("get_function_metrics", function_name=fn, hours=int(spec.hours),
                     metrics=["Duration", "Errors", "Invocations", "Throttles", "MaxMemoryUsed"])["metrics"]
    if name == "lambda_timeout":
        cfg = box.ok("get_function_configuration", function_name=fn)
        assert metrics["Duration"]["p99"] >= cfg["timeout_s"] * 1000 * 0.95
        assert metrics["MaxMemoryUsed"]["max"] < cfg["memory_mb"] / 4
        assert box.ok("search_logs", function_name=fn, pattern='"Task timed out"', hours=48)["matched"] > 10
        slow = box.ok("search_logs", function_name=fn, pattern="inventory-service", hours=48, limit=50)
        assert any("7.6 s" in e["msg"] for e in slow["events"])
    elif name == "lambda_memory":
        assert metrics["MaxMemoryUsed"]["max"] == 256
        killed = box.ok("search_logs", function_name=fn, pattern='"signal: killed"', hours=48)
        assert killed["matched"] > 10
    elif name == "lambda_cold_start":
        inits = box.ok("search_logs", function_name=fn, pattern='"Init Duration"', hours=48, limit=5)
        assert inits["matched"] > 50
        assert all("Init Duration: 2" in e["msg"] or "Init Duration: 3" in e["msg"] for e in inits["events"])
        assert box.ok("get_function_configuration", function_name=fn)["vpc"]["subnets"]
        assert box.ok("list_versions", function_name=fn)["aliases"] == [{"name": "live", "version": "12"}]
    elif name == "lambda_throttling":
        assert metrics["Throttles"]["max"] > 1000
        assert box.ok("get_function_configuration", function_name=fn)["reserved_concurrency"] == 10
        acct = box.ok("get_account_concurrency")
        assert acct == {"limit": 1000, "unreserved": 690, "note": acct["note"]}
    elif name == "lambda_cost":
        assert metrics["MaxMemoryUsed"]["max"] < 150
        assert metrics["Duration"]["p99"] < 150
    elif name == "lambda_errors":
        versions = box.ok("list_versions", function_name=fn)
        assert [v["version"] for v in versions["versions"]] == ["7", "6", "5", "4", "3", "2", "1"]
        assert versions["versions"][0]["description"].startswith("release 7")
        errors = box.ok("search_logs", function_name=fn, pattern="KeyError", hours=48, limit=50)
        assert errors["matched"] >= 60 and {e["v"] for e in errors["events"]} == {"7"}
        assert metrics["Errors"]["max"] > 15 and metrics["Errors"]["p50"] < 5
