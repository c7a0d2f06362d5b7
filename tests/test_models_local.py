"""The embedded llama.cpp model: prompt rendering and response parsing (pure), then the real model."""

from __future__ import annotations

import importlib.util
import json

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from selfheal.models.llama_tools import (
    conforms,
    decision_grammar,
    first_json_object,
    missing_required,
    compact_schema,
    fixed_prefix,
    render_prompt,
    split_calls_in_text,
)
from selfheal.models.local_chat import message_from_completion, to_openai_messages

TOOLS = [
    {"type": "function", "function": {
        "name": "get_function_configuration",
        "description": "Read a Lambda function's configuration (memory, timeout, VPC).",
        "parameters": {"type": "object", "properties": {"function_name": {"type": "string"}},
                       "required": ["function_name"]}}},
    {"type": "function", "function": {
        "name": "update_memory",
        "description": "Set a Lambda function's memory in MB (128..10240).",
        "parameters": {"type": "object", "properties": {"function_name": {"type": "string"},
                                                        "memory_mb": {"type": "integer"}},
                       "required": ["function_name", "memory_mb"]}}},
]


def _history() -> list:
    return [
        SystemMessage("You operate Lambda. Don't guess <values>."),
        HumanMessage('Why is "checkout-api" slow?'),
        AIMessage("", tool_calls=[{"name": "get_function_configuration",
                                   "args": {"function_name": "checkout-api"}, "id": "call_1"}]),
        ToolMessage('{"MemorySize": 128}', tool_call_id="call_1"),
    ]


def test_prompt_carries_descriptions_results_and_unescaped_text() -> None:
    prompt = render_prompt(to_openai_messages(_history()), TOOLS)
    # The fixed tool block opens the prompt (reused from the KV cache across runs), then the agent's text.
    assert prompt.startswith(fixed_prefix(TOOLS) + "\n\nYou operate Lambda. Don't guess <values>.")
    assert "functions.update_memory: Set a Lambda function's memory in MB (128..10240)." in prompt
    assert 'Why is "checkout-api" slow?' in prompt  # the stock handler HTML-escapes this
    assert 'functions.get_function_configuration:\n{"function_name": "checkout-api"}' in prompt
    # The tool result is shown to the model, attributed to its function.
    assert 'Result of functions.get_function_configuration:\n{"MemorySize": 128}' in prompt
    assert prompt.endswith("<|im_start|>assistant\n")


def test_fixed_prefix_is_the_same_whatever_the_task() -> None:
    a = render_prompt([{"role": "system", "content": "Task type: lambda_timeout"},
                       {"role": "user", "content": "fix a"}], TOOLS)
    b = render_prompt([{"role": "system", "content": "Task type: lambda_memory"},
                       {"role": "user", "content": "fix b"}], TOOLS)
    prefix = fixed_prefix(TOOLS)
    assert a.startswith(prefix) and b.startswith(prefix)
    assert len(prefix) > 0.5 * len(a)


def test_tool_schemas_are_compacted_for_the_prompt() -> None:
    schema = {"title": "update_memory", "type": "object", "properties": {
        "function_name": {"title": "Function Name", "type": "string"},
        "qualifier": {"title": "Qualifier", "default": None, "anyOf": [{"type": "string"}, {"type": "null"}]},
        "title": {"title": "Title", "type": "string"}}}
    assert compact_schema(schema) == {"type": "object", "properties": {
        "function_name": {"type": "string"},
        "qualifier": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "title": {"type": "string"}}}


def test_prompt_without_tools_is_plain_chatml() -> None:
    prompt = render_prompt([{"role": "user", "content": "hi"}])
    assert prompt == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                      "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_decision_grammar_offers_call_or_message() -> None:
    assert decision_grammar() == 'root ::= "functions." | "message:"\n'
    assert "message" not in decision_grammar(allow_message=False)


