"""LangSmith run filters compiled to SQLite, with the semantics of :func:`filters.evaluate`.

``compile_filter(parse_filter(text))`` gives a WHERE clause over the ``runs``
table with named parameters only (no filter text ever reaches the SQL), so
``LocalTraceStore.query_runs`` answers the same filter strings as LangSmith's
``list_runs(filter=...)`` without loading runs into Python.

How the reference semantics map to SQL (see the module doc of
:mod:`selfheal.tracing.filters`):

* Missing/null fields: SQL's NULL makes a comparison unknown, which a WHERE
  treats as false, exactly as ``evaluate`` does; ``neq`` is compiled as
  ``NOT IFNULL(eq, 0)`` (or the null-safe ``IS NOT``) so that it stays
  ``not eq`` on NULLs.
* Typed equality on JSON values (metadata, inputs, outputs) checks
  ``json_type`` as well as the value, because ``json_extract`` turns ``true``
  into ``1``; a string in the filter also matches a number or boolean whose
  JSON text it is, compared through :func:`json.dumps` as ``evaluate`` does.
* Pair fields are compiled per :class:`~selfheal.tracing.filters.PairGroup`
  into one ``EXISTS`` (or ``NOT EXISTS``) over the run's entries:
  ``json_each`` for metadata/inputs/outputs, the ``feedback`` table for feedback.
* ``search`` registers Python functions on the connection, because SQLite's
  ``lower()`` and ``LIKE`` fold ASCII only and ``evaluate`` uses ``str.lower``.
* Filters on ``status``, ``start_time``, ``name``, ids and the metadata keys
  with a generated column (``task_type``, ``success``, ``error_type``) compile
  to plain column tests the planner serves from an index; JSON tests on those
  keys get an implied ``meta_<key> IN (...)`` test in front for the same reason.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from selfheal.tracing.filters import (
    And,
    Comparison,
    Filter,
    Kind,
    Or,
    PairGroup,
    Search,
    _deep_eq,  # the reference deep equality, shared so containers compare alike
    field_spec,
    parse_filter,
    split_pairs,
)
from selfheal.tracing.migrations import INDEXED_METADATA_KEYS
from selfheal.tracing.schema import FeedbackRecord, RunRecord

__all__ = ["SqlFilter", "compile_filter", "filter_mapping", "install_functions", "to_filter"]

_FN_ICONTAINS = "selfheal_icontains"
_FN_JSON_TEXT = "selfheal_json_text"
_FN_DEEP_EQ = "selfheal_json_deep_eq"
_META_PREFIX = "metadata."
#: Metadata keys safe to splice into a quoted JSON path (``$.metadata."key"``).
_PATH_KEY = re.compile(r"^[A-Za-z0-9_.\- ]+$")
_NUMERIC_TYPES = "('integer', 'real')"
#: Needles whose presence in a string leaf implies presence in the raw JSON text: no
#: character JSON escapes, and no sigma (whose lower case depends on its neighbours).
_RAW_SAFE = re.compile(r'[^"\\\x00-\x1f\u03a3\u03c3\u03c2]*')
_INT64 = 2**63

_TEXT_COLUMNS = frozenset(
    {"id", "trace_id", "parent_run_id", "name", "run_type", "status", "error"}
)
_TIME_COLUMNS = frozenset({"start_time", "end_time"})
_TOKEN_COLUMNS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})
_LATENCY_SQL = "((runs.end_us - runs.start_us) / 1000000.0)"
_SQL_OPS = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass(frozen=True)
class SqlFilter:
    """A WHERE clause over ``runs`` and its named parameters."""

    where: str
    params: Mapping[str, Any]


def to_filter(value: str | Filter) -> Filter:
    """A parsed filter from text (raising ``FilterError``) or an already parsed one."""
    return parse_filter(value) if isinstance(value, str) else value


def compile_filter(node: Filter, *, prefix: str = "f") -> SqlFilter:
    """Compile a parsed filter; parameters are named ``:<prefix><n>``."""
    c = _Compiler(prefix)
    return SqlFilter(c.node(node), dict(c.params))


def install_functions(conn: sqlite3.Connection) -> None:
    """Register the Python functions compiled filters call (cheap; safe to repeat)."""
    conn.create_function(_FN_ICONTAINS, 2, _icontains, deterministic=True)
    conn.create_function(_FN_JSON_TEXT, 1, _json_text, deterministic=True)
    conn.create_function(_FN_DEEP_EQ, 2, _json_deep_eq, deterministic=True)


def filter_mapping(run: RunRecord, feedback: Iterable[FeedbackRecord] = ()) -> dict[str, Any]:
    """A stored run as the mapping :func:`filters.evaluate` reads (with its feedback)."""
    data = run.model_dump()
    data["feedback"] = [{"key": f.key, "score": f.score} for f in feedback]
    return data


# -- SQL functions -------------------------------------------------------------------


def _icontains(haystack: Any, needle: Any) -> int:
    """``needle`` (already lower-cased) in ``haystack.lower()``: Unicode case folding."""
    return int(isinstance(haystack, str) and isinstance(needle, str) and needle in haystack.lower())


def _json_text(value: Any) -> str | None:
    """The JSON text Python writes for a number, as ``evaluate`` compares it to strings."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)
    return None


