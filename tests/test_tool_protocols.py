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
    for fmt in ("selfheal-tools", "selfheal-think", "selfheal-json", "qwen-native", "qwen-guided"):
        assert make_chat_handler(fmt) is not None


def test_compact_tool_descriptions_keep_what_a_call_is_checked_against(tmp_path: Any) -> None:
    """model.tool_descriptions: compact binds every tool with first-sentence descriptions, types and enums kept."""
    from pydantic import BaseModel, Field

    from selfheal.config import load_settings
    from selfheal.models.llama_tools import compact_tool, first_sentence, tools_block
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
    # an abbreviation does not end the sentence: the example stays
    assert first_sentence("Alias name, e.g. live. Never $LATEST.") == "Alias name, e.g. live."
    assert first_sentence("Order id (i.e. A-1001), etc. see below. More.") == "Order id (i.e. A-1001), etc. see below."
    assert first_sentence("Compare p50 vs. p99. Then act.") == "Compare p50 vs. p99."

    bound = ChatLlamaCpp(model_path="unused.gguf", tool_descriptions="compact").bind_tools([long])
    assert bound.kwargs["tools"][0]["function"]["description"] == "Set a function's memory."  # type: ignore[attr-defined]
    full = ChatLlamaCpp(model_path="unused.gguf").bind_tools([long])
    assert full.kwargs["tools"][0]["function"]["description"].endswith("configuration.")  # type: ignore[attr-defined]
    # recorded responses of one variant never answer for the other
    s = load_settings(tmp_path, env={}, overrides={"model": {"tool_descriptions": "compact"}})
    assert model_identity(s).endswith("+compact")


class LogitLlama:
    """Stands in for llama_cpp.Llama where the handler reads probabilities: a tiny vocabulary whose
    next-token logits are given per prompt ending, and scripted texts for free generation."""

    PIECES = ["<tool_call>", "{", "```", "lookup", "refund", "_order", '",', "I", "\n", " ", "<|im_start|>"]

    def __init__(self, logits: dict[str, dict[str, float]], *texts: str) -> None:
        self.logits = logits          # prompt suffix -> {piece: logit}; other tokens get -30
        self.texts = list(texts)
        self.prompts: list[str] = []
        self.biases: list[Any] = []

    def n_vocab(self) -> int:
        return len(self.PIECES) + 256

    def detokenize(self, ids: list[int], special: bool = False) -> bytes:
        return "".join(self.PIECES[i] if i < len(self.PIECES) else chr(i - len(self.PIECES)) for i in ids).encode()

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        s, out = text.decode(), []
        while s:
            piece = max((p for p in self.PIECES if s.startswith(p)), key=len, default=None)
            if piece is None:
                out.append(len(self.PIECES) + min(ord(s[0]), 255))
                s = s[1:]
            else:
                out.append(self.PIECES.index(piece))
                s = s[len(piece):]
        return out

    def create_completion(self, *, prompt: Any, logits_processor: Any = None, logit_bias: Any = None,
                          max_tokens: int | None = None, **_: Any) -> dict[str, Any]:
        import numpy as np

        text = prompt if isinstance(prompt, str) else self.detokenize(prompt).decode()
        self.prompts.append(text)
        self.biases.append(logit_bias)
        if logits_processor:
            row = np.full(self.n_vocab(), -30.0, dtype=np.float32)
            for suffix, table in self.logits.items():
                if text.endswith(suffix):
                    for piece, value in table.items():
                        row[self.PIECES.index(piece)] = value
                    break
            for proc in logits_processor:
                row = proc(None, row)
            return {"choices": [{"text": "", "finish_reason": "length"}], "usage": {"prompt_tokens": 1}}
        out = self.texts.pop(0)
        return {"choices": [{"text": out, "finish_reason": "length" if max_tokens == 1 else "stop"}],
                "usage": {"prompt_tokens": 1}}