def test_free_written_arguments_are_checked_before_use() -> None:
    assert first_json_object('{ "a": 1 }\nthen prose') == {"a": 1}
    assert first_json_object("```json\n{\"a\": {\"b\": 2}}\n```") == {"a": {"b": 2}}
    assert first_json_object('{"a": 1') is None
    assert missing_required({"a": 1}, {"required": ["a", "b"]}) == ["b"]
    schema = TOOLS[1]["function"]["parameters"]
    assert conforms({"function_name": "a", "memory_mb": 512}, schema)
    assert not conforms({"function_name": "a", "memory_mb": "512"}, schema)  # grammar fallback
    assert not conforms({"function_name": "a", "memory_mb": True}, schema)
    assert not conforms({"function_name": "a"}, schema)


def test_calls_written_inside_a_message_are_recovered() -> None:
    text = 'Let me check.\n\nfunctions.get_function_configuration:\n{ "function_name": "checkout-api" }'
    content, calls = split_calls_in_text(text, ["get_function_configuration"])
    assert content == "Let me check."
    assert calls == [("get_function_configuration", '{ "function_name": "checkout-api" }')]
    assert split_calls_in_text("functions.unknown:\n{}", ["x"]) == ("functions.unknown:\n{}", [])


def test_completion_parsing_keeps_usage_and_flags_malformed_arguments() -> None:
    response = {
        "id": "chatcmpl-1", "model": "m",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "update_memory", "arguments": '{"function_name": "a", "memory_mb": 512}'}},
                {"id": "c2", "type": "function",
                 "function": {"name": "update_memory", "arguments": '{"function_name": "a", '}},
            ]}}],
        "usage": {"prompt_tokens": 300, "completion_tokens": 20, "total_tokens": 320},
    }
    message = message_from_completion(response, model_name="qwen")
    assert message.tool_calls == [{"name": "update_memory", "args": {"function_name": "a", "memory_mb": 512},
                                   "id": "c1", "type": "tool_call"}]
    assert message.invalid_tool_calls[0]["id"] == "c2"
    assert "malformed JSON" in message.invalid_tool_calls[0]["error"]
    assert message.usage_metadata == {"input_tokens": 300, "output_tokens": 20, "total_tokens": 320}
    assert message.response_metadata["finish_reason"] == "tool_calls"


def test_history_goes_back_as_openai_messages() -> None:
    out = to_openai_messages(_history())
    assert out[2]["tool_calls"][0]["function"] == {"name": "get_function_configuration",
                                                   "arguments": '{"function_name": "checkout-api"}'}
    assert out[3] == {"role": "tool", "tool_call_id": "call_1", "content": '{"MemorySize": 128}'}


# -- the real embedded model ----------------------------------------------------------------


def _local_model_available() -> bool:
    if importlib.util.find_spec("llama_cpp") is None:
        return False
    from selfheal.models.local_weights import local_weights_available

    return local_weights_available()


needs_model = pytest.mark.skipif(not _local_model_available(), reason="llama-cpp-python or weights not installed")


@pytest.fixture(scope="module")
def local_model():
    from selfheal.models.local_chat import ChatLlamaCpp
    from selfheal.models.local_weights import ensure_local_weights

    return ChatLlamaCpp(model_path=str(ensure_local_weights()), n_ctx=2048, max_tokens=96)


@tool
def get_function_configuration(function_name: str) -> str:
    """Read a Lambda function's configuration (memory, timeout, VPC)."""
    return "{}"


@tool
def update_memory(function_name: str, memory_mb: int) -> str:
    """Set a Lambda function's memory in MB (128..10240)."""
    return "ok"


SYSTEM = "You are an AWS Lambda operations agent."


@pytest.mark.local_model
@needs_model
@pytest.mark.timeout(240)
def test_real_model_picks_the_right_tool_then_answers(local_model) -> None:
    model = local_model.bind_tools([get_function_configuration, update_memory], tool_choice="auto")
    messages = [SystemMessage(SYSTEM), HumanMessage("Set the memory of checkout-api to 1024 MB.")]
    reply = model.invoke(messages)
    assert [tc["name"] for tc in reply.tool_calls] == ["update_memory"]
    assert reply.tool_calls[0]["args"] == {"function_name": "checkout-api", "memory_mb": 1024}
    assert reply.usage_metadata and reply.usage_metadata["input_tokens"] > 100
    messages += [reply, ToolMessage('{"MemorySize": 1024}', tool_call_id=reply.tool_calls[0]["id"])]
    final = model.invoke(messages)
    assert final.tool_calls == []
    assert "1024" in final.content  # a real text reply (the stock handler returns "")


