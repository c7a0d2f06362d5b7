"""The filter parser is total: any string parses or raises FilterError (with its column), nothing else.

Fuzzing once found 1,704 of 13,239 inputs raising AssertionError (non-ASCII
names), RecursionError (deep nesting) or errors on undecodable bytes. The
long variant (10,000 examples per strategy) runs with ``SELFHEAL_LONG_TESTS=1``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfheal.tracing.filters import COMPARATORS, FIELDS, MAX_DEPTH, FilterError, parse_filter, to_text

_NAMES = ["and", "or", "search", *sorted(COMPARATORS), *sorted(FIELDS), "metadata.k", "true", "false", "null"]
_ATOMS = st.sampled_from([
    '"x"', "'y'", '"2026-01-01T00:00:00Z"', '"5s"', "'{\"k\": 1}'", "1", "-2.5e3", "1e999", "0x1",
    '"\\u00e9"', '"\\ud800"', '"\\ud83d\\ude00"', '"\\q"', '"unterminated', "[", "]", "[]", ",", ")", "(",
    "é", "ß", "\u0663", "\u00b2", "\ud800", "\udcff", "\x00", "\t", "\n", " ", "İ", "\ufb01", "\U0001d7d9",
]) | st.sampled_from(_NAMES) | st.text(max_size=4)


@st.composite
def _calls(draw: st.DrawFn, depth: int = 0) -> str:
    """Nested-call-shaped text: mostly well-formed, with wrong names, arities, values and junk mixed in."""
    name = draw(st.sampled_from(_NAMES) | st.text(max_size=3))
    if depth > 6 or draw(st.integers(0, 3)) == 0:
        args = draw(st.lists(_ATOMS, max_size=3))
    else:
        args = draw(st.lists(_calls(depth + 1) | _ATOMS, min_size=0, max_size=3))
    sep = draw(st.sampled_from([", ", ",", " , ", ",,", " "]))
    close = draw(st.sampled_from([")", ")", ")", "", "))", "]"]))
    return f"{name}({sep.join(args)}{close}"


def _total(text: str) -> None:
    try:
        ast = parse_filter(text)
    except FilterError as exc:
        line = str(exc)
        assert line.startswith("filter: ") and "\n" not in line and " column " in line
        assert 1 <= exc.column and exc.caret.count("\n") == 1
        exc.render().encode("utf-8")  # printable as is: no lone surrogate reaches a terminal
        return
    assert parse_filter(to_text(ast)) == ast  # what parses round-trips


_settings = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(st.text())
def test_any_text_parses_or_is_a_filter_error(text: str) -> None:
    _total(text)


@_settings
@given(_calls())
def test_call_shaped_text_parses_or_is_a_filter_error(text: str) -> None:
    _total(text)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("é", "unexpected character 'é'"),
        ('eq(nämé, "x")', "unexpected character 'ä'"),
        ("eq(name, \udcff)", "not valid Unicode text"),
        ('eq(name, "a\udcffb")', "not valid Unicode text"),
        ('eq(name, "\\ud800")', "half of a surrogate pair"),
        ("eq(total_tokens, 1" + "0" * 5000 + ")", "is out of range"),
        ("has(metadata, '" + '{"a":' * 5000 + "')", "expects a JSON object string"),
        ("and(" * 10_000 + 'eq(name, "x")' + ")" * 10_000, f"nested deeper than {MAX_DEPTH} calls"),
        ("and(" * 10_000, f"nested deeper than {MAX_DEPTH} calls"),
    ],
)
def test_former_crashes_are_filter_errors(text: str, needle: str) -> None:
    with pytest.raises(FilterError, match="column") as exc:
        parse_filter(text)
    assert needle in str(exc.value)


def test_nesting_up_to_the_limit_parses() -> None:
    depth = MAX_DEPTH - 1
    assert to_text(parse_filter("and(" * depth + 'eq(name, "x")' + ")" * depth)).count("and(") == depth


_long = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_long_only = pytest.mark.skipif(os.environ.get("SELFHEAL_LONG_TESTS") != "1", reason="set SELFHEAL_LONG_TESTS=1")


@pytest.mark.slow
@_long_only
@_long
@given(st.text() | _calls())
def test_ten_thousand_inputs_parse_or_are_filter_errors(text: str) -> None:
    _total(text)
