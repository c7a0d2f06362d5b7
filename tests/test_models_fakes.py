"""ScriptedChatModel: the deterministic model other tests drive the agent with."""

from __future__ import annotations

import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from selfheal.models.fakes import ScriptedChatModel, ScriptExhaustedError


@tool
def lookup(name: str) -> str:
    """Look a name up."""
    return name


def test_script_plays_in_order_with_callables_and_tool_calls() -> None:
    def echo_tool_result(messages: list) -> AIMessage:
        result = next(m for m in reversed(messages) if isinstance(m, ToolMessage))
        return AIMessage(content=f"the answer is {result.content}")

    model = ScriptedChatModel(
        [AIMessage("", tool_calls=[{"name": "lookup", "args": {"name": "x"}, "id": None}]), echo_tool_result]
    )
    bound = model.bind_tools([lookup], tool_choice="auto")
    first = bound.invoke([HumanMessage("find x")])
    call = first.tool_calls[0]
    assert call["name"] == "lookup" and call["id"]  # ids are filled in
    second = bound.invoke([HumanMessage("find x"), first, ToolMessage("42", tool_call_id=call["id"])])
    assert second.content == "the answer is 42"
    assert model.bound_tool_names == ["lookup"]
    assert model.tool_choice == "auto"
    assert model.call_count == 2
    assert model.calls[0]["kwargs"]["tools"][0]["function"]["name"] == "lookup"
    assert second.usage_metadata and second.usage_metadata["input_tokens"] > 0


def test_exhausted_script_fails_clearly() -> None:
    model = ScriptedChatModel(["only one"])
    model.invoke("a")
    with pytest.raises(ScriptExhaustedError, match=r"call #2 .* only 1 response.*'second question'"):
        model.invoke("second question")


def test_repeat_and_latency() -> None:
    model = ScriptedChatModel(["a", "b"], repeat=True, latency_s=0.05)
    start = time.monotonic()
    assert [model.invoke("q").content for _ in range(3)] == ["a", "b", "a"]
    assert time.monotonic() - start >= 0.15


def test_script_entries_are_not_mutated_between_runs() -> None:
    reply = AIMessage("", tool_calls=[{"name": "lookup", "args": {"name": "x"}, "id": None}])
    model = ScriptedChatModel([reply, reply])
    first = model.invoke("a")
    assert first.tool_calls[0]["id"] == "call_1_0"
    assert reply.tool_calls[0]["id"] is None