class Place(BaseModel):
    city: str
    country: str


@pytest.mark.local_model
@needs_model
@pytest.mark.timeout(240)
def test_real_model_structured_output_parses(local_model) -> None:
    place = local_model.with_structured_output(Place).invoke("Where is the Eiffel Tower? City and country.")
    assert isinstance(place, Place)
    assert place.city.lower() == "paris"
    raw = local_model.bind(response_format={"type": "json_object", "schema": Place.model_json_schema()}).invoke(
        "Where is the Colosseum?"
    )
    assert set(json.loads(raw.content)) == {"city", "country"}


@pytest.mark.local_model
@needs_model
@pytest.mark.timeout(240)
def test_real_model_honours_a_forced_tool_choice(local_model) -> None:
    model = local_model.bind_tools([get_function_configuration, update_memory],
                                   tool_choice="get_function_configuration")
    reply = model.invoke([SystemMessage(SYSTEM), HumanMessage("Hello! What can you do for billing-worker?")])
    assert [tc["name"] for tc in reply.tool_calls] == ["get_function_configuration"]
    assert set(reply.tool_calls[0]["args"]) == {"function_name"}


@pytest.mark.local_model
@needs_model
@pytest.mark.timeout(600)
def test_the_fixed_prefix_is_read_once_across_runs_and_processes(tmp_path) -> None:
    """Two tasks with the same tools: the second reads only its own part; a new process loads the prefix."""
    from selfheal.models.local_chat import ChatLlamaCpp
    from selfheal.models.local_weights import ensure_local_weights

    tools = [convert_to_openai_tool(t) for t in (get_function_configuration, update_memory)]
    system = SYSTEM + " " + " ".join(f"Rule {i}: inspect before you change anything." for i in range(40))

    def ask(model: ChatLlamaCpp, task: str) -> dict:
        body = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": task}],
                "tools": tools, "tool_choice": "auto", "max_tokens": 24, "temperature": 0.0}
        return model.process().request("POST", "/v1/chat/completions", body)["selfheal"]

    def model() -> ChatLlamaCpp:
        return ChatLlamaCpp(model_path=str(ensure_local_weights()), n_ctx=4096, n_threads=1,
                            state_dir=str(tmp_path / "kv"))

    first = model()
    try:
        a = ask(first, "What is the memory of checkout-api?")
        b = ask(first, "Set the memory of billing-worker to 512 MB.")
    finally:
        first.process().close()
    assert a["prefix"] == "computed" and b["prefix"] == "in-memory"
    assert b["prompt_tokens_evaluated"] < 0.5 * a["prompt_tokens_evaluated"]
    second = model()
    try:
        c = ask(second, "Why is report-builder slow?")
    finally:
        second.process().close()
    # Only the tool block is saved to disk (the system text after it is the agent's, per task).
    assert c["prefix"] == "disk"
    assert c["prompt_tokens_evaluated"] < a["prompt_tokens_evaluated"] - 150


@pytest.mark.local_model
@needs_model
@pytest.mark.timeout(300)
def test_the_model_process_outlives_the_thread_that_started_it() -> None:
    """An eval worker thread starts the model and finishes; the model must serve the next worker."""
    import threading

    from selfheal.models.local_chat import ChatLlamaCpp
    from selfheal.models.local_weights import ensure_local_weights

    model = ChatLlamaCpp(model_path=str(ensure_local_weights()), n_ctx=1024, n_threads=1, max_tokens=4,
                         state_dir="")
    proc = model.process()
    try:
        starter = threading.Thread(target=proc.ensure)
        starter.start()
        starter.join()
        pid = proc.pid
        import time

        time.sleep(1.0)
        reply = model.invoke("Say OK.")
        assert isinstance(reply.content, str)
        assert proc.pid == pid and proc.starts == 1  # not killed with its thread, not restarted
    finally:
        proc.close()
