"""Record/replay response cache: what is stored, what is replayed, what makes a new key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from selfheal.errors import CacheMissError, FileFormatError
from selfheal.models.cache import CachedChatModel, request_key
from selfheal.models.fakes import ScriptedChatModel

IDENTITY = "local:test-model"


@tool
def read_config(function_name: str) -> str:
    """Read a function's configuration."""
    return "{}"


@tool
def set_memory(function_name: str, memory_mb: int) -> str:
    """Set a function's memory in MB."""
    return "ok"


def _conversation() -> list:
    return [SystemMessage("You operate Lambda."), HumanMessage("checkout-api is slow")]


def _call_reply() -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": "read_config", "args": {"function_name": "checkout-api"}, "id": "call_x9"}],
        usage_metadata={"input_tokens": 120, "output_tokens": 14, "total_tokens": 134},
    )


def _recorder(tmp_path: Path, inner: ScriptedChatModel) -> CachedChatModel:
    return CachedChatModel.wrap(inner, identity=IDENTITY, mode="record", cache_dir=tmp_path / "cache",
                                params={"temperature": 0.0, "max_tokens": 256})


def _replayer(tmp_path: Path) -> CachedChatModel:
    def never() -> ScriptedChatModel:
        raise AssertionError("replay built the inner model")

    return CachedChatModel(identity=IDENTITY, mode="replay", cache_dir=tmp_path / "cache", inner_factory=never,
                           params={"temperature": 0.0, "max_tokens": 256})


def test_record_then_replay_without_the_inner_model(tmp_path: Path) -> None:
    inner = ScriptedChatModel([_call_reply()])
    recorded = _recorder(tmp_path, inner).bind_tools([read_config, set_memory], tool_choice="auto").invoke(
        _conversation()
    )
    assert inner.call_count == 1
    assert inner.bound_tool_names == ["read_config", "set_memory"]  # bound on the real model
    assert inner.calls[0]["kwargs"]["tool_choice"] == "auto"

    replayed = _replayer(tmp_path).bind_tools([read_config, set_memory], tool_choice="auto").invoke(_conversation())
    assert replayed.tool_calls == recorded.tool_calls
    assert replayed.tool_calls[0]["id"] == "call_x9"
    assert replayed.usage_metadata == {"input_tokens": 120, "output_tokens": 14, "total_tokens": 134}


def test_stored_file_is_small_reviewable_json(tmp_path: Path) -> None:
    model = _recorder(tmp_path, ScriptedChatModel([_call_reply()]))
    model.bind_tools([read_config]).invoke(_conversation())
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1
    path = files[0]
    assert path.parent.name == path.stem[:2]
    text = path.read_text()
    assert text.startswith("{\n  ")  # pretty-printed for diffs
    data = json.loads(text)
    assert data["model"] == IDENTITY
    assert data["request"]["last"] == {"type": "human", "content": "checkout-api is slow"}
    assert data["request"]["tools"] == ["read_config"]
    assert data["response"]["tool_calls"][0]["args"] == {"function_name": "checkout-api"}
    assert data["response"]["usage_metadata"]["total_tokens"] == 134
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_replay_miss_names_the_key_and_last_message(tmp_path: Path) -> None:
    with pytest.raises(CacheMissError) as info:
        _replayer(tmp_path).invoke([HumanMessage("raise memory of billing-worker")])
    message = str(info.value)
    assert "raise memory of billing-worker" in message
    key = request_key(IDENTITY, [HumanMessage("raise memory of billing-worker")],
                      params={"temperature": 0.0, "max_tokens": 256})
    assert key[:12] in message
    assert "\n" not in message


def _key(messages: list, tools: list | None = None, **params: object) -> str:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return request_key(IDENTITY, messages, tools=[convert_to_openai_tool(t) for t in tools or []],
                       params=params or None)


def test_key_changes_with_messages_tools_and_params() -> None:
    base = _key(_conversation(), [read_config])
    assert _key(_conversation(), [read_config]) == base
    assert _key([SystemMessage("You operate Lambda."), HumanMessage("checkout-api is down")], [read_config]) != base
    assert _key(_conversation(), [read_config, set_memory]) != base
    assert _key(_conversation(), [read_config], temperature=0.7) != base
    assert request_key("openai:gpt-4o-mini@x", _conversation()) != request_key(IDENTITY, _conversation())

    @tool("read_config")
    def reworded(function_name: str) -> str:
        """Read a function's configuration, including VPC subnets."""
        return "{}"

    assert _key(_conversation(), [reworded]) != base


def test_key_ignores_provider_chosen_tool_call_ids() -> None:
    def history(call_id: str) -> list:
        return [
            *_conversation(),
            AIMessage("", tool_calls=[{"name": "read_config", "args": {"function_name": "a"}, "id": call_id}]),
            ToolMessage("{}", tool_call_id=call_id),
        ]

    assert _key(history("call_abc")) == _key(history("call_zzz"))


def test_key_is_stable_across_processes() -> None:
    code = (
        "from langchain_core.messages import HumanMessage, SystemMessage;"
        "from selfheal.models.cache import request_key;"
        f"print(request_key({IDENTITY!r}, [SystemMessage('You operate Lambda.'), HumanMessage('checkout-api is slow')],"
        " tools=[{'type': 'function', 'function': {'name': 'f', 'parameters': {'type': 'object'}}}],"
        " params={'temperature': 0.0, 'max_tokens': 256}))"
    )
    env_runs = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                       env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}).stdout.strip()
        for seed in ("1", "2")
    ]
    here = request_key(IDENTITY, _conversation(),
                       tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                       params={"temperature": 0.0, "max_tokens": 256})
    assert env_runs == [here, here]


