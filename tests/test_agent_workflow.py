"""The workflow graph end to end: scripted model, simulated AWS, real tracer and checkpoints."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from selfheal.agent.edges import recent_success_rate
from selfheal.agent.nodes import parse_used_entries
from selfheal.agent.runner import run_task
from selfheal.agent.workflow import NODE_NAMES, build_workflow
from selfheal.config import load_settings
from selfheal.errors import ModelError
from selfheal.models.fakes import ScriptedChatModel
from selfheal.tracing.store import LocalTraceStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's agent files in a temp dir (state goes there too)."""
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    return tmp_path


def call(name: str, args: dict[str, Any], i: int = 0) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"c{i}-{name}"}])


def test_graph_is_the_original_design() -> None:
    graph = build_workflow().compile().get_graph()
    assert set(NODE_NAMES) <= set(graph.nodes)
    edges = {(e.source, e.target) for e in graph.edges}
    assert ("__start__", "retrieve_from_cheatsheet") in edges
    assert ("retrieve_from_cheatsheet", "execute_task") in edges
    assert ("execute_task", "evaluate") in edges
    for target in ("curate_cheatsheet", "optimize_context", "user_interaction", "__end__"):
        assert ("evaluate", target) in edges
    for node in ("curate_cheatsheet", "optimize_context", "user_interaction"):
        assert (node, "__end__") in edges


def test_used_line_parsing_keeps_known_ids_only() -> None:
    known = {"heur-timeout-low-memory", "fail-deploy-error-spike"}
    used, unknown = parse_used_entries("Raised timeout.\nUSED: heur-timeout-low-memory, made-up-id", known)
    assert used == ["heur-timeout-low-memory"] and unknown == ["made-up-id"]
    assert parse_used_entries("done\nUSED: none", known) == ([], [])
    assert parse_used_entries("no used line", known) == ([], [])


def test_recent_success_rate_includes_this_run() -> None:
    assert recent_success_rate([True, True, False], False, window=4) == 0.5
    assert recent_success_rate([False] * 30, True, window=2) == 0.5
    assert recent_success_rate([], True, window=20) == 1.0


def test_successful_run_is_verified_traced_and_checkpointed(repo: Path) -> None:
    settings = load_settings(repo, env={})
    model = ScriptedChatModel(
        [
            call("get_function_configuration", {"function_name": "checkout-api"}, 0),
            call("search_logs", {"function_name": "checkout-api", "pattern": "Task timed out", "hours": 24}, 1),
            call("update_timeout", {"function_name": "checkout-api", "timeout_s": 10}, 2),
            "Raised the timeout from 3 s to 10 s; memory use was low.\nUSED: heur-timeout-low-memory",
        ]
    )
    out = run_task(settings, scenario="lambda_timeout", model=model)

    assert out.success and out.verified and out.error_type is None
    assert out.task_type == "lambda_timeout"
    assert [c["name"] for c in out.tool_calls] == ["get_function_configuration", "search_logs", "update_timeout"]
    assert all(c["status"] == "success" for c in out.tool_calls)
    assert "heur-timeout-low-memory" in out.retrieved_entries
    assert out.used_entries == ["heur-timeout-low-memory"]
    assert out.checks and all(c["passed"] for c in out.checks)
    # Tools were bound (with the context's description overrides) and the prompt asks for USED.
    assert "update_timeout" in model.bound_tool_names
    system = model.calls[0]["messages"][0].content
    assert "USED:" in system and "[heur-timeout-low-memory]" in system

    store = LocalTraceStore(settings.trace_store_path)
    try:
        root = store.get_run(out.run_id)
        md = root.extra["metadata"]
        assert md["success"] is True and md["task_type"] == "lambda_timeout"
        assert md["context_version"] == out.context_version and md["cheatsheet_version"] == out.cheatsheet_version
        assert md["latency"] > 0 and md["error_type"] is None
        tree = store.get_trace(out.run_id)
        names = [r.name for r in tree]
        for node in ("retrieve_from_cheatsheet", "execute_task", "evaluate"):
            assert node in names
        assert sum(1 for r in tree if r.run_type == "llm") == 4
        tool_runs = [r for r in tree if r.run_type == "tool"]
        assert [r.name for r in tool_runs] == ["get_function_configuration", "search_logs", "update_timeout"]
        assert all(r.trace_id == root.id for r in tree)
    finally:
        store.close()

    with sqlite3.connect(settings.checkpoint_path) as conn:
        threads = {row[0] for row in conn.execute("select thread_id from checkpoints")}
    assert out.run_id in threads


