"""AWS APIs moto does not implement, served inside the simulated account.

moto has no GetAccountSettings, no provisioned concurrency, does not enforce
the account's unreserved-concurrency floor, and its FilterLogEvents returns
*every* event for patterns it cannot parse (``?ERROR ?WARN``). The tools must
work unchanged against real AWS, so instead of special-casing the simulation
in the tools, these operations are answered here, inside botocore's request
pipeline (``before-call`` short-circuit): parameters are validated by botocore
against the real service model, and errors come back as the modeled
``ClientError`` subclasses real AWS would raise.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSResponse

from lambda_ops.clock import Clock, lambda_time, wall_clock

_PARAMS = "selfheal_sim_params"
MIN_UNRESERVED = 100


class SimError(Exception):
    """An AWS-style error answered by the simulation."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _response(status: int, body: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    http = AWSResponse("https://simulated.invalid/", status, {}, None)
    body = dict(body)
    body["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": "simulated", "HTTPHeaders": {}}
    return http, body


class FilterPattern:
    """CloudWatch Logs term patterns: ``a b`` (all), ``"a phrase"``, ``?a ?b`` (any), ``-a`` (none).

    Matching is case-sensitive, as in CloudWatch. JSON (``{...}``) and
    space-delimited (``[...]``) patterns are refused with the error real AWS
    gives for a pattern it cannot parse, rather than matching everything.
    """

    def __init__(self, pattern: str) -> None:
        self.text = pattern.strip()
        self.all: list[str] = []
        self.any: list[str] = []
        self.none: list[str] = []
        if self.text[:1] in ("{", "["):
            raise SimError(
                "InvalidParameterException",
                "The simulated account supports term filter patterns only (terms, \"phrases\", ?any, -not)",
            )
        for token in self._tokens(self.text):
            if token.startswith("?") and len(token) > 1:
                self.any.append(self._unquote(token[1:]))
            elif token.startswith("-") and len(token) > 1:
                self.none.append(self._unquote(token[1:]))
            else:
                self.all.append(self._unquote(token))

    @staticmethod
    def _tokens(text: str) -> list[str]:
        tokens: list[str] = []
        cur = ""
        quoted = False
        for ch in text:
            if ch == '"':
                quoted = not quoted
                cur += ch
            elif ch.isspace() and not quoted:
                if cur:
                    tokens.append(cur)
                cur = ""
            else:
                cur += ch
        if quoted:
            raise SimError("InvalidParameterException", "Invalid filter pattern: unbalanced quotes")
        if cur:
            tokens.append(cur)
        return tokens

    @staticmethod
    def _unquote(token: str) -> str:
        if len(token) >= 2 and token[0] == token[-1] == '"':
            return token[1:-1]
        return token

    def matches(self, message: str) -> bool:
        if any(t in message for t in self.none):
            return False
        if not all(t in message for t in self.all):
            return False
        return not self.any or any(t in message for t in self.any)


