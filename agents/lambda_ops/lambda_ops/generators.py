"""Deterministic synthesis of a scenario's metric series and log lines.

Pure functions of (scenario, anchor time, seed): the same scenario always
yields the same datapoints and log lines, so an evaluation is reproducible and
a test can recompute what the simulated account was seeded with.
"""

from __future__ import annotations

import math
import random
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from lambda_ops.scenario import (
    FunctionSpec,
    LogEventSpec,
    LogSpec,
    MetricSpec,
    Scenario,
    SeriesSpec,
)


@dataclass(frozen=True)
class Datapoint:
    timestamp: datetime
    value: float


@dataclass(frozen=True)
class LogLine:
    stream: str
    timestamp_ms: int
    message: str


def rng_for(scenario: Scenario, *parts: str) -> random.Random:
    """A stable RNG per scenario part (zlib.crc32, not hash(): that is salted per process)."""
    key = "\x1f".join((scenario.name, str(scenario.seed), *parts))
    return random.Random(zlib.crc32(key.encode()))


def floor_time(t: datetime, period_s: int) -> datetime:
    ts = int(t.timestamp())
    return datetime.fromtimestamp(ts - ts % period_s, tz=timezone.utc)


def series_values(spec: SeriesSpec, n: int, period_s: int, rng: random.Random) -> list[float | None]:
    """``n`` values, oldest first; None where an explicit series has no data."""
    out: list[float | None] = []
    for i in range(n):
        hours_ago = ((n - i) * period_s - period_s / 2) / 3600
        if spec.pattern == "explicit":
            vals = spec.values or []
            k = i - (n - len(vals))
            if k < 0:
                out.append(None)
                continue
            v = float(vals[k])
        elif spec.pattern == "constant":
            v = spec.base
        elif spec.pattern == "ramp":
            frac = i / (n - 1) if n > 1 else 1.0
            v = spec.base + ((spec.to or 0.0) - spec.base) * frac
        elif spec.pattern == "step":
            v = spec.to if hours_ago <= (spec.at_hours_ago or 0.0) else spec.base  # type: ignore[assignment]
        else:  # spike
            start = spec.at_hours_ago or 0.0
            v = spec.to if start - spec.width_hours < hours_ago <= start else spec.base  # type: ignore[assignment]
        if spec.noise:
            v = v * (1.0 + rng.gauss(0.0, spec.noise))
        lo = 0.0 if spec.min is None else spec.min
        v = max(lo, v)
        if spec.max is not None:
            v = min(spec.max, v)
        v = float(round(v)) if spec.integer else round(v, 2)
        out.append(v)
    return out