def test_models_claim_is_not_evidence(repo: Path) -> None:
    """The wrong fix plus a confident 'fixed it' is a failure routed to curation."""
    settings = load_settings(repo, env={})
    model = ScriptedChatModel(
        [
            call("update_memory", {"function_name": "checkout-api", "memory_mb": 1024}),
            "Fixed: memory doubled, the timeouts are resolved. USED: none",
        ]
    )
    out = run_task(settings, scenario="lambda_timeout", model=model, learn=False)
    assert not out.success and out.verified
    assert out.error_type == "check_failed"
    assert out.route == "curate"
    assert any("disabled by --no-learn" in s for s in out.improvement_suggestions)
    store = LocalTraceStore(settings.trace_store_path)
    try:
        assert store.get_run(out.run_id).extra["metadata"]["success"] is False
    finally:
        store.close()


def test_step_limit_and_tool_errors_are_bounded(repo: Path) -> None:
    settings = load_settings(repo, env={}, overrides={"thresholds": {"max_steps": 3}})
    model = ScriptedChatModel(
        [
            call("no_such_tool", {}),
            call("update_memory", {"function_name": "checkout-api", "memory_mb": 99999}),
            call("list_functions", {}),
            call("list_functions", {}),
        ],
        latency_s=0.02,
    )
    out = run_task(settings, scenario="lambda_timeout", model=model, learn=False)
    assert out.steps == 3 and out.stop_reason == "step_limit"
    assert out.model_s is not None and 0.06 <= out.model_s <= out.latency_s  # 3 replies, no cache: timed live
    assert not out.success and out.error_type == "step_limit"
    statuses = [c["status"] for c in out.tool_calls]
    assert statuses == ["error", "error", "success"]
    assert "unknown tool" in out.tool_calls[0]["output"]
    assert model.call_count == 3


def test_low_efficiency_routes_by_recent_success_rate(repo: Path) -> None:
    """A successful but wasteful run: optimize when the recent success rate is low, else curate."""
    settings = load_settings(repo, env={}, overrides={"thresholds": {"max_steps": 6, "recent_runs": 3}})

    def wasteful() -> ScriptedChatModel:
        return ScriptedChatModel(
            [
                call("list_functions", {}, 0),
                call("get_function_configuration", {"function_name": "nope"}, 1),
                call("get_function_configuration", {"function_name": "nope2"}, 2),
                call("update_timeout", {"function_name": "checkout-api", "timeout_s": 10}, 3),
                "done. USED: none",
            ]
        )

    failing = ScriptedChatModel([call("update_memory", {"function_name": "checkout-api", "memory_mb": 1024}), "ok"])
    assert run_task(settings, scenario="lambda_timeout", model=failing).route == "curate"
    failing2 = ScriptedChatModel([call("update_memory", {"function_name": "checkout-api", "memory_mb": 1024}), "ok"])
    assert not run_task(settings, scenario="lambda_timeout", model=failing2).success

    out = run_task(settings, scenario="lambda_timeout", model=wasteful())
    assert out.success and out.efficiency_score < settings.thresholds.efficiency
    assert out.route == "optimize"  # 1 of the last 3 runs succeeded (< 0.7)
    # the optimize_context node records the trigger for `selfheal optimize`; it never optimizes inline
    from selfheal.tracing.trigger_log import read_triggers

    (event,) = read_triggers(settings.state_dir)
    assert event.kind == "success_rate" and event.run_id == out.run_id and event.task_type == out.task_type
    assert (event.numbers.successes, event.numbers.runs) == (1, 3)
    assert any(n.startswith("optimize_context: trigger recorded (") for n in out.improvement_suggestions)

    out2 = run_task(settings, scenario="lambda_timeout", model=wasteful())
    out3 = run_task(settings, scenario="lambda_timeout", model=wasteful())
    assert out2.route in {"optimize", "curate"}
    assert out3.route == "curate"  # the last 3 runs all succeeded


def test_unverifiable_success_goes_to_the_user(repo: Path) -> None:
    """No scenario: no state checks exist, so success comes from tool evidence and asks for feedback."""
    settings = load_settings(repo, env={})
    # the empty listing earns one nudge (look again), then the same answer is accepted
    model = ScriptedChatModel([call("list_functions", {}), "There are no functions to tune. USED: none",
                               "Still none: the account has no functions. USED: none"])
    out = run_task(settings, "list my lambda functions", model=model)
    assert out.success and not out.verified
    assert out.route == "user"
    assert any("feedback" in s for s in out.improvement_suggestions)


