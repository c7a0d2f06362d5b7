"""Write a scenario into a simulated account.

Functions, versions, aliases, concurrency, log groups and streams go through
boto3, so the account looks exactly like what the tools will read. Some things
cannot or should not: no AWS API backdates a version's deploy time
(LastModified); CloudWatch Logs (and moto) refuse events older than 14 days by
the *wall clock*, but the account lives at a fixed simulated instant, so log
events are written into moto's log storage directly; metric datapoints go to
moto's CloudWatch backend directly (the API round trip was most of the seeding
time); VPC subnets and security groups get deterministic ids instead of EC2's
random ones (tool outputs must not differ between runs; moto's Lambda does not
require the network to exist).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from lambda_ops.clock import lambda_time
from lambda_ops.generators import deploy_hours, log_lines, metric_points
from lambda_ops.metrics import TARGETS
from selfheal.errors import ScenarioError

if TYPE_CHECKING:
    from lambda_ops.aws import SimulatedAccount
    from lambda_ops.scenario import FunctionSpec, Scenario

ROLE_NAME = "selfheal-lambda-exec"
DEFAULT_AGE_HOURS = 720.0  # a function nobody touched for a month
METRIC_BATCH = 500  # PutMetricData accepts up to 1000 items / 1 MB
LOG_BATCH_EVENTS = 5000  # PutLogEvents: <= 10000 events, <= 1 MB, <= 24 h span
LOG_BATCH_SPAN_MS = 24 * 3600 * 1000 - 1

_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


def stub_zip(function: str, build: int) -> bytes:
    """A deterministic deployment package; each build differs so a new version can be published."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("app.py", date_time=(2020, 1, 1, 0, 0, 0))
        zf.writestr(info, f"# {function} build {build}\ndef handler(event, context):\n    return {{'ok': True}}\n")
    return buf.getvalue()


def seed_account(scenario: Scenario, account: SimulatedAccount, now: datetime) -> None:
    clients = account.clients
    iam = account.client("iam")
    role_arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=_TRUST)["Role"]["Arn"]
    network = network_ids(scenario)
    for fn in scenario.functions:
        _create_function(fn, clients.lambda_, role_arn, network)
        _backdate(account, fn, now)
    _put_metrics(scenario, account, now)
    _put_logs(scenario, account, now)


def resource_id(kind: str, name: str) -> str:
    """An EC2-style id (``subnet-0123456789abcdef0``) that depends only on the Name tag."""
    return f"{kind}-0{hashlib.sha256(f'{kind}:{name}'.encode()).hexdigest()[:16]}"


def network_ids(scenario: Scenario) -> dict[str, str]:
    """Subnets and security groups by Name tag -> deterministic id."""
    ids: dict[str, str] = {}
    for fn in scenario.functions:
        if fn.vpc is None:
            continue
        for name in fn.vpc.subnets:
            ids[f"subnet:{name}"] = resource_id("subnet", name)
        for name in fn.vpc.security_groups:
            ids[f"sg:{name}"] = resource_id("sg", name)
    return ids


