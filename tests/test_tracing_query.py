"""Filter queries on the local store: SQL answers exactly what ``filters.evaluate`` answers.

The property test writes random runs (names with non-ASCII case pairs,
metadata of every JSON type, feedback, pending runs...) and checks random
filters from the whole grammar against the reference evaluator; the unit tests
pin each field and comparator, injection safety and index use.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfheal.tracing import FeedbackRecord, LocalTraceStore, RunRecord
from selfheal.tracing.filters import FilterError, evaluate, parse_filter
from selfheal.tracing.query import compile_filter, filter_mapping

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

# Pools shared by runs and filters, so random filters often hit.
NAMES = [
    "LangGraph",
    "retrieve",
    "ChatOpenAI",
    "İstanbul",
    "istanbul",
    "STRASSE",
    "straße",
    "a'b\"c",
    "100%_done",
    "KELVIN\u212a",
    "ﬁx",
    "ΟΔΟΣ",
]
TAGS = ["prod", "Prod", "seq:step:1", "a%b", "x_y", "ünïcode"]
META_KEYS = ["task_type", "success", "error_type", "temperature", "region", "a.b", "x-y"]
WEIRD_META_KEYS = ['we"ird', "back\\slash"]
STRINGS = [
    "lambda_latency",
    "Lambda_Latency",
    "0.7",
    "5",
    "5.0",
    "true",
    "false",
    "null",
    "",
    "abc",
    "ABC",
    "1e+16",
    "-0.0",
    "%",
    "_",
    "it's",
    'say "hi"',
    "ß",
    "İ",
    "x\nΣ y",
]
NUMBERS: list[int | float] = [0, 1, 5, -3, 0.7, 5.0, 2.5, -0.0, 1e16, 1000]
IO_KEYS = ["task", "messages", "answer", "count", "flag"]
FEEDBACK_KEYS = ["correctness", "helpfulness", "user_score"]
SEARCH_NEEDLES = [
    "i",
    "İ",
    "istanbul",
    "STRASSE",
    "ss",
    "k",
    "%",
    "_",
    "'",
    '"',
    "fix",
    "ﬁ",
    "lambda",
    "ABC",
    "0.7",
    "graph",
    "σ",
    "ς",
    "\n",
    '"hi',
    "x\\n",
]

scalars = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans(), st.none())
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(IO_KEYS), inner, max_size=2)
    ),
    max_leaves=4,
)
times = st.integers(0, 36).map(lambda n: T0 + timedelta(minutes=10 * n))
#: Run ids come from a fixed pool so that one filter strategy, built once, can name them.
ID_POOL = [uuid.UUID(int=n * 7919 + 1, version=4) for n in range(24)]


io_dicts = st.dictionaries(st.sampled_from(IO_KEYS), json_values, max_size=3)
outcomes = st.one_of(  # (status, end - start in ms, error)
    st.tuples(st.just("pending"), st.none(), st.sampled_from([None, "late warning"])),
    st.tuples(
        st.just("success"),
        st.sampled_from([0, 1, 250, 1000, 2500, 9000]),
        st.sampled_from([None, None, "late warning"]),
    ),
    st.tuples(
        st.just("error"),
        st.sampled_from([0, 1, 250, 1000, 2500, 9000]),
        st.sampled_from([None, "ValueError('İ boom')", "Timeout 5s", ""]),
    ),
)
run_fields = st.fixed_dictionaries(
    {
        "name": st.sampled_from(NAMES),
        "run_type": st.sampled_from(["chain", "llm", "tool"]),
        "start_time": times,
        "outcome": outcomes,
        "tags": st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
        "metadata": st.one_of(
            st.sampled_from([None, "not a dict", [1, 2]]),
            st.dictionaries(st.sampled_from(META_KEYS + WEIRD_META_KEYS), json_values, max_size=4),
            st.dictionaries(st.sampled_from(META_KEYS), scalars, max_size=4),
        ),
        "inputs": io_dicts,
        "outputs": st.one_of(st.none(), io_dicts),
        "total_tokens": st.one_of(st.none(), st.integers(0, 10), st.just(1000)),
        "prompt_tokens": st.one_of(st.none(), st.integers(0, 5)),
        "feedback": st.lists(
            st.tuples(
                st.sampled_from(FEEDBACK_KEYS),
                st.one_of(st.none(), st.booleans(), st.sampled_from(NUMBERS)),
            ),
            max_size=2,
        ),
    }
)
trace_shapes = st.tuples(
    st.permutations(ID_POOL),
    st.lists(st.lists(run_fields, min_size=1, max_size=3), min_size=1, max_size=8),
)


def _traces(
    shape: tuple[list[uuid.UUID], list[list[dict[str, Any]]]],
) -> list[tuple[RunRecord, list[tuple[str, Any]]]]:
    """Runs (a root and its children per trace) with the feedback to attach to each."""
    pool, groups = shape
    ids = iter(pool)
    out: list[tuple[RunRecord, list[tuple[str, Any]]]] = []
    for specs in groups:
        root_id = next(ids)
        for i, raw in enumerate(specs):
            spec = dict(raw)
            feedback = spec.pop("feedback")
            status, ms, error = spec.pop("outcome")
            metadata = spec.pop("metadata")
            run_id = root_id if i == 0 else next(ids)
            start = spec["start_time"]
            run = RunRecord(
                id=run_id,
                parent_run_id=None if i == 0 else root_id,
                trace_id=root_id,
                dotted_order=f"{start:%Y%m%dT%H%M%S%fZ}{root_id}" + (f".{i}{run_id}" if i else ""),
                status=status,
                end_time=None if ms is None else start + timedelta(milliseconds=ms),
                error=error,
                extra={} if metadata is None else {"metadata": metadata},
                **spec,
            )
            out.append((run, feedback))
    return out


traces = trace_shapes.map(_traces)


def _lit(v: Any) -> str:
    return "null" if v is None else json.dumps(v, ensure_ascii=False)


def _uniform(options: list[st.SearchStrategy[str]]) -> st.SearchStrategy[str]:
    """Pick an option uniformly (``one_of`` flattens nested ``one_of``s and so would weight
    each field by how many sub-branches its strategy happens to have)."""
    return st.sampled_from(range(len(options))).flatmap(lambda i: options[i])


def _filter(depth: int) -> st.SearchStrategy[str]:
    """Filter text over the whole grammar, with values that generated runs often have."""
    leaf = _leaf()
    if depth >= 2:
        return leaf
    sub = _filter(depth + 1)
    combos = st.tuples(st.sampled_from(["and", "or"]), st.lists(sub, min_size=1, max_size=4)).map(
        lambda t: f"{t[0]}({', '.join(t[1])})"
    )
    # and() of pair comparisons exercises PairGroup grouping.
    # and() of one family's pair comparisons exercises PairGroup: one entry must pass them all.
    pairs = _uniform(
        [
            st.lists(fam, min_size=2, max_size=3).map(lambda xs: f"and({', '.join(xs)})")
            for fam in _pair_families()
        ]
    )
    return _uniform([leaf, leaf, combos, pairs])


def _leaf() -> st.SearchStrategy[str]:
    ids = [str(i) for i in ID_POOL[:20]]
    time_vals = st.tuples(times, st.sampled_from([0, 0, 1, 250])).map(
        lambda t: (t[0] + timedelta(milliseconds=t[1])).isoformat().replace("+00:00", "Z")
    )

    def cmp(ops: list[str], field: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
        return st.tuples(st.sampled_from(ops), values).map(
            lambda t: f"{t[0]}({field}, {_lit(t[1])})"
        )

    def inn(field: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
        return st.lists(values, min_size=1, max_size=3).map(
            lambda vs: f"in({field}, [{', '.join(_lit(v) for v in vs)}])"
        )

    ords = ["eq", "neq", "gt", "gte", "lt", "lte"]
    no_bool_scalars = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS))
    meta_field = st.sampled_from(META_KEYS).map(lambda k: f"metadata.{k}")
    options = [
        st.sampled_from(["id", "trace_id", "parent_run_id"]).flatmap(
            lambda f: st.one_of(
                cmp(["eq", "neq"], f, st.sampled_from(ids)), inn(f, st.sampled_from(ids))
            )
        ),
        cmp(["eq", "neq"], "parent_run_id", st.none()),
        cmp(["eq", "neq"], "name", st.sampled_from(NAMES)),
        inn("name", st.sampled_from(NAMES)),
        cmp(["eq", "neq"], "run_type", st.sampled_from(["chain", "llm", "tool", "retriever"])),
        cmp(["eq", "neq"], "status", st.sampled_from(["success", "error", "pending"])),
        inn("status", st.sampled_from(["success", "error", "pending"])),
        cmp(["eq", "neq"], "error", st.sampled_from([None, "", "Timeout 5s", "late warning"])),
        st.sampled_from(["start_time", "end_time"]).flatmap(lambda f: cmp(ords, f, time_vals)),
        cmp(["eq", "neq"], "end_time", st.none()),
        cmp(
            ords,
            "latency",
            st.one_of(st.sampled_from([0, 1, 2.5, 9]), st.sampled_from(["250ms", "1s", "0.5m"])),
        ),
        st.sampled_from(["total_tokens", "prompt_tokens"]).flatmap(
            lambda f: cmp(ords, f, st.sampled_from([0, 1, 3, 5.0, 1000, 2.5]))
        ),
        cmp(["eq", "neq"], "is_root", st.booleans()),
        cmp(["has"], "tags", st.sampled_from(TAGS)),
        st.dictionaries(
            st.sampled_from(META_KEYS + WEIRD_META_KEYS), json_values, min_size=1, max_size=2
        ).map(lambda d: f"has(metadata, {_lit(json.dumps(d, ensure_ascii=False))})"),
        meta_field.flatmap(
            lambda f: st.one_of(
                cmp(["eq", "neq"], f, scalars),
                cmp(["gt", "gte", "lt", "lte"], f, no_bool_scalars),
                inn(
                    f, st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans())
                ),
            )
        ),
        _pair_leaf(),
        st.sampled_from(SEARCH_NEEDLES).map(lambda s: f"search({_lit(s)})"),
        st.tuples(
            st.sampled_from(["name", "error", "metadata.task_type", "metadata.region"]),
            st.sampled_from(SEARCH_NEEDLES),
        ).map(lambda t: f"search({t[0]}, {_lit(t[1])})"),
    ]
    return _uniform(options)


def _pair_leaf() -> st.SearchStrategy[str]:
    return _uniform(_pair_families())


def _pair_families() -> list[st.SearchStrategy[str]]:
    value_scalars = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS), st.booleans())
    ords = st.sampled_from(["gt", "gte", "lt", "lte"])
    ordered = st.one_of(st.sampled_from(STRINGS), st.sampled_from(NUMBERS))

    def family(prefix: str, keys: list[str]) -> st.SearchStrategy[str]:
        key = f"{prefix}_key"
        value = f"{prefix}_value"
        return st.one_of(
            st.tuples(st.sampled_from(["eq", "neq"]), st.sampled_from(keys)).map(
                lambda t: f"{t[0]}({key}, {_lit(t[1])})"
            ),
            st.lists(st.sampled_from(keys), min_size=1, max_size=2).map(
                lambda ks: f"in({key}, [{', '.join(_lit(k) for k in ks)}])"
            ),
            st.tuples(st.sampled_from(["eq", "neq"]), value_scalars).map(
                lambda t: f"{t[0]}({value}, {_lit(t[1])})"
            ),
            st.tuples(ords, ordered).map(lambda t: f"{t[0]}({value}, {_lit(t[1])})"),
            st.lists(value_scalars, min_size=1, max_size=2).map(
                lambda vs: f"in({value}, [{', '.join(_lit(v) for v in vs)}])"
            ),
        )

    feedback = st.one_of(
        st.tuples(st.sampled_from(["eq", "neq"]), st.sampled_from(FEEDBACK_KEYS)).map(
            lambda t: f"{t[0]}(feedback_key, {_lit(t[1])})"
        ),
        st.tuples(
            st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]), st.sampled_from(NUMBERS)
        ).map(lambda t: f"{t[0]}(feedback_score, {_lit(t[1])})"),
        st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=2).map(
            lambda vs: f"in(feedback_score, [{', '.join(_lit(v) for v in vs)}])"
        ),
    )
    return [
        family("metadata", META_KEYS + WEIRD_META_KEYS),
        family("input", IO_KEYS),
        family("output", IO_KEYS),
        feedback,
    ]


FILTERS = _filter(0)


def _probes() -> list[str]:
    """Every field x comparator x tricky value, as leaves; each example checks a sample."""
    out: list[str] = []
    ords = ["gt", "gte", "lt", "lte"]
    vals: list[Any] = [*STRINGS, *NUMBERS, True, False]
    for k in META_KEYS:
        out += [f"{op}(metadata.{k}, {_lit(v)})" for op in ("eq", "neq") for v in [*vals, None]]
        out += [
            f"{op}(metadata.{k}, {_lit(v)})" for op in ords for v in ["5", "abc", "", 0.7, 5, -3]
        ]
        out += [f"search(metadata.{k}, {_lit(n)})" for n in ("i", "a", "5")]
    for k in META_KEYS + WEIRD_META_KEYS:
        for v in [*vals, None, [], {}, [1, 2], {"task": None}]:
            out.append(f"has(metadata, {_lit(json.dumps({k: v}, ensure_ascii=False))})")
    for fam, keys in (
        ("metadata", META_KEYS + WEIRD_META_KEYS),
        ("input", IO_KEYS),
        ("output", IO_KEYS),
    ):
        out += [f"{op}({fam}_key, {_lit(k)})" for op in ("eq", "neq") for k in keys]
        out += [f"{op}({fam}_value, {_lit(v)})" for op in ("eq", "neq") for v in vals]
        out += [f"{op}({fam}_value, {_lit(v)})" for op in ords for v in ["5", "abc", 0.7, 5]]
        for k in keys:
            out += [
                f"and(eq({fam}_key, {_lit(k)}), {op}({fam}_value, {_lit(v)}))"
                for op in ("eq", "neq", "gt")
                for v in ["true", "5", "0.7", 5, True, "abc"]
                if not (op == "gt" and v is True)
            ]
    for k in FEEDBACK_KEYS:
        out += [
            f"and(eq(feedback_key, {_lit(k)}), {op}(feedback_score, {_lit(n)}))"
            for op in ("eq", "neq", "gt", "lte")
            for n in (0, 1, 0.7, 2.5)
        ]
    out += [f"{op}(feedback_score, {_lit(n)})" for op in ("eq", "neq", "gte") for n in (0, 1, 2.5)]
    out += [f"{op}(feedback_key, {_lit(k)})" for op in ("eq", "neq") for k in FEEDBACK_KEYS]
    for needle in SEARCH_NEEDLES:
        out += [
            f"search({_lit(needle)})",
            f"search(name, {_lit(needle)})",
            f"search(error, {_lit(needle)})",
        ]
    out += [f"has(tags, {_lit(t)})" for t in TAGS]
    grid = [
        T0 + timedelta(minutes=10 * n, milliseconds=ms)
        for n in (0, 5, 18, 36)
        for ms in (0, 1, 250)
    ]
    for f in ("start_time", "end_time"):
        out += [f"{op}({f}, {_lit(t.isoformat())})" for op in ("eq", "neq", *ords) for t in grid]
    out += ["eq(end_time, null)", "neq(end_time, null)", "eq(error, null)", "neq(error, null)"]
    out += [
        f"{op}(latency, {_lit(v)})"
        for op in ("eq", "neq", *ords)
        for v in (0, 0.001, 0.25, 1, "2.5s", 9)
    ]
    for f in ("total_tokens", "prompt_tokens"):
        out += [
            f"{op}({f}, {_lit(v)})" for op in ("eq", "neq", *ords) for v in (0, 1, 5.0, 1000, 2.5)
        ]
    out += [
        f"{op}(error, {_lit(v)})"
        for op in ("eq", "neq")
        for v in ("", "Timeout 5s", "late warning")
    ]
    out += [f"{op}(is_root, {_lit(v)})" for op in ("eq", "neq") for v in (True, False)]
    out += [
        f"{op}(status, {_lit(v)})" for op in ("eq", "neq") for v in ("success", "error", "pending")
    ]
    out += [f"{op}(name, {_lit(v)})" for op in ("eq", "neq") for v in NAMES]
    out += [
        f"{op}({f}, {_lit(str(i))})"
        for op in ("eq", "neq")
        for f in ("id", "trace_id", "parent_run_id")
        for i in ID_POOL[:6]
    ]
    return out


PROBES = _probes()


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTraceStore]:
    s = LocalTraceStore(tmp_path_factory.mktemp("query") / "traces.sqlite")
    yield s
    s.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalTraceStore]:
    s = LocalTraceStore(tmp_path / "traces.sqlite")
    yield s
    s.close()


def _reset(store: LocalTraceStore) -> None:
    with store._write() as conn:
        conn.execute("DELETE FROM runs")
        conn.execute("DELETE FROM feedback")


def _load(
    store: LocalTraceStore, data: list[tuple[RunRecord, list[tuple[str, Any]]]]
) -> list[dict[str, Any]]:
    """Write runs and feedback; return what evaluate reads, built from the stored copies."""
    store.write_runs([r for r, _ in data])
    for run, feedback in data:
        for key, score in feedback:
            store.add_feedback(FeedbackRecord(run_id=run.id, key=key, score=score))
    by_run: dict[uuid.UUID, list[FeedbackRecord]] = defaultdict(list)
    for fb in store.list_feedback():
        assert fb.run_id is not None
        by_run[fb.run_id].append(fb)
    return [filter_mapping(r, by_run[r.id]) for r in store.list_runs(limit=None)]


def _expected(text: str, mappings: list[dict[str, Any]]) -> set[str]:
    ast = parse_filter(text)
    return {str(m["id"]) for m in mappings if evaluate(ast, m)}


def _got(store: LocalTraceStore, text: str) -> set[str]:
    return {str(r.id) for r in store.query_runs(text, limit=None)}


# -- the property ----------------------------------------------------------------------


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_sql_matches_reference_evaluator(
    shared_store: LocalTraceStore, data: st.DataObject
) -> None:
    _reset(shared_store)
    written = data.draw(traces, label="runs")
    mappings = _load(shared_store, written)
    texts = data.draw(st.lists(FILTERS, min_size=1, max_size=8), label="filters")
    probes = data.draw(
        st.lists(st.sampled_from(PROBES), min_size=30, max_size=30, unique=True), label="probes"
    )
    for text in [*texts, f"and({', '.join(texts)})", f"or({', '.join(texts)})", *probes]:
        want = _expected(text, mappings)
        got = _got(shared_store, text)
        assert got == want, f"{text}: SQL {len(got)} runs, evaluate {len(want)}"
        assert shared_store.count_matching(text) == len(want)


# -- fields and comparators ------------------------------------------------------------


def _run(**kw: Any) -> RunRecord:
    rid = kw.pop("id", None) or uuid.uuid4()
    start = kw.pop("start_time", T0)
    parent = kw.pop("parent_run_id", None)
    trace = kw.pop("trace_id", None) or (parent or rid)
    defaults: dict[str, Any] = {
        "name": "LangGraph",
        "run_type": "chain",
        "end_time": start + timedelta(seconds=1),
        "status": "success",
    }
    return RunRecord(
        id=rid,
        start_time=start,
        parent_run_id=parent,
        trace_id=trace,
        dotted_order=f"{start:%Y%m%dT%H%M%S%fZ}{rid}",
        **{**defaults, **kw},
    )


@pytest.fixture
def sample(store: LocalTraceStore) -> dict[str, RunRecord]:
    """A small store whose runs each stand out on one field."""
    root = _run(
        name="LangGraph",
        tags=["prod"],
        total_tokens=120,
        extra={"metadata": {"task_type": "lambda_latency", "success": True, "temperature": 0.7}},
        inputs={"task": "Fix the İstanbul function", "where": ["Ünïcode City"]},
        outputs={"answer": "raised memory"},
    )
    child = _run(
        name="ChatOpenAI",
        run_type="llm",
        parent_run_id=root.id,
        start_time=T0 + timedelta(seconds=1),
        end_time=T0 + timedelta(seconds=3.5),
        total_tokens=80,
        extra={"metadata": {"task_type": "lambda_latency", "success": 1}},
    )
    failed = _run(
        name="update_memory",
        run_type="tool",
        status="error",
        error="AccessDenied: 100%_sure",
        start_time=T0 + timedelta(hours=1),
        tags=["prod", "retry"],
        extra={
            "metadata": {
                "task_type": "iam",
                "success": False,
                "error_type": "permission",
                "retries": [1, {"a": 0}],
            }
        },
    )
    child = child.model_copy(
        update={"extra": {"metadata": {**child.metadata, "retries": [True, {"a": 0}]}}}
    )
    pending = _run(
        name="retrieve",
        run_type="retriever",
        status="pending",
        end_time=None,
        start_time=T0 + timedelta(hours=2),
        extra={"metadata": "not a dict"},
    )
    store.write_runs([root, child, failed, pending])
    store.add_feedback(FeedbackRecord(run_id=root.id, key="correctness", score=1))
    store.add_feedback(FeedbackRecord(run_id=failed.id, key="correctness", score=0))
    store.add_feedback(FeedbackRecord(run_id=failed.id, key="helpfulness", score=0.9))
    return {"root": root, "child": child, "failed": failed, "pending": pending}


CASES: list[tuple[str, set[str]]] = [
    ('eq(status, "error")', {"failed"}),
    ('neq(status, "error")', {"root", "child", "pending"}),
    ('in(status, ["error", "pending"])', {"failed", "pending"}),
    ('eq(name, "chatopenai")', set()),  # equality is case-sensitive
    ('in(run_type, ["llm", "tool"])', {"child", "failed"}),
    ("eq(error, null)", {"root", "child", "pending"}),
    ("neq(error, null)", {"failed"}),
    ('neq(error, "x")', {"root", "child", "failed", "pending"}),  # missing != "x"
    ('gte(start_time, "2026-11-01T13:00:00Z")', {"failed", "pending"}),
    ('lt(start_time, "2026-11-01T12:00:01+00:00")', {"root"}),
    ('eq(start_time, "2026-11-01T12:00:01Z")', {"child"}),
    ("eq(end_time, null)", {"pending"}),
    ('gt(end_time, "2026-11-01T12:00:02Z")', {"child", "failed"}),
    ('gt(latency, "2s")', {"child"}),
    ("lte(latency, 1)", {"root", "failed"}),  # pending has no latency
    ("neq(latency, 1)", {"child", "pending"}),
    ("gt(total_tokens, 100)", {"root"}),
    ("eq(total_tokens, 80.0)", {"child"}),
    ("neq(total_tokens, 80)", {"root", "failed", "pending"}),
    ("eq(is_root, false)", {"child"}),
    ("neq(is_root, false)", {"root", "failed", "pending"}),
    ('has(tags, "retry")', {"failed"}),
    ('has(tags, "Prod")', set()),
    ("""has(metadata, '{"task_type": "lambda_latency", "success": true}')""", {"root"}),
    ("""has(metadata, '{"success": 1}')""", {"child"}),  # 1 is not true
    ("eq(metadata.success, true)", {"root"}),
    ('eq(metadata.success, "true")', {"root"}),  # text of a JSON value
    ("eq(metadata.success, 1)", {"child"}),
    ('eq(metadata.temperature, "0.7")', {"root"}),
    ("gt(metadata.temperature, 0.5)", {"root"}),
    ('neq(metadata.task_type, "iam")', {"root", "child", "pending"}),
    ("eq(metadata.error_type, null)", {"root", "child", "pending"}),
    ('in(metadata.task_type, ["iam", "none"])', {"failed"}),
    ('and(eq(metadata_key, "task_type"), eq(metadata_value, "iam"))', {"failed"}),
    ('and(eq(metadata_key, "success"), neq(metadata_value, true))', {"child", "failed"}),
    ('neq(metadata_key, "error_type")', {"root", "child", "pending"}),
    ('eq(metadata_value, "not a dict")', set()),  # metadata that is not an object has no entries
    ('neq(metadata_value, "not a dict")', {"root", "child", "failed", "pending"}),
    ("""has(metadata, '{"retries": [1, {"a": 0}]}')""", {"failed"}),  # [true, ...] is not [1, ...]
    ('eq(input_key, "task")', {"root"}),
    ('and(eq(output_key, "answer"), eq(output_value, "raised memory"))', {"root"}),
    ('and(eq(feedback_key, "correctness"), eq(feedback_score, 0))', {"failed"}),
    ('and(eq(feedback_key, "correctness"), gt(feedback_score, 0.5))', {"root"}),
    # pairs are per entry: helpfulness 0.9 must not pair with correctness
    (
        'and(eq(feedback_key, "correctness"), gt(feedback_score, 0.5), neq(status, "success"))',
        set(),
    ),
    ('search("ÜNÏCODE city")', {"root"}),  # non-ASCII case folding (LIKE folds ASCII only)
    ('search("İSTANBUL")', {"root"}),
    ('search("istanbul")', set()),  # str.lower: "İ" -> "i" + U+0307
    ('search("100%_")', {"failed"}),
    ('search(name, "openai")', {"child"}),
    ('search(error, "DENIED")', {"failed"}),
    ('search(metadata.task_type, "LATENCY")', {"root", "child"}),
    ('or(eq(name, "retrieve"), and(eq(is_root, true), has(tags, "retry")))', {"pending", "failed"}),
]


@pytest.mark.parametrize(("text", "names"), CASES, ids=[c[0] for c in CASES])
def test_each_field_and_comparator(
    store: LocalTraceStore, sample: dict[str, RunRecord], text: str, names: set[str]
) -> None:
    got = {str(r.id) for r in store.query_runs(text)}
    assert got == {str(sample[n].id) for n in names}
    by_run: dict[uuid.UUID, list[FeedbackRecord]] = defaultdict(list)
    for fb in store.list_feedback():
        by_run[fb.run_id].append(fb)  # type: ignore[index]
    ast = parse_filter(text)
    assert got == {
        str(r.id) for r in sample.values() if evaluate(ast, filter_mapping(r, by_run[r.id]))
    }


def test_ids_and_trace_fields(store: LocalTraceStore, sample: dict[str, RunRecord]) -> None:
    root, child = sample["root"], sample["child"]
    assert [r.id for r in store.query_runs(f'eq(trace_id, "{str(root.id).upper()}")')] == [
        child.id,
        root.id,
    ]
    assert [r.id for r in store.query_runs(f'eq(parent_run_id, "{root.id}")')] == [child.id]
    assert store.count_matching(f'in(id, ["{root.id}", "{child.id}"])') == 2
    assert store.count_matching("eq(parent_run_id, null)") == 3


def test_results_are_newest_first_and_page(store: LocalTraceStore) -> None:
    runs = [_run(start_time=T0 + timedelta(minutes=i), name=f"r{i}") for i in range(7)]
    store.write_runs(runs)
    assert [r.name for r in store.query_runs()] == [f"r{i}" for i in reversed(range(7))]
    assert [r.name for r in store.query_runs('neq(name, "r3")', limit=2, offset=1)] == ["r5", "r4"]
    assert [r.name for r in store.query_runs(offset=5, limit=None)] == ["r1", "r0"]
    assert store.count_matching('neq(name, "r3")') == 6


def test_convenience_arguments_combine_with_the_filter(store: LocalTraceStore) -> None:
    ops = store.ensure_project("ops")
    other = store.ensure_project("other")
    a = _run(
        session_id=ops.id, status="error", error="boom", extra={"metadata": {"task_type": "iam"}}
    )
    b = _run(
        session_id=ops.id,
        start_time=T0 + timedelta(days=1),
        extra={"metadata": {"task_type": "iam"}},
    )
    c = _run(session_id=other.id, status="error", error="boom", start_time=T0 + timedelta(days=2))
    d = _run(
        session_id=ops.id, parent_run_id=a.id, run_type="llm", start_time=T0 + timedelta(days=3)
    )
    store.write_runs([a, b, c, d])
    ids = lambda runs: {r.id for r in runs}  # noqa: E731
    assert ids(store.query_runs(project="ops")) == {a.id, b.id, d.id}
    assert ids(store.query_runs('eq(status, "error")', project="ops")) == {a.id}
    assert ids(store.query_runs(project=other.id, status="error")) == {c.id}
    assert ids(store.query_runs(task_type="iam", since=T0 + timedelta(hours=1))) == {b.id}
    assert ids(store.query_runs(until=T0 + timedelta(hours=1))) == {a.id}
    assert ids(store.query_runs(is_root=False)) == {d.id}
    assert ids(store.query_runs(run_type="llm", is_root=False, project="ops")) == {d.id}
    assert store.query_runs(project="nope") == [] and store.count_matching(project="nope") == 0
    assert store.count_matching('eq(name, "LangGraph")', is_root=True) == 3


def test_bad_filter_is_one_line_with_column(store: LocalTraceStore) -> None:
    with pytest.raises(FilterError) as err:
        store.query_runs('and(eq(status, "eror"))')
    msg = str(err.value)
    assert "\n" not in msg and "column 16" in msg and "did you mean 'error'" in msg
    with pytest.raises(FilterError, match="unknown field .sta. at column 5"):
        store.count_matching('gte(sta, "2026")')


def test_reads_its_own_background_writes(store: LocalTraceStore) -> None:
    from selfheal.tracing.store import encode_run

    store.submit_encoded([encode_run(_run(status="error", error="x"))])
    assert store.count_matching('eq(status, "error")') == 1


# -- safety and plans ------------------------------------------------------------------

NASTY = ["x' OR '1'='1", "%", "_", "a%b", "x_y", "'; DROP TABLE runs; --", '"', "\\", "100%_done"]


@pytest.mark.parametrize("value", NASTY)
def test_values_are_parameters_not_sql(store: LocalTraceStore, value: str) -> None:
    hit = _run(
        name=value, tags=[value], error=value, status="error", extra={"metadata": {"region": value}}
    )
    other = _run(name="plain name", tags=["axb"], extra={"metadata": {"region": "axyb"}})
    store.write_runs([hit, other])
    lit = json.dumps(value)
    for text in (
        f"eq(name, {lit})",
        f"has(tags, {lit})",
        f"eq(error, {lit})",
        f"eq(metadata.region, {lit})",
        f"search({lit})",
        f'and(eq(metadata_key, "region"), eq(metadata_value, {lit}))',
        f"has(metadata, {json.dumps(json.dumps({'region': value}))})",
    ):
        assert [r.id for r in store.query_runs(text)] == [hit.id], text
    assert store.count_runs() == 2


def test_sql_has_no_filter_text(store: LocalTraceStore) -> None:
    compiled = compile_filter(parse_filter('and(eq(name, "x\' OR 1=1 --"), search("%_"))'))
    assert "OR 1=1" not in compiled.where and "%_" not in compiled.where
    assert "x' OR 1=1 --" in compiled.params.values()


def _plan(store: LocalTraceStore, text: str) -> str:
    compiled = compile_filter(parse_filter(text))
    with store._read() as conn:
        rows = conn.execute(
            f"EXPLAIN QUERY PLAN SELECT id FROM runs WHERE {compiled.where}"
            " ORDER BY start_time DESC LIMIT 100",
            dict(compiled.params),
        ).fetchall()
    return " | ".join(r[-1] for r in rows)


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ('and(eq(status, "error"), gte(start_time, "2026-11-01T00:00:00Z"))', "ix_runs_status"),
        ('eq(metadata.task_type, "lambda_latency")', "ix_runs_meta_task_type"),
        ("""has(metadata, '{"error_type": "permission"}')""", "ix_runs_meta_error_type"),
        ('and(eq(metadata_key, "task_type"), eq(metadata_value, "iam"))', "ix_runs_meta_task_type"),
        ('eq(trace_id, "0b7a3c1e-5d2f-4e6a-8b9c-0d1e2f3a4b5c")', "ix_runs_trace"),
        (
            'and(eq(metadata.task_type, "iam"), eq(metadata.success, false), eq(is_root, true))',
            "ix_runs_root_task",
        ),
    ],
)
def test_selective_filters_use_an_index(store: LocalTraceStore, text: str, index: str) -> None:
    plan = _plan(store, text)
    assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
    assert "SCAN runs" not in plan, plan


@pytest.mark.parametrize("needle", ["1\nl", 'y "h', "\\", "\t", "σ", "ΟΣ y"])
def test_search_finds_text_that_json_escapes_or_folds_by_context(
    store: LocalTraceStore, needle: str
) -> None:
    # Quotes, backslashes and control characters are escaped in the stored JSON text, and
    # "Σ" lower-cases to "σ" or "ς" by its neighbours, so the raw text can miss these needles.
    hit = _run(inputs={"log": ['line1\nline2 say "hi" C:\\tmp\tx', "ΟΔΟΣ\nΣ ΟΣ y"]})
    store.write_runs([hit, _run(inputs={"log": "nothing here"})])
    assert [r.id for r in store.query_runs(f"search({json.dumps(needle)})")] == [hit.id]
    assert evaluate(parse_filter(f"search({json.dumps(needle)})"), filter_mapping(hit))
