"""LocalTracer on a real LangGraph graph: what ends up in the store after a run."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from selfheal.tracing import LocalTraceStore, RunRecord, TraceStore
from selfheal.tracing.tracer import LocalTracer


class State(TypedDict, total=False):
    messages: Annotated[list[BaseMessage], add_messages]
    function: str
    memory_mb: int
    fail: bool


@tool
def update_memory(function: str, memory_mb: int) -> str:
    """Set a function's memory in MB."""
    return f"{function} now has {memory_mb} MB"


def _replies() -> Iterator[AIMessage]:
    while True:
        yield AIMessage(
            "",
            tool_calls=[
                {
                    "name": "update_memory",
                    "args": {"function": "checkout-api", "memory_mb": 1024},
                    "id": "c1",
                }
            ],
            usage_metadata={"input_tokens": 40, "output_tokens": 12, "total_tokens": 52},
        )


def build_graph() -> Any:
    """plan -> call_model (fake chat model with usage) -> act (a @tool); act raises on demand."""
    model = GenericFakeChatModel(messages=_replies())

    def plan(state: State) -> State:
        return {"function": "checkout-api"}

    def call_model(state: State) -> State:
        return {"messages": [model.invoke(state["messages"])]}

    def act(state: State) -> State:
        if state.get("fail"):
            raise RuntimeError("simulated AWS outage")
        call = state["messages"][-1].tool_calls[0]
        result = update_memory.invoke(call["args"])
        return {"memory_mb": call["args"]["memory_mb"], "messages": [AIMessage(result)]}

    g = StateGraph(State)
    g.add_node("plan", plan)
    g.add_node("call_model", call_model)
    g.add_node("act", act)
    g.add_edge(START, "plan")
    g.add_edge("plan", "call_model")
    g.add_edge("call_model", "act")
    g.add_edge("act", END)
    return g.compile()


INPUT: State = {"messages": [HumanMessage("checkout-api times out")]}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalTraceStore]:
    s = LocalTraceStore(tmp_path / "traces.sqlite")
    yield s
    s.close()


@pytest.fixture(scope="module")
def graph() -> Any:
    return build_graph()


def _by_name(runs: list[RunRecord]) -> dict[str, RunRecord]:
    return {r.name: r for r in runs}


def test_every_node_model_and_tool_call_is_a_run_in_one_tree(
    store: LocalTraceStore, graph: Any
) -> None:
    tracer = LocalTracer(store, "ops", background=False)
    result = graph.invoke(INPUT, config={"callbacks": [tracer]})
    assert result["memory_mb"] == 1024

    root_id = tracer.last_root_id
    assert root_id is not None and tracer.root_run_ids == [root_id]
    trace = store.get_trace(root_id)
    runs = _by_name(trace)
    assert set(runs) == {
        "LangGraph",
        "plan",
        "call_model",
        "GenericFakeChatModel",
        "act",
        "update_memory",
    }

    root = runs["LangGraph"]
    assert root.id == root_id and root.parent_run_id is None and root.status == "success"
    assert all(r.trace_id == root_id for r in trace)
    for node in ("plan", "call_model", "act"):
        assert runs[node].parent_run_id == root_id and runs[node].run_type == "chain"
    assert runs["GenericFakeChatModel"].parent_run_id == runs["call_model"].id
    assert runs["update_memory"].parent_run_id == runs["act"].id
    assert runs["update_memory"].run_type == "tool"
    assert runs["update_memory"].inputs == {"function": "checkout-api", "memory_mb": 1024}
    assert "1024 MB" in str(runs["update_memory"].outputs)

    # Execution order is dotted order; every child's dotted order extends its parent's.
    assert [r.name for r in trace] == [
        "LangGraph",
        "plan",
        "call_model",
        "GenericFakeChatModel",
        "act",
        "update_memory",
    ]
    for r in trace:
        if r.parent_run_id is not None:
            parent = next(p for p in trace if p.id == r.parent_run_id)
            assert r.dotted_order.startswith(parent.dotted_order + ".")
    assert root.child_run_ids == [runs["plan"].id, runs["call_model"].id, runs["act"].id]
    assert all(r.end_time is not None and r.end_time >= r.start_time for r in trace)

    project = store.get_project("ops")
    assert project is not None and {r.session_id for r in trace} == {project.id}
    assert root.outputs is not None and root.outputs["memory_mb"] == 1024


