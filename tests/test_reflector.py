"""The Reflector: a diagnosis from evidence, every shown entry tagged, bad replies rejected."""

from __future__ import annotations

import json
import logging

import pytest
from helpers.curation import reflection_json
from langchain_core.messages import AIMessage

from selfheal.models.fakes import ScriptedChatModel
from selfheal.optimize.digest import CheckDigest, EntryDigest, FeedbackDigest, RunDigest, ToolCallDigest
from selfheal.optimize.jsonout import first_json_object, invoke_json
from selfheal.optimize.reflector import Reflection, ReflectionRejected, reflect


def digest(**kw: object) -> RunDigest:
    base = dict(
        run_id="run-1",
        task="checkout-api times out",
        task_type="lambda_timeout",
        success=False,
        verified=True,
        error_type="check_failed",
        checks=[CheckDigest(description="checkout-api timeout >= 8 s", passed=False, detail="timeout is 3 s")],
        tool_calls=[
            ToolCallDigest(name="update_memory", args={"function_name": "checkout-api", "memory_mb": 1024},
                           result='{"memory_mb": {"from": 512, "to": 1024}}'),
            ToolCallDigest(name="update_timeout", args={"timeout_s": 99999}, error="Error: out of range"),
        ],
        final_answer="Fixed it.",
        retrieved_entries=[EntryDigest(id="heur-a", text="When A: do a"), EntryDigest(id="heur-b", text="When B")],
        used_entries=["heur-a"],
        feedback=[FeedbackDigest(key="user_score", score=0.0, comment="still timing out")],
        reference="The timeout is raised to at least 8 s; memory unchanged.",
    )
    base.update(kw)
    return RunDigest(**base)  # type: ignore[arg-type]


def test_reflection_tags_every_shown_entry_and_reads_the_evidence(caplog: pytest.LogCaptureFixture) -> None:
    model = ScriptedChatModel([reflection_json({"heur-a": "harmful", "made-up": "helpful"})])
    with caplog.at_level(logging.INFO, logger="selfheal.optimize.reflector"):
        out = reflect(model, digest())
    assert isinstance(out, Reflection)
    assert out.key_insight.startswith("Low memory use")
    # heur-b was missing: neutral; the invented id is dropped, with a log line naming it.
    assert out.entry_tags == {"heur-a": "harmful", "heur-b": "neutral"}
    assert "made-up" in caplog.text
    prompt = model.calls[0]["messages"][1].content
    # The evidence the Reflector must judge from is in the prompt: failed check, tool error, feedback, reference.
    for needle in ("Check FAIL", "ERROR Error: out of range", "still timing out", "at least 8 s", "heur-a, heur-b"):
        assert needle in prompt


def test_used_entry_that_was_not_retrieved_is_tagged_too() -> None:
    d = digest(retrieved_entries=[], used_entries=["heur-z"])
    out = reflect(ScriptedChatModel([reflection_json({"heur-z": "helpful"})]), d)
    assert out.entry_tags == {"heur-z": "helpful"}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I think the memory was wrong.", "no JSON object"),
        (json.dumps({"error": "x", "root_cause": "y"}), "no key_insight"),
        (json.dumps({"key_insight": "ok", "entry_tags": "heur-a"}), "entry_tags must be an object"),
        ("", "empty reply"),
    ],
)
def test_malformed_reflection_is_rejected_with_a_reason(reply: str, reason: str) -> None:
    with pytest.raises(ReflectionRejected) as info:
        reflect(ScriptedChatModel([reply]), digest())
    assert reason in info.value.reason


def test_bad_tag_values_become_neutral_rather_than_sinking_the_diagnosis() -> None:
    out = reflect(ScriptedChatModel([reflection_json({"heur-a": "very useful", "heur-b": "HELPFUL"})]), digest())
    assert out.entry_tags == {"heur-a": "neutral", "heur-b": "helpful"}


def test_json_is_found_in_prose_and_fences() -> None:
    assert first_json_object('Sure! {"a": 1} and {"b": 2}') == {"a": 1}
    assert first_json_object('```json\n{"a": {"b": [1, 2]}}\n```\nDone.') == {"a": {"b": [1, 2]}}
    assert first_json_object("{not json} then {\"ok\": true}") == {"ok": True}
    assert first_json_object("no braces") is None


def test_a_forced_function_call_reply_is_read_from_its_arguments() -> None:
    reply = AIMessage(content="", tool_calls=[{"name": "reflection", "args": {"key_insight": "k"}, "id": "1"}])
    obj, _ = invoke_json(ScriptedChatModel([reply]), [], {"type": "object", "properties": {}}, name="reflection")
    assert obj == {"key_insight": "k"}
