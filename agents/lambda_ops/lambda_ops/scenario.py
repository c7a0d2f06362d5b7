"""Scenario files: a simulated AWS account, the operator's request, and what success means.

A scenario is the unit of evaluation for the lambda_ops agent. It declares the
functions (configuration, versions, aliases), the metric series and log lines
the simulated account is seeded with, and declarative checks on the final
state. The file is reviewed in PRs like any other data, so every mistake in it
is a ``file:line`` error rather than a surprise at seeding time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from selfheal.errors import FileFormatError, ScenarioError
from selfheal.yamlio import line_of, read_yaml, validate

MetricName = Literal["Duration", "MaxMemoryUsed", "Errors", "Throttles", "Invocations", "ConcurrentExecutions"]
# The task types keep cheatsheet sections and per-type metrics apart.
# lambda_misleading: the obvious fix for the symptom is wrong (errors that look
# like memory, throttles blamed on the account limit...); it is only ever set by
# a scenario file, a task's text cannot reveal it. lambda_config: a setting on
# the wrong qualifier or left behind (provisioned concurrency on an old version,
# a forgotten canary weight). cloudwatch_query: a question answered with a
# number or fact, nothing to change.
TaskType = Literal[
    "lambda_timeout",
    "lambda_memory",
    "lambda_cold_start",
    "lambda_throttling",
    "lambda_cost",
    "lambda_errors",
    "lambda_misleading",
    "lambda_config",
    "cloudwatch_query",
    "general",
]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)
Split = Literal["train", "dev", "test"]
SPLITS: tuple[str, ...] = get_args(Split)
# The tools look back at most 14 days (336 h); keep a margin.
MAX_HOURS = 330.0

_NAME = r"^[A-Za-z0-9_-]{1,64}$"
_FIELD = re.compile(
    r"^(memory_mb|timeout_s|runtime|handler|architecture|reserved_concurrency"
    r"|env\.[A-Za-z_][A-Za-z0-9_]*"
    r"|vpc\.(subnet_count|security_group_count)"
    r"|alias\.[A-Za-z0-9_-]+\.(version|routing)"
    r"|provisioned_concurrency\.[A-Za-z0-9_$-]+)$"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VpcSpec(_Strict):
    """Subnets and security groups by Name tag; the simulated account creates them."""

    subnets: list[str] = Field(min_length=1, max_length=16)
    security_groups: list[str] = Field(min_length=1, max_length=5)


class VersionSpec(_Strict):
    """A published version. Gaps before the first listed version are filled with older releases."""

    version: int = Field(ge=1, le=200)
    description: str = ""
    deployed_hours_ago: float = Field(ge=0, le=24 * 365)
    memory_mb: int | None = Field(None, ge=128, le=10240)
    timeout_s: int | None = Field(None, ge=1, le=900)


class AliasSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")]
    version: str
    routing: dict[str, float] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _not_a_number(cls, v: str) -> str:
        if v.isdigit():
            raise ValueError("an alias name cannot be a number (numbers are versions)")
        return v

    @field_validator("routing")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for ver, w in v.items():
            if not ver.isdigit() or not 0.0 <= w < 1.0:
                raise ValueError("routing maps a version number to a weight in [0, 1)")
        return v


class FunctionSpec(_Strict):
    name: Annotated[str, Field(pattern=_NAME)]
    description: str = ""
    runtime: str = "python3.12"
    handler: str = "app.handler"
    architecture: Literal["x86_64", "arm64"] = "x86_64"
    memory_mb: int = Field(ge=128, le=10240)
    timeout_s: int = Field(ge=1, le=900)
    env: dict[str, str] = Field(default_factory=dict)
    vpc: VpcSpec | None = None
    reserved_concurrency: int | None = Field(None, ge=0)
    versions: list[VersionSpec] = Field(default_factory=list)
    aliases: list[AliasSpec] = Field(default_factory=list)
    provisioned_concurrency: dict[str, int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _versions_ordered(self) -> FunctionSpec:
        nums = [v.version for v in self.versions]
        if nums != sorted(set(nums)):
            raise ValueError("versions must be listed in increasing order without repeats")
        hours = [v.deployed_hours_ago for v in self.versions]
        if hours != sorted(hours, reverse=True):
            raise ValueError("a later version cannot be deployed before an earlier one")
        return self

    def published(self) -> list[str]:
        """All published version numbers (fillers included), oldest first."""
        return [str(n) for n in range(1, (self.versions[-1].version if self.versions else 0) + 1)]


class SeriesSpec(_Strict):
    """A deterministic series generator, newest value last.

    ``constant``: base; ``ramp``: base -> to over the window; ``step``: base, then
    ``to`` from ``at_hours_ago`` on; ``spike``: base, ``to`` for ``width_hours``
    starting ``at_hours_ago``; ``explicit``: ``values`` fill the newest periods.
    ``noise`` is a relative standard deviation; ``min``/``max`` clamp.
    """

    pattern: Literal["constant", "ramp", "step", "spike", "explicit"] = "constant"
    base: float = 0.0
    to: float | None = None
    at_hours_ago: float | None = Field(None, ge=0)
    width_hours: float = Field(1.0, gt=0)
    noise: float = Field(0.0, ge=0, le=2)
    min: float | None = None
    max: float | None = None
    integer: bool = False
    values: list[float] | None = None

    @model_validator(mode="after")
    def _pattern_args(self) -> SeriesSpec:
        if self.pattern == "explicit" and not self.values:
            raise ValueError("pattern 'explicit' needs 'values'")
        if self.pattern != "explicit" and self.values is not None:
            raise ValueError("'values' is only for pattern 'explicit'")
        if self.pattern in ("ramp", "step", "spike") and self.to is None:
            raise ValueError(f"pattern '{self.pattern}' needs 'to'")
        if self.pattern in ("step", "spike") and self.at_hours_ago is None:
            raise ValueError(f"pattern '{self.pattern}' needs 'at_hours_ago'")
        return self


class MetricSpec(SeriesSpec):
    function: str
    metric: MetricName
    hours: float | None = Field(None, gt=0, le=MAX_HOURS)
    period_s: int | None = Field(None, ge=60, le=3600)

    @field_validator("period_s")
    @classmethod
    def _minute_multiple(cls, v: int | None) -> int | None:
        if v is not None and v % 60:
            raise ValueError("period_s must be a multiple of 60")
        return v


class ColdStartSpec(_Strict):
    """Every ``every``-th REPORT line is a cold start with an Init Duration around ``init_ms``."""

    every: int = Field(ge=1)
    init_ms: float = Field(gt=0)
    noise: float = Field(0.1, ge=0, le=1)


class ReportSpec(_Strict):
    """REPORT lines derived from the function's Duration (and MaxMemoryUsed) series.

    One line per ``every_periods`` metric periods; a duration at the timeout
    becomes a ``Task timed out`` pair, memory at the limit an OOM kill.
    """

    every_periods: int = Field(1, ge=1)
    cold_start: ColdStartSpec | None = None


class LogEventSpec(_Strict):
    """An explicit log line, optionally repeated; ``{value}`` cycles through ``values``."""

    message: str = Field(min_length=1)
    hours_ago: float = Field(ge=0, le=MAX_HOURS)
    repeat: int = Field(1, ge=1, le=5000)
    every_minutes: float = Field(60.0, gt=0)
    values: list[float | str] = Field(default_factory=list)
    version: str | None = None

    @model_validator(mode="after")
    def _placeholder(self) -> LogEventSpec:
        if "{value}" in self.message and not self.values:
            raise ValueError("message uses {value} but 'values' is empty")
        return self


class LogSpec(_Strict):
    function: str
    report: ReportSpec | None = None
    events: list[LogEventSpec] = Field(default_factory=list)


class CheckSpec(_Strict):
    """A declarative check on one function's final state, e.g. timeout_s gte 10.

    Either a condition (``function``, ``field``, ``op``, ``value``) or ``any_of``:
    a list of alternative conditions of which at least one must hold.
    """

    function: str | None = None
    field: str | None = None
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "absent", "present"] | None = None
    value: Any = None
    why: str = ""
    any_of: list[CheckSpec] | None = Field(None, min_length=2)

    @field_validator("field")
    @classmethod
    def _known_field(cls, v: str | None) -> str | None:
        if v is not None and not _FIELD.match(v):
            raise ValueError(
                f"unknown field '{v}' (known: memory_mb, timeout_s, runtime, handler, architecture, "
                "reserved_concurrency, env.NAME, vpc.subnet_count, vpc.security_group_count, "
                "alias.NAME.version, alias.NAME.routing, provisioned_concurrency.QUALIFIER)"
            )
        return v

    @model_validator(mode="after")
    def _shape(self) -> CheckSpec:
        if self.any_of is not None:
            if self.function or self.field or self.op or self.value is not None:
                raise ValueError("a check has either 'any_of' or function/field/op, not both")
            if any(alt.any_of is not None for alt in self.any_of):
                raise ValueError("'any_of' alternatives cannot nest 'any_of'")
            return self
        missing = [k for k in ("function", "field", "op") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a check needs {', '.join(missing)} (or 'any_of')")
        if self.op not in ("absent", "present") and self.value is None:
            raise ValueError(f"op '{self.op}' needs a 'value'")
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' needs a list 'value'")
        return self

    def conditions(self) -> list[CheckSpec]:
        """The conditions this check is made of (itself, or its alternatives)."""
        return list(self.any_of) if self.any_of is not None else [self]


class AccountSpec(_Strict):
    concurrency_limit: int = Field(1000, ge=100)


class Scenario(_Strict):
    """One evaluation case; also one dataset example (``name``, ``task``, ``split``, ``expect``...).

    ``split`` is fixed in the file so a lesson learned on ``train`` is measured
    on ``dev``/``test`` scenarios it never saw. ``expect`` holds assertions on
    the agent's output (e.g. ``contains``/``regex`` on the final answer,
    ``tool_calls``); it is passed through here and validated by the evaluation
    module. ``id`` is for datasets built from the files; leave it out of them.
    """

    name: Annotated[str, Field(pattern=_NAME)]
    id: str | None = None
    task_type: TaskType
    split: Split
    task: str = Field(min_length=1)
    description: str = ""
    success: str = Field(min_length=1)
    expect: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    hours: float = Field(48.0, gt=0, le=MAX_HOURS)
    period_s: int = Field(300, ge=60, le=3600)
    account: AccountSpec = Field(default_factory=AccountSpec)
    functions: list[FunctionSpec] = Field(min_length=1)
    metrics: list[MetricSpec] = Field(default_factory=list)
    logs: list[LogSpec] = Field(default_factory=list)
    checks: list[CheckSpec] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)

    @field_validator("period_s")
    @classmethod
    def _minute_multiple(cls, v: int) -> int:
        if v % 60:
            raise ValueError("period_s must be a multiple of 60")
        return v

    @field_validator("expect", "metadata")
    @classmethod
    def _plain(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Plain dicts/lists (not ruamel's commented types): consumers serialise and compare them."""
        return _plain_data(v)

    def function(self, name: str) -> FunctionSpec:
        for fn in self.functions:
            if fn.name == name:
                return fn
        raise KeyError(name)

    def metric(self, function: str, metric: str) -> MetricSpec | None:
        for m in self.metrics:
            if m.function == function and m.metric == metric:
                return m
        return None

    def metric_window(self, spec: MetricSpec) -> tuple[float, int]:
        """(hours, period_s) of a metric series, defaulting to the scenario's."""
        return (spec.hours or self.hours, spec.period_s or self.period_s)


