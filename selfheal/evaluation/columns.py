"""Several experiments side by side against one reference column (a learning table).

:mod:`selfheal.evaluation.compare` pairs two experiments; a learning study
reports five or six (seed, learned, optimized, demos, ...) on the same test
split, each against the seed. This module computes one row of numbers per
column, paired on the example *name* with the reference column: success with
its Wilson 95% interval, the delta in points, McNemar's exact p and the flips
both ways. An example without a verdict (error, timeout, cache miss) counts as
a failure in the rates and is also counted apart, never hidden and never a
pass. A column that was not run carries its reason instead of numbers.
Grouped rows (per task type, per convention or any other label) give each
column's success within the group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from selfheal.evaluation.results import ExampleResult, ExperimentResult
from selfheal.evaluation.stats import Interval, mcnemar_exact, wilson_interval


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Column:
    """One column to compare: its results, or why there are none (``result`` None)."""

    id: str
    label: str
    result: ExperimentResult | None
    not_run_reason: str = ""


class ColumnStats(_Model):
    """One column's headline numbers (all None/0 for a column that was not run)."""

    id: str
    label: str
    status: str                       # "ok" or "not run"
    reason: str = ""                  # why not run
    n: int = 0
    passed: int = 0
    rate: float | None = None
    ci: Interval | None = None
    no_verdict: int = 0               # errors + timeouts + cache misses (counted as failures)
    n_paired: int = 0                 # examples paired with the reference by name
    delta_points: float | None = None  # (rate - reference rate) * 100 over the paired examples
    mcnemar_p: float | None = None
    fail_to_pass: int = 0             # vs the reference
    pass_to_fail: int = 0
    fail_to_pass_names: list[str] = Field(default_factory=list)
    pass_to_fail_names: list[str] = Field(default_factory=list)
    only_here: list[str] = Field(default_factory=list)         # examples the reference lacks
    missing_here: list[str] = Field(default_factory=list)      # reference examples this column lacks
    mean_tokens: float | None = None  # per test example
    mean_latency_s: float | None = None
    #: mean model generation time per example, live or as recorded (replayed runs' latency is ~0);
    #: None unless every example knows it
    mean_model_s: float | None = None


class GroupCell(_Model):
    passed: int
    n: int


class GroupRow(_Model):
    """One group's success per column (column id -> cell; absent when the column was not run)."""

    kind: str                         # e.g. "task_type", "conventions"
    group: str
    cells: dict[str, GroupCell]


class ColumnTable(_Model):
    reference: str
    columns: list[ColumnStats]
    groups: list[GroupRow] = Field(default_factory=list)


def _by_name(result: ExperimentResult) -> dict[str, ExampleResult]:
    return {r.name: r for r in result.results}


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def column_stats(column: Column, reference: ExperimentResult | None) -> ColumnStats:
    """The column's numbers; paired statistics only when the reference column ran."""
    if column.result is None:
        return ColumnStats(id=column.id, label=column.label, status="not run", reason=column.not_run_reason)
    rs = column.result.results
    passed = sum(1 for r in rs if r.passed)
    model_s = [r.model_s for r in rs if r.model_s is not None]  # known for every example, or no mean
    stats = ColumnStats(
        id=column.id,
        label=column.label,
        status="ok",
        n=len(rs),
        passed=passed,
        rate=passed / len(rs) if rs else None,
        ci=wilson_interval(passed, len(rs)),
        no_verdict=sum(1 for r in rs if r.status != "ok"),
        mean_tokens=_mean([float(r.total_tokens) for r in rs]),
        mean_latency_s=_mean([float(r.latency_s) for r in rs]),
        mean_model_s=_mean(model_s) if len(model_s) == len(rs) else None,
    )
    if reference is None:
        return stats
    mine, ref = _by_name(column.result), _by_name(reference)
    paired = [name for name in ref if name in mine]
    up = sorted(n for n in paired if not ref[n].passed and mine[n].passed)
    down = sorted(n for n in paired if ref[n].passed and not mine[n].passed)
    ref_pass = sum(1 for n in paired if ref[n].passed)
    my_pass = sum(1 for n in paired if mine[n].passed)
    return stats.model_copy(update={
        "n_paired": len(paired),
        "delta_points": (my_pass - ref_pass) * 100 / len(paired) if paired else None,
        "mcnemar_p": mcnemar_exact(len(down), len(up)) if paired else None,
        "fail_to_pass": len(up),
        "pass_to_fail": len(down),
        "fail_to_pass_names": up,
        "pass_to_fail_names": down,
        "only_here": sorted(set(mine) - set(ref)),
        "missing_here": sorted(set(ref) - set(mine)),
    })


def group_rows(
    columns: Sequence[Column], kind: str, labels_of: Callable[[ExampleResult], Sequence[str]]
) -> list[GroupRow]:
    """Success per column within each label ``labels_of`` gives an example (an example may have several)."""
    cells: dict[str, dict[str, GroupCell]] = {}
    for col in columns:
        if col.result is None:
            continue
        for r in col.result.results:
            for label in labels_of(r):
                row = cells.setdefault(label, {})
                cell = row.setdefault(col.id, GroupCell(passed=0, n=0))
                cell.n += 1
                cell.passed += int(r.passed)
    return [GroupRow(kind=kind, group=g, cells=cells[g]) for g in sorted(cells)]


def compare_columns(
    columns: Sequence[Column],
    reference: str,
    groupings: dict[str, Callable[[ExampleResult], Sequence[str]]] | None = None,
) -> ColumnTable:
    """Every column against ``reference`` (a column id), in the given order, plus grouped rows.

    ``groupings`` maps a group kind (``task_type``, ``conventions``) to a function
    giving an example's labels of that kind; task type is always included.
    """
    ids = [c.id for c in columns]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate column ids: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    if reference not in ids:
        raise ValueError(f"reference column {reference!r} is not one of: {', '.join(ids)}")
    ref = next(c for c in columns if c.id == reference).result
    stats = []
    for col in columns:
        s = column_stats(col, ref if col.id != reference else None)
        if col.id == reference and col.result is not None:
            s = s.model_copy(update={"n_paired": s.n})
        stats.append(s)
    kinds: dict[str, Callable[[ExampleResult], Sequence[str]]] = {"task_type": lambda r: [r.task_type]}
    kinds.update(groupings or {})
    rows: list[GroupRow] = []
    for kind, fn in kinds.items():
        rows.extend(group_rows(columns, kind, fn))
    return ColumnTable(reference=reference, columns=stats, groups=rows)