def test_unreachable_model_is_a_one_line_error_and_the_trace_is_kept(repo: Path) -> None:
    from helpers.openai_stub import closed_port_url

    from selfheal.models.providers import make_chat_model

    settings = load_settings(
        repo,
        env={"OPENAI_BASE_URL": closed_port_url(), "OPENAI_API_KEY": "sk-test", "SELFHEAL_MODEL_TIMEOUT_S": "3"},
    )
    with pytest.raises(ModelError) as info:
        run_task(settings, scenario="lambda_timeout", model=make_chat_model(settings))
    assert "\n" not in str(info.value)
    store = LocalTraceStore(settings.trace_store_path)
    try:
        roots = store.list_runs(is_root=True)
        assert len(roots) == 1
        md = roots[0].extra["metadata"]
        assert md["success"] is False and md["error_type"] == "model_error"
        assert roots[0].status == "error"
    finally:
        store.close()


def test_record_then_replay_reproduces_a_run_offline(repo: Path) -> None:
    """cache_mode record stores the endpoint's answers; replay serves them with no endpoint at all."""
    from helpers.openai_stub import OpenAIStub

    from selfheal.errors import CacheMissError
    from selfheal.models.providers import make_chat_model

    # Only tools whose results do not depend on the wall clock: the simulated account's
    # timestamps and metric windows move with time, which would change the request keys.
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("update_timeout", {"function_name": "checkout-api", "timeout_s": 10})])
        stub.reply_tool_calls([("update_timeout", {"function_name": "checkout-api", "timeout_s": 12})])
        stub.reply_text("Raised the timeout.\nUSED: heur-timeout-low-memory")
        env = {"OPENAI_BASE_URL": stub.url, "SELFHEAL_MODEL_CACHE_MODE": "record"}
        settings = load_settings(repo, env=env)
        recorded = run_task(settings, scenario="lambda_timeout", model=make_chat_model(settings))
        url = stub.url
    assert recorded.success and len(stub.requests) == 3
    assert len(list(settings.response_cache_dir.rglob("*.json"))) == 3

    # Same configuration, but the endpoint is gone: replay must not need it.
    env = {"OPENAI_BASE_URL": url, "SELFHEAL_MODEL_CACHE_MODE": "replay"}
    settings = load_settings(repo, env=env)
    replayed = run_task(settings, scenario="lambda_timeout", model=make_chat_model(settings))
    assert replayed.success
    assert replayed.tool_calls == recorded.tool_calls
    assert replayed.used_entries == recorded.used_entries
    # the replay took no model time, but reports what the run cost when it was recorded
    assert recorded.model_s is not None and recorded.model_s > 0
    assert replayed.model_s == recorded.model_s

    with pytest.raises(CacheMissError) as info:
        run_task(settings, "a task nobody recorded", scenario="lambda_timeout", model=make_chat_model(settings))
    assert "\n" not in str(info.value)


def test_old_tool_results_are_shortened_to_fit_a_local_context_window() -> None:
    """Eight steps of log searches must not overflow the local model's window."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    from selfheal.agent.nodes import fit_to_context

    big = "REPORT RequestId: abc Duration: 2900.12 ms Max Memory Used: 88 MB\n" * 200
    msgs = [SystemMessage(content="system"), HumanMessage(content="task")]
    for i in range(3):
        msgs.append(AIMessage(content="", tool_calls=[{"name": "search_logs", "args": {}, "id": f"c{i}"}]))
        msgs.append(ToolMessage(content=big, tool_call_id=f"c{i}", name="search_logs"))
    assert fit_to_context(msgs, 10**6) is msgs  # fits: untouched
    fitted = fit_to_context(msgs, 6000)
    assert "elided" in fitted[3].content and len(fitted[3].content) < 500  # the oldest result shortened first
    assert fitted[-1].content == big  # the latest step's result is intact
    assert [type(m) for m in fitted] == [type(m) for m in msgs] and msgs[3].content == big  # a copy, same shape


def test_model_time_is_unknown_rather_than_partial() -> None:
    """A run mixing timed replies with a recording older than the times reports no model time, not a part of it."""
    from selfheal.agent.nodes import generation_seconds

    timed = AIMessage(content="a", response_metadata={"generation_s": 2.5})
    old = AIMessage(content="b", response_metadata={"cache": "replay"})
    assert generation_seconds([HumanMessage("task"), timed, timed]) == 5.0
    assert generation_seconds([HumanMessage("task"), timed, old]) is None
    assert generation_seconds([HumanMessage("task")]) is None