def _json_deep_eq(stored: Any, expected: Any) -> int:
    if not isinstance(stored, str) or not isinstance(expected, str):
        return 0
    try:
        return int(_deep_eq(json.loads(stored), json.loads(expected)))
    except ValueError:
        return 0


# -- compiler ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    """A JSON value in SQL: its ``json_type`` text and its SQL value (NULL type = missing)."""

    type_sql: str
    value_sql: str
    #: The value is an indexed generated column: worth an implied test in front.
    indexed: bool = False


def _fixed_iso(dt: datetime) -> str:
    """Stored timestamp text (``serde.iso``), with the year zero-padded so text order holds."""
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return f"{dt.year:04d}-{dt:%m-%dT%H:%M:%S}.{dt.microsecond:06d}Z"


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _number_text(s: str) -> int | float | None:
    """The number whose ``json.dumps`` is exactly ``s``, if any."""
    try:
        v = json.loads(s)
    except ValueError:
        return None
    return v if _is_num(v) and json.dumps(v) == s else None


def _and(parts: Sequence[str]) -> str:
    if not parts:
        return "1"
    return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"


def _or(parts: Sequence[str]) -> str:
    if not parts:
        return "0"
    return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"


def _not(sql: str) -> str:
    return f"NOT IFNULL({sql}, 0)"


