"""The selectable tool-call protocols of the local model: rendering, parsing, and each decision path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from selfheal.models.tool_protocols import (
    JsonDecisionHandler,
    QwenNativeHandler,
    make_chat_handler,
    parse_native_reply,
    render_json_prompt,
    render_native_prompt,
)

TOOLS = [
    {"type": "function", "function": {"name": "lookup_order", "description": "Look an order up.",
                                      "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                                                     "required": ["order_id"]}}},
    {"type": "function", "function": {"name": "refund_order", "description": "Refund an order.",
                                      "parameters": {"type": "object", "properties": {
                                          "order_id": {"type": "string"}, "amount_cents": {"type": "integer"}},
                                          "required": ["order_id", "amount_cents"]}}},
]
HISTORY = [
    {"role": "system", "content": "Refund only delivered orders."},
    {"role": "user", "content": "Refund A-1."},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order_id": "A-1"}'}}]},
    {"role": "tool", "tool_call_id": "c1", "name": "lookup_order", "content": '{"status": "delivered"}'},
]


class ScriptedLlama:
    """Stands in for llama_cpp.Llama: answers completions from a script, records the prompts."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.prompts: list[str] = []
        self.grammars: list[Any] = []

    def create_completion(self, *, prompt: str, grammar: Any = None, **_: Any) -> dict[str, Any]:
        self.prompts.append(prompt)
        self.grammars.append(grammar)
        text = self.texts.pop(0)
        return {"choices": [{"text": text, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": len(text) // 4}}

    def tokenize(self, *_: Any, **__: Any) -> list[int]:
        return [42]


def _message(response: dict[str, Any]) -> dict[str, Any]:
    return response["choices"][0]["message"]


def test_native_replies_parse_from_tags_fences_and_bare_objects() -> None:
    names = ["lookup_order", "refund_order"]
    tagged = '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-1"}}\n</tool_call>'
    assert parse_native_reply(tagged, names) == ("", [("lookup_order", '{"order_id": "A-1"}')])
    fenced = 'Let me check.\n```json\n{"name": "refund_order", "arguments": {"order_id": "A-1", "amount_cents": 5}}\n```'
    content, calls = parse_native_reply(fenced, names)
    assert content == "Let me check." and calls[0][0] == "refund_order"
    bare = '{"name": "lookup_order", "parameters": {"order_id": "A-2"}}'
    assert parse_native_reply(bare, names)[1] == [("lookup_order", '{"order_id": "A-2"}')]
    # an object naming no bound tool is text, not a call
    assert parse_native_reply('{"name": "delete_everything", "arguments": {}}', names)[1] == []
    assert parse_native_reply("The order was refunded.", names) == ("The order was refunded.", [])


def test_native_prompt_is_the_models_own_template() -> None:
    prompt = render_native_prompt(HISTORY, TOOLS)
    assert prompt.startswith("<|im_start|>system\nRefund only delivered orders.\n\n# Tools\n")
    assert "<tools>\n" + json.dumps(TOOLS[0]) in prompt
    assert '<tool_call>\n{"name": "lookup_order", "arguments": {"order_id": "A-1"}}\n</tool_call>' in prompt
    assert '<|im_start|>user\n<tool_response>\n{"status": "delivered"}\n</tool_response><|im_end|>' in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_json_prompt_puts_tools_first_and_writes_decisions_as_json() -> None:
    prompt = render_json_prompt(HISTORY, TOOLS)
    assert prompt.startswith("<|im_start|>system\nYou have access to the following functions:")
    assert prompt.index("lookup_order:") < prompt.index("Refund only delivered orders.")
    assert '<|im_start|>assistant\n{"tool": "lookup_order", "arguments": {"order_id": "A-1"}}<|im_end|>' in prompt
    assert 'Result of lookup_order:\n{"status": "delivered"}' in prompt
    assert JsonDecisionHandler().prefix(TOOLS) in prompt


def test_json_decision_calls_a_tool_with_checked_arguments() -> None:
    pytest.importorskip("llama_cpp")
    llama = ScriptedLlama('{"tool": "', "refund_order", '{"order_id": "A-1", "amount_cents": 4599}}')
    msg = _message(JsonDecisionHandler()(llama=llama, messages=HISTORY, tools=TOOLS, tool_choice="auto"))
    call = msg["tool_calls"][0]["function"]
    assert call["name"] == "refund_order" and json.loads(call["arguments"]) == {"order_id": "A-1", "amount_cents": 4599}
    assert llama.prompts[2].endswith('{"tool": "refund_order", "arguments": ')
    assert all(g is not None for g in llama.grammars[:2])  # the opening key and the name are constrained


def test_json_decision_answers() -> None:
    pytest.importorskip("llama_cpp")
    llama = ScriptedLlama('{"answer": "', 'Refunded \\"A-1\\".')
    msg = _message(JsonDecisionHandler()(llama=llama, messages=HISTORY, tools=TOOLS, tool_choice="auto"))
    assert msg["content"] == 'Refunded "A-1".' and "tool_calls" not in msg


def test_native_handler_recovers_a_fenced_call_and_forces_one_when_required() -> None:
    pytest.importorskip("llama_cpp")
    llama = ScriptedLlama('```json\n{"name": "lookup_order", "arguments": {"order_id": "A-9"}}\n```')
    msg = _message(QwenNativeHandler()(llama=llama, messages=HISTORY[:2], tools=TOOLS, tool_choice="auto"))
    assert msg["tool_calls"][0]["function"]["name"] == "lookup_order"
    llama = ScriptedLlama('{"name": "lookup_order", "arguments": {"order_id": "A-1"}}\n</tool_call>')
    msg = _message(QwenNativeHandler()(llama=llama, messages=HISTORY[:2], tools=TOOLS, tool_choice="required"))
    assert llama.prompts[0].endswith("<|im_start|>assistant\n<tool_call>\n")
    assert msg["tool_calls"][0]["function"]["name"] == "lookup_order"


def test_think_then_decide_writes_a_thought_before_the_decision() -> None:
    pytest.importorskip("llama_cpp")
    handler = make_chat_handler("selfheal-think")
    llama = ScriptedLlama("The order is delivered: refund it.", "functions.", "refund_order",
                          '{"order_id": "A-1", "amount_cents": 10}')
    msg = _message(handler(llama=llama, messages=HISTORY, tools=TOOLS, tool_choice="auto"))
    assert msg["tool_calls"][0]["function"]["name"] == "refund_order"
    assert "Thought:" in handler.prefix(TOOLS)
    assert llama.prompts[0].endswith("Thought:")
    assert llama.prompts[1].endswith("Thought: The order is delivered: refund it.\n")


def test_unknown_formats_are_left_to_llama_cpp_python() -> None:
    assert make_chat_handler("chatml-function-calling") is None
    for fmt in ("selfheal-tools", "selfheal-think", "selfheal-json", "qwen-native"):
        assert make_chat_handler(fmt) is not None


def test_compact_tool_descriptions_keep_what_a_call_is_checked_against(tmp_path: Any) -> None:
    """model.tool_descriptions: compact binds every tool with first-sentence descriptions, types and enums kept."""
    from pydantic import BaseModel, Field

    from selfheal.config import load_settings
    from selfheal.models.llama_tools import compact_tool, tools_block
    from selfheal.models.local_chat import ChatLlamaCpp
    from selfheal.models.providers import model_identity

    class Args(BaseModel):
        function_name: str = Field(description="The function's name. Take it from list_functions, never guess it.")
        unit: str = Field("MB", description="Memory unit.\nAlways MB.", json_schema_extra={"enum": ["MB"]})

    long = {"type": "function", "function": {
        "name": "update_memory", "parameters": Args.model_json_schema(),
        "description": "Set a function's memory. Memory also scales CPU; raise it for CPU-bound work, "
                       "never for timeouts caused by a slow dependency.\nReturns the new configuration."}}
    short = compact_tool(long)["function"]
    assert short["description"] == "Set a function's memory."
    props = short["parameters"]["properties"]
    assert props["function_name"] == {"type": "string", "title": "Function Name", "description": "The function's name."}
    assert props["unit"]["enum"] == ["MB"] and props["unit"]["description"] == "Memory unit."
    assert short["parameters"]["required"] == ["function_name"]
    assert len(tools_block([compact_tool(long)])) < len(tools_block([long]))

    bound = ChatLlamaCpp(model_path="unused.gguf", tool_descriptions="compact").bind_tools([long])
    assert bound.kwargs["tools"][0]["function"]["description"] == "Set a function's memory."  # type: ignore[attr-defined]
    full = ChatLlamaCpp(model_path="unused.gguf").bind_tools([long])
    assert full.kwargs["tools"][0]["function"]["description"].endswith("configuration.")  # type: ignore[attr-defined]
    # recorded responses of one variant never answer for the other
    s = load_settings(tmp_path, env={}, overrides={"model": {"tool_descriptions": "compact"}})
    assert model_identity(s).endswith("+compact")