def test_llm_run_carries_tokens_and_messages(store: LocalTraceStore, graph: Any) -> None:
    tracer = LocalTracer(store, background=False)
    graph.invoke(INPUT, config={"callbacks": [tracer]})
    runs = _by_name(store.get_trace(tracer.last_root_id))  # type: ignore[arg-type]
    llm = runs["GenericFakeChatModel"]
    assert llm.run_type == "llm"
    assert (llm.prompt_tokens, llm.completion_tokens, llm.total_tokens) == (40, 12, 52)
    assert llm.metadata["usage_metadata"]["total_tokens"] == 52
    assert llm.extra["tool_call_count"] == 1
    assert llm.inputs["messages"][0][0]["content"] == "checkout-api times out"
    message = llm.outputs["generations"][0][0]["message"]  # type: ignore[index]
    assert message["tool_calls"][0]["name"] == "update_memory"
    # Tokens roll up to the node and the root, as LangSmith shows them.
    assert runs["call_model"].total_tokens == 52 and runs["LangGraph"].total_tokens == 52
    assert runs["plan"].total_tokens is None
    # LangGraph's node metadata is kept.
    assert runs["call_model"].metadata["langgraph_node"] == "call_model"


def test_a_node_that_raises_leaves_error_runs(store: LocalTraceStore, graph: Any) -> None:
    tracer = LocalTracer(store, background=False)
    with pytest.raises(RuntimeError, match="simulated AWS outage"):
        graph.invoke({**INPUT, "fail": True}, config={"callbacks": [tracer]})
    runs = _by_name(store.get_trace(tracer.last_root_id))  # type: ignore[arg-type]
    assert runs["act"].status == "error" and "simulated AWS outage" in (runs["act"].error or "")
    assert runs["LangGraph"].status == "error" and "simulated AWS outage" in (
        runs["LangGraph"].error or ""
    )
    assert runs["plan"].status == "success" and "update_memory" not in runs
    assert [r.id for r in store.list_runs(status="error", is_root=True)] == [runs["LangGraph"].id]


def test_config_run_id_becomes_the_root_id_and_metadata_merges(
    store: LocalTraceStore, graph: Any
) -> None:
    run_id = uuid.uuid4()
    tracer = LocalTracer(
        store, background=False, metadata={"context_version": "abc123"}, tags=["cli"]
    )
    graph.invoke(
        INPUT,
        config={
            "callbacks": [tracer],
            "run_id": run_id,
            "metadata": {"task_type": "lambda_latency"},
        },
    )
    assert tracer.last_root_id == run_id
    store.merge_metadata(run_id, {"success": True, "error_type": None, "latency": 0.01})
    root = store.get_run(run_id)
    assert root is not None and root.tags == ["cli"]
    assert root.metadata["context_version"] == "abc123"
    assert root.metadata["task_type"] == "lambda_latency"
    assert root.metadata["success"] is True
    found = store.list_runs(is_root=True, metadata={"task_type": "lambda_latency", "success": True})
    assert [r.id for r in found] == [run_id]


def test_ids_match_another_tracer_in_the_same_callbacks(store: LocalTraceStore, graph: Any) -> None:
    """LangSmith's tracer sees LangChain's run ids; so must we, for the two stores to agree."""
    collector = RunCollectorCallbackHandler()
    tracer = LocalTracer(store, background=False)
    graph.invoke(INPUT, config={"callbacks": [collector, tracer]})

    theirs: set[uuid.UUID] = set()
    stack = list(collector.traced_runs)
    while stack:
        run = stack.pop()
        theirs.add(run.id)
        stack.extend(run.child_runs)
    ours = {r.id for r in store.get_trace(tracer.last_root_id)}  # type: ignore[arg-type]
    assert ours == theirs and len(ours) == 6


