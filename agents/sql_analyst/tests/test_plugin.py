from __future__ import annotations

import ast
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from langchain_core.tools import BaseTool
from selfheal import CheckResult, Verdict
from selfheal.errors import FileFormatError

from sql_analyst.conventions import BY_ID
from sql_analyst.plugin import CHECK, make_agent



PACKAGE = Path(__file__).resolve().parents[1] / "sql_analyst"
REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO / "evals" / "sql_analyst" / "scenarios"
PROMPTS = REPO / "prompts" / "sql_analyst"


def _run_sql(session) -> BaseTool:
    return {t.name: t for t in session.tools}["run_sql"]


def test_registered_as_a_selfheal_agent() -> None:
    (ep,) = [e for e in entry_points(group="selfheal.agents") if e.name == "sql_analyst"]
    agent = ep.load()()
    assert agent.name == "sql_analyst"
    assert agent.tool_names() == ["list_tables", "describe_table", "run_sql"]


def test_only_the_plugin_imports_selfheal() -> None:
    for path in PACKAGE.glob("*.py"):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
        assert ("selfheal" in imported) == (path.name == "plugin.py"), path.name


def test_classify() -> None:
    agent = make_agent()
    assert agent.classify("What was revenue last quarter?") == "revenue"
    assert agent.classify("How many refunds did we issue?") == "refunds"
    assert agent.classify("Current MRR please") == "subscriptions"
    assert agent.classify("How many orders came in yesterday?") == "orders"
    assert agent.classify("How many customers do we have?") == "customers"
    assert agent.classify("Which sales rep sold the most?") == "staff"
    assert agent.classify("Tell me a joke") == "general"


def test_classifier_agrees_with_most_question_files(questions) -> None:
    agent = make_agent()
    hits = sum(agent.classify(q.task) == q.task_type for q in questions)
    assert hits >= 0.9 * len(questions)


def test_scenario_listing(agent, settings, questions) -> None:
    assert agent.list_scenarios(settings) == sorted(q.name for q in questions)
    rows = agent.describe_scenarios(settings)
    assert len(rows) == len(questions)
    assert set(rows[0]) == {"name", "task_type", "split", "task", "success"}


def test_every_scenario_file_validates(agent) -> None:
    for path in sorted(SCENARIOS.glob("*.yaml")):
        assert agent.validate_scenario(path) == 1


@pytest.mark.parametrize(
    ("gold", "message"),
    [("SELECT nope FROM orders", "gold_sql does not run: error: no such column: nope"),
     ("SELECT id FROM orders WHERE id < 0", "gold_sql returns no rows"),
     ("DELETE FROM orders", "gold_sql does not run: error: not allowed")],
)
def test_a_bad_gold_query_is_a_file_error(agent, tmp_path: Path, gold: str, message: str) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(f"name: q\ntask: t\ntask_type: orders\nsplit: train\ngold_sql: {gold}\n")
    with pytest.raises(FileFormatError) as err:
        agent.validate_scenario(path)
    assert err.value.line == 5 and message in str(err.value)
    path.write_text("name: q\ntask: t\ntask_type: nope\nsplit: train\ngold_sql: SELECT 1\n")
    with pytest.raises(FileFormatError) as err:
        agent.validate_scenario(path)
    assert err.value.line == 3


def test_hostile_question_yaml_is_a_file_error(agent, tmp_path: Path) -> None:
    """Question files are read through selfheal's guarded YAML parser: no alias bomb, no traceback."""
    path = tmp_path / "q.yaml"
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi", strict=True))
    for text, line, message in [(bomb, 5, "aliases expand"), ("name: q\nwhen: 2026-02-30\n", 2, "cannot read")]:
        path.write_text(text)
        with pytest.raises(FileFormatError) as err:
            agent.validate_scenario(path)
        assert err.value.line == line and message in str(err.value)


def test_open_without_a_scenario_has_tools_but_no_verdict(agent, settings) -> None:
    session = agent.open(settings, task="How many customers do we have?", scenario=None)
    try:
        assert session.scenario is None and session.task_type == "customers"
        assert all(isinstance(t, BaseTool) for t in session.tools)
        assert "(1 row)" in _run_sql(session).invoke({"query": "SELECT COUNT(*) FROM customers"})
        verdict = session.verify("8090")
        assert isinstance(verdict, Verdict) and verdict.passed is None
    finally:
        session.close()
    with pytest.raises(FileFormatError):
        agent.open(settings, task=None, scenario="no_such_question")