def test_guided_native_decides_to_call_then_ranks_the_whole_name() -> None:
    """qwen-guided: the call is decided on P(next token opens a call); the name whose whole spelling is most
    likely wins even where another name's first token is a hair more likely."""
    pytest.importorskip("llama_cpp")
    from selfheal.models.tool_protocols import GuidedNativeHandler

    logits = {
        "<|im_start|>assistant\n": {"<tool_call>": 2.0, "I": 1.0},
        '{"name": "': {"refund": 3.0, "lookup": 2.9},
        '{"name": "refund': {"_order": -1.0, "I": 4.0},    # the model does not go on to write refund_order
        '{"name": "lookup': {"_order": 6.0},
        "_order": {'",': 6.0},
    }
    llama = LogitLlama(logits, '{"order_id": "A-1"}}\n</tool_call>')
    msg = _message(GuidedNativeHandler(tool_bias=0.0)(llama=llama, messages=HISTORY[:2], tools=TOOLS,
                                                        tool_choice="auto"))
    call = msg["tool_calls"][0]["function"]
    assert call["name"] == "lookup_order" and json.loads(call["arguments"]) == {"order_id": "A-1"}
    assert llama.prompts[-1].endswith('<tool_call>\n{"name": "lookup_order", "arguments": ')
    assert "<tools>" in llama.prompts[0]   # the model's own template


def test_guided_native_answers_when_a_call_is_unlikely_and_the_bias_moves_the_line() -> None:
    pytest.importorskip("llama_cpp")
    from selfheal.models.tool_protocols import GuidedNativeHandler, call_probability, decide_to_call

    logits = {"<|im_start|>assistant\n": {"{": 0.0, "I": 0.6}}
    llama = LogitLlama(logits, "I", " refunded A-1.")
    msg = _message(GuidedNativeHandler(tool_bias=0.0)(llama=llama, messages=HISTORY, tools=TOOLS,
                                                        tool_choice="auto"))
    assert msg["content"] == "I refunded A-1." and "tool_calls" not in msg
    blocked = llama.biases[1]  # the answer's first token may not open a call
    opened = {llama.detokenize([i]).decode() for i in blocked}
    assert {"<tool_call>", "{", "```", "\n", " ", "<|im_start|>"} <= opened
    assert all(t.startswith(("<tool_call>", "{", "`", "<|")) or not t.strip() for t in opened)
    # the same probabilities with +1 bias toward calling: a call
    import numpy as np

    row = np.full(LogitLlama({}).n_vocab(), -30.0)
    row[1], row[7] = 0.0, 0.6
    from selfheal.models.tool_protocols import decision_masks

    p = call_probability(row, decision_masks(LogitLlama({}))[0])
    assert 0.3 < p < 0.5
    assert not decide_to_call(p, tool_bias=0.0) and decide_to_call(p, tool_bias=1.0)
    # a newline before the call decides nothing: the model that writes "\n{" is calling
    row[8], row[10] = 3.0, 4.0  # "\n", "<|im_start|>"
    opens, blank = decision_masks(LogitLlama({}))
    assert call_probability(row, opens) < 0.1 and call_probability(row, opens, blank) == pytest.approx(p)
    # sampled at a temperature, a seed gives the same decision every time (recordings replay)
    assert len({decide_to_call(p, tool_bias=0.0, temperature=0.7, seed=3) for _ in range(5)}) == 1


def test_guided_name_is_the_most_likely_or_drawn_from_the_likelihoods() -> None:
    from selfheal.models.tool_protocols import pick_name

    scores = {"lookup_order": -0.2, "refund_order": -1.9, "escalate_order": -2.5}
    assert pick_name(scores) == "lookup_order"
    drawn = [pick_name(scores, temperature=0.7, seed=s) for s in range(60)]
    assert drawn.count("lookup_order") > 30 and len(set(drawn)) > 1
    assert drawn == [pick_name(scores, temperature=0.7, seed=s) for s in range(60)]