class SimulatedApis:
    """The missing operations of one simulated account (state lives here)."""

    def __init__(self, account_id: str, region: str, concurrency_limit: int, *, clock: Clock = wall_clock) -> None:
        self.account_id = account_id
        self.region = region
        self.concurrency_limit = concurrency_limit
        self.clock = clock
        self._provisioned: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._lambda: Any = None

    # -- wiring -----------------------------------------------------------
    def install(self, client: Any) -> None:
        """Route the missing operations of ``client`` (lambda or logs) here, for good."""
        if client.meta.service_model.service_name == "lambda":
            self.bind_lambda(client)
        install_simulated_apis(client, lambda: self)

    def bind_lambda(self, client: Any) -> None:
        """The lambda client this account's state reads functions through."""
        self._lambda = client

    # -- helpers ----------------------------------------------------------
    def _functions(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self._lambda.get_paginator("list_functions").paginate():
            out.extend(page["Functions"])
        return out

    def _reserved(self, name: str) -> int | None:
        resp = self._lambda.get_function_concurrency(FunctionName=name)
        value = resp.get("ReservedConcurrentExecutions")
        return None if value is None else int(value)

    def _unreserved(self, *, exclude: str | None = None, extra: int = 0) -> int:
        """Account limit minus reservations and provisioned concurrency of unreserved functions."""
        total = 0
        for fn in self._functions():
            name = fn["FunctionName"]
            if name == exclude:
                continue
            reserved = self._reserved(name)
            if reserved is not None:
                total += reserved
            else:
                total += sum(
                    c["RequestedProvisionedConcurrentExecutions"]
                    for (f, _), c in self._provisioned.items()
                    if f == name
                )
        return self.concurrency_limit - total - extra

    def _function_name(self, name_or_arn: str) -> str:
        name = name_or_arn.split(":function:")[-1].split(":")[0]
        try:
            self._lambda.get_function_configuration(FunctionName=name)
        except self._lambda.exceptions.ResourceNotFoundException:
            raise SimError(
                "ResourceNotFoundException",
                f"Function not found: arn:aws:lambda:{self.region}:{self.account_id}:function:{name}",
                404,
            ) from None
        return name

    def _target_version(self, name: str, qualifier: str) -> str:
        """The version a qualifier resolves to; errors like AWS for $LATEST and unknown qualifiers."""
        if qualifier == "$LATEST":
            raise SimError(
                "InvalidParameterValueException",
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
            )
        try:
            if qualifier.isdigit():
                self._lambda.get_function_configuration(FunctionName=name, Qualifier=qualifier)
                return qualifier
            return str(self._lambda.get_alias(FunctionName=name, Name=qualifier)["FunctionVersion"])
        except self._lambda.exceptions.ResourceNotFoundException:
            raise SimError(
                "ResourceNotFoundException",
                f"Function not found: arn:aws:lambda:{self.region}:{self.account_id}:function:{name}:{qualifier}",
                404,
            ) from None

    # -- Lambda -----------------------------------------------------------
    def _get_account_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            functions = self._functions()
            return {
                "AccountLimit": {
                    "TotalCodeSize": 80530636800,
                    "CodeSizeUnzipped": 262144000,
                    "CodeSizeZipped": 52428800,
                    "ConcurrentExecutions": self.concurrency_limit,
                    "UnreservedConcurrentExecutions": self._unreserved(),
                },
                "AccountUsage": {
                    "TotalCodeSize": sum(int(f.get("CodeSize", 0)) for f in functions),
                    "FunctionCount": len(functions),
                },
            }

    def _put_function_concurrency(self, params: dict[str, Any]) -> None:
        with self._lock:
            name = self._function_name(params["FunctionName"])
            wanted = int(params["ReservedConcurrentExecutions"])
            pc = sum(
                c["RequestedProvisionedConcurrentExecutions"] for (f, _), c in self._provisioned.items() if f == name
            )
            if wanted < pc:
                raise SimError(
                    "InvalidParameterValueException",
                    f"Reserved concurrency ({wanted}) cannot be lower than the provisioned concurrency "
                    f"configured on the function ({pc}).",
                )
            if self._unreserved(exclude=name, extra=wanted) < MIN_UNRESERVED:
                raise SimError(
                    "InvalidParameterValueException",
                    "Specified ReservedConcurrentExecutions for function decreases account's "
                    f"UnreservedConcurrentExecution below its minimum value of [{MIN_UNRESERVED}].",
                )
        return None  # valid: moto stores it

    def _put_provisioned(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = self._function_name(params["FunctionName"])
            qualifier = str(params["Qualifier"])
            wanted = int(params["ProvisionedConcurrentExecutions"])
            version = self._target_version(name, qualifier)
            for (f, q), cfg in self._provisioned.items():
                if f != name or q == qualifier:
                    continue
                if cfg["_version"] == version and (q.isdigit() or qualifier.isdigit()):
                    raise SimError(
                        "ResourceConflictException",
                        f"Alias and version {version} of {name} cannot both have provisioned concurrency "
                        f"(already configured on '{q}').",
                        409,
                    )
            others = sum(
                c["RequestedProvisionedConcurrentExecutions"]
                for (f, q), c in self._provisioned.items()
                if f == name and q != qualifier
            )
            reserved = self._reserved(name)
            if reserved is not None:
                if others + wanted > reserved:
                    raise SimError(
                        "InvalidParameterValueException",
                        "Requested Provisioned Concurrency should not be greater than the "
                        f"reservedConcurrentExecution for function ({reserved}).",
                    )
            else:
                current = self._provisioned.get((name, qualifier), {}).get("RequestedProvisionedConcurrentExecutions", 0)
                available = self._unreserved() + current
                if available - wanted < MIN_UNRESERVED:
                    raise SimError(
                        "InvalidParameterValueException",
                        f"Specified ConcurrentExecutions for function is greater than account's unreserved "
                        f"concurrency [{available - MIN_UNRESERVED}].",
                    )
            cfg = {
                "RequestedProvisionedConcurrentExecutions": wanted,
                "AvailableProvisionedConcurrentExecutions": wanted,
                "AllocatedProvisionedConcurrentExecutions": wanted,
                "Status": "READY",
                "LastModified": lambda_time(self.clock()),
                "_version": version,
            }
            self._provisioned[(name, qualifier)] = cfg
            return _public(cfg)

    def _get_provisioned(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = self._function_name(params["FunctionName"])
            qualifier = str(params["Qualifier"])
            cfg = self._provisioned.get((name, qualifier))
            if cfg is None:
                raise SimError(
                    "ProvisionedConcurrencyConfigNotFoundException",
                    f"No Provisioned Concurrency Config found for this function: {name}:{qualifier}",
                    404,
                )
            return _public(cfg)

    def _delete_provisioned(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = self._function_name(params["FunctionName"])
            qualifier = str(params["Qualifier"])
            if self._provisioned.pop((name, qualifier), None) is None:
                raise SimError(
                    "ProvisionedConcurrencyConfigNotFoundException",
                    f"No Provisioned Concurrency Config found for this function: {name}:{qualifier}",
                    404,
                )
            return {}

    def _list_provisioned(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = self._function_name(params["FunctionName"])
            arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
            configs = [
                {"FunctionArn": f"{arn}:{q}", **_public(c)}
                for (f, q), c in sorted(self._provisioned.items())
                if f == name
            ]
            return {"ProvisionedConcurrencyConfigs": configs}

    # -- Logs -------------------------------------------------------------
    def _filter_log_events(self, params: dict[str, Any]) -> dict[str, Any]:
        from moto.logs.models import logs_backends

        backend = logs_backends[self.account_id][self.region]
        group = params.get("logGroupName") or str(params.get("logGroupIdentifier", "")).split(":log-group:")[-1]
        if group not in backend.groups:
            raise SimError("ResourceNotFoundException", "The specified log group does not exist.")
        limit = int(params.get("limit") or 10000)
        if limit > 10000:
            raise SimError("InvalidParameterException", "1 validation error: limit must be <= 10000")
        pattern = FilterPattern(str(params.get("filterPattern") or ""))
        start = int(params.get("startTime") or 0)
        end = int(params.get("endTime") or 2**62)
        wanted_streams = set(params.get("logStreamNames") or [])
        prefix = params.get("logStreamNamePrefix") or ""
        events: list[dict[str, Any]] = []
        for sname, stream in backend.groups[group].streams.items():
            if (wanted_streams and sname not in wanted_streams) or not sname.startswith(prefix):
                continue
            for ev in stream.events:
                if start <= ev.timestamp <= end and pattern.matches(ev.message):
                    events.append(
                        {
                            "logStreamName": sname,
                            "timestamp": ev.timestamp,
                            "message": ev.message,
                            "ingestionTime": ev.ingestion_time,
                            "eventId": str(ev.event_id),
                        }
                    )
        events.sort(key=lambda e: (e["timestamp"], e["logStreamName"]))
        offset = 0
        token = params.get("nextToken")
        if token:
            try:
                offset = int(str(token).removeprefix("sim-"))
            except ValueError:
                raise SimError("InvalidParameterException", "The specified nextToken is invalid.") from None
        page = events[offset : offset + limit]
        body: dict[str, Any] = {"events": page, "searchedLogStreams": []}
        if offset + limit < len(events):
            body["nextToken"] = f"sim-{offset + limit}"
        return body


def _public(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _stash(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """Keep the caller's parameters: ``before-call`` only sees the serialised request."""
    context[_PARAMS] = dict(params)


# The operations answered by SimulatedApis instead of moto: service -> operation -> method.
_OPERATIONS: dict[str, dict[str, str]] = {
    "lambda": {
        "GetAccountSettings": "_get_account_settings",
        "PutFunctionConcurrency": "_put_function_concurrency",
        "PutProvisionedConcurrencyConfig": "_put_provisioned",
        "GetProvisionedConcurrencyConfig": "_get_provisioned",
        "DeleteProvisionedConcurrencyConfig": "_delete_provisioned",
        "ListProvisionedConcurrencyConfigs": "_list_provisioned",
    },
    "logs": {"FilterLogEvents": "_filter_log_events"},
}


def install_simulated_apis(client: Any, apis: Callable[[], SimulatedApis]) -> None:
    """Answer ``client``'s missing operations from whichever account ``apis()`` returns at call time.

    The account is looked up per call, not at install time, so a client can be
    reused by one simulated account after another (see ``aws._ClientPool``).
    """
    service = client.meta.service_model.service_name
    sid = client.meta.service_model.service_id.hyphenize()
    for op, method in _OPERATIONS.get(service, {}).items():
        client.meta.events.register(f"before-parameter-build.{sid}.{op}", _stash)
        client.meta.events.register(f"before-call.{sid}.{op}", _dispatcher(apis, method))


def _dispatcher(
    apis: Callable[[], SimulatedApis], method: str
) -> Callable[..., tuple[AWSResponse, dict[str, Any]] | None]:
    def handler(context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        params = context.get(_PARAMS, {})
        try:
            body = getattr(apis(), method)(params)
        except SimError as err:
            return _response(err.status, {"Error": {"Code": err.code, "Message": err.message}})
        if body is None:
            return None
        return _response(200, body)

    return handler
