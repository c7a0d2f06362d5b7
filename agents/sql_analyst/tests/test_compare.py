from __future__ import annotations

from sql_analyst.compare import Tolerance, compare_results


def test_order_is_ignored_unless_asked() -> None:
    gold = [("East", 10.0), ("West", 20.0)]
    got = [("West", 20.0), ("East", 10.0)]
    assert compare_results(gold, got).equal
    out = compare_results(gold, got, ordered=True)
    assert not out.equal
    assert "row 1" in out.detail and "'East'" in out.detail and "'West'" in out.detail


def test_numeric_tolerance() -> None:
    assert compare_results([(1234.564,)], [(1234.56,)]).equal  # within half a cent
    assert compare_results([(1_000_000.0,)], [(1_000_050.0,)]).equal  # within 1e-4 relative
    assert not compare_results([(100.0,)], [(100.02,)]).equal
    assert compare_results([(100.0,)], [(100.02,)], tolerance=Tolerance(abs=0.05)).equal
    assert compare_results([(3,)], [("3.0",)]).equal  # numeric text is a number
    assert not compare_results([(None,)], [(0,)]).equal


def test_rows_are_multisets() -> None:
    gold = [("a", 1), ("a", 1), ("b", 2)]
    out = compare_results(gold, [("a", 1), ("b", 2)])
    assert not out.equal
    assert "gold: 3 row(s)" in out.detail and "got: 2 row(s)" in out.detail
    assert "missing (in gold, not in result): 1 row(s), e.g. ('a', 1)" in out.detail
    out = compare_results([("a", 1)], [("a", 1), ("a", 1)])
    assert not out.equal and "extra (in result, not in gold): 1 row(s)" in out.detail


def test_column_names_order_and_extra_columns() -> None:
    gold = [("Ann", 5.5), ("Bob", 7.25)]
    assert compare_results(gold, [(7.25, "Bob"), (5.5, "Ann")]).equal  # columns in another order
    assert compare_results(gold, [(2, "Bob", 7.25), (1, "Ann", 5.5)]).equal  # an extra id column
    out = compare_results(gold, [("Ann",), ("Bob",)])
    assert not out.equal and "fewer columns" in out.detail


def test_scalar_diff_names_the_values() -> None:
    out = compare_results([(1234.5,)], [(123450,)])
    assert not out.equal
    assert "first differing value: column 1: gold 1234.5 vs got 123450" in out.detail


def test_empty_results() -> None:
    assert compare_results([], []).equal
    assert not compare_results([(1,)], []).equal