def test_verify_without_a_query_fails_saying_so(agent, settings) -> None:
    session = agent.open(settings, task=None, scenario="customers_count")
    try:
        assert session.task.startswith("How many customers") and session.task_type == "customers"
        verdict = session.verify("There are 42.")
        assert verdict.passed is False
        (check,) = verdict.checks
        assert isinstance(check, CheckResult) and check.description == CHECK and "no successful run_sql" in check.detail
    finally:
        session.close()


def test_end_to_end_gold_passes_naive_fails(agent, settings, questions) -> None:
    q = next(q for q in questions if q.name == "revenue_fy2024")
    session = agent.open(settings, task=None, scenario=q.name)
    try:
        run_sql = _run_sql(session)
        # a naive analyst: every order, amounts as stored
        naive = BY_ID["money-cents"].neutralize(BY_ID["order-cancelled"].neutralize(q.gold_sql))
        assert "(1 row)" in run_sql.invoke({"query": naive})
        verdict = session.verify()
        assert verdict.passed is False
        assert "first differing value: column 1: gold" in verdict.checks[0].detail
        # the last successful query counts: a failing one afterwards changes nothing
        run_sql.invoke({"query": q.gold_sql})
        assert run_sql.invoke({"query": "SELECT nope"}).startswith("error:")
        verdict = session.verify("done")
        assert verdict.passed is True, verdict.checks[0].detail
        assert len(session.results) == 2
    finally:
        session.close()


def test_a_wrong_list_shows_missing_and_extra_rows(agent, settings) -> None:
    session = agent.open(settings, task=None, scenario="customers_by_region")
    try:
        _run_sql(session).invoke({"query": "SELECT region, COUNT(*) FROM customers GROUP BY region"})
        verdict = session.verify()
        detail = verdict.checks[0].detail
        assert verdict.passed is False
        assert "missing (in gold, not in result)" in detail and "extra (in result, not in gold)" in detail
        assert "gold: 6 row(s)" in detail
    finally:
        session.close()


def test_seed_context_renders_fixed_part_first() -> None:
    from selfheal.cheatsheet.model import ENTRY_ADAPTER
    from selfheal.context.loader import load_context
    from selfheal.context.render import USED_PREFIX, render_system_prompt

    ctx = load_context(PROMPTS)
    entry = ENTRY_ADAPTER.validate_python({
        "id": "code-revenue-base", "section": "code_snippets", "task_type": "revenue", "status": "active",
        "purpose": "Base of every revenue figure", "snippet": "FROM orders o WHERE o.status <> 3", "language": "sql",
        "source": {"kind": "human", "created": "2026-12-01T00:00:00Z"},
    })
    tools = [(t, "") for t in make_agent().tool_names()]
    a = render_system_prompt(ctx, task="q1", task_type="revenue", entries=[entry], tools=tools)
    b = render_system_prompt(ctx, task="q2", task_type="customers", entries=[], tools=tools)
    assert "[code-revenue-base]" in a and "o.status <> 3" in a
    fixed = a[: a.index("Question type:")]
    assert b.startswith(fixed) and USED_PREFIX in fixed
    assert "q1" not in a and "revenue" not in fixed.lower()
    for conv in BY_ID.values():  # the seed teaches no convention
        assert conv.sql not in a.replace("o.status <> 3", "")


def test_database_location(tmp_path: Path, monkeypatch) -> None:
    from sql_analyst.plugin import CACHE_ENV

    assert not CACHE_ENV.startswith("SELFHEAL_")  # selfheal would reject it as an unknown setting
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env-cache"))
    monkeypatch.setattr("sql_analyst.plugin.database_path", lambda folder, seed: folder / "db.sqlite")
    assert make_agent().database() == tmp_path / "env-cache" / "db.sqlite"
    assert make_agent(cache_dir=tmp_path / "x").database() == tmp_path / "x" / "db.sqlite"