def _create_function(fn: FunctionSpec, lam: Any, role_arn: str, network: dict[str, str]) -> None:
    first = fn.versions[0] if fn.versions and fn.versions[0].version == 1 else None
    kwargs: dict[str, Any] = {
        "FunctionName": fn.name,
        "Runtime": fn.runtime,
        "Role": role_arn,
        "Handler": fn.handler,
        "Code": {"ZipFile": stub_zip(fn.name, 1)},
        "Description": fn.description,
        "MemorySize": (first.memory_mb if first and first.memory_mb else fn.memory_mb),
        "Timeout": (first.timeout_s if first and first.timeout_s else fn.timeout_s),
        "Architectures": [fn.architecture],
        "Publish": False,
    }
    if fn.env:
        kwargs["Environment"] = {"Variables": dict(fn.env)}
    if fn.vpc is not None:
        kwargs["VpcConfig"] = {
            "SubnetIds": [network[f"subnet:{s}"] for s in fn.vpc.subnets],
            "SecurityGroupIds": [network[f"sg:{g}"] for g in fn.vpc.security_groups],
        }
    lam.create_function(**kwargs)
    specs = {v.version: v for v in fn.versions}
    current = (kwargs["MemorySize"], kwargs["Timeout"])
    for n in range(1, (fn.versions[-1].version if fn.versions else 0) + 1):
        spec = specs.get(n)
        if n > 1:
            lam.update_function_code(FunctionName=fn.name, ZipFile=stub_zip(fn.name, n))
        wanted = (
            (spec.memory_mb if spec and spec.memory_mb else fn.memory_mb),
            (spec.timeout_s if spec and spec.timeout_s else fn.timeout_s),
        )
        if wanted != current:
            lam.update_function_configuration(FunctionName=fn.name, MemorySize=wanted[0], Timeout=wanted[1])
            current = wanted
        desc = spec.description if spec and spec.description else f"release {n}"
        published = lam.publish_version(FunctionName=fn.name, Description=desc)
        if published["Version"] != str(n):
            raise ScenarioError(f"function '{fn.name}': expected to publish version {n}, got {published['Version']}")
    if current != (fn.memory_mb, fn.timeout_s):
        lam.update_function_configuration(FunctionName=fn.name, MemorySize=fn.memory_mb, Timeout=fn.timeout_s)
    for alias in fn.aliases:
        extra: dict[str, Any] = {}
        if alias.routing:
            extra["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.routing)}
        lam.create_alias(FunctionName=fn.name, Name=alias.name, FunctionVersion=alias.version, **extra)
    if fn.reserved_concurrency is not None:
        lam.put_function_concurrency(FunctionName=fn.name, ReservedConcurrentExecutions=fn.reserved_concurrency)
    for qualifier, count in fn.provisioned_concurrency.items():
        lam.put_provisioned_concurrency_config(
            FunctionName=fn.name, Qualifier=qualifier, ProvisionedConcurrentExecutions=count
        )


def _backdate(account: SimulatedAccount, fn: FunctionSpec, now: datetime) -> None:
    """Give versions their deploy time (LastModified); no AWS API can, so this uses moto's storage."""
    try:
        from moto.awslambda.models import lambda_backends

        entry = lambda_backends[account.account_id][account.region]._lambdas._functions[fn.name]
    except (ImportError, AttributeError, KeyError):  # pragma: no cover - moto internals moved
        return
    hours = deploy_hours(fn)
    for version in entry["versions"]:
        h = hours.get(int(version.version))
        if h is not None:
            version.last_modified = lambda_time(now - timedelta(hours=h))
            account.seeded_stamps.add(version.last_modified)
    latest_h = min(hours.values()) if hours else DEFAULT_AGE_HOURS
    entry["latest"].last_modified = lambda_time(now - timedelta(hours=latest_h))
    account.seeded_stamps.add(entry["latest"].last_modified)


def _put_metrics(scenario: Scenario, account: SimulatedAccount, now: datetime) -> None:
    """Datapoints into moto's CloudWatch backend (its own validation included).

    PutMetricData through botocore costs ~1 ms per datapoint in request
    serialisation and parsing: two thirds of seeding a two-day scenario. The
    backend call stores exactly what the API would (naive UTC timestamps).
    """
    by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for spec in scenario.metrics:
        target = TARGETS[spec.metric]
        dims = [{"Name": target.dimension, "Value": spec.function}]
        for p in metric_points(scenario, spec, now):
            by_namespace[target.namespace].append(
                {
                    "MetricName": target.name,
                    "Dimensions": dims,
                    "Timestamp": p.timestamp.astimezone(timezone.utc).replace(tzinfo=None),
                    "Value": p.value,
                    "Unit": target.unit,
                }
            )
    try:
        from moto.cloudwatch.models import cloudwatch_backends

        backend = cloudwatch_backends[account.account_id][account.region]
    except (ImportError, AttributeError, KeyError):  # pragma: no cover - moto internals moved
        backend = None
    for namespace, data in by_namespace.items():
        for i in range(0, len(data), METRIC_BATCH):
            batch = data[i : i + METRIC_BATCH]
            if backend is not None:
                backend.put_metric_data(namespace, batch)
            else:  # pragma: no cover
                account.clients.cloudwatch.put_metric_data(Namespace=namespace, MetricData=batch)


def _put_logs(scenario: Scenario, account: SimulatedAccount, now: datetime) -> None:
    """Log groups and streams through the API; events straight into moto's storage.

    PutLogEvents (real and moto) drops events older than 14 days by the wall
    clock, which says nothing about a simulated instant. Events are stored in
    chronological batches, stamped as ingested when they happened.
    """
    from moto.logs.models import logs_backends

    logs = account.clients.logs
    lines = log_lines(scenario, now)
    backend = logs_backends[account.account_id][account.region]
    for fn in scenario.functions:
        group = f"/aws/lambda/{fn.name}"
        logs.create_log_group(logGroupName=group)
        by_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in lines.get(fn.name, []):
            by_stream[line.stream].append({"timestamp": line.timestamp_ms, "message": line.message})
        for stream, events in by_stream.items():
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            store = backend.groups[group].streams[stream]
            for batch in _log_batches(events):
                store.put_log_events(batch)
            for ev in store.events:
                ev.ingestion_time = ev.timestamp
            store.last_ingestion_time = now.replace(tzinfo=None)


def _log_batches(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Chronological batches within PutLogEvents' count and 24 h span limits."""
    batches: list[list[dict[str, Any]]] = []
    cur: list[dict[str, Any]] = []
    for ev in sorted(events, key=lambda e: e["timestamp"]):
        if cur and (len(cur) >= LOG_BATCH_EVENTS or ev["timestamp"] - cur[0]["timestamp"] > LOG_BATCH_SPAN_MS):
            batches.append(cur)
            cur = []
        cur.append(ev)
    if cur:
        batches.append(cur)
    return batches
