"""Write a scenario into a simulated account through the AWS APIs.

Everything goes through boto3 (so the account looks exactly like what the
tools will read), except backdating version timestamps, which no AWS API can
do and which needs moto's storage.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from selfheal.domains.lambda_ops.generators import deploy_hours, log_lines, metric_points
from selfheal.domains.lambda_ops.metrics import TARGETS
from selfheal.errors import ScenarioError

if TYPE_CHECKING:
    from selfheal.domains.lambda_ops.aws import SimulatedAccount
    from selfheal.domains.lambda_ops.scenario import FunctionSpec, Scenario

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


def _lambda_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def seed_account(scenario: Scenario, account: SimulatedAccount, now: datetime) -> None:
    clients = account.clients
    iam = account.client("iam")
    role_arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=_TRUST)["Role"]["Arn"]
    network = _create_network(scenario, account) if any(f.vpc for f in scenario.functions) else {}
    for fn in scenario.functions:
        _create_function(fn, clients.lambda_, role_arn, network)
        _backdate(account, fn, now)
    _put_metrics(scenario, clients.cloudwatch, now)
    _put_logs(scenario, clients.logs, now)


def _create_network(scenario: Scenario, account: SimulatedAccount) -> dict[str, str]:
    """Subnets and security groups by Name tag -> id, in one VPC."""
    ec2 = account.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    ids: dict[str, str] = {}
    azs = [f"{account.region}a", f"{account.region}b", f"{account.region}c"]
    for fn in scenario.functions:
        if fn.vpc is None:
            continue
        for name in fn.vpc.subnets:
            key = f"subnet:{name}"
            if key not in ids:
                k = sum(1 for x in ids if x.startswith("subnet:"))
                sub = ec2.create_subnet(
                    VpcId=vpc,
                    CidrBlock=f"10.20.{k}.0/24",
                    AvailabilityZone=azs[k % len(azs)],
                    TagSpecifications=[{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": name}]}],
                )
                ids[key] = sub["Subnet"]["SubnetId"]
        for name in fn.vpc.security_groups:
            key = f"sg:{name}"
            if key not in ids:
                ids[key] = ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
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
            version.last_modified = _lambda_time(now - timedelta(hours=h))
    latest_h = min(hours.values()) if hours else DEFAULT_AGE_HOURS
    entry["latest"].last_modified = _lambda_time(now - timedelta(hours=latest_h))


def _put_metrics(scenario: Scenario, cloudwatch: Any, now: datetime) -> None:
    by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for spec in scenario.metrics:
        target = TARGETS[spec.metric]
        dims = [{"Name": target.dimension, "Value": spec.function}]
        for p in metric_points(scenario, spec, now):
            by_namespace[target.namespace].append(
                {"MetricName": target.name, "Dimensions": dims, "Timestamp": p.timestamp, "Value": p.value, "Unit": target.unit}
            )
    for namespace, data in by_namespace.items():
        for i in range(0, len(data), METRIC_BATCH):
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[i : i + METRIC_BATCH])


def _put_logs(scenario: Scenario, logs: Any, now: datetime) -> None:
    lines = log_lines(scenario, now)
    for fn in scenario.functions:
        group = f"/aws/lambda/{fn.name}"
        logs.create_log_group(logGroupName=group)
        by_stream: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for line in lines.get(fn.name, []):
            by_stream[line.stream].append({"timestamp": line.timestamp_ms, "message": line.message})
        for stream, events in by_stream.items():
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
            for batch in _log_batches(events):
                logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)


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
