"""Optimization triggers: success rate, new error clusters, user requests, the schedule; `selfheal status`.

Store runs are hand-made (tests/helpers/trace_fixtures.py) for a task type of
each reference agent: ``lambda_config`` (lambda_ops) and ``revenue``
(sql_analyst). Nothing here runs a model or an optimizer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from selfheal.config import load_settings
from selfheal.cron import next_time, parse_cron, previous_time
from selfheal.tracing.schema import utcnow
from selfheal.tracing.store import LocalTraceStore
from selfheal.tracing.trigger_log import (
    optimize_session,
    pending_triggers,
    read_optimize_runs,
    read_triggers,
    trigger_log_path,
)
from selfheal.tracing.triggers import trigger_status
from tests.helpers.cli import run_cli
from tests.helpers.trace_fixtures import Tool, TraceSpec, make_trace

REPO = Path(__file__).resolve().parents[1]
LAMBDA, SQL = "lambda_config", "revenue"   # a task type of lambda_ops, one of sql_analyst


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(REPO / ".github/workflows/selfheal-optimize.yml", tmp_path / ".github/workflows")
    return tmp_path


def settings_of(root: Path) -> Any:
    return load_settings(root, env={}, overrides={"thresholds": {"success_rate": 0.7, "recent_runs": 4}})


def write_runs(settings: Any, specs: list[TraceSpec]) -> None:
    with LocalTraceStore.from_settings(settings) as store:
        session = store.ensure_project(settings.tracing.project).id
        now = utcnow()
        store.write_runs([r for s in specs for r in make_trace(s, session, now)])


def spec(key: str, task_type: str, ok: bool, *, hours: float = 2, error: str | None = None) -> TraceSpec:
    tools = [Tool("run_query" if task_type == SQL else "update_timeout", message_error=error)]
    return TraceSpec(key, task_type, ok, 1.0, tools, error_type=None if ok else "check_failed",
                     age=timedelta(hours=hours))


def by_kind(status: Any, kind: str) -> list[Any]:
    return [t for t in status.triggers if t.kind == kind]


# -- cron ---------------------------------------------------------------------------
def test_cron_next_and_previous_time_of_the_optimize_workflows_schedule() -> None:
    weekly = parse_cron("17 3 * * 1")                       # Mondays 03:17 UTC
    thursday = datetime(2026, 12, 3, 4, 0, tzinfo=UTC)
    assert next_time(weekly, thursday) == datetime(2026, 12, 7, 3, 17, tzinfo=UTC)
    assert previous_time(weekly, thursday) == datetime(2026, 11, 30, 3, 17, tzinfo=UTC)
    quarter = parse_cron("*/15 9-17 * * mon-fri")
    assert next_time(quarter, datetime(2026, 12, 4, 17, 50, tzinfo=UTC)) == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert next_time(parse_cron("0 0 1 * 0"), datetime(2026, 12, 3, tzinfo=UTC)).day == 6   # dom OR dow
    for bad in ("17 3 * *", "61 * * * *", "* * * * 8", "5-1 * * * *", "*/0 * * * *"):
        with pytest.raises(ValueError):
            parse_cron(bad)


# -- success rate -----------------------------------------------------------------------
def test_success_rate_fires_below_the_threshold_per_task_type_and_not_above(repo: Path) -> None:
    settings = settings_of(repo)
    write_runs(settings, [
        *(spec(f"l{i}", LAMBDA, i == 0, hours=5 - i) for i in range(5)),   # latest 4: 0/4 (the success is older)
        *(spec(f"s{i}", SQL, i != 1, hours=5 - i) for i in range(5)),      # latest 4: 3/4 = 75%
    ])
    rates = {t.task_type: t for t in by_kind(trigger_status(settings), "success_rate")}
    assert rates[LAMBDA].state == "fired" and rates[LAMBDA].fired
    n = rates[LAMBDA].numbers
    assert (n.successes, n.runs, n.window, n.threshold) == (0, 4, 4, 0.7)
    assert "0/4" in rates[LAMBDA].explanation and "below the 70% threshold" in rates[LAMBDA].explanation
    assert rates[SQL].state == "quiet" and rates[SQL].numbers.rate == 0.75

    # an optimize run after the newest run behind the numbers handles it
    with optimize_session(settings.state_dir, mode="context") as session:
        session.outcome = "nothing proposed"
    rates = {t.task_type: t for t in by_kind(trigger_status(settings), "success_rate")}
    assert rates[LAMBDA].state == "handled" and rates[LAMBDA].handled_by.outcome == "nothing proposed"
    assert rates[SQL].state == "quiet"


def test_the_window_bounds_the_runs_counted(repo: Path) -> None:
    settings = settings_of(repo)
    write_runs(settings, [spec(f"old{i}", SQL, False, hours=24 * 20 + i) for i in range(4)]
               + [spec("new", SQL, True, hours=1)])
    (rate,) = by_kind(trigger_status(settings, since=timedelta(days=7)), "success_rate")
    assert rate.state == "quiet" and (rate.numbers.successes, rate.numbers.runs) == (1, 1)
    (rate,) = by_kind(trigger_status(settings, since=None), "success_rate")
    assert rate.state == "fired" and (rate.numbers.successes, rate.numbers.runs) == (1, 4)


# -- error clusters ---------------------------------------------------------------------
def test_a_new_error_cluster_fires_and_one_seen_before_the_window_does_not(repo: Path) -> None:
    settings = settings_of(repo)
    write_runs(settings, [
        spec("old", LAMBDA, False, hours=24 * 30, error="Task timed out after 3.00 seconds"),
        spec("again", LAMBDA, False, hours=3, error="Task timed out after 6.02 seconds"),
        spec("q1", SQL, False, hours=4, error="no such column: amount_cents_7"),
        spec("q2", SQL, False, hours=2, error="no such column: amount_cents_9"),
    ])
    status = trigger_status(settings, since=timedelta(days=7))
    (cluster,) = by_kind(status, "error_cluster")
    n = cluster.numbers
    assert cluster.state == "fired" and n.new and n.count == 2 and n.task_types == [SQL]
    assert n.signature == "no such column: <id>"
    assert n.first_seen < n.last_seen and cluster.task_type == SQL
    # the whole history as the window: nothing comes before it, so the timeout cluster is new as well
    everything = by_kind(trigger_status(settings, since=None), "error_cluster")
    assert {c.numbers.signature for c in everything} == {"Task timed out after <n> seconds",
                                                       "no such column: <id>"}


def test_no_new_cluster_is_quiet_and_says_how_many_recurred(repo: Path) -> None:
    settings = settings_of(repo)
    write_runs(settings, [spec("old", LAMBDA, False, hours=24 * 30, error="Task timed out after 3.00 seconds"),
                          spec("again", LAMBDA, False, hours=3, error="Task timed out after 6.02 seconds")])
    (cluster,) = by_kind(trigger_status(settings), "error_cluster")
    assert cluster.state == "quiet" and "1 known cluster(s) recurred" in cluster.explanation


# -- the optimize_context node -------------------------------------------------------------
def _node_call(settings: Any, task_type: str, *, learning: bool) -> dict[str, Any]:
    from selfheal.agent.nodes import optimize_context
    from selfheal.agent.record import Evaluation, ExecutionRecord

    record = ExecutionRecord(task="t", task_type=task_type, evaluation=Evaluation(
        success=True, efficiency_score=0.3, improvement_opportunities=["low_efficiency"]))
    state = {"execution_history": [record.to_state()], "improvement_suggestions": []}
    rc = SimpleNamespace(settings=settings, learning=learning, learner=None, recent_successes=[False, False, True])
    return optimize_context(state, SimpleNamespace(context=rc), {"configurable": {"thread_id": f"run-{task_type}"}})


@pytest.mark.parametrize("task_type", [LAMBDA, SQL])
def test_the_node_records_the_trigger_and_never_optimizes(repo: Path, task_type: str) -> None:
    settings = settings_of(repo)
    out = _node_call(settings, task_type, learning=True)
    (event,) = read_triggers(settings.state_dir)
    assert event.kind == "success_rate" and event.run_id == f"run-{task_type}" and event.task_type == task_type
    assert (event.numbers.successes, event.numbers.runs, event.numbers.threshold) == (2, 4, 0.7)
    (note,) = out["improvement_suggestions"]
    assert note.startswith("optimize_context: trigger recorded (") and "2/4" in note
    assert note.endswith("run `selfheal optimize` to act on it") and out["route"] == "optimize"
    assert out["execution_history"][-1]["learning"]["triggers"] == [f"success_rate:{event.id}"]
    _node_call(settings, task_type, learning=True)
    assert len(trigger_log_path(settings.state_dir).read_text().splitlines()) == 2      # appended
    (rate,) = by_kind(trigger_status(settings), "success_rate")
    assert rate.state == "quiet"   # no stored run: the recorded events still wait in the log
    assert [e.task_type for e in pending_triggers(settings.state_dir)] == [task_type, task_type]


def test_no_learn_records_nothing(repo: Path) -> None:
    settings = settings_of(repo)
    out = _node_call(settings, LAMBDA, learning=False)
    assert "disabled by --no-learn" in out["improvement_suggestions"][0]
    assert not trigger_log_path(settings.state_dir).exists()


def test_the_node_imports_no_optimizer(repo: Path) -> None:
    code = (
        "import sys\n"
        "from types import SimpleNamespace\n"
        "import selfheal.agent.workflow, selfheal.agent.nodes as n\n"
        "from selfheal.agent.record import Evaluation, ExecutionRecord\n"
        "from selfheal.config import load_settings\n"
        f"s = load_settings({str(repo)!r}, env={{}})\n"
        "r = ExecutionRecord(task_type='revenue', evaluation=Evaluation(success=True))\n"
        "rc = SimpleNamespace(settings=s, learning=True, learner=None, recent_successes=[False])\n"
        "n.optimize_context({'execution_history': [r.to_state()]}, SimpleNamespace(context=rc), {})\n"
        "print(sorted(m for m in sys.modules if m.startswith('selfheal.optimize')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# -- user requests through `selfheal optimize --reason` ----------------------------------------
def _git_repo(root: Path) -> None:
    import git

    r = git.Repo.init(root)
    with r.config_writer() as cw:
        cw.set_value("user", "name", "Ada Lovelace")
        cw.set_value("user", "email", "ada@example.com")


def test_optimize_reason_is_pending_then_handled(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import selfheal.optimize.context_opt as context_opt
    from selfheal.errors import SelfhealError

    _git_repo(repo)
    seen: dict[str, Any] = {}

    def broken(settings: Any, **kw: Any) -> Any:
        raise SelfhealError("dataset 'nosuch' not found")

    monkeypatch.setattr(context_opt, "optimize_context", broken)
    code, _, err = run_cli(["-C", str(repo), "optimize", "--reason", "refund answers regressed"], capsys)
    assert code == 2 and "nosuch" in err
    code, out, _ = run_cli(["-C", str(repo), "status", "--json"], capsys)
    (req,) = [t for t in json.loads(out)["triggers"] if t["kind"] == "user_request"]
    assert req["state"] == "fired" and req["numbers"]["reason"] == "refund answers regressed"
    assert req["numbers"]["who"] == "Ada Lovelace <ada@example.com>" and req["pending_events"] == 1
    assert read_optimize_runs(repo / ".selfheal")[-1].completed is False      # a failed run handles nothing

    def stub(settings: Any, **kw: Any) -> Any:
        seen.update(kw)
        report = context_opt.ContextOptReport(dataset="lambda_ops", roles={"agent": "scripted"}, reason=kw["reason"],
                                              reasons=["no variant beat the current context on the dev split"])
        report.markdown = context_opt.render_markdown(report)
        return report

    monkeypatch.setattr(context_opt, "optimize_context", stub)
    code, out, _ = run_cli(["-C", str(repo), "optimize"], capsys)          # any optimize run handles what is pending
    assert code == 0 and seen["reason"] is None
    code, out, _ = run_cli(["-C", str(repo), "status", "--json"], capsys)
    (req,) = [t for t in json.loads(out)["triggers"] if t["kind"] == "user_request"]
    assert req["state"] == "handled" and req["handled_by"]["outcome"].startswith("nothing proposed: no variant")
    assert "handled by optimize" in req["explanation"]

    code, out, _ = run_cli(["-C", str(repo), "optimize", "--reason", "weekly review"], capsys)
    assert seen["reason"] == "weekly review" and "- trigger: weekly review" in out   # in the report (= PR body)
    code, out, _ = run_cli(["-C", str(repo), "status"], capsys)
    assert code == 0 and "user_request" in out and "handled" in out and "weekly review" in out


def test_reason_schedule_is_the_schedule_trigger(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    import selfheal.optimize.context_opt as context_opt

    monkeypatch.setattr(context_opt, "optimize_context", lambda settings, **kw: context_opt.ContextOptReport(
        dataset="d", roles={}, reason=kw["reason"], proposed=False, reasons=["nothing to learn from"]))
    assert run_cli(["-C", str(repo), "optimize", "--reason", "schedule"], capsys)[0] == 0
    code, out, _ = run_cli(["-C", str(repo), "status", "--json"], capsys)
    data = json.loads(out)
    (sched,) = [t for t in data["triggers"] if t["kind"] == "schedule"]
    assert sched["state"] == "handled" and sched["numbers"]["cron"] == ["17 3 * * 1"]
    assert sched["numbers"]["next_run"] and sched["numbers"]["last_triggered"]
    assert [t["state"] for t in data["triggers"] if t["kind"] == "user_request"] == ["quiet"]
    assert data["last_optimize"]["reason"] == "schedule"


# -- `selfheal status` ------------------------------------------------------------------
def test_status_json_shape(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_of(repo)
    write_runs(settings, [spec("l", LAMBDA, False), spec("s", SQL, True)])
    code, out, err = run_cli(["-C", str(repo), "status", "--json", "--since", "2d"], capsys)
    assert code == 0 and err == ""
    data = json.loads(out)
    assert set(data) == {"generated_at", "since", "project", "triggers", "last_optimize"}
    assert {t["kind"] for t in data["triggers"]} == {"success_rate", "error_cluster", "user_request", "schedule"}
    for t in data["triggers"]:
        assert set(t) == {"kind", "state", "explanation", "task_type", "numbers", "pending_events", "handled_by"}
        assert t["state"] in {"fired", "quiet", "handled"} and t["explanation"]
    rates = {t["task_type"]: t["state"] for t in data["triggers"] if t["kind"] == "success_rate"}
    assert rates == {LAMBDA: "fired", SQL: "quiet"}


def test_status_without_a_schedule_or_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    code, out, _ = run_cli(["-C", str(tmp_path), "status"], capsys)
    assert code == 0 and "no schedule" in out and "last optimize run: none recorded" in out
    assert not (tmp_path / ".selfheal" / "traces.sqlite").exists()       # status creates no store


def test_status_bad_since_is_a_usage_error(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["-C", str(repo), "status", "--since", "last tuesday"], capsys)
    assert code == 2 and out == "" and "is not a duration or date" in err and "Traceback" not in err