def _plain_data(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_data(v) for v in value]
    return value


def _cross_check(scn: Scenario, raw: Any, path: Path) -> None:
    """References between sections: every error names the line of the bad reference."""

    def fail(loc: tuple[Any, ...], msg: str) -> None:
        raise FileFormatError(path, line_of(raw, loc), msg)

    if scn.name != path.stem:
        fail(("name",), f"scenario name '{scn.name}' must match the file name '{path.stem}'")
    names = [f.name for f in scn.functions]
    known = ", ".join(names)
    for i, fn in enumerate(scn.functions):
        if names.index(fn.name) != i:
            fail(("functions", i, "name"), f"function '{fn.name}' is declared twice")
        published = set(fn.published())
        aliases = {a.name for a in fn.aliases}
        for j, al in enumerate(fn.aliases):
            for v in (al.version, *al.routing):
                if v not in published:
                    fail(
                        ("functions", i, "aliases", j),
                        f"alias '{al.name}' of '{fn.name}' points to unpublished version '{v}'",
                    )
        for q, n in fn.provisioned_concurrency.items():
            if q not in published and q not in aliases:
                fail(
                    ("functions", i, "provisioned_concurrency", q),
                    f"provisioned concurrency qualifier '{q}' is neither a version nor an alias of '{fn.name}'",
                )
            if n < 1:
                fail(("functions", i, "provisioned_concurrency", q), "provisioned concurrency must be >= 1")
    for i, m in enumerate(scn.metrics):
        if m.function not in names:
            fail(("metrics", i, "function"), f"unknown function '{m.function}' (declared: {known})")
        hours, period = scn.metric_window(m)
        if hours * 3600 < period:
            fail(("metrics", i), "the window is shorter than one period")
        if m.values is not None and len(m.values) > hours * 3600 / period:
            fail(("metrics", i, "values"), "more values than periods in the window")
        if scn.metric(m.function, m.metric) is not m:
            fail(("metrics", i, "metric"), f"metric {m.metric} of '{m.function}' is declared twice")
    for i, lg in enumerate(scn.logs):
        if lg.function not in names:
            fail(("logs", i, "function"), f"unknown function '{lg.function}' (declared: {known})")
        if lg.report is not None and scn.metric(lg.function, "Duration") is None:
            fail(("logs", i, "report"), f"REPORT lines need a Duration metric for '{lg.function}'")
        published = set(scn.function(lg.function).published()) | {"$LATEST"}
        for j, ev in enumerate(lg.events):
            if ev.version is not None and ev.version not in published:
                fail(("logs", i, "events", j, "version"), f"'{lg.function}' has no version '{ev.version}'")
    for i, chk in enumerate(scn.checks):
        for j, c in enumerate(chk.conditions()):
            loc = ("checks", i, "any_of", j, "function") if chk.any_of is not None else ("checks", i, "function")
            if c.function not in names:
                fail(loc, f"unknown function '{c.function}' (declared: {known})")
    for i, u in enumerate(scn.unchanged):
        if u not in names:
            fail(("unchanged", i), f"unknown function '{u}' (declared: {known})")


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; every error is ``file:line: message``."""
    p = Path(path)
    raw = read_yaml(p)
    scn = validate(Scenario, raw, p)
    _cross_check(scn, raw, p)
    return scn


def list_scenarios(directory: Path | str) -> list[str]:
    """Scenario names (file stems) in a directory, sorted; empty when it does not exist."""
    d = Path(directory)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml") if p.is_file() and not p.name.startswith("."))


def scenario_path(directory: Path | str, name: str) -> Path:
    """The file of a scenario by name (or an explicit .yaml path); unknown names list the known ones."""
    as_path = Path(name)
    if as_path.suffix in (".yaml", ".yml") and as_path.is_file():
        return as_path
    p = Path(directory) / f"{name}.yaml"
    if p.is_file():
        return p
    known = list_scenarios(directory)
    listing = ", ".join(known) if known else f"none in {directory}"
    raise ScenarioError(f"unknown scenario '{name}' (known: {listing})")
