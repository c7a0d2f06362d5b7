"""Evidence-based verification of a scenario's final state.

The verdict comes from what the account says after the run — never from what
the model claims it did. ``unchanged`` functions are compared with their
declaration in the scenario, so collateral changes (a decoy's memory, a
bystander's alias) fail the run too.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from selfheal import CheckResult, Verdict
from lambda_ops.aws import AwsClients
from lambda_ops.scenario import CheckSpec, FunctionSpec, Scenario
from lambda_ops.state import field_value, read_function_state

_OPS: dict[str, tuple[str, Callable[[Any, Any], bool]]] = {
    "eq": ("==", operator.eq),
    "ne": ("!=", operator.ne),
    "gt": (">", operator.gt),
    "gte": (">=", operator.ge),
    "lt": ("<", operator.lt),
    "lte": ("<=", operator.le),
    "in": ("in", lambda a, b: a in b),
    "not_in": ("not in", lambda a, b: a not in b),
}


def _normalise(actual: Any, expected: Any) -> tuple[Any, Any]:
    """Compare versions and numbers written either way in YAML ("6" vs 6)."""
    if isinstance(actual, str) and isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return float(actual), float(expected)
        except ValueError:
            return actual, expected
    if isinstance(expected, list) and isinstance(actual, str):
        return actual, [str(e) for e in expected]
    return actual, expected


def describe(check: CheckSpec) -> str:
    """'fn: field op value' for one condition (any_of checks are described per alternative)."""
    if check.any_of is not None:
        return "any of: " + " | ".join(describe(c) for c in check.any_of)
    assert check.op is not None
    if check.op == "absent":
        return f"{check.function}: {check.field} is not set"
    if check.op == "present":
        return f"{check.function}: {check.field} is set"
    return f"{check.function}: {check.field} {_OPS[check.op][0]} {check.value!r}"


def _is_set(field: str, value: Any) -> bool:
    if field.startswith("provisioned_concurrency."):
        return bool(value)
    return value is not None and value != {} and value != ""


def evaluate_check(check: CheckSpec, states: dict[str, dict[str, Any] | None]) -> CheckResult:
    """One condition; the description carries its reason, the detail the observed value."""
    assert check.function is not None and check.field is not None and check.op is not None
    desc = describe(check)
    if check.why:
        desc = f"{desc} ({check.why})"
    state = states.get(check.function)
    if state is None:
        return CheckResult(desc, False, f"function {check.function} does not exist")
    actual = field_value(state, check.field)
    if check.op in ("absent", "present"):
        is_set = _is_set(check.field, actual)
        passed = is_set if check.op == "present" else not is_set
        return CheckResult(desc, passed, f"is {actual!r}")
    if actual is None:
        return CheckResult(desc, False, "is not set")
    a, e = _normalise(actual, check.value)
    try:
        passed = bool(_OPS[check.op][1](a, e))
    except TypeError:
        passed = False
    return CheckResult(desc, passed, f"is {actual!r}")


def declared_state(fn: FunctionSpec) -> dict[str, Any]:
    """The parts of a function's state its declaration fixes (compared for ``unchanged``)."""
    return {
        "runtime": fn.runtime,
        "handler": fn.handler,
        "architecture": fn.architecture,
        "memory_mb": fn.memory_mb,
        "timeout_s": fn.timeout_s,
        "env": dict(fn.env),
        "vpc_subnets": len(fn.vpc.subnets) if fn.vpc else 0,
        "vpc_security_groups": len(fn.vpc.security_groups) if fn.vpc else 0,
        "reserved_concurrency": fn.reserved_concurrency,
        "aliases": {a.name: {"version": a.version, "routing": {k: float(v) for k, v in a.routing.items()}} for a in fn.aliases},
        "provisioned_concurrency": dict(fn.provisioned_concurrency),
    }


def comparable_state(state: dict[str, Any]) -> dict[str, Any]:
    vpc = state.get("vpc") or {"subnets": [], "security_groups": []}
    return {
        "runtime": state["runtime"],
        "handler": state["handler"],
        "architecture": state["architecture"],
        "memory_mb": state["memory_mb"],
        "timeout_s": state["timeout_s"],
        "env": state["env"],
        "vpc_subnets": len(vpc["subnets"]),
        "vpc_security_groups": len(vpc["security_groups"]),
        "reserved_concurrency": state["reserved_concurrency"],
        "aliases": state["aliases"],
        "provisioned_concurrency": state["provisioned_concurrency"],
    }


def check_unchanged(fn: FunctionSpec, state: dict[str, Any] | None) -> CheckResult:
    desc = f"{fn.name}: unchanged (collateral changes are failures)"
    if state is None:
        return CheckResult(desc, False, f"function {fn.name} no longer exists")
    want, have = declared_state(fn), comparable_state(state)
    diffs = []
    for key in want:
        if want[key] != have[key]:
            if key == "env":
                diffs.append("env changed")  # never echo values: they may be secrets
            else:
                diffs.append(f"{key} {want[key]!r} -> {have[key]!r}")
    return CheckResult(desc, not diffs, "; ".join(diffs) if diffs else "as declared")


def verify(scenario: Scenario, clients: AwsClients) -> Verdict:
    """Run the scenario's checks against the account's current state."""
    names = {c.function for chk in scenario.checks for c in chk.conditions() if c.function}
    names |= set(scenario.unchanged)
    states = {n: read_function_state(clients.lambda_, n) for n in sorted(names)}
    results: list[CheckResult] = []
    for chk in scenario.checks:
        if chk.any_of is not None:
            subs = [evaluate_check(c, states) for c in chk.any_of]
            desc = describe(chk)
            if chk.why:
                desc = f"{desc} ({chk.why})"
            detail = "; ".join(f"{describe(c)}: {s.detail}" for c, s in zip(chk.any_of, subs, strict=True))
            results.append(CheckResult(desc, any(s.passed for s in subs), detail))
        else:
            results.append(evaluate_check(chk, states))
    for name in scenario.unchanged:
        results.append(check_unchanged(scenario.function(name), states[name]))
    if not results:
        return Verdict(None, [], f"scenario {scenario.name} declares no checks")
    failed = [r for r in results if not r.passed]
    if failed:
        summary = f"{len(failed)}/{len(results)} checks failed: " + "; ".join(
            f"{r.description} [{r.detail}]" for r in failed
        )
        return Verdict(False, results, summary)
    return Verdict(True, results, f"all {len(results)} checks passed")
