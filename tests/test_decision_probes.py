"""The decision probe set and its runner: what `selfheal model probe` measures, and that it can fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.openai_stub import OpenAIStub

from selfheal import load_settings
from selfheal.cli.main import main
from selfheal.errors import FileFormatError
from selfheal.evaluation.probe_runner import environment_verifier, summarize
from selfheal.evaluation.probes import ArgCheck, Decision, Expect, Probe, load_probes, score_decision, select_probes

REPO = Path(__file__).resolve().parents[1]
PROBES = REPO / "evals" / "decisions"


@pytest.fixture(scope="module")
def probes() -> list[Probe]:
    return load_probes([PROBES])


def by_id(probes: list[Probe], pid: str) -> Probe:
    return next(p for p in probes if p.id == pid)


def test_the_committed_probe_set_covers_three_agents_and_every_decision_kind(probes: list[Probe]) -> None:
    assert len(probes) >= 150
    agents = {p.agent for p in probes}
    assert agents == {"lambda_ops", "sql_analyst", "helpdesk"}
    tags = {t for p in probes for t in p.tags}
    assert {"look_before_act", "act", "policy", "no_early_stop", "final_answer", "uses_entry", "recover"} <= tags
    for p in probes:  # every probe is a real state: the system prompt first, the task as a user turn
        assert p.messages[0]["role"] == "system" and p.messages[1]["role"] == "user"
        if not p.expect.wants_answer:
            names = {t["function"]["name"] for t in p.tools}
            assert set(p.expect.tools) <= names, p.id


def test_the_empty_log_search_state_comes_from_the_real_tool(probes: list[Probe]) -> None:
    p = by_id(probes, "lambda_ops/timeout_shipping_quotes/empty-search")
    result = json.loads(p.messages[-1]["content"])
    assert result["matched"] == 0 and result["events"] == []
    # answering now is wrong: any tool is right
    assert not score_decision(p, Decision(answer="The function looks fine.")).correct
    assert score_decision(p, Decision(tool="get_function_metrics", args={"function_name": "quote-calculator"})).correct


def test_an_act_probe_judges_the_arguments(probes: list[Probe]) -> None:
    p = by_id(probes, "lambda_ops/timeout_shipping_quotes/act")
    assert p.expect.tools == ["update_timeout"]
    good = score_decision(p, Decision(tool="update_timeout", args={"function_name": "quote-calculator", "timeout_s": 15}),
                          verified=True)
    too_short = score_decision(p, Decision(tool="update_timeout",
                                           args={"function_name": "quote-calculator", "timeout_s": 10}), verified=False)
    wrong_tool = score_decision(p, Decision(tool="update_memory", args={"function_name": "quote-calculator",
                                                                        "memory_mb": 2048}))
    assert good.correct and good.args_ok
    assert too_short.tool_ok and too_short.args_ok is False and not too_short.correct
    assert not wrong_tool.tool_ok and wrong_tool.args_ok is None


def test_answer_probes_check_the_figure_with_or_without_separators(probes: list[Probe]) -> None:
    p = by_id(probes, "sql_analyst/customers_active_buyers_fy2025/answer")
    assert score_decision(p, Decision(answer="6,119 customers bought something in FY2025.")).correct
    assert score_decision(p, Decision(answer="6119 customers.")).correct
    assert not score_decision(p, Decision(answer="61190 customers.")).correct
    assert not score_decision(p, Decision(tool="run_sql", args={"query": "select 1"})).correct


def test_arg_checks_and_selection() -> None:
    args = {"a": 5, "b": {"c": "live"}, "s": "SELECT x / 100.0 FROM t"}
    assert ArgCheck(key="a", op="gte", value=5).holds(args)
    assert not ArgCheck(key="a", op="lte", value=4).holds(args)
    assert ArgCheck(key="b.c", op="eq", value="live").holds(args)
    assert ArgCheck(key="a", op="eq", value="5").holds(args)  # "5" and 5 are the same number
    assert ArgCheck(key="s", op="regex", value=r"/\s*100").holds(args)
    assert ArgCheck(key="zzz", op="absent").holds(args) and not ArgCheck(key="zzz", op="eq", value=1).holds(args)
    ps = [Probe(id=f"p{i}", agent="x" if i % 2 else "y", tags=["t"] if i < 5 else [], messages=[{"role": "user", "content": "q"}],
                expect=Expect()) for i in range(10)]
    assert [p.id for p in select_probes(ps, agents=["x"])] == ["p1", "p3", "p5", "p7", "p9"]
    assert len(select_probes(ps, tags=["t"])) == 5
    assert [p.id for p in select_probes(ps, limit=5)] == ["p0", "p2", "p4", "p6", "p8"]


def test_a_bad_probe_file_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    good = Probe(id="a", agent="x", messages=[{"role": "user", "content": "q"}], expect=Expect())
    bad.write_text(good.model_dump_json() + "\n{not json\n")
    with pytest.raises(FileFormatError, match=r"bad\.jsonl:2: not JSON"):
        load_probes([bad])
    bad.write_text(good.model_dump_json() + "\n" + good.model_dump_json() + "\n")
    with pytest.raises(FileFormatError, match="duplicate probe id"):
        load_probes([bad])


def test_the_environment_verifier_executes_the_call_in_the_scenario(probes: list[Probe]) -> None:
    settings = load_settings(REPO)
    verify = environment_verifier(settings)
    lam = by_id(probes, "lambda_ops/timeout_shipping_quotes/act")
    assert verify(lam, Decision(tool="update_timeout", args={"function_name": "quote-calculator", "timeout_s": 15}))
    assert not verify(lam, Decision(tool="update_timeout", args={"function_name": "label-printer", "timeout_s": 15}))
    sql = by_id(probes, "sql_analyst/customers_count/query")
    from sql_analyst.questions import load_question

    gold = load_question(REPO / "evals" / "sql_analyst" / "scenarios" / "customers_count.yaml").gold_sql
    assert verify(sql, Decision(tool="run_sql", args={"query": gold}))
    assert not verify(sql, Decision(tool="run_sql", args={"query": "SELECT COUNT(*) FROM customers"}))


def test_model_probe_scores_a_model_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch, probes: list[Probe]) -> None:
    """Through the real OpenAI client: a model that always refunds gets the look-ups and escalations wrong."""
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    (tmp_path / "evals" / "decisions").mkdir(parents=True)
    shutil.copy(PROBES / "helpdesk.jsonl", tmp_path / "evals" / "decisions" / "helpdesk.jsonl")
    helpdesk = [p for p in probes if p.agent == "helpdesk"]
    with OpenAIStub() as stub:
        for p in helpdesk:
            order = p.scenario
            stub.reply_tool_calls([("refund_order", {"order_id": order, "amount_cents": 100})])
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        with pytest.raises(SystemExit) as info:
            main(["-C", str(tmp_path), "model", "probe", "--json", "--out", "probe.json"])
        out, err = capsys.readouterr()
    assert info.value.code == 0, err
    report = json.loads(out)
    overall = report["summaries"][0]
    assert overall["n"] == 36
    # right tool only where refunding is right (policy), never on look-ups or answers
    refundable = sum(1 for p in helpdesk if p.expect.tools == ["refund_order"])
    assert overall["tool"]["k"] == refundable
    assert overall["args"]["k"] == 0  # the amount is always wrong
    assert json.loads((tmp_path / "probe.json").read_text())["model"].startswith("openai:")
    # the real client sent the probe's own conversation and tools
    assert stub.bodies[0]["messages"][0]["content"].startswith("You are the refunds desk")
    assert {t["function"]["name"] for t in stub.bodies[0]["tools"]} == {"lookup_order", "refund_order", "escalate_order"}


def test_summary_counts_only_measures_that_apply() -> None:
    p = Probe(id="a", agent="x", messages=[{"role": "user", "content": "q"}], expect=Expect(tools=["t"]))
    q = Probe(id="b", agent="x", messages=[{"role": "user", "content": "q"}], expect=Expect(answer_regex=["42"]))
    s = summarize([score_decision(p, Decision(tool="t")), score_decision(q, Decision(answer="it is 41"))])
    assert (s.tool.k, s.tool.n) == (2, 2)
    assert (s.args.n, s.answer.k, s.answer.n) == (0, 0, 1)
    assert s.step.k == 1