def metric_points(scenario: Scenario, spec: MetricSpec, now: datetime) -> list[Datapoint]:
    """The datapoints of one metric series: one per period, mid-period, all in the past."""
    hours, period = scenario.metric_window(spec)
    n = int(hours * 3600 // period)
    anchor = floor_time(now, period)
    values = series_values(spec, n, period, rng_for(scenario, "metric", spec.function, spec.metric))
    points = []
    for i, v in enumerate(values):
        if v is None:
            continue
        ts = anchor - timedelta(seconds=(n - i) * period - period // 2)
        points.append(Datapoint(ts, v))
    return points


def version_at(fn: FunctionSpec, hours_ago: float) -> str:
    """The version serving traffic at a past moment: the newest deployed by then, else $LATEST."""
    if not fn.aliases or not fn.versions:
        return "$LATEST"
    target = next((a for a in fn.aliases if a.name == "live"), fn.aliases[0]).version
    serving = 1
    for n, deployed in deploy_hours(fn).items():
        if deployed >= hours_ago and n <= int(target):
            serving = max(serving, n)
    return str(serving)


def deploy_hours(fn: FunctionSpec) -> dict[int, float]:
    """Hours ago each published version was deployed (fillers spread three days apart)."""
    if not fn.versions:
        return {}
    listed = {v.version: v.deployed_hours_ago for v in fn.versions}
    first = fn.versions[0]
    out: dict[int, float] = {}
    for n in range(1, fn.versions[-1].version + 1):
        if n in listed:
            out[n] = listed[n]
        elif n < first.version:
            out[n] = min(24 * 365, first.deployed_hours_ago + 72 * (first.version - n))
        else:  # a gap between listed versions: halfway between neighbours
            before = max(k for k in listed if k < n)
            after = min(k for k in listed if k > n)
            out[n] = (listed[before] + listed[after]) / 2
    return out


def stream_name(day: datetime, version: str, rng: random.Random) -> str:
    return f"{day:%Y/%m/%d}/[{version}]{rng.getrandbits(128):032x}"


class _Streams:
    """One log stream per (day, version), as Lambda names them."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._names: dict[tuple[str, str], str] = {}

    def get(self, ts: datetime, version: str) -> str:
        key = (f"{ts:%Y%m%d}", version)
        if key not in self._names:
            self._names[key] = stream_name(ts, version, self._rng)
        return self._names[key]


def _request_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def report_lines(scenario: Scenario, log: LogSpec, now: datetime, streams: _Streams) -> list[LogLine]:
    """START/END/REPORT lines from the Duration (and MaxMemoryUsed) series of the function."""
    assert log.report is not None
    fn = scenario.function(log.function)
    dur_spec = scenario.metric(log.function, "Duration")
    assert dur_spec is not None
    hours, period = scenario.metric_window(dur_spec)
    n = int(hours * 3600 // period)
    anchor = floor_time(now, period)
    durations = series_values(dur_spec, n, period, rng_for(scenario, "metric", fn.name, "Duration"))
    mem_spec = scenario.metric(log.function, "MaxMemoryUsed")
    if mem_spec is not None:
        mem_rng = rng_for(scenario, "report-memory", fn.name)
        memories = series_values(mem_spec, n, period, mem_rng)
    else:
        memories = [round(fn.memory_mb * 0.3, 0)] * n
    rng = rng_for(scenario, "report", fn.name)
    timeout_ms = fn.timeout_s * 1000.0
    cold = log.report.cold_start
    lines: list[LogLine] = []
    count = 0
    for i in range(0, n, log.report.every_periods):
        d, m = durations[i], memories[i]
        if d is None:
            continue
        ts = anchor - timedelta(seconds=(n - i) * period - period // 2)
        hours_ago = (now - ts).total_seconds() / 3600
        version = version_at(fn, hours_ago)
        stream = streams.get(ts, version)
        rid = _request_id(rng)
        t0 = _ms(ts)
        mem_size = fn.memory_mb
        for vs in fn.versions:
            if str(vs.version) == version and vs.memory_mb:
                mem_size = vs.memory_mb
        used = int(min(mem_size, round(m if m is not None else mem_size * 0.3)))
        count += 1
        init = ""
        if cold is not None and count % cold.every == 0:
            init_ms = max(1.0, cold.init_ms * (1.0 + rng.gauss(0.0, cold.noise)))
            init = f"\tInit Duration: {init_ms:.2f} ms"
        lines.append(LogLine(stream, t0, f"START RequestId: {rid} Version: {version}"))
        status = ""
        if d >= timeout_ms:
            d = timeout_ms + rng.uniform(1.0, 8.0)
            stamp = f"{ts + timedelta(milliseconds=d):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + "Z"
            lines.append(
                LogLine(stream, t0 + int(d), f"{stamp} {rid} Task timed out after {fn.timeout_s:.2f} seconds")
            )
            status = "\tStatus: timeout"
        elif used >= mem_size:
            lines.append(
                LogLine(
                    stream,
                    t0 + int(d),
                    f"RequestId: {rid} Error: Runtime exited with error: signal: killed\nRuntime.ExitError",
                )
            )
            status = "\tStatus: error\tError Type: Runtime.ExitError"
        end = t0 + int(d) + 1
        lines.append(LogLine(stream, end, f"END RequestId: {rid}"))
        lines.append(
            LogLine(
                stream,
                end,
                f"REPORT RequestId: {rid}\tDuration: {d:.2f} ms\tBilled Duration: {math.ceil(d)} ms"
                f"\tMemory Size: {mem_size} MB\tMax Memory Used: {used} MB{init}{status}\t",
            )
        )
    return lines


def event_lines(
    scenario: Scenario, fn: FunctionSpec, ev: LogEventSpec, key: str, now: datetime, streams: _Streams
) -> list[LogLine]:
    rng = rng_for(scenario, "event", fn.name, key)
    lines: list[LogLine] = []
    for k in range(ev.repeat):
        hours_ago = ev.hours_ago - k * ev.every_minutes / 60
        if hours_ago < 0:
            break
        ts = now - timedelta(hours=hours_ago)
        version = ev.version or version_at(fn, hours_ago)
        msg = ev.message.replace("{request_id}", _request_id(rng))
        if ev.values:
            val = ev.values[k % len(ev.values)]
            msg = msg.replace("{value}", f"{val:g}" if isinstance(val, float) else str(val))
        lines.append(LogLine(streams.get(ts, version), _ms(ts), msg))
    return lines


def log_lines(scenario: Scenario, now: datetime) -> dict[str, list[LogLine]]:
    """All log lines per function, in time order."""
    out: dict[str, list[LogLine]] = {}
    streams: dict[str, _Streams] = {}
    for li, log in enumerate(scenario.logs):
        fn = scenario.function(log.function)
        st = streams.setdefault(fn.name, _Streams(rng_for(scenario, "streams", fn.name)))
        lines = out.setdefault(fn.name, [])
        if log.report is not None:
            lines.extend(report_lines(scenario, log, now, st))
        for i, ev in enumerate(log.events):
            lines.extend(event_lines(scenario, fn, ev, f"{li}.{i}", now, st))
    for lines in out.values():
        lines.sort(key=lambda ln: ln.timestamp_ms)
    return out
