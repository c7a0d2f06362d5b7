"""The lambda_ops agent's tools: LangChain StructuredTools over boto3.

They work unchanged against real AWS and the simulated account. Results are
small JSON-able dicts with rounded numbers (a 1.5B model reads them). Bad
arguments and AWS errors come back as ``ToolMessage(status="error")`` with a
one-line reason, so the agent loop can see and correct them instead of
crashing: AWS errors are raised as ``ToolException`` (``handle_tool_error``),
argument errors are pydantic ``ValidationError`` (``handle_validation_error``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, field_validator

from lambda_ops import logsearch
from lambda_ops.aws import AwsClients
from lambda_ops.metrics import (
    TARGETS,
    fetch_series,
    memory_from_reports,
    summarize,
    window,
)
from lambda_ops.scenario import MetricName

DEFAULT_METRICS: list[str] = ["Duration", "Errors", "Invocations", "Throttles"]
MAX_LISTED = 50
MAX_VERSIONS = 10

A = TypeVar("A", bound=BaseModel)


def _as_str(v: Any) -> Any:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


Qualifier = Annotated[str, BeforeValidator(_as_str), Field(min_length=1, max_length=128)]


# -- argument schemas -----------------------------------------------------------


class NoArgs(BaseModel):
    pass


class ListFunctionsArgs(BaseModel):
    name_contains: str = Field("", description="Only functions whose name contains this text (optional).")


class FunctionArgs(BaseModel):
    function_name: str = Field(min_length=1, max_length=140, description="Lambda function name, e.g. checkout-api.")


class MetricsArgs(FunctionArgs):
    metrics: list[MetricName] = Field(
        default_factory=lambda: list(DEFAULT_METRICS),
        min_length=1,
        description="Metrics to summarise: Duration, MaxMemoryUsed, Errors, Throttles, Invocations, ConcurrentExecutions.",
    )
    hours: int = Field(24, ge=1, le=336, description="How many hours back to look (1..336).")
    period_s: int = Field(300, ge=60, le=86400, description="Seconds per datapoint, a multiple of 60 (default 300).")

    @field_validator("period_s")
    @classmethod
    def _minute_multiple(cls, v: int) -> int:
        if v % 60:
            raise ValueError("period_s must be a multiple of 60")
        return v


class SearchLogsArgs(FunctionArgs):
    pattern: str = Field(
        "",
        max_length=200,
        description='CloudWatch Logs filter pattern, case-sensitive: ERROR, "Task timed out", ?ERROR ?Exception. Empty: all lines.',
    )
    hours: int = Field(24, ge=1, le=336, description="How many hours back to search (1..336).")
    limit: int = Field(20, ge=1, le=50, description="How many of the most recent matching lines to return (1..50).")


class MemoryArgs(FunctionArgs):
    memory_mb: int = Field(ge=128, le=10240, description="New memory size in MB (128..10240).")


class TimeoutArgs(FunctionArgs):
    timeout_s: int = Field(ge=1, le=900, description="New timeout in seconds (1..900).")


class ReservedArgs(FunctionArgs):
    concurrency: int = Field(ge=0, le=100000, description="Reserved concurrent executions (0 stops all invocations).")


class AliasArgs(FunctionArgs):
    alias: str = Field(min_length=1, max_length=128, description="Alias name, e.g. live.")
    version: Qualifier = Field(description="Published version number the alias should point to, e.g. 6.")


class ProvisionedArgs(FunctionArgs):
    qualifier: Qualifier = Field(description="Alias (e.g. live) or published version; not $LATEST.")
    concurrency: int = Field(ge=0, le=100000, description="Pre-initialised environments to keep warm; 0 removes the setting.")


# -- helpers --------------------------------------------------------------------


def _client_error(exc: ClientError) -> str:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", "Error"))
    msg = " ".join((str(err.get("Message", "")) or str(exc)).split())
    if code == "404" and "not yet implemented" in msg.lower():
        return f"{exc.operation_name} is not supported by this AWS environment"
    return f"{code}: {msg}"


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err.get("loc", ())) or "arguments"
        msg = err.get("msg", "invalid")
        if err.get("type") == "missing":
            parts.append(f"missing argument '{loc}'")
        else:
            parts.append(f"{loc}: {msg} (got {err.get('input')!r})")
    return "invalid arguments: " + "; ".join(parts)


def _make_tool(name: str, schema: type[A], impl: Callable[[A], dict[str, Any]]) -> StructuredTool:
    """A StructuredTool whose AWS errors and bad arguments become status=error ToolMessages."""

    def run(**kwargs: Any) -> dict[str, Any]:
        try:
            args = schema.model_validate(kwargs)
        except ValidationError as exc:
            raise ToolException(_format_validation(exc)) from exc
        try:
            return impl(args)
        except ClientError as exc:
            raise ToolException(_client_error(exc)) from exc
        except (BotoCoreError, WaiterError) as exc:
            raise ToolException(f"AWS request failed: {exc}") from exc

    return StructuredTool.from_function(
        func=run,
        name=name,
        description=(impl.__doc__ or name).strip(),
        args_schema=schema,
        handle_tool_error=True,
        handle_validation_error=_format_validation,
    )


def _short_time(lambda_time: str | None) -> str | None:
    """Lambda's '2026-11-24T16:04:26.000+0000' -> '2026-11-24T16:04Z'."""
    if not lambda_time:
        return None
    try:
        t = datetime.strptime(lambda_time[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return lambda_time
    return t.strftime("%Y-%m-%dT%H:%MZ")


def _wait_updated(lambda_: Any, name: str, resp: dict[str, Any]) -> None:
    """Real Lambda applies configuration asynchronously; the next change would conflict."""
    if resp.get("LastUpdateStatus") == "InProgress":
        lambda_.get_waiter("function_updated_v2").wait(
            FunctionName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 30}
        )


# -- the tools ------------------------------------------------------------------


def build_tools(clients: AwsClients) -> list[BaseTool]:
    """All lambda_ops tools bound to one account's clients.

    Metric and log windows end at ``clients.clock()``: the wall clock for a real
    account, the frozen instant of a simulated one (so replays are byte-identical).
    """
    lam, cw, logs = clients.lambda_, clients.cloudwatch, clients.logs

    def list_functions(a: ListFunctionsArgs) -> dict[str, Any]:
        """List the Lambda functions in the account (name, runtime, memory MB, timeout s)."""
        found = []
        for page in lam.get_paginator("list_functions").paginate():
            for f in page["Functions"]:
                if a.name_contains.lower() in f["FunctionName"].lower():
                    found.append(
                        {
                            "name": f["FunctionName"],
                            "runtime": f.get("Runtime"),
                            "memory_mb": f.get("MemorySize"),
                            "timeout_s": f.get("Timeout"),
                        }
                    )
        found.sort(key=lambda f: f["name"])
        out: dict[str, Any] = {"count": len(found), "functions": found[:MAX_LISTED]}
        if len(found) > MAX_LISTED:
            out["note"] = f"showing {MAX_LISTED}; narrow with name_contains"
        return out

    def get_function_configuration(a: FunctionArgs) -> dict[str, Any]:
        """Show a function's configuration: memory, timeout, runtime, VPC subnets and security groups,
        reserved and provisioned concurrency, environment variable names (never values), last change."""
        cfg = lam.get_function_configuration(FunctionName=a.function_name)
        vpc = cfg.get("VpcConfig") or {}
        reserved = lam.get_function_concurrency(FunctionName=a.function_name).get("ReservedConcurrentExecutions")
        out: dict[str, Any] = {
            "name": cfg["FunctionName"],
            "runtime": cfg.get("Runtime"),
            "memory_mb": cfg.get("MemorySize"),
            "timeout_s": cfg.get("Timeout"),
            "architecture": (cfg.get("Architectures") or ["x86_64"])[0],
            "vpc": (
                {"subnets": vpc.get("SubnetIds", []), "security_groups": vpc.get("SecurityGroupIds", [])}
                if vpc.get("SubnetIds")
                else None
            ),
            "reserved_concurrency": reserved,
            "env_vars": sorted((cfg.get("Environment") or {}).get("Variables", {}).keys()),
            "last_modified": _short_time(cfg.get("LastModified")),
            "version": cfg.get("Version"),
        }
        try:
            pcs = lam.list_provisioned_concurrency_configs(FunctionName=a.function_name)
            out["provisioned_concurrency"] = {
                c["FunctionArn"].rsplit(":", 1)[-1]: c["RequestedProvisionedConcurrentExecutions"]
                for c in pcs.get("ProvisionedConcurrencyConfigs", [])
            }
        except ClientError:
            pass  # not allowed / not supported: the rest is still useful
        return out

    def get_function_metrics(a: MetricsArgs) -> dict[str, Any]:
        """Summarise CloudWatch metrics of a function over the last hours: for each metric
        count/avg/min/max/sum/p50/p90/p99 of per-period values (Duration: average ms per period;
        Errors/Throttles/Invocations: sum per period; ConcurrentExecutions: max per period;
        MaxMemoryUsed: peak MB, from Lambda Insights or the REPORT log lines)."""
        now = clients.clock()
        start, end = window(now, a.hours, a.period_s)
        out: dict[str, Any] = {"function": a.function_name, "hours": a.hours, "period_s": a.period_s, "metrics": {}}
        for metric in dict.fromkeys(a.metrics):
            target = TARGETS[metric]
            values = [v for _, v in fetch_series(cw, a.function_name, target, start, end, a.period_s)]
            entry: dict[str, Any] = {"unit": target.short_unit, "per_period": target.stat}
            if metric == "MaxMemoryUsed":
                if values:
                    entry["source"] = "Lambda Insights"
                else:
                    try:
                        values, truncated = memory_from_reports(logs, a.function_name, start, end)
                    except ClientError:
                        values, truncated = [], False
                    entry["per_period"] = "per invocation"
                    entry["source"] = "REPORT log lines" + (" (sampled)" if truncated else "")
            entry.update(summarize(values))
            if not values:
                entry["note"] = "no datapoints in this window"
            out["metrics"][metric] = entry
        return out

    def search_logs(a: SearchLogsArgs) -> dict[str, Any]:
        """Search a function's CloudWatch logs (/aws/lambda/<name>) with a filter pattern.
        Returns how many lines matched, the first/last match time, and the most recent lines
        (t = time, v = version that logged it, msg = the line). Long windows are searched in 24 h chunks."""
        now = clients.clock()
        end_ms = int(now.timestamp() * 1000) + 1
        start_ms = end_ms - a.hours * 3600 * 1000
        try:
            result = logsearch.search(logs, a.function_name, a.pattern.strip(), start_ms, end_ms, a.limit)
        except logs.exceptions.ResourceNotFoundException:
            raise ToolException(
                f"no log group {logsearch.log_group(a.function_name)}: the function does not exist or never ran"
            ) from None
        result["hours"] = a.hours
        return result

    def update_memory(a: MemoryArgs) -> dict[str, Any]:
        """Set a function's memory size in MB (128..10240). More memory also means more CPU and cost."""
        before = lam.get_function_configuration(FunctionName=a.function_name)["MemorySize"]
        resp = lam.update_function_configuration(FunctionName=a.function_name, MemorySize=a.memory_mb)
        _wait_updated(lam, a.function_name, resp)
        return {"function": a.function_name, "memory_mb": {"from": before, "to": resp["MemorySize"]}}

    def update_timeout(a: TimeoutArgs) -> dict[str, Any]:
        """Set a function's timeout in seconds (1..900)."""
        before = lam.get_function_configuration(FunctionName=a.function_name)["Timeout"]
        resp = lam.update_function_configuration(FunctionName=a.function_name, Timeout=a.timeout_s)
        _wait_updated(lam, a.function_name, resp)
        return {"function": a.function_name, "timeout_s": {"from": before, "to": resp["Timeout"]}}

    def set_reserved_concurrency(a: ReservedArgs) -> dict[str, Any]:
        """Reserve concurrency for a function: it is both a guarantee and a cap (a low value causes throttles)."""
        before = lam.get_function_concurrency(FunctionName=a.function_name).get("ReservedConcurrentExecutions")
        resp = lam.put_function_concurrency(FunctionName=a.function_name, ReservedConcurrentExecutions=a.concurrency)
        return {
            "function": a.function_name,
            "reserved_concurrency": {"from": before, "to": resp["ReservedConcurrentExecutions"]},
        }

    def remove_reserved_concurrency(a: FunctionArgs) -> dict[str, Any]:
        """Remove a function's reserved concurrency: it then shares the account's unreserved pool."""
        before = lam.get_function_concurrency(FunctionName=a.function_name).get("ReservedConcurrentExecutions")
        lam.delete_function_concurrency(FunctionName=a.function_name)
        return {"function": a.function_name, "reserved_concurrency": {"from": before, "to": None}}

    def get_account_concurrency(a: NoArgs) -> dict[str, Any]:
        """Show the account's concurrency limit and how much of it is not reserved by any function."""
        limit = lam.get_account_settings()["AccountLimit"]
        return {
            "limit": limit.get("ConcurrentExecutions"),
            "unreserved": limit.get("UnreservedConcurrentExecutions"),
            "note": "reservations must leave at least 100 unreserved",
        }

    def list_versions(a: FunctionArgs) -> dict[str, Any]:
        """List a function's published versions (newest first, with deploy time and description)
        and its aliases (which version each alias serves, and any weighted routing)."""
        versions = []
        for page in lam.get_paginator("list_versions_by_function").paginate(FunctionName=a.function_name):
            for v in page["Versions"]:
                if v["Version"] == "$LATEST":
                    continue
                versions.append(
                    {
                        "version": v["Version"],
                        "deployed": _short_time(v.get("LastModified")),
                        "description": v.get("Description") or "",
                        "memory_mb": v.get("MemorySize"),
                        "timeout_s": v.get("Timeout"),
                    }
                )
        versions.sort(key=lambda v: int(v["version"]), reverse=True)
        aliases = []
        for page in lam.get_paginator("list_aliases").paginate(FunctionName=a.function_name):
            for al in page["Aliases"]:
                weights = (al.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
                entry: dict[str, Any] = {"name": al["Name"], "version": al["FunctionVersion"]}
                if weights:
                    entry["routing"] = {k: round(float(w), 3) for k, w in weights.items()}
                aliases.append(entry)
        out: dict[str, Any] = {"function": a.function_name, "versions": versions[:MAX_VERSIONS], "aliases": aliases}
        if len(versions) > MAX_VERSIONS:
            out["older_versions"] = len(versions) - MAX_VERSIONS
        return out

    def update_alias(a: AliasArgs) -> dict[str, Any]:
        """Point an alias (e.g. live) at a published version, e.g. to roll back a bad deploy.
        Clears weighted routing so the alias serves only that version."""
        before = lam.get_alias(FunctionName=a.function_name, Name=a.alias)
        had_routing = bool(((before.get("RoutingConfig") or {}).get("AdditionalVersionWeights")) or {})
        resp = lam.update_alias(
            FunctionName=a.function_name,
            Name=a.alias,
            FunctionVersion=a.version,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        out: dict[str, Any] = {
            "function": a.function_name,
            "alias": a.alias,
            "version": {"from": before["FunctionVersion"], "to": resp["FunctionVersion"]},
        }
        if had_routing:
            out["routing"] = "cleared"
        return out

    def set_provisioned_concurrency(a: ProvisionedArgs) -> dict[str, Any]:
        """Keep pre-initialised environments for an alias or version to remove cold starts
        (Init Duration in REPORT lines). concurrency 0 removes the setting. Costs money while configured."""
        if a.concurrency == 0:
            try:
                lam.delete_provisioned_concurrency_config(FunctionName=a.function_name, Qualifier=a.qualifier)
            except lam.exceptions.ProvisionedConcurrencyConfigNotFoundException:
                return {"function": a.function_name, "qualifier": a.qualifier, "removed": False, "note": "none was set"}
            return {"function": a.function_name, "qualifier": a.qualifier, "removed": True}
        resp = lam.put_provisioned_concurrency_config(
            FunctionName=a.function_name, Qualifier=a.qualifier, ProvisionedConcurrentExecutions=a.concurrency
        )
        return {
            "function": a.function_name,
            "qualifier": a.qualifier,
            "provisioned_concurrency": resp.get("RequestedProvisionedConcurrentExecutions"),
            "status": resp.get("Status"),
        }

    specs: list[tuple[str, type[BaseModel], Callable[[Any], dict[str, Any]]]] = [
        ("list_functions", ListFunctionsArgs, list_functions),
        ("get_function_configuration", FunctionArgs, get_function_configuration),
        ("get_function_metrics", MetricsArgs, get_function_metrics),
        ("search_logs", SearchLogsArgs, search_logs),
        ("update_memory", MemoryArgs, update_memory),
        ("update_timeout", TimeoutArgs, update_timeout),
        ("set_reserved_concurrency", ReservedArgs, set_reserved_concurrency),
        ("remove_reserved_concurrency", FunctionArgs, remove_reserved_concurrency),
        ("get_account_concurrency", NoArgs, get_account_concurrency),
        ("list_versions", FunctionArgs, list_versions),
        ("update_alias", AliasArgs, update_alias),
        ("set_provisioned_concurrency", ProvisionedArgs, set_provisioned_concurrency),
    ]
    return [_make_tool(name, schema, impl) for name, schema, impl in specs]


TOOL_NAMES = (
    "list_functions",
    "get_function_configuration",
    "get_function_metrics",
    "search_logs",
    "update_memory",
    "update_timeout",
    "set_reserved_concurrency",
    "remove_reserved_concurrency",
    "get_account_concurrency",
    "list_versions",
    "update_alias",
    "set_provisioned_concurrency",
)
