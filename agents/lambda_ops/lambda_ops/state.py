"""A function's configuration as one flat, comparable record, read through boto3.

Checks and tests both need "what does the account say now" in the same shape
the scenario declares it (memory_mb, timeout_s, alias.live.version, ...).
"""

from __future__ import annotations

from typing import Any

def read_function_state(lambda_: Any, name: str) -> dict[str, Any] | None:
    """The function's live configuration, or None when it does not exist."""
    try:
        cfg = lambda_.get_function_configuration(FunctionName=name)
    except lambda_.exceptions.ResourceNotFoundException:
        return None
    vpc = cfg.get("VpcConfig") or {}
    subnets = list(vpc.get("SubnetIds") or [])
    sgs = list(vpc.get("SecurityGroupIds") or [])
    reserved = lambda_.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
    aliases: dict[str, dict[str, Any]] = {}
    for page in lambda_.get_paginator("list_aliases").paginate(FunctionName=name):
        for a in page.get("Aliases", []):
            weights = (a.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
            aliases[a["Name"]] = {
                "version": str(a["FunctionVersion"]),
                "routing": {str(k): float(v) for k, v in weights.items()},
            }
    provisioned: dict[str, int] = {}
    for page in lambda_.get_paginator("list_provisioned_concurrency_configs").paginate(FunctionName=name):
        for c in page.get("ProvisionedConcurrencyConfigs", []):
            provisioned[c["FunctionArn"].rsplit(":", 1)[-1]] = int(c["RequestedProvisionedConcurrentExecutions"])
    return {
        "name": name,
        "runtime": cfg.get("Runtime"),
        "handler": cfg.get("Handler"),
        "architecture": (cfg.get("Architectures") or ["x86_64"])[0],
        "memory_mb": int(cfg["MemorySize"]),
        "timeout_s": int(cfg["Timeout"]),
        "env": dict((cfg.get("Environment") or {}).get("Variables") or {}),
        "vpc": {"subnets": subnets, "security_groups": sgs} if subnets or sgs else None,
        "reserved_concurrency": None if reserved is None else int(reserved),
        "aliases": aliases,
        "provisioned_concurrency": provisioned,
    }


def field_value(state: dict[str, Any], field: str) -> Any:
    """The value of a check field (``alias.live.version``...) in a state record; None if unset.

    ``provisioned_concurrency.<alias>`` is what serves the alias: its own
    configuration, or the one on the version it points to.
    """
    head, _, rest = field.partition(".")
    if head in ("memory_mb", "timeout_s", "runtime", "handler", "architecture", "reserved_concurrency"):
        return state.get(head)
    if head == "env":
        return state["env"].get(rest)
    if head == "vpc":
        vpc = state.get("vpc") or {"subnets": [], "security_groups": []}
        return len(vpc["subnets"]) if rest == "subnet_count" else len(vpc["security_groups"])
    if head == "alias":
        name, _, attr = rest.rpartition(".")
        alias = state["aliases"].get(name)
        return None if alias is None else alias[attr]
    if head == "provisioned_concurrency":
        pcs = state["provisioned_concurrency"]
        own = pcs.get(rest, 0)
        alias = state["aliases"].get(rest)
        via_version = pcs.get(alias["version"], 0) if alias else 0
        return max(own, via_version)
    raise KeyError(field)
