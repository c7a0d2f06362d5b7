"""The OpenAI-compatible provider against a loopback stub of the API (real langchain-openai client)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.openai_stub import OpenAIStub, closed_port_url
from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from selfheal.config import load_settings
from selfheal.errors import ModelError
from selfheal.models.openai_chat import as_model_error
from selfheal.models.providers import make_chat_model


@tool
def get_function_configuration(function_name: str) -> str:
    """Read a Lambda function's configuration (memory, timeout, VPC)."""
    return "{}"


def _model(tmp_path: Path, base_url: str, **model: object):
    settings = load_settings(tmp_path, env={"OPENAI_BASE_URL": base_url}, overrides={"model": model})
    return make_chat_model(settings)


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_tiktoken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any tiktoken use would download encodings at first use: fail loudly instead."""
    import tiktoken

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("tiktoken was used on a selfheal path")

    monkeypatch.setattr(tiktoken, "get_encoding", refuse)
    monkeypatch.setattr(tiktoken, "encoding_for_model", refuse)


def test_tool_call_round_trip(tmp_path: Path, stub: OpenAIStub) -> None:
    stub.reply_tool_calls([("get_function_configuration", {"function_name": "checkout-api"}, "call_a1")],
                                 prompt_tokens=40, completion_tokens=9)
    stub.reply_text("checkout-api has 512 MB.")
    model = _model(tmp_path, stub.url, name="qwen-test", max_tokens=64).bind_tools(
        [get_function_configuration], tool_choice="auto"
    )
    messages = [SystemMessage("You operate Lambda."), HumanMessage("How much memory has checkout-api?")]
    first = model.invoke(messages)
    assert first.tool_calls == [
        {"name": "get_function_configuration", "args": {"function_name": "checkout-api"}, "id": "call_a1",
         "type": "tool_call"}
    ]
    assert first.usage_metadata is not None
    assert (first.usage_metadata["input_tokens"], first.usage_metadata["output_tokens"]) == (40, 9)

    messages += [first, ToolMessage('{"MemorySize": 512}', tool_call_id="call_a1")]
    second = model.invoke(messages)
    assert second.content == "checkout-api has 512 MB."

    request = stub.bodies[0]
    assert request["model"] == "qwen-test"
    assert request["tool_choice"] == "auto"
    assert request["max_tokens"] == 64  # self-hosted servers read the legacy name
    fn = request["tools"][0]["function"]
    assert fn["name"] == "get_function_configuration"
    assert "Read a Lambda function's configuration" in fn["description"]
    assert fn["parameters"]["properties"]["function_name"]["type"] == "string"
    # The tool result went back under the id the server chose.
    replayed = stub.bodies[1]["messages"]
    assert replayed[-1] == {"role": "tool", "tool_call_id": "call_a1", "content": '{"MemorySize": 512}'}
    assert replayed[-2]["tool_calls"][0]["id"] == "call_a1"


def test_base_url_without_api_key_sends_a_placeholder(tmp_path: Path, stub: OpenAIStub) -> None:
    stub.reply_text("hi")
    assert _model(tmp_path, stub.url).invoke("hello").content == "hi"
    assert stub.requests[0].headers.get("authorization") == "Bearer not-needed"


def test_malformed_tool_arguments_become_invalid_tool_calls(tmp_path: Path, stub: OpenAIStub) -> None:
    stub.reply_tool_calls([("get_function_configuration", '{"function_name": "checkout-api"')])
    reply = _model(tmp_path, stub.url).bind_tools([get_function_configuration]).invoke("config?")
    assert reply.tool_calls == []
    assert reply.invalid_tool_calls[0]["name"] == "get_function_configuration"


def test_unreachable_endpoint_is_a_quick_one_line_model_error(tmp_path: Path) -> None:
    url = closed_port_url()
    model = _model(tmp_path, url)
    start = time.monotonic()
    with pytest.raises(ModelError) as info:
        model.invoke("hello")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message
    assert url in message and "cannot reach" in message


def test_http_500_is_a_model_error_naming_the_status(tmp_path: Path, stub: OpenAIStub) -> None:
    for _ in range(3):  # the client retries once
        stub.reply_error(500, "CUDA out of memory")
    with pytest.raises(ModelError) as info:
        _model(tmp_path, stub.url, max_retries=0).invoke("hello")
    assert "HTTP 500" in str(info.value)
    assert "CUDA out of memory" in str(info.value)
    assert stub.url in str(info.value)


def test_auth_failure_points_at_the_key(tmp_path: Path, stub: OpenAIStub) -> None:
    stub.reply_error(401, "Incorrect API key provided", kind="invalid_request_error")
    with pytest.raises(ModelError, match="HTTP 401.*OPENAI_API_KEY"):
        _model(tmp_path, stub.url).invoke("hello")


def test_timeout_is_bounded(tmp_path: Path, stub: OpenAIStub) -> None:
    stub.reply_slow(3.0)
    start = time.monotonic()
    with pytest.raises(ModelError, match="timed out"):
        _model(tmp_path, stub.url, timeout_s=0.5, max_retries=0).invoke("hello")
    assert time.monotonic() - start < 2.5


def test_raw_httpx_transport_errors_are_translated() -> None:
    import httpx

    err = as_model_error(httpx.ConnectError("[Errno 111] Connection refused"), endpoint="http://10.1.1.1:8000/v1")
    assert str(err) == "cannot reach model endpoint http://10.1.1.1:8000/v1: Connection refused"


def test_as_model_error_leaves_other_exceptions_alone() -> None:
    assert as_model_error(KeyError("x")) is None
    err = ModelError("already one line")
    assert as_model_error(err) is err


def test_llama_context_overflow_is_translated() -> None:
    import selfheal.models.local_chat  # noqa: F401 - registers the translation

    err = as_model_error(ValueError("Requested tokens (5000) exceed context window of 4096"))
    assert err is not None and "n_ctx" in str(err) and "5000" in str(err)


class Diagnosis(BaseModel):
    root_cause: str
    fix: str


def test_structured_output_through_the_record_cache(tmp_path: Path, stub: OpenAIStub) -> None:
    stub.reply_tool_calls([("Diagnosis", {"root_cause": "low memory", "fix": "raise to 1024"})])
    model = _model(tmp_path, stub.url, cache_mode="record")
    result = model.with_structured_output(Diagnosis).invoke("why is it slow?")
    assert result == Diagnosis(root_cause="low memory", fix="raise to 1024")
    assert stub.bodies[0]["tool_choice"] == {"type": "function", "function": {"name": "Diagnosis"}}
    # Replay answers the same question with the server gone.
    stub.close()
    replay = _model(tmp_path, stub.url, cache_mode="replay")
    assert replay.with_structured_output(Diagnosis).invoke("why is it slow?") == result
    assert len(stub.requests) == 1
