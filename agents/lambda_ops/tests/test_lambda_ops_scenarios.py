"""Scenario behaviour beyond the playbook run of tests/test_scenario_suite.py."""

from __future__ import annotations

from helpers.lambda_ops import PLAYBOOK, SCENARIOS_DIR, scenario, simulated

from lambda_ops.checks import verify
from lambda_ops.scenario import TASK_TYPES, list_scenarios


def test_there_is_a_scenario_per_task_type() -> None:
    names = list_scenarios(SCENARIOS_DIR)
    types = {scenario(n).task_type for n in names}
    assert {t for t in TASK_TYPES if t != "general"} <= types
    assert set(PLAYBOOK) == set(names)


def test_throttling_also_accepts_removing_the_reservation() -> None:
    spec = scenario("lambda_throttling")
    with simulated(spec) as (account, box):
        box.ok("remove_reserved_concurrency", function_name="orders-processor")
        assert verify(spec, account.clients).passed is True


def test_a_config_fix_that_forgets_the_stale_setting_fails() -> None:
    """Warm capacity added where traffic goes, but left billing on the old version: not done."""
    spec = scenario("config_pc_stale_after_deploy")
    with simulated(spec) as (account, box):
        box.ok("set_provisioned_concurrency", function_name="tariff-calculator", qualifier="53", concurrency=20)
        verdict = verify(spec, account.clients)
        assert verdict.passed is False
        failed = [c.description for c in verdict.checks if not c.passed]
        assert len(failed) == 1 and "provisioned_concurrency.52" in failed[0]
        box.ok("set_provisioned_concurrency", function_name="tariff-calculator", qualifier="52", concurrency=0)
        assert verify(spec, account.clients).passed is True  # on the version the alias serves counts
