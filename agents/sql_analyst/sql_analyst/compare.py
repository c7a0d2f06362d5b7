"""Execution accuracy: does a query's result equal the gold query's result?

Rules (documented in the README):

* column names are ignored; columns are matched by their values, so a result
  may carry extra columns (an id next to a name) and list them in any order;
* rows are multisets: order matters only when the question asks for one
  (``ordered``), duplicates count;
* two values match when both are numbers (or numeric text) within the
  tolerance — ``abs`` (default 0.005, half a cent) or ``rel`` (default 1e-4
  of the larger magnitude), whichever is looser — or when they are equal text
  (whitespace-trimmed) / both NULL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Row = tuple[Any, ...]
DEFAULT_ABS = 0.005
DEFAULT_REL = 1e-4
MAX_SHOWN = 5


@dataclass(frozen=True)
class Tolerance:
    abs: float = DEFAULT_ABS
    rel: float = DEFAULT_REL


@dataclass(frozen=True)
class Comparison:
    equal: bool
    detail: str


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip().replace(",", ""))
        except ValueError:
            return None
    return None


def values_match(a: Any, b: Any, tol: Tolerance = Tolerance()) -> bool:
    if a is None or b is None:
        return a is None and b is None
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        return abs(na - nb) <= max(tol.abs, tol.rel * max(abs(na), abs(nb)))
    return str(a).strip() == str(b).strip()


def _rows_match(a: Row, b: Row, tol: Tolerance) -> bool:
    return len(a) == len(b) and all(values_match(x, y, tol) for x, y in zip(a, b, strict=True))


def _sort_key(row: Row) -> tuple:
    key = []
    for v in row:
        n = _num(v)
        key.append((0, n, "") if n is not None else (1, 0.0, "" if v is None else str(v)))
    return tuple(key)


def _column(rows: Sequence[Row], j: int) -> list[Any]:
    return [r[j] for r in rows]


def _column_fits(gold: list[Any], got: list[Any], ordered: bool, tol: Tolerance) -> bool:
    if len(gold) != len(got):
        return False
    if ordered:
        return all(values_match(a, b, tol) for a, b in zip(gold, got, strict=True))
    ga = sorted(gold, key=lambda v: _sort_key((v,)))
    gb = sorted(got, key=lambda v: _sort_key((v,)))
    return all(values_match(a, b, tol) for a, b in zip(ga, gb, strict=True))


def _column_mapping(gold: Sequence[Row], got: Sequence[Row], width: int, got_width: int,
                    ordered: bool, tol: Tolerance) -> list[int] | None:
    """For each gold column, a distinct result column holding the same values (None: no such mapping)."""
    if not gold or not got or len(gold) != len(got):
        return None
    candidates = [[k for k in range(got_width) if _column_fits(_column(gold, j), _column(got, k), ordered, tol)]
                  for j in range(width)]

    def assign(j: int, used: frozenset[int]) -> list[int] | None:
        if j == width:
            return []
        for k in candidates[j]:
            if k not in used:
                rest = assign(j + 1, used | {k})
                if rest is not None:
                    return [k, *rest]
        return None

    return assign(0, frozenset())


def _fmt(row: Row) -> str:
    return "(" + ", ".join("NULL" if v is None else repr(v) for v in row) + ")"


def compare_results(gold: Sequence[Row], got: Sequence[Row], *, ordered: bool = False,
                    tolerance: Tolerance = Tolerance()) -> Comparison:
    """Compare a result with the gold result; ``detail`` is a readable diff."""
    gold = [tuple(r) for r in gold]
    got = [tuple(r) for r in got]
    width = len(gold[0]) if gold else 0
    got_width = len(got[0]) if got else 0
    head = f"gold: {len(gold)} row(s) x {width} column(s); got: {len(got)} row(s) x {got_width} column(s)"
    if not gold and not got:
        return Comparison(True, head + "; both empty")
    projected = got
    note = ""
    if got and gold and got_width >= width:
        mapping = _column_mapping(gold, got, width, got_width, ordered, tolerance)
        if mapping is None and got_width == width:
            mapping = list(range(width))
        elif mapping is None:
            mapping = list(range(width))
            note = f"; no {width} result column(s) hold the gold values, comparing the first {width}"
        elif mapping != list(range(width)) or got_width != width:
            note = f"; result columns {[m + 1 for m in mapping]} compared with gold columns {list(range(1, width + 1))}"
        projected = [tuple(r[k] for k in mapping) for r in got]
    elif got and got_width < width:
        return Comparison(False, head + f"; the result has fewer columns than the gold answer ({got_width} < {width})"
                          + f"\nfirst gold row: {_fmt(gold[0])}\nfirst result row: {_fmt(got[0])}")
    if ordered:
        for i, (a, b) in enumerate(zip(gold, projected, strict=False)):
            if not _rows_match(a, b, tolerance):
                return Comparison(False, head + note + f"\nfirst difference at row {i + 1} (in order): "
                                  f"gold {_fmt(a)} vs got {_fmt(b)}")
        if len(gold) != len(projected):
            longer, which = (gold, "missing") if len(gold) > len(projected) else (projected, "extra")
            rows = longer[min(len(gold), len(projected)):][:MAX_SHOWN]
            return Comparison(False, head + note + f"\n{which} rows at the end: " + ", ".join(map(_fmt, rows)))
        return Comparison(True, head + note + "; all rows match in order")
    # multisets: greedy matching over rows sorted the same way
    unmatched = sorted(projected, key=_sort_key)
    missing: list[Row] = []
    for row in sorted(gold, key=_sort_key):
        for i, cand in enumerate(unmatched):
            if _rows_match(row, cand, tolerance):
                del unmatched[i]
                break
        else:
            missing.append(row)
    if not missing and not unmatched:
        return Comparison(True, head + note + "; all rows match (order ignored)")
    lines = [head + note]
    if missing:
        lines.append(f"missing (in gold, not in result): {len(missing)} row(s), e.g. "
                     + ", ".join(map(_fmt, missing[:MAX_SHOWN])))
    if unmatched:
        lines.append(f"extra (in result, not in gold): {len(unmatched)} row(s), e.g. "
                     + ", ".join(map(_fmt, unmatched[:MAX_SHOWN])))
    if len(gold) == 1 and len(projected) == 1:
        diffs = [f"column {j + 1}: gold {gold[0][j]!r} vs got {projected[0][j]!r}"
                 for j in range(width) if not values_match(gold[0][j], projected[0][j], tolerance)]
        lines.append("first differing value: " + diffs[0])
    return Comparison(False, "\n".join(lines))