def test_record_overwrites_with_a_fresh_response(tmp_path: Path) -> None:
    inner = ScriptedChatModel(["first", "second"])
    model = _recorder(tmp_path, inner)
    assert model.invoke("hi").content == "first"
    assert model.invoke("hi").content == "second"
    assert _replayer(tmp_path).invoke("hi").content == "second"


def test_corrupt_cache_file_is_a_file_error(tmp_path: Path) -> None:
    model = _recorder(tmp_path, ScriptedChatModel(["ok"]))
    model.invoke("hi")
    path = next((tmp_path / "cache").rglob("*.json"))
    path.write_text('{"key": "x"}')
    with pytest.raises(FileFormatError, match=path.name):
        _replayer(tmp_path).invoke("hi")


def test_structured_output_is_keyed_and_replayed(tmp_path: Path) -> None:
    from pydantic import BaseModel

    class Fix(BaseModel):
        memory_mb: int

    inner = ScriptedChatModel(['{"memory_mb": 1024}'])
    recorder = CachedChatModel.wrap(inner, identity=IDENTITY, mode="record", cache_dir=tmp_path / "cache",
                                    structured_method="json_object")
    assert recorder.with_structured_output(Fix).invoke("fix it") == Fix(memory_mb=1024)
    sent = inner.calls[0]["kwargs"]["response_format"]
    assert sent["type"] == "json_object" and sent["schema"]["properties"]["memory_mb"]["type"] == "integer"
    replayer = CachedChatModel(identity=IDENTITY, mode="replay", cache_dir=tmp_path / "cache",
                               inner_factory=lambda: inner, structured_method="json_object")
    assert replayer.with_structured_output(Fix).invoke("fix it") == Fix(memory_mb=1024)
    with pytest.raises(CacheMissError):  # a different schema is a different request
        class Other(BaseModel):
            memory_mb: int
            reason: str

        replayer.with_structured_output(Other).invoke("fix it")


def test_secrets_are_redacted_before_keying_so_replay_still_hits(tmp_path: Path) -> None:
    from helpers.secrets_corpus import AKID, AWS_SECRET_3, JWT

    task = f"rotate {AKID} / {AWS_SECRET_3}; the bearer was {JWT}"
    reply = AIMessage(
        content=f"Rotated. Old secret {AWS_SECRET_3} is revoked.",
        tool_calls=[{"name": "read_config", "args": {"function_name": AKID}, "id": "call_1"}],
    )
    conversation = [SystemMessage("You operate Lambda."), HumanMessage(task)]
    _recorder(tmp_path, ScriptedChatModel([reply])).invoke(conversation)
    files = list((tmp_path / "cache").rglob("*.json"))
    assert len(files) == 1
    raw = files[0].read_bytes()
    for secret in (AKID, AWS_SECRET_3, JWT):
        assert secret.encode() not in raw
    assert b"[REDACTED:aws_secret_access_key]" in raw and b"[REDACTED:aws_access_key_id]" in raw

    replayed = _replayer(tmp_path).invoke([SystemMessage("You operate Lambda."), HumanMessage(task)])
    assert replayed.response_metadata["cache"] == "replay"
    assert AWS_SECRET_3 not in replayed.content and "[REDACTED:aws_secret_access_key]" in replayed.content
    assert replayed.tool_calls[0]["args"] == {"function_name": "[REDACTED:aws_access_key_id]"}
    # Another secret of the same kind is the same request: placeholders are stable.
    other = task.replace(AWS_SECRET_3, "Zr7Kq1Lw5Mx9Nb3Vc8Pd2Hf6Jg0Ts4Ya1Ue5Oi9w")
    assert _replayer(tmp_path).invoke([SystemMessage("You operate Lambda."), HumanMessage(other)])


def test_a_cache_without_redactor_stores_verbatim(tmp_path: Path) -> None:
    model = CachedChatModel.wrap(ScriptedChatModel(["ok"]), identity=IDENTITY, mode="record",
                                 cache_dir=tmp_path / "cache", redactor=None)
    model.invoke([HumanMessage("mail jane.doe@example.com")])
    assert b"jane.doe@example.com" in next((tmp_path / "cache").rglob("*.json")).read_bytes()


def test_a_replay_reports_the_generation_time_it_was_recorded_with(tmp_path: Path) -> None:
    recorded = _recorder(tmp_path, ScriptedChatModel([_call_reply()], latency_s=0.05)).invoke(_conversation())
    seconds = recorded.response_metadata["generation_s"]
    assert recorded.response_metadata["cache"] == "record" and seconds >= 0.05
    path = next((tmp_path / "cache").rglob("*.json"))
    assert json.loads(path.read_text())["generation_s"] == seconds

    replayed = _replayer(tmp_path).invoke(_conversation())
    assert replayed.response_metadata["cache"] == "replay"
    assert replayed.response_metadata["generation_s"] == seconds

    # a recording older than the field replays with no time rather than a made-up one
    data = json.loads(path.read_text())
    del data["generation_s"]
    path.write_text(json.dumps(data))
    assert "generation_s" not in _replayer(tmp_path).invoke(_conversation()).response_metadata