def test_background_writes_are_visible_through_the_same_store_at_once(
    tmp_path: Path, graph: Any
) -> None:
    """The runner's pattern: invoke, stamp the root, close; no explicit flush."""
    path = tmp_path / "traces.sqlite"
    store = LocalTraceStore(path)
    tracer = LocalTracer(store, "bg")  # background=True is the default
    root_ids = []
    for _ in range(3):
        graph.invoke(INPUT, config={"callbacks": [tracer]})
        root_ids.append(tracer.last_root_id)
        store.merge_metadata(tracer.last_root_id, {"success": True})  # type: ignore[arg-type]
    graph.invoke(INPUT, config={"callbacks": [tracer]})  # left pending at close
    store.close()
    assert tracer.errors == [] and store.write_errors == []

    with LocalTraceStore(path) as again:
        roots = again.list_runs("bg", is_root=True)
        assert {r.id for r in roots} == set(tracer.root_run_ids) and len(roots) == 4
        assert {r.id for r in roots if r.metadata.get("success") is True} == set(root_ids)
        assert again.count_runs("bg") == 24


def test_flush_makes_traces_visible_to_other_readers(store: LocalTraceStore, graph: Any) -> None:
    with LocalTraceStore(store.path) as reader:
        with LocalTracer(store) as tracer:  # leaving the block flushes
            graph.invoke(INPUT, config={"callbacks": [tracer]})
        assert reader.get_run(tracer.last_root_id) is not None  # type: ignore[arg-type]


def test_returned_state_mutated_after_the_run_does_not_change_the_trace(
    store: LocalTraceStore, graph: Any
) -> None:
    tracer = LocalTracer(store)
    result = graph.invoke(INPUT, config={"callbacks": [tracer]})
    result["messages"].append(HumanMessage("added later"))
    result["memory_mb"] = 1
    assert tracer.flush(timeout=10)
    root = store.get_run(tracer.last_root_id)  # type: ignore[arg-type]
    assert root is not None and root.outputs is not None
    assert root.outputs["memory_mb"] == 1024
    assert "added later" not in str(root.outputs["messages"])


def test_four_threads_sharing_a_tracer_all_get_stored(store: LocalTraceStore, graph: Any) -> None:
    tracer = LocalTracer(store, "eval")
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(5):
                graph.invoke(INPUT, config={"callbacks": [tracer]})
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracer.flush(timeout=30)
    assert not failures and tracer.errors == []
    assert len(set(tracer.root_run_ids)) == 20
    assert store.count_runs("eval", is_root=True) == 20
    for root_id in tracer.root_run_ids:
        trace = store.get_trace(root_id)
        assert len(trace) == 6 and {r.trace_id for r in trace} == {root_id}
    # The tracer does not keep finished traces in memory.
    assert tracer.run_map == {} and tracer.order_map == {}


def test_async_invocation_is_traced(store: LocalTraceStore, graph: Any) -> None:
    tracer = LocalTracer(store, background=False)
    asyncio.run(graph.ainvoke(INPUT, config={"callbacks": [tracer]}))
    trace = store.get_trace(tracer.last_root_id)  # type: ignore[arg-type]
    assert len(trace) == 6 and trace[0].name == "LangGraph"


@pytest.mark.parametrize("background", [False, True])
def test_a_failing_store_never_fails_the_run(tmp_path: Path, graph: Any, background: bool) -> None:
    broken = LocalTraceStore(tmp_path / "t.sqlite")
    broken.ensure_project("selfheal")
    broken.close()
    tracer = LocalTracer(broken, background=background)
    result = graph.invoke(INPUT, config={"callbacks": [tracer]})
    assert result["memory_mb"] == 1024
    assert tracer.errors and "closed" in str(tracer.errors[0])
    assert tracer.root_run_ids == []


class _RecordingStore:
    """A non-SQLite backend (as a LangSmith one would be): it receives RunRecords."""

    def __init__(self, inner: LocalTraceStore) -> None:
        self.inner = inner
        self.batches: list[list[RunRecord]] = []

    def write_runs(self, runs: Any) -> None:
        batch = list(runs)
        self.batches.append(batch)
        self.inner.write_runs(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_other_backends_receive_validated_records(store: LocalTraceStore, graph: Any) -> None:
    backend = _RecordingStore(store)
    assert isinstance(backend, TraceStore)
    tracer = LocalTracer(backend, background=False)  # type: ignore[arg-type]
    graph.invoke(INPUT, config={"callbacks": [tracer]})
    (batch,) = backend.batches
    assert [type(r) for r in batch] == [RunRecord] * 6
    assert batch[0].is_root and batch[0].total_tokens == 52
    assert len(store.get_trace(tracer.last_root_id)) == 6  # type: ignore[arg-type]