class _Compiler:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.params: dict[str, Any] = {}
        self._names: dict[tuple[str, str], str] = {}

    def p(self, value: Any) -> str:
        """A named parameter for ``value`` (one per distinct typed value)."""
        key = (type(value).__name__, repr(value))
        name = self._names.get(key)
        if name is None:
            name = f"{self.prefix}{len(self._names)}"
            self._names[key] = name
            self.params[name] = value
        return ":" + name

    def plist(self, values: Iterable[Any]) -> str:
        return "(" + ", ".join(self.p(v) for v in values) + ")"

    # -- tree
    def node(self, node: Filter) -> str:
        if isinstance(node, And):
            plain, groups = split_pairs(node.children)
            return _and([self.node(c) for c in plain] + [self.group(g) for g in groups])
        if isinstance(node, Or):
            return _or([self.node(c) for c in node.children])
        if isinstance(node, Search):
            return self.search(node)
        return self.comparison(node)

    def search(self, node: Search) -> str:
        needle = node.text.lower()
        n = self.p(needle)
        if node.field is None:
            trees = [
                f"EXISTS (SELECT 1 FROM json_tree(runs.{col}) AS t"
                f" WHERE t.type = 'text' AND {_FN_ICONTAINS}(t.value, {n}))"
                for col in ("inputs", "outputs")
            ]
            if _RAW_SAFE.fullmatch(needle):
                # A leaf containing the needle leaves it in the document's JSON text too, and
                # one pass over that text is far cheaper than walking the tree for every run.
                trees = [
                    f"({_FN_ICONTAINS}(runs.{col}, {n}) AND {tree})"
                    for col, tree in zip(("inputs", "outputs"), trees, strict=True)
                ]
            return _or(
                [f"{_FN_ICONTAINS}(runs.name, {n})", f"{_FN_ICONTAINS}(runs.error, {n})", *trees]
            )
        if node.field in ("name", "error"):
            return f"{_FN_ICONTAINS}(runs.{node.field}, {n})"
        slot = self.meta_slot(node.field[len(_META_PREFIX) :])
        return f"({slot.type_sql} = 'text' AND {_FN_ICONTAINS}({slot.value_sql}, {n}))"

    def comparison(self, c: Comparison) -> str:
        spec = field_spec(c.field)
        assert spec is not None, c.field
        if spec.family is not None:
            return self.group(split_pairs([c])[1][0])
        if spec.kind is Kind.TAGS:
            return (
                "EXISTS (SELECT 1 FROM json_each(runs.tags) AS g"
                f" WHERE g.type = 'text' AND g.value = {self.p(c.value)})"
            )
        if spec.kind is Kind.METADATA:
            assert isinstance(c.value, dict)
            return _and([self.meta_has(k, v) for k, v in c.value.items()])
        if spec.kind is Kind.META_PATH:
            return self.json_compare(c.op, self.meta_slot(c.field[len(_META_PREFIX) :]), c.value)
        return self.column_compare(c)

    # -- plain columns
    def column_compare(self, c: Comparison) -> str:
        name, op, value = c.field, c.op, c.value
        if name == "is_root":
            want_root = bool(value) if op == "eq" else not bool(value)
            return "runs.parent_run_id IS NULL" if want_root else "runs.parent_run_id IS NOT NULL"
        if name in _TEXT_COLUMNS:
            col, conv = f"runs.{name}", (lambda v: v)
        elif name in _TIME_COLUMNS:
            col, conv = f"runs.{name}", _fixed_iso
        elif name in _TOKEN_COLUMNS:
            col, conv = f"CAST(runs.{name} AS REAL)", float
        elif name == "latency":
            col, conv = _LATENCY_SQL, float
        else:  # pragma: no cover - every field of FIELDS is handled above
            raise AssertionError(f"unhandled filter field {name}")
        if op == "in":
            assert isinstance(value, tuple)
            return f"{col} IN {self.plist(conv(v) for v in value)}"
        if value is None:
            return f"{col} IS NULL" if op == "eq" else f"{col} IS NOT NULL"
        if op == "neq":
            return f"{col} IS NOT {self.p(conv(value))}"
        return f"{col} {_SQL_OPS[op]} {self.p(conv(value))}"

    # -- JSON values
    def meta_slot(self, key: str) -> _Slot:
        """``extra.metadata[key]`` by path; the generated column for indexed keys."""
        assert _PATH_KEY.match(key), key
        path = self.p(f'$.metadata."{key}"')
        if key in INDEXED_METADATA_KEYS:
            return _Slot(f"json_type(runs.extra, {path})", f"runs.meta_{key}", indexed=True)
        return _Slot(f"json_type(runs.extra, {path})", f"json_extract(runs.extra, {path})")

    def eq_candidates(self, expected: Any) -> list[Any] | None:
        """SQL values a JSON value equal to ``expected`` (``_scalar_eq``) can extract to."""
        if isinstance(expected, bool):
            return [int(expected)]
        if _is_num(expected):
            return [expected] if abs(expected) < 2**53 else None
        if isinstance(expected, str):
            out: list[Any] = [expected]
            num = _number_text(expected)  # json.dumps(value) == expected: an exact match
            if num is not None:
                if isinstance(num, int) and abs(num) >= _INT64:
                    return None
                out.append(num)
            if expected in ("true", "false"):
                out.append(int(expected == "true"))
            return out
        return None

    def json_eq(self, slot: _Slot, expected: Any) -> str:
        """``_scalar_eq(value, expected)``: true exactly when evaluate's is, else false/NULL."""
        t, v = slot.type_sql, slot.value_sql
        if expected is None:
            return f"({t} IS NULL OR {t} = 'null')"
        if isinstance(expected, bool):
            return f"{t} = '{'true' if expected else 'false'}'"
        if _is_num(expected):
            return f"({t} IN {_NUMERIC_TYPES} AND CAST({v} AS REAL) = {self.p(float(expected))})"
        assert isinstance(expected, str), expected
        parts = [f"({t} = 'text' AND {v} = {self.p(expected)})"]
        if expected in ("true", "false"):
            parts.append(f"{t} = '{expected}'")
        if _number_text(expected) is not None:
            parts.append(f"({t} IN {_NUMERIC_TYPES} AND {_FN_JSON_TEXT}({v}) = {self.p(expected)})")
        return _or(parts)

    def json_compare(self, op: str, slot: _Slot, expected: Any) -> str:
        if op in ("eq", "neq", "in"):
            values = list(expected) if op == "in" else [expected]
            test = _or([self.json_eq(slot, e) for e in values])
            if op == "neq":
                return _not(test)
            cands = [self.eq_candidates(e) for e in values]
            if slot.indexed and all(c is not None for c in cands):
                flat = [x for c in cands for x in c or ()]
                return _and([f"{slot.value_sql} IN {self.plist(flat)}", test])
            return test
        t, v, sql_op = slot.type_sql, slot.value_sql, _SQL_OPS[op]
        if _is_num(expected):
            num = self.p(float(expected))
            return f"({t} IN {_NUMERIC_TYPES} AND CAST({v} AS REAL) {sql_op} {num})"
        assert isinstance(expected, str), expected
        return f"({t} = 'text' AND {v} {sql_op} {self.p(expected)})"

    def deep_eq(self, slot: _Slot, expected: Any) -> str:
        """``_deep_eq(value, expected)`` for a present value (missing is false)."""
        t, v = slot.type_sql, slot.value_sql
        if expected is None:
            return f"{t} = 'null'"
        if isinstance(expected, bool):
            return f"{t} = '{'true' if expected else 'false'}'"
        if _is_num(expected):
            bound = (
                expected
                if isinstance(expected, float) or abs(expected) < _INT64
                else float(expected)
            )
            return f"({t} IN {_NUMERIC_TYPES} AND {v} = {self.p(bound)})"
        if isinstance(expected, str):
            return f"({t} = 'text' AND {v} = {self.p(expected)})"
        kind = "object" if isinstance(expected, dict) else "array"
        text = json.dumps(expected, ensure_ascii=False)
        return f"({t} = '{kind}' AND {_FN_DEEP_EQ}({v}, {self.p(text)}))"

    def meta_has(self, key: str, expected: Any) -> str:
        """One key of ``has(metadata, {...})``: present with exactly that value."""
        if _PATH_KEY.match(key):
            slot = self.meta_slot(key)
            test = self.deep_eq(slot, expected)
            if slot.indexed:
                if isinstance(expected, (str, bool)) or (
                    _is_num(expected) and abs(expected) < 2**53
                ):
                    bound = int(expected) if isinstance(expected, bool) else expected
                    pre = f"{slot.value_sql} = {self.p(bound)}"
                elif expected is None:
                    pre = f"{slot.value_sql} IS NULL"
                else:
                    pre = f"{slot.value_sql} IS NOT NULL"
                return _and([pre, test])
            return test
        # Keys a JSON path cannot spell (quotes, backslashes...): find the entry by key.
        test = self.deep_eq(_Slot("e.type", "e.value"), expected)
        return (
            "EXISTS (SELECT 1 FROM json_each(runs.extra, '$.metadata') AS e"
            " WHERE json_type(runs.extra, '$.metadata') = 'object'"
            f" AND e.key = {self.p(key)} AND {test})"
        )

    # -- pair groups
    def group(self, g: PairGroup) -> str:
        if g.family == "feedback":
            source = "feedback AS f WHERE f.run_id = runs.id"
            key_sql = "f.key"

            def value_test(op: str, expected: Any) -> str:
                if op == "in":
                    return f"f.score IN {self.plist(float(e) for e in expected)}"
                return f"f.score {_SQL_OPS[op]} {self.p(float(expected))}"

        else:
            doc = {
                "metadata": "runs.extra, '$.metadata'",
                "inputs": "runs.inputs",
                "outputs": "runs.outputs",
            }[g.family]
            source = f"json_each({doc}) AS e WHERE json_type({doc}) = 'object'"
            key_sql = "e.key"
            slot = _Slot("e.type", "e.value")

            def value_test(op: str, expected: Any) -> str:
                return self.json_compare(op, slot, expected)

        parts: list[str] = []
        neg_keys = [c.value for c in g.key_neg]
        if neg_keys:
            parts.append(
                f"NOT EXISTS (SELECT 1 FROM {source} AND {key_sql} IN {self.plist(neg_keys)})"
            )
        if g.key_pos or g.value_pos:
            tests: list[str] = []
            for c in g.key_pos:
                if c.op == "in":
                    assert isinstance(c.value, tuple)
                    tests.append(f"{key_sql} IN {self.plist(c.value)}")
                else:
                    tests.append(f"{key_sql} = {self.p(c.value)}")
            tests += [value_test(c.op, c.value) for c in g.value_pos]
            tests += [_not(value_test("eq", c.value)) for c in g.value_neg]
            parts.append(f"EXISTS (SELECT 1 FROM {source} AND {_and(tests)})")
            parts += self.indexed_pair_hint(g)
        elif g.value_neg:
            any_eq = _or([value_test("eq", c.value) for c in g.value_neg])
            parts.append(f"NOT EXISTS (SELECT 1 FROM {source} AND {any_eq})")
        return _and(parts)

    def indexed_pair_hint(self, g: PairGroup) -> list[str]:
        """Index hints implied by a metadata pair group on an indexed key.

        ``and(eq(metadata_key, "task_type"), eq(metadata_value, v))`` implies
        ``meta_task_type IN (<what v can extract to>)``, which the planner can seek.
        """
        if g.family != "metadata":
            return []
        keys = {c.value for c in g.key_pos if c.op == "eq"}
        indexed = [k for k in keys if k in INDEXED_METADATA_KEYS]
        if len(indexed) != 1 or not g.value_pos:
            return []
        hints: list[str] = []
        for c in g.value_pos:
            if c.op not in ("eq", "in"):
                continue
            values = list(c.value) if c.op == "in" else [c.value]  # type: ignore[arg-type]
            cands = [self.eq_candidates(v) for v in values]
            if all(x is not None for x in cands):
                flat = [x for cand in cands for x in cand or ()]
                hints.append(f"runs.meta_{indexed[0]} IN {self.plist(flat)}")
        return hints
