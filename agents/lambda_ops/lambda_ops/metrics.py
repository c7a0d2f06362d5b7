"""Lambda metrics from raw CloudWatch datapoints, summarised in Python.

Percentiles and metric math are not available from every CloudWatch
implementation (moto has neither), so the tools fetch one datapoint per period
with the metric's natural statistic and compute avg/min/max/sum/p50/p90/p99
here. Peak memory is not an AWS/Lambda metric: it is Lambda Insights'
``used_memory_max`` when Insights is enabled, else the ``Max Memory Used`` of
the function's REPORT log lines.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from lambda_ops import logsearch

MAX_POINTS_PER_CALL = 1440  # GetMetricStatistics limit
REPORT_PAGES_PER_DAY = 3  # peak memory needs a sample of REPORT lines, not all of them


@dataclass(frozen=True)
class MetricTarget:
    """Where a metric lives in CloudWatch and which per-period statistic summarises it."""

    namespace: str
    name: str
    dimension: str
    unit: str
    stat: str

    @property
    def short_unit(self) -> str:
        return {"Milliseconds": "ms", "Megabytes": "MB", "Count": "count"}[self.unit]


TARGETS: dict[str, MetricTarget] = {
    "Duration": MetricTarget("AWS/Lambda", "Duration", "FunctionName", "Milliseconds", "Average"),
    "Errors": MetricTarget("AWS/Lambda", "Errors", "FunctionName", "Count", "Sum"),
    "Throttles": MetricTarget("AWS/Lambda", "Throttles", "FunctionName", "Count", "Sum"),
    "Invocations": MetricTarget("AWS/Lambda", "Invocations", "FunctionName", "Count", "Sum"),
    "ConcurrentExecutions": MetricTarget("AWS/Lambda", "ConcurrentExecutions", "FunctionName", "Count", "Maximum"),
    "MaxMemoryUsed": MetricTarget("LambdaInsights", "used_memory_max", "function_name", "Megabytes", "Maximum"),
}

_MAX_MEMORY = re.compile(r"Max Memory Used: (\d+) MB")


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default method) of sorted values."""
    if not sorted_values:
        raise ValueError("percentile of an empty series")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def tidy(x: float) -> float | int:
    """Round for a small model: integers stay integers, big numbers lose decimals."""
    if float(x).is_integer():
        return int(x)
    if abs(x) >= 100:
        return round(x)
    if abs(x) >= 1:
        return round(x, 1)
    return round(x, 3)


def summarize(values: list[float]) -> dict[str, Any]:
    """count/avg/min/max/sum/p50/p90/p99 of a series."""
    if not values:
        return {"count": 0}
    s = sorted(values)
    return {
        "count": len(s),
        "avg": tidy(sum(s) / len(s)),
        "min": tidy(s[0]),
        "max": tidy(s[-1]),
        "sum": tidy(sum(s)),
        "p50": tidy(percentile(s, 50)),
        "p90": tidy(percentile(s, 90)),
        "p99": tidy(percentile(s, 99)),
    }


def window(now: datetime, hours: float, period_s: int) -> tuple[datetime, datetime]:
    """[start, end) aligned to period boundaries, including the current partial period."""
    end_ts = int(now.timestamp())
    end_ts = end_ts - end_ts % period_s + period_s
    start_ts = int((now - timedelta(hours=hours)).timestamp())
    start_ts -= start_ts % period_s
    return datetime.fromtimestamp(start_ts, tz=now.tzinfo), datetime.fromtimestamp(end_ts, tz=now.tzinfo)


def fetch_series(
    cloudwatch: Any, function_name: str, target: MetricTarget, start: datetime, end: datetime, period_s: int
) -> list[tuple[datetime, float]]:
    """One value per period (the target's statistic), oldest first, chunked to the API limit."""
    out: list[tuple[datetime, float]] = []
    step = timedelta(seconds=period_s * MAX_POINTS_PER_CALL)
    lo = start
    while lo < end:
        hi = min(end, lo + step)
        resp = cloudwatch.get_metric_statistics(
            Namespace=target.namespace,
            MetricName=target.name,
            Dimensions=[{"Name": target.dimension, "Value": function_name}],
            StartTime=lo,
            EndTime=hi,
            Period=period_s,
            Statistics=[target.stat],
        )
        out.extend((dp["Timestamp"], float(dp[target.stat])) for dp in resp.get("Datapoints", []))
        lo = hi
    out.sort(key=lambda p: p[0])
    return out


def memory_from_reports(logs: Any, function_name: str, start: datetime, end: datetime) -> tuple[list[float], bool]:
    """Max Memory Used (MB) of REPORT lines in the window, and whether only a sample was read."""
    values: list[float] = []
    truncated = False
    start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
    for chunk in logsearch.iter_chunks(
        logs, logsearch.log_group(function_name), '"Max Memory Used"', start_ms, end_ms,
        pages_per_chunk=REPORT_PAGES_PER_DAY,
    ):
        truncated = truncated or chunk.truncated
        for ev in chunk.events:
            m = _MAX_MEMORY.search(str(ev.get("message", "")))
            if m:
                values.append(float(m.group(1)))
    return values, truncated
