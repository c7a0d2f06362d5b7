"""LangSmith's filter language: parsing, canonical text, errors with carets, evaluation."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfheal.errors import SelfhealError
from selfheal.tracing.filters import (
    FIELDS,
    And,
    Comparison,
    FieldSpec,
    Filter,
    FilterError,
    Kind,
    Or,
    Search,
    evaluate,
    field_spec,
    parse_filter,
    split_pairs,
    to_text,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
RID = "0b7a3c1e-5d2f-4e6a-8b9c-0d1e2f3a4b5c"
TID = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"


# -- parsing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ast"),
    [
        ('eq(status, "error")', Comparison("eq", "status", "error")),
        ('neq(name, "agent")', Comparison("neq", "name", "agent")),
        ("gt(total_tokens, 5000)", Comparison("gt", "total_tokens", 5000)),
        ('gte(start_time, "2026-11-01T00:00:00Z")', Comparison("gte", "start_time", T0)),
        ('lt(end_time, "2026-11-01")', Comparison("lt", "end_time", T0)),
        ('lte(start_time, "2026-11-01T01:00:00+01:00")', Comparison("lte", "start_time", T0)),
        ('has(tags, "prod")', Comparison("has", "tags", "prod")),
        ('in(run_type, ["llm", "tool"])', Comparison("in", "run_type", ("llm", "tool"))),
        ('search("timeout")', Search("timeout")),
        ('search(error, "Task timed out")', Search("Task timed out", "error")),
        ("neq(error, null)", Comparison("neq", "error", None)),
        ("eq(is_root, true)", Comparison("eq", "is_root", True)),
        ("eq(parent_run_id, null)", Comparison("eq", "parent_run_id", None)),
        (f'eq(id, "{RID.upper()}")', Comparison("eq", "id", RID)),
        ('gt(latency, "5s")', Comparison("gt", "latency", 5.0)),
        ('lt(latency, "250ms")', Comparison("lt", "latency", 0.25)),
        ('gte(latency, "2m")', Comparison("gte", "latency", 120.0)),
        ("gt(latency, 2)", Comparison("gt", "latency", 2.0)),
        ("gte(feedback_score, 0.5)", Comparison("gte", "feedback_score", 0.5)),
        (
            'eq(metadata.task_type, "lambda_timeout")',
            Comparison("eq", "metadata.task_type", "lambda_timeout"),
        ),
        (
            'has(metadata, \'{"variant": "b", "n": 2}\')',
            Comparison("has", "metadata", {"variant": "b", "n": 2}),
        ),
        (
            'and(eq(status, "error"), gte(start_time, "2026-11-01T00:00:00Z"))',
            And((Comparison("eq", "status", "error"), Comparison("gte", "start_time", T0))),
        ),
        (
            'or(has(tags, "a"), has(tags, "b"), has(tags, "c"))',
            Or(tuple(Comparison("has", "tags", t) for t in "abc")),
        ),
        ('and(eq(name, "x"))', And((Comparison("eq", "name", "x"),))),
    ],
)
def test_parses_every_comparator_and_combinator(text: str, ast: Filter) -> None:
    assert parse_filter(text) == ast


def test_nesting_whitespace_and_single_quotes() -> None:
    text = """
      and (
        or( has(tags,'experimental') ,has( tags , "beta" ) ),
        gt(latency,2) ,
        and(eq(feedback_key, 'Correctness'), eq(feedback_score, 0.0))
      )
    """
    assert parse_filter(text) == And(
        (
            Or((Comparison("has", "tags", "experimental"), Comparison("has", "tags", "beta"))),
            Comparison("gt", "latency", 2.0),
            And(
                (
                    Comparison("eq", "feedback_key", "Correctness"),
                    Comparison("eq", "feedback_score", 0.0),
                )
            ),
        )
    )


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"say \"hi\""', 'say "hi"'),
        (r"'it\'s'", "it's"),
        ("'a \"b\"'", 'a "b"'),
        (r'"back\\slash"', "back\\slash"),
        (r'"line\nnext\ttab\r\b\f\/"', "line\nnext\ttab\r\b\f/"),
        (r'"caf\u00e9 \ud83d\ude00"', "café 😀"),
        ('"raw ünïcode ✓"', "raw ünïcode ✓"),
        ('""', ""),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    assert parse_filter(f"eq(name, {literal})") == Comparison("eq", "name", value)


@pytest.mark.parametrize(
    "text",
    [  # LangSmith's own documented examples
        'eq(name, "extractor")',
        'and(eq(feedback_key, "user_score"), eq(feedback_score, 1))',
        'and(eq(feedback_key, "star_rating"), gt(feedback_score, 4))',
        'gt(latency, "5s")',
        "neq(error, null)",
        'gt(start_time, "2023-07-15T12:34:56Z")',
        'search("substring")',
        'has(tags, "2aa1cf4")',
        'and(gt(start_time, "2023-07-15T12:34:56Z"), or(neq(error, null), and(eq(feedback_key, "Correctness"), eq(feedback_score, 0.0))))',
        'and(or(has(tags, "experimental"), has(tags, "beta")), gt(latency, 2))',
        "eq(metadata_key, 'user_id')",
        "and(eq(metadata_key, 'user_id'), eq(metadata_value, '4070f233-f61e-44eb-bff1-da3c163895a3'))",
        "and(neq(metadata_key, 'conversation_id'))",
        "and(neq(metadata_key, 'conversation_id'), eq(metadata_value, 'a1b2c3d4-e5f6-7890'))",
        "and(eq(name, 'ChatOpenAI'), eq(metadata_key, 'conversation_id'), eq(metadata_value, '69b12c91'))",
        'and(in(metadata_key, ["session_id","conversation_id","thread_id"]), eq(metadata_value, "t-1"))',
        'and(gt(latency, "5s"), gt(total_tokens, 5000))',
    ],
)
def test_langsmith_documented_filters_parse_and_round_trip(text: str) -> None:
    ast = parse_filter(text)
    assert parse_filter(to_text(ast)) == ast


def test_to_text_is_canonical() -> None:
    ast = parse_filter(
        "and(gte( start_time,'2026-11-01T01:00:00+01:00' ),gt(latency,'1.5s'),in(status,['error','pending']),"
        "has(metadata, '{\"a\":1}'), search('x\"y'))"
    )
    assert to_text(ast) == (
        'and(gte(start_time, "2026-11-01T00:00:00Z"), gt(latency, 1.5), in(status, ["error", "pending"]), '
        'has(metadata, "{\\"a\\": 1}"), search("x\\"y"))'
    )


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "needle"),
    [
        ('eqq(status, "error")', 1, "unknown comparator 'eqq'"),
        ('and(eq(status, "error"), gtee(latency, 1))', 26, "unknown comparator 'gtee'"),
        ('eq(statu, "error")', 4, "unknown field 'statu'"),
        ('eq(metadata., "x")', 4, "unknown field 'metadata.'"),
        ('eq(status, "error"', 19, "missing ')'"),
        ('and(eq(status, "error")', 24, "missing ')' to close and("),
        ('eq(status, "error"))', 20, "unexpected ')' after the end"),
        ('eq(status, "error") x', 21, "unexpected 'x' after the end"),
        ("eq(status)", 10, "takes a field and a value"),
        ('eq(status, "error", "x")', 19, "takes a field and a value, got more"),
        ("eq()", 4, "takes a field and a value"),
        ("and()", 5, "needs at least one condition"),
        ('search("a", "b")', 11, "search() takes at most"),
        ('gte(start_time, "not a date")', 17, "ISO 8601 datetime"),
        ("gte(start_time, 5)", 17, "expects an ISO 8601 datetime string, got a number"),
        ('gt(total_tokens, "many")', 18, "expects a number, got a string"),
        ("eq(status, error)", 12, "expected a value"),
        ('eq(run_type, "tools")', 14, "run_type has no value 'tools'"),
        ('gt(tags, "x")', 4, "gt() does not apply to tags"),
        ('has(name, "x")', 5, "has() does not apply to name"),
        ('eq(id, "not-a-uuid")', 8, "expects a UUID"),
        ('gt(latency, "5 sec")', 13, "duration"),
        ('eq(status, ["error"])', 12, "only allowed with in()"),
        ('in(status, "error")', 12, "in() expects a list"),
        ("eq(name, null)", 10, "non-null"),
        ("has(metadata, '{bad')", 15, "JSON object"),
        ("gt(metadata.x, true)", 16, "a number or a string"),
        ('search(start_time, "x")', 8, "not a text field"),
        ('eq(name, "open', 10, "unterminated string"),
        (r'eq(name, "a\q")', 12, "bad escape"),
        ("eq(total_tokens, 5s)", 18, "bad number '5s'"),
        ('eq(name, "x") ; drop', 15, "unexpected character ';'"),
        ("", 1, "empty filter"),
        ('"eq"(name, "x")', 1, "expected a comparator"),
    ],
)
def test_errors_point_at_the_offending_token(text: str, column: int, needle: str) -> None:
    with pytest.raises(FilterError) as exc:
        parse_filter(text)
    err = exc.value
    assert isinstance(err, SelfhealError)
    msg = str(err)
    assert "\n" not in msg and msg.startswith("filter: ")
    assert needle in msg, msg
    assert err.column == column, msg
    assert f"at column {column}" in msg
    src, caret = err.caret.split("\n")
    assert src == "  " + text
    assert caret == "  " + " " * (column - 1) + "^"


def test_error_on_a_later_line_names_line_and_column() -> None:
    text = 'and(\n  eq(status, "error"),\n  gte(start_time, "soon"))'
    with pytest.raises(FilterError) as exc:
        parse_filter(text)
    err = exc.value
    assert (err.line, err.column) == (3, 19)
    assert "at line 3, column 19" in str(err)
    assert err.caret == '    gte(start_time, "soon"))\n                    ^'
    assert err.render().splitlines()[0] == str(err)


def test_suggestions_for_typos() -> None:
    with pytest.raises(FilterError, match=r"did you mean 'eq'\?"):
        parse_filter('eqq(status, "error")')
    with pytest.raises(FilterError, match=r"did you mean 'start_time'\?"):
        parse_filter('gt(startime, "2026-01-01")')
    with pytest.raises(FilterError, match=r'quote text: "error"'):
        parse_filter("eq(status, error)")


# -- evaluation -------------------------------------------------------------------


def _run(**over: Any) -> dict[str, Any]:
    run: dict[str, Any] = {
        "id": RID,
        "trace_id": TID,
        "parent_run_id": None,
        "name": "lambda_ops",
        "run_type": "chain",
        "start_time": T0,
        "end_time": T0 + timedelta(seconds=7.5),
        "status": "error",
        "error": "Task timed out after 3.00 seconds",
        "inputs": {"messages": [{"content": "Why does resize-images TIME OUT?"}], "attempt": 2},
        "outputs": {"answer": "raised the timeout"},
        "tags": ["prod", "lambda_ops"],
        "extra": {"metadata": {"task_type": "lambda_timeout", "temperature": 0.7, "cached": True}},
        "total_tokens": 1200,
        "feedback": [{"key": "correctness", "score": 0.4}, {"key": "helpfulness", "score": 0.9}],
    }
    run.update(over)
    return run


def _ev(text: str, run: dict[str, Any] | None = None) -> bool:
    return evaluate(parse_filter(text), run if run is not None else _run())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('eq(status, "error")', True),
        ('eq(status, "success")', False),
        ('and(eq(status, "error"), gte(start_time, "2026-11-01T00:00:00Z"))', True),
        ('lt(start_time, "2026-11-01T00:00:00Z")', False),
        (
            'gt(end_time, "2026-10-31T23:00:00-01:00")',
            True,
        ),  # = 2026-11-01T00:00Z, end is 00:00:07.5
        ('gt(latency, "5s")', True),
        ('gt(latency, "8s")', False),
        ("lte(total_tokens, 1200)", True),
        ('has(tags, "prod")', True),
        ('has(tags, "dev")', False),
        ('search("time out")', True),  # case-insensitive, inside an input message
        ('search("raised")', True),  # outputs
        ('search("TIMED OUT")', True),  # error
        ('search("messages")', False),  # dict keys are not searched
        ('search(name, "OPS")', True),
        ("neq(error, null)", True),
        ("eq(error, null)", False),
        ("eq(is_root, true)", True),
        ("eq(parent_run_id, null)", True),
        (f'eq(id, "{RID}")', True),
        (f'in(trace_id, ["{RID}", "{TID}"])', True),
        ('in(run_type, ["llm", "tool"])', False),
        ('eq(metadata.task_type, "lambda_timeout")', True),
        ("gte(metadata.temperature, 0.5)", True),
        ('eq(metadata.temperature, "0.7")', True),  # text form of a number, as LangSmith compares
        ("eq(metadata.cached, true)", True),
        ("eq(metadata.cached, 1)", False),  # booleans are not numbers
        ("eq(metadata.missing, null)", True),
        ('neq(metadata.missing, "x")', True),  # neq is exactly not eq
        ('gt(metadata.missing, "a")', False),  # ordering on a missing field is false
        ("gt(metadata.task_type, 3)", False),  # string vs number: not comparable
        ('has(metadata, \'{"task_type": "lambda_timeout", "cached": true}\')', True),
        ("has(metadata, '{\"cached\": 1}')", False),
        ('or(eq(status, "success"), has(tags, "prod"))', True),
        ('and(eq(status, "success"), has(tags, "prod"))', False),
    ],
)
def test_evaluate_on_a_run(text: str, expected: bool) -> None:
    assert _ev(text) is expected


def test_timestamps_as_iso_strings_and_naive_datetimes_are_utc() -> None:
    run = _run(start_time="2026-11-01T00:00:00", end_time=datetime(2026, 11, 1, 0, 0, 3))
    assert _ev('eq(start_time, "2026-11-01T00:00:00Z")', run)
    assert _ev('lt(latency, "5s")', run)
    assert _ev('eq(status, "pending")', _run(status=None, error=None, end_time=None))
    assert not _ev('gt(latency, "0s")', _run(end_time=None))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # one feedback entry must carry both the key and the score
        ('and(eq(feedback_key, "correctness"), gte(feedback_score, 0.5))', False),
        ('and(eq(feedback_key, "helpfulness"), gte(feedback_score, 0.5))', True),
        ('eq(feedback_key, "correctness")', True),
        ("gt(feedback_score, 0.8)", True),  # any entry
        ('neq(feedback_key, "correctness")', False),  # no entry with that key
        ('neq(feedback_key, "toxicity")', True),
        ('and(eq(feedback_key, "correctness"), neq(feedback_score, 0.4))', False),
        # LangSmith's documented metadata forms
        ("eq(metadata_key, 'task_type')", True),
        ("and(eq(metadata_key, 'task_type'), eq(metadata_value, 'lambda_timeout'))", True),
        ("and(eq(metadata_key, 'task_type'), eq(metadata_value, 'other'))", False),
        ("and(eq(metadata_key, 'temperature'), eq(metadata_value, 'lambda_timeout'))", False),
        ("and(neq(metadata_key, 'conversation_id'))", True),
        ("and(neq(metadata_key, 'task_type'))", False),
        ("and(eq(metadata_key, 'task_type'), neq(metadata_value, 'other'))", True),
        ("and(eq(metadata_key, 'task_type'), neq(metadata_value, 'lambda_timeout'))", False),
        ("and(neq(metadata_key, 'conversation_id'), neq(metadata_value, 'lambda_timeout'))", False),
        ("and(neq(metadata_key, 'conversation_id'), eq(metadata_value, 'lambda_timeout'))", True),
        (
            'and(in(metadata_key, ["session_id", "task_type"]), eq(metadata_value, "lambda_timeout"))',
            True,
        ),
        ("and(eq(metadata_key, 'temperature'), gt(metadata_value, 0.5))", True),
        # inputs and outputs pair the same way
        ('and(eq(input_key, "attempt"), eq(input_value, 2))', True),
        ('and(eq(output_key, "answer"), eq(output_value, "raised the timeout"))', True),
        # pairs in separate or-branches are separate groups
        ('or(eq(metadata_key, "nope"), eq(metadata_value, "lambda_timeout"))', True),
    ],
)
def test_pair_fields_match_one_entry(text: str, expected: bool) -> None:
    assert _ev(text) is expected


def test_split_pairs_groups_by_family() -> None:
    ast = parse_filter(
        'and(eq(name, "x"), eq(metadata_key, "k"), neq(metadata_value, "v"), gte(feedback_score, 1), neq(feedback_key, "f"))'
    )
    assert isinstance(ast, And)
    plain, groups = split_pairs(ast.children)
    assert plain == [Comparison("eq", "name", "x")]
    by_family = {g.family: g for g in groups}
    assert by_family["metadata"].key_pos == (Comparison("eq", "metadata_key", "k"),)
    assert by_family["metadata"].value_neg == (Comparison("neq", "metadata_value", "v"),)
    assert by_family["feedback"].value_pos == (Comparison("gte", "feedback_score", 1),)
    assert by_family["feedback"].key_neg == (Comparison("neq", "feedback_key", "f"),)


def test_runs_without_optional_fields_never_raise() -> None:
    bare = {"id": RID, "name": "x", "run_type": "tool", "start_time": T0}
    for text in [
        'eq(status, "success")',
        'search("x")',
        'has(tags, "a")',
        'eq(metadata.a, "b")',
        'and(eq(feedback_key, "a"), gt(feedback_score, 0))',
        "neq(error, null)",
        "gt(total_tokens, 1)",
        "has(metadata, '{\"a\": 1}')",
    ]:
        evaluate(parse_filter(text), bare)
    assert evaluate(parse_filter('eq(status, "pending")'), bare)


# -- properties -------------------------------------------------------------------

_text = st.text(max_size=12)
_finite = st.floats(allow_nan=False, allow_infinity=False)
_number = st.integers(-(10**12), 10**12) | _finite
_datetime = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_json_scalar = st.none() | st.booleans() | _number | _text
_meta_key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,10}", fullmatch=True)


def _scalar_for(spec: FieldSpec, op: str) -> st.SearchStrategy[Any]:
    k = spec.kind
    if k in (Kind.STRING, Kind.TAGS, Kind.PAIR_KEY):
        return _text
    if k is Kind.ENUM:
        return st.sampled_from(sorted(spec.choices))
    if k is Kind.UUID:
        return st.uuids().map(str)
    if k is Kind.DATETIME:
        return _datetime
    if k is Kind.DURATION:
        return st.floats(min_value=0, max_value=1e9, allow_nan=False)
    if k in (Kind.INT, Kind.NUMBER):
        return _number
    if k is Kind.BOOL:
        return st.booleans()
    if k is Kind.METADATA:
        return st.dictionaries(_text, _json_scalar, min_size=1, max_size=3)
    if op in ("gt", "gte", "lt", "lte"):
        return _number | _text
    return st.booleans() | _number | _text


def _value_for(spec: FieldSpec, op: str) -> st.SearchStrategy[Any]:
    if op == "in":
        return st.lists(_scalar_for(spec, op), min_size=1, max_size=3).map(tuple)
    base = _scalar_for(spec, op)
    if spec.nullable and op in ("eq", "neq"):
        return st.none() | base
    return base


@st.composite
def _comparisons(draw: st.DrawFn) -> Filter:
    """A well-typed comparison on any field, including ``metadata.<key>``."""
    if draw(st.integers(0, 3)) == 0:
        name = "metadata." + draw(_meta_key)
    else:
        name = draw(st.sampled_from(sorted(FIELDS)))
    spec = field_spec(name)
    assert spec is not None
    op = draw(st.sampled_from(sorted(spec.ops)))
    return Comparison(op, name, draw(_value_for(spec, op)))  # type: ignore[arg-type]


_searchable = sorted(n for n, s in FIELDS.items() if s.searchable)
_leaf = _comparisons() | st.builds(Search, _text, st.none() | st.sampled_from(_searchable))
_filters = st.recursive(
    _leaf,
    lambda kids: (
        st.builds(And, st.lists(kids, min_size=1, max_size=4).map(tuple))
        | st.builds(Or, st.lists(kids, min_size=1, max_size=4).map(tuple))
    ),
    max_leaves=10,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_filters)
def test_round_trip_random_asts(ast: Filter) -> None:
    text = to_text(ast)
    assert parse_filter(text) == ast
    assert to_text(parse_filter(text)) == text


_runs = st.fixed_dictionaries(
    {
        "id": st.uuids().map(str),
        "name": _text,
        "run_type": st.sampled_from(["llm", "tool", "chain"]),
        "start_time": _datetime,
    },
    optional={
        "end_time": _datetime,
        "status": st.sampled_from(["success", "error", "pending"]),
        "error": st.none() | _text,
        "tags": st.lists(st.sampled_from(["a", "b", "prod"]), max_size=3),
        "extra": st.fixed_dictionaries(
            {
                "metadata": st.dictionaries(
                    st.sampled_from(["k", "x", "task_type"]), _json_scalar, max_size=3
                )
            }
        ),
        "inputs": st.dictionaries(_text, _json_scalar, max_size=2),
        "outputs": st.dictionaries(_text, _json_scalar, max_size=2),
        "total_tokens": st.integers(0, 10_000),
        "parent_run_id": st.none() | st.uuids().map(str),
        "feedback": st.lists(
            st.fixed_dictionaries(
                {"key": st.sampled_from(["k", "c"]), "score": st.none() | _number}
            ),
            max_size=3,
        ),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_filters, _runs)
def test_evaluate_never_raises_and_neq_is_not_eq(ast: Filter, run: dict[str, Any]) -> None:
    result = evaluate(ast, run)
    assert isinstance(result, bool)
    spec = field_spec(ast.field) if isinstance(ast, Comparison) else None
    if isinstance(ast, Comparison) and ast.op == "eq" and spec is not None and spec.family is None:
        assert evaluate(Comparison("neq", ast.field, ast.value), run) is (not result)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["k", "x", "task_type"]),
    st.booleans() | _number | st.text(string.ascii_letters, max_size=3),
    _runs,
)
def test_metadata_path_agrees_with_langsmith_pair_form(
    key: str, value: Any, run: dict[str, Any]
) -> None:
    short = Comparison("eq", f"metadata.{key}", value)
    pair = And((Comparison("eq", "metadata_key", key), Comparison("eq", "metadata_value", value)))
    assert evaluate(short, run) == evaluate(pair, run)
