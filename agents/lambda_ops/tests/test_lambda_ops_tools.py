"""Every lambda_ops tool against a seeded simulated account, the way the agent calls them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pytest
from helpers.lambda_ops import Toolbox, simulated

from lambda_ops.aws import SimulatedAccount
from lambda_ops.generators import log_lines, metric_points
from lambda_ops.scenario import Scenario
from lambda_ops.state import read_function_state
from lambda_ops.tools import TOOL_NAMES, build_tools

SPEC: dict[str, Any] = {
    "name": "tooltest",
    "task_type": "general",
    "split": "train",
    "task": "exercise the tools",
    "success": "n/a",
    "seed": 7,
    "hours": 30,
    "period_s": 300,
    "account": {"concurrency_limit": 1000},
    "functions": [
        {
            "name": "api",
            "memory_mb": 512,
            "timeout_s": 6,
            "env": {"SECRET_TOKEN": "s3cr3t-value", "TABLE": "orders"},
            "vpc": {"subnets": ["private-a"], "security_groups": ["api"]},
            "reserved_concurrency": 20,
            "versions": [
                {"version": 2, "description": "release 2", "deployed_hours_ago": 50},
                {"version": 3, "description": "release 3: new cache", "deployed_hours_ago": 10},
            ],
            "aliases": [{"name": "live", "version": "3", "routing": {"2": 0.1}}],
        },
        {"name": "worker", "memory_mb": 256, "timeout_s": 60},
    ],
    "metrics": [
        {"function": "api", "metric": "Duration", "pattern": "spike", "base": 800, "to": 4000,
         "at_hours_ago": 5, "width_hours": 1, "noise": 0.3},
        {"function": "api", "metric": "Errors", "pattern": "step", "base": 0.3, "to": 12,
         "at_hours_ago": 10, "noise": 0.5, "integer": True},
        {"function": "api", "metric": "Invocations", "pattern": "ramp", "base": 100, "to": 300,
         "noise": 0.1, "integer": True},
        {"function": "api", "metric": "ConcurrentExecutions", "pattern": "constant", "base": 6,
         "noise": 0.4, "integer": True},
        {"function": "worker", "metric": "MaxMemoryUsed", "pattern": "explicit", "values": [100, 120, 180, 90]},
        {"function": "worker", "metric": "Duration", "pattern": "constant", "base": 50},
    ],
    "logs": [
        {
            "function": "api",
            "report": {"every_periods": 1, "cold_start": {"every": 10, "init_ms": 900}},
            "events": [
                {"message": "[ERROR] old failure {value}", "hours_ago": 70, "repeat": 3,
                 "every_minutes": 10, "values": [1, 2, 3]},
                {"message": "[ERROR] " + "x" * 400, "hours_ago": 0.5},
            ],
        }
    ],
}


@pytest.fixture(scope="module")
def spec() -> Scenario:
    return Scenario.model_validate(SPEC)


@pytest.fixture(scope="module")
def reader(spec: Scenario) -> Iterator[tuple[SimulatedAccount, Toolbox]]:
    """A read-only account shared by the tests that do not change anything."""
    with simulated(spec) as pair:
        yield pair


@pytest.fixture()
def writer(spec: Scenario) -> Iterator[tuple[SimulatedAccount, Toolbox]]:
    with simulated(spec) as pair:
        yield pair


def _close(actual: float, expected: float) -> bool:
    """Tool numbers are rounded for a small model: integers >= 100, 1 decimal >= 1."""
    tol = 0.51 if abs(expected) >= 100 else 0.051 if abs(expected) >= 1 else 0.0006
    return abs(actual - expected) <= tol


def _spy(client: Any, operation: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    sid = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"provide-client-params.{sid}.{operation}", lambda params, **_: calls.append(dict(params)))
    return calls


def test_tools_are_named_described_and_typed(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    tools = build_tools(reader[0].clients)
    assert tuple(t.name for t in tools) == TOOL_NAMES
    for t in tools:
        assert len(t.description) > 30, t.name
        assert t.args_schema is not None
    schema = {t.name: t.tool_call_schema.model_json_schema() for t in tools}
    assert schema["update_memory"]["properties"]["memory_mb"]["maximum"] == 10240
    assert set(schema["get_function_metrics"]["properties"]["metrics"]["items"]["enum"]) == {
        "Duration", "MaxMemoryUsed", "Errors", "Throttles", "Invocations", "ConcurrentExecutions"}


def test_list_functions(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    box = reader[1]
    out = box.ok("list_functions")
    assert out["count"] == 2
    assert out["functions"][0] == {"name": "api", "runtime": "python3.12", "memory_mb": 512, "timeout_s": 6}
    assert [f["name"] for f in box.ok("list_functions", name_contains="WORK")["functions"]] == ["worker"]


def test_configuration_shows_env_names_never_values(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    account, box = reader
    msg = box.call("get_function_configuration", function_name="api")
    assert "s3cr3t" not in msg.content
    cfg = json.loads(msg.content)
    assert cfg["env_vars"] == ["SECRET_TOKEN", "TABLE"]
    assert cfg["memory_mb"] == 512 and cfg["timeout_s"] == 6 and cfg["reserved_concurrency"] == 20
    assert re.fullmatch(r"subnet-\w+", cfg["vpc"]["subnets"][0])
    assert re.fullmatch(r"sg-\w+", cfg["vpc"]["security_groups"][0])
    assert cfg["provisioned_concurrency"] == {}
    # $LATEST was last changed by the release-3 deploy, 10 h before seeding
    modified = datetime.strptime(cfg["last_modified"], "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc)
    assert abs((account.now - modified).total_seconds() / 3600 - 10) < 0.05


@pytest.mark.parametrize("metric", ["Duration", "Errors", "Invocations", "ConcurrentExecutions"])
def test_metric_summaries_match_numpy_on_the_seeded_data(
    reader: tuple[SimulatedAccount, Toolbox], spec: Scenario, metric: str
) -> None:
    account, box = reader
    series = next(m for m in spec.metrics if m.function == "api" and m.metric == metric)
    values = np.array([p.value for p in metric_points(spec, series, account.now)])
    out = box.ok("get_function_metrics", function_name="api", metrics=[metric], hours=31)["metrics"][metric]
    assert out["count"] == len(values) == 360
    assert out["min"] == pytest.approx(values.min(), abs=0.51) and out["max"] == pytest.approx(values.max(), abs=0.51)
    for key, expected in {
        "avg": values.mean(),
        "sum": values.sum(),
        "p50": np.percentile(values, 50),
        "p90": np.percentile(values, 90),
        "p99": np.percentile(values, 99),
    }.items():
        assert _close(out[key], float(expected)), (key, out[key], expected)


def test_duration_spike_shows_in_the_tail_not_the_median(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    d = reader[1].ok("get_function_metrics", function_name="api", metrics=["Duration"], hours=24)["metrics"]["Duration"]
    assert d["unit"] == "ms" and d["per_period"] == "Average"
    assert d["p50"] < 1200 < 3000 < d["p99"]


def test_peak_memory_from_report_lines_when_insights_is_off(
    reader: tuple[SimulatedAccount, Toolbox], spec: Scenario
) -> None:
    account, box = reader
    reported = [
        float(m.group(1))
        for line in log_lines(spec, account.now)["api"]
        if (m := re.search(r"Max Memory Used: (\d+) MB", line.message))
    ]
    out = box.ok("get_function_metrics", function_name="api", metrics=["MaxMemoryUsed"], hours=31)
    mem = out["metrics"]["MaxMemoryUsed"]
    assert mem["source"] == "REPORT log lines" and mem["per_period"] == "per invocation"
    assert mem["count"] == len(reported) == 360
    assert _close(mem["p50"], float(np.percentile(reported, 50))) and mem["max"] == max(reported)


def test_peak_memory_from_lambda_insights_when_published(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    out = reader[1].ok("get_function_metrics", function_name="worker", metrics=["MaxMemoryUsed", "Throttles"])
    mem, thr = out["metrics"]["MaxMemoryUsed"], out["metrics"]["Throttles"]
    assert mem["source"] == "Lambda Insights"
    assert (mem["count"], mem["max"], mem["min"]) == (4, 180, 90)
    assert _close(mem["avg"], 122.5)
    assert thr["count"] == 0 and "no datapoints" in thr["note"]


def test_metric_requests_stay_within_the_datapoint_limit(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    account, box = reader
    calls = _spy(account.clients.cloudwatch, "GetMetricStatistics")
    out = box.ok("get_function_metrics", function_name="api", metrics=["Invocations"], hours=30, period_s=60)
    assert out["metrics"]["Invocations"]["count"] >= 359
    assert len(calls) == 2  # 1800 one-minute periods > 1440 per call
    for c in calls:
        assert (c["EndTime"] - c["StartTime"]).total_seconds() / 60 <= 1440


def test_search_logs_returns_recent_lines_with_counts_and_versions(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    box = reader[1]
    out = box.ok("search_logs", function_name="api", pattern='"Init Duration"', hours=31, limit=5)
    assert out["matched"] == 36  # every 10th of 360 REPORT lines is a cold start
    assert len(out["events"]) == 5
    times = [e["t"] for e in out["events"]]
    assert times == sorted(times) and times[-1] == out["last"]
    assert {e["v"] for e in out["events"]} == {"3"}  # served by the live alias' version
    assert all("Init Duration" in e["msg"] for e in out["events"])


def test_search_logs_supports_or_and_exclusion_and_trims_long_lines(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    box = reader[1]
    either = box.ok("search_logs", function_name="api", pattern="?ERROR ?Init", hours=31, limit=50)
    errors = box.ok("search_logs", function_name="api", pattern="ERROR", hours=31, limit=50)
    inits = box.ok("search_logs", function_name="api", pattern="Init", hours=31, limit=50)
    assert either["matched"] == errors["matched"] + inits["matched"] == 37
    assert box.ok("search_logs", function_name="api", pattern="REPORT -Init", hours=31)["matched"] == 360 - 36
    long = errors["events"][-1]["msg"]
    assert len(long) <= 240 and long.endswith("...")


def test_long_log_searches_are_split_into_24h_chunks(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    account, box = reader
    calls = _spy(account.clients.logs, "FilterLogEvents")
    day = box.ok("search_logs", function_name="api", pattern='"old failure"', hours=24)
    assert day["matched"] == 0 and len(calls) == 1
    calls.clear()
    three_days = box.ok("search_logs", function_name="api", pattern='"old failure"', hours=72)
    assert three_days["matched"] == 3
    assert [e["msg"] for e in three_days["events"]] == ["[ERROR] old failure 1", "[ERROR] old failure 2", "[ERROR] old failure 3"]
    assert len(calls) == 3
    assert all(c["endTime"] - c["startTime"] < 24 * 3600 * 1000 for c in calls)


def test_list_versions_shows_deploys_and_alias_routing(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    out = reader[1].ok("list_versions", function_name="api")
    assert [v["version"] for v in out["versions"]] == ["3", "2", "1"]
    assert out["versions"][0]["description"] == "release 3: new cache"
    assert out["versions"][0]["deployed"] > out["versions"][1]["deployed"] > out["versions"][2]["deployed"]
    assert out["aliases"] == [{"name": "live", "version": "3", "routing": {"2": 0.1}}]


def test_account_concurrency_reflects_reservations(reader: tuple[SimulatedAccount, Toolbox]) -> None:
    out = reader[1].ok("get_account_concurrency")
    assert (out["limit"], out["unreserved"]) == (1000, 980)


def test_configuration_changes_apply_and_report_before_and_after(writer: tuple[SimulatedAccount, Toolbox]) -> None:
    account, box = writer
    assert box.ok("update_memory", function_name="api", memory_mb="1024") == {
        "function": "api", "memory_mb": {"from": 512, "to": 1024}}
    assert box.ok("update_timeout", function_name="api", timeout_s=30)["timeout_s"] == {"from": 6, "to": 30}
    assert box.ok("set_reserved_concurrency", function_name="api", concurrency=50)["reserved_concurrency"] == {
        "from": 20, "to": 50}
    assert box.ok("get_account_concurrency")["unreserved"] == 950
    state = read_function_state(account.clients.lambda_, "api")
    assert state is not None
    assert (state["memory_mb"], state["timeout_s"], state["reserved_concurrency"]) == (1024, 30, 50)
    box.ok("remove_reserved_concurrency", function_name="api")
    assert read_function_state(account.clients.lambda_, "api")["reserved_concurrency"] is None  # type: ignore[index]


def test_rollback_points_the_alias_and_clears_canary_routing(writer: tuple[SimulatedAccount, Toolbox]) -> None:
    account, box = writer
    out = box.ok("update_alias", function_name="api", alias="live", version=2)
    assert out == {"function": "api", "alias": "live", "version": {"from": "3", "to": "2"}, "routing": "cleared"}
    state = read_function_state(account.clients.lambda_, "api")
    assert state is not None and state["aliases"]["live"] == {"version": "2", "routing": {}}
    bad = box.call("update_alias", function_name="api", alias="live", version="9")
    assert bad.status == "error" and "ResourceNotFoundException" in bad.content


def test_provisioned_concurrency_lifecycle_and_limits(writer: tuple[SimulatedAccount, Toolbox]) -> None:
    account, box = writer
    out = box.ok("set_provisioned_concurrency", function_name="api", qualifier="live", concurrency=5)
    assert out == {"function": "api", "qualifier": "live", "provisioned_concurrency": 5, "status": "READY"}
    assert box.ok("get_function_configuration", function_name="api")["provisioned_concurrency"] == {"live": 5}

    latest = box.call("set_provisioned_concurrency", function_name="api", qualifier="$LATEST", concurrency=2)
    assert latest.status == "error" and "unpublished" in latest.content
    over = box.call("set_provisioned_concurrency", function_name="api", qualifier="live", concurrency=25)
    assert over.status == "error" and "reservedConcurrentExecution" in over.content  # reserved is 20
    clash = box.call("set_provisioned_concurrency", function_name="api", qualifier=3, concurrency=2)
    assert clash.status == "error" and "ResourceConflictException" in clash.content  # live -> 3 has it

    assert box.ok("set_provisioned_concurrency", function_name="api", qualifier="live", concurrency=0)["removed"] is True
    assert box.ok("set_provisioned_concurrency", function_name="api", qualifier="live", concurrency=0)["removed"] is False
    assert read_function_state(account.clients.lambda_, "api")["provisioned_concurrency"] == {}  # type: ignore[index]


def test_reservations_must_leave_the_unreserved_floor(writer: tuple[SimulatedAccount, Toolbox]) -> None:
    msg = writer[1].call("set_reserved_concurrency", function_name="worker", concurrency=950)
    assert msg.status == "error"
    assert "InvalidParameterValueException" in msg.content and "[100]" in msg.content


@pytest.mark.parametrize(
    ("tool", "args", "needle"),
    [
        ("update_memory", {"function_name": "api", "memory_mb": 64}, "memory_mb"),
        ("update_memory", {"function_name": "api"}, "memory_mb"),
        ("update_timeout", {"function_name": "api", "timeout_s": 901}, "timeout_s"),
        ("get_function_metrics", {"function_name": "api", "metrics": ["Latency"]}, "metrics"),
        ("get_function_metrics", {"function_name": "api", "period_s": 90}, "period_s"),
        ("search_logs", {"function_name": "api", "limit": 0}, "limit"),
        ("get_function_configuration", {}, "function_name"),
        ("update_memory", {"function_name": "ghost", "memory_mb": 512}, "ResourceNotFoundException"),
        ("search_logs", {"function_name": "ghost"}, "no log group /aws/lambda/ghost"),
        ("get_function_metrics", {"function_name": "api", "hours": 0}, "hours"),
    ],
)
def test_bad_calls_become_error_tool_messages(
    reader: tuple[SimulatedAccount, Toolbox], tool: str, args: dict[str, Any], needle: str
) -> None:
    msg = reader[1].call(tool, **args)
    assert msg.status == "error", msg.content
    assert needle in msg.content
    assert "\n" not in msg.content.strip()  # one line the model can act on


def test_unsupported_operations_degrade_to_a_clear_tool_error() -> None:
    """Without the simulated APIs (plain moto), a missing operation is a tool error, not a crash."""
    import boto3
    from moto import mock_aws

    from lambda_ops.aws import AwsClients

    with mock_aws():
        session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1")
        clients = AwsClients(session.client("lambda"), session.client("cloudwatch"), session.client("logs"), "us-east-1")
        tools = {t.name: t for t in build_tools(clients)}
        msg = tools["get_account_concurrency"].invoke(
            {"name": "get_account_concurrency", "args": {}, "id": "1", "type": "tool_call"}
        )
    assert msg.status == "error"
    assert msg.content == "GetAccountSettings is not supported by this AWS environment"


def test_log_search_bounds_its_pages_on_busy_groups() -> None:
    """A broad pattern over a busy group stops after a page budget and says so."""
    from lambda_ops import logsearch

    class BusyLogs:
        calls = 0

        def filter_log_events(self, **kw: Any) -> dict[str, Any]:
            BusyLogs.calls += 1
            start = kw["startTime"] + int(kw.get("nextToken") or 0) * 1000
            events = [{"timestamp": start + i, "message": f"line {i}", "logStreamName": "s"} for i in range(1000)]
            return {"events": events, "nextToken": str(int(kw.get("nextToken") or 0) + 1)}

    day = 24 * 3600 * 1000
    out = logsearch.search(BusyLogs(), "busy", "", 0, 14 * day, limit=3)
    assert BusyLogs.calls == logsearch.MAX_PAGES_PER_SEARCH
    assert out["matched"] == logsearch.MAX_PAGES_PER_SEARCH * 1000
    assert out["matched_is_lower_bound"] is True and "narrow" in out["note"]
    assert len(out["events"]) == 3
