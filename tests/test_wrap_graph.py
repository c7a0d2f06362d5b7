"""A team's own LangGraph graph, kept as it is, run by selfheal (public API only).

The graph is the canonical tool loop a team writes by hand (an agent node, a
``ToolNode``, ``tools_condition``); selfheal renders the context around it,
traces every node, verifies from evidence and learns — the same run record
as ``selfheal run`` of a plug-in.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

import selfheal
from selfheal.agent.learning import LearningOutcome
from selfheal.models.fakes import ScriptedChatModel
from selfheal.scaffold import scaffold
from selfheal.tracing.store import LocalTraceStore


class Orders:
    """The team's environment: what the verifier reads."""

    def __init__(self) -> None:
        self.status = {"123": "paid"}


def team_graph(model: ScriptedChatModel, orders: Orders) -> tuple[Any, list[Any]]:
    @tool
    def get_order(order_id: str) -> str:
        """Look an order up by id."""
        return f"order {order_id}: {orders.status.get(order_id, 'unknown')}"

    @tool
    def refund_order(order_id: str) -> str:
        """Refund an order."""
        orders.status[order_id] = "refunded"
        return f"order {order_id} refunded"

    tools = [get_order, refund_order]

    def agent(state: MessagesState) -> dict[str, Any]:  # binds per call, as create_agent does
        return {"messages": [model.bind_tools(tools).invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode(tools))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition)
    g.add_edge("tools", "agent")
    return g.compile(), tools


def _call(name: str, args: dict[str, Any], i: int) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"c{i}"}])


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    scaffold(tmp_path, "support_bot")
    ctx = tmp_path / "prompts" / "support_bot" / "context.yaml"
    ctx.write_text(ctx.read_text().replace("tools: {}", "tools:\n  refund_order: Refund a paid order (look it up first)."))
    (tmp_path / "cheatsheet" / "heuristics").mkdir(parents=True, exist_ok=True)
    (tmp_path / "cheatsheet" / "heuristics" / "heur-refund-lookup.yaml").write_text(textwrap.dedent("""\
        id: heur-refund-lookup
        section: heuristics
        task_type: general
        condition: A refund is requested
        rule: Look the order up before refunding it.
        status: active
        source: {kind: seed, runs: [], created: 2026-01-01T00:00:00Z}
    """))
    return tmp_path


class RecordingLearner:
    def __init__(self) -> None:
        self.learned: list[str] = []
        self.counted: list[list[str]] = []

    def count_success(self, rc: Any, *, run_id: str, used_entries: list[str], verified: bool) -> list[str]:
        self.counted.append(used_entries)
        return [f"{e}=helpful" for e in used_entries]

    def learn(self, state: Any, rc: Any, *, run_id: str, config: Any = None) -> LearningOutcome:
        self.learned.append(state["task"])
        return LearningOutcome(record={"applied": [], "rejected": [], "errors": []})


def _settings(repo: Path) -> selfheal.Settings:
    return selfheal.load_settings(repo, env={}, overrides={"agent": "support_bot", "embeddings": {"provider": "none"}})


def test_a_wrapped_graph_runs_with_selfheals_context_trace_and_verdict(repo: Path) -> None:
    orders = Orders()
    model = ScriptedChatModel([_call("get_order", {"order_id": "123"}, 1), _call("refund_order", {"order_id": "123"}, 2),
                               AIMessage("Refunded order 123.\nUSED: heur-refund-lookup")])
    graph, tools = team_graph(model, orders)
    agent = selfheal.wrap_graph(graph, name="support_bot", tools=tools,
                                verify=lambda answer: orders.status["123"] == "refunded")
    learner = RecordingLearner()
    settings = _settings(repo)
    out = selfheal.run_task(settings, "Refund order 123, the customer returned it", agent=agent,
                            model=ScriptedChatModel([]), learner=learner)

    assert out.success and out.verified
    assert [c["name"] for c in out.tool_calls] == ["get_order", "refund_order"]
    assert out.final_answer.startswith("Refunded order 123")
    assert out.used_entries == ["heur-refund-lookup"] and learner.counted == [["heur-refund-lookup"]]
    # The team's model saw selfheal's rendered context: instructions, the retrieved entry, the tools.
    system = model.calls[0]["messages"][0]
    assert isinstance(system, SystemMessage)
    assert "never guess a value you can read" in system.content
    assert "[heur-refund-lookup]" in system.content
    # context.yaml's reviewed tool description reached the team's model, and the tool got its own back.
    described = {t["function"]["name"]: t["function"]["description"] for t in model.bound_tools}
    assert described["refund_order"] == "Refund a paid order (look it up first)."
    assert tools[1].description == "Refund an order."
    # One trace: selfheal's root run with its metadata, the team's nodes as children.
    with LocalTraceStore(settings.trace_store_path) as store:
        root = store.get_run(out.run_id)
        names = {r.name for r in store.list_runs(settings.tracing.project, trace_id=root.trace_id, limit=100)}
    meta = root.extra["metadata"]
    assert meta["success"] is True and meta["task_type"] == "general" and meta["context_version"]
    assert {"agent", "tools", "get_order", "refund_order"} <= names


def test_a_wrong_outcome_is_a_failure_and_is_handed_to_learning(repo: Path) -> None:
    orders = Orders()
    model = ScriptedChatModel([AIMessage("Done, refunded. USED: none")])  # claims success, changes nothing
    graph, tools = team_graph(model, orders)
    agent = selfheal.wrap_graph(graph, name="support_bot", tools=tools,
                                verify=lambda answer, task: selfheal.Verdict(
                                    orders.status["123"] == "refunded",
                                    [selfheal.CheckResult("order 123 refunded", orders.status["123"] == "refunded",
                                                          orders.status["123"])]))
    learner = RecordingLearner()
    out = selfheal.run_task(_settings(repo), "Refund order 123", agent=agent, model=ScriptedChatModel([]),
                            learner=learner)
    assert not out.success and out.checks[0]["detail"] == "paid"
    assert learner.learned == ["Refund order 123"]


def test_prepare_context_for_graphs_that_build_their_own_prompt(repo: Path) -> None:
    graph, tools = team_graph(ScriptedChatModel([]), Orders())
    agent = selfheal.wrap_graph(graph, name="support_bot", tools=tools)
    ctx = selfheal.prepare_context(_settings(repo), "A customer wants a refund for order 9", agent=agent,
                                   tools=tools)
    assert [e.id for e in ctx.entries] == ["heur-refund-lookup"]
    assert "[heur-refund-lookup]" in ctx.system_prompt and ctx.context_version and ctx.cheatsheet_version
    assert ctx.used_entries("ok\nUSED: heur-refund-lookup, heur-made-up") == ["heur-refund-lookup"]
    node = selfheal.context_node(_settings(repo), agent=agent)
    state = node({"messages": [], "task": "refund order 5 please"})
    assert state["selfheal_context"]["entries"][0]["id"] == "heur-refund-lookup"


def test_wrapped_examples_are_header_only(repo: Path, tmp_path: Path) -> None:
    agent = selfheal.wrap_graph(team_graph(ScriptedChatModel([]), Orders())[0], name="support_bot")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntask: t\ntask_type: general\nsplit: test\nfunctions: []\n")
    with pytest.raises(selfheal.FileFormatError, match=r"bad.yaml:5: unknown key 'functions'"):
        agent.validate_scenario(bad)
    with pytest.raises(TypeError, match="has no invoke"):
        selfheal.wrap_graph(object(), name="x")
