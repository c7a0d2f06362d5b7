"""Hand-made traces shaped like the agent's (root ``selfheal:lambda_ops``, llm and tool children).

:func:`build_dataset` writes the fixed dataset the analysis and CLI tests
check exact numbers against; :data:`EXPECTED` documents those numbers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from selfheal.tracing.schema import FeedbackRecord, RunRecord, utcnow
from selfheal.tracing.store import LocalTraceStore


def _dotted(start: datetime, run_id: uuid.UUID) -> str:
    return f"{start:%Y%m%dT%H%M%S%f}Z{run_id}"


@dataclass
class Tool:
    """A tool call: ``error`` sets the run's error; ``message_error`` returns a ToolMessage with status error."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    message_error: str | None = None
    result: str = "ok"


@dataclass
class TraceSpec:
    key: str
    task_type: str
    success: bool | None
    latency: float
    tools: list[Tool]
    tokens: tuple[int, int] | None = (80, 20)  # prompt, completion; None: the model never answered
    retrieved: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    error_type: str | None = None
    root_error: str | None = None
    age: timedelta = timedelta(hours=2)


def make_trace(spec: TraceSpec, session_id: uuid.UUID, now: datetime) -> list[RunRecord]:
    """The runs of one trace: root, execute_task node, one llm run, the tool runs."""
    start = now - spec.age
    root_id = uuid.uuid4()
    end = start + timedelta(seconds=spec.latency)
    md: dict[str, Any] = {
        "task_type": spec.task_type,
        "scenario": spec.task_type,
        "model": "scripted",
        "context_version": "ctx1",
        "cheatsheet_version": "cs1",
    }
    if spec.success is not None:
        md.update(
            success=spec.success,
            error_type=spec.error_type,
            latency=spec.latency,
            steps=len(spec.tools) + 1,
            used_entries=spec.used,
            retrieved_entries=spec.retrieved,
            route="end" if spec.success else "curate",
        )
    else:  # still running or never stamped: only what the runner knows up front
        md.update(retrieved_entries=spec.retrieved, used_entries=spec.used)
    p, c = spec.tokens or (0, 0)
    total = None if spec.tokens is None else p + c
    root_dotted = _dotted(start, root_id)
    runs = [
        RunRecord(
            id=root_id, name="selfheal:lambda_ops", run_type="chain", start_time=start, end_time=end,
            inputs={"task": f"task {spec.key}"}, outputs=None if spec.root_error else {"route": "end"},
            error=spec.root_error, extra={"metadata": md}, tags=["selfheal"], trace_id=root_id,
            dotted_order=root_dotted, session_id=session_id,
            status="error" if spec.root_error else "success",
            prompt_tokens=p if total else None, completion_tokens=c if total else None, total_tokens=total,
        )
    ]  # fmt: skip
    node_id = uuid.uuid4()
    node_start = start + timedelta(milliseconds=1)
    node_dotted = f"{root_dotted}.{_dotted(node_start, node_id)}"
    runs.append(
        RunRecord(
            id=node_id, name="execute_task", run_type="chain", start_time=node_start,
            end_time=end - timedelta(milliseconds=1), trace_id=root_id, parent_run_id=root_id,
            dotted_order=node_dotted, session_id=session_id, extra={"metadata": {"task_type": spec.task_type}},
            error=spec.root_error, status="error" if spec.root_error else "success",
            prompt_tokens=p if total else None, completion_tokens=c if total else None, total_tokens=total,
        )
    )  # fmt: skip
    t = node_start + timedelta(milliseconds=1)
    llm_id = uuid.uuid4()
    usage = {"input_tokens": p, "output_tokens": c, "total_tokens": p + c}
    runs.append(
        RunRecord(
            id=llm_id, name="ChatModel", run_type="llm", start_time=t, end_time=t + timedelta(milliseconds=1),
            trace_id=root_id, parent_run_id=node_id, dotted_order=f"{node_dotted}.{_dotted(t, llm_id)}",
            session_id=session_id, error=spec.root_error, status="error" if spec.root_error else "success",
            outputs=None if spec.tokens is None else {
                "generations": [[{"text": "", "message": {"type": "ai", "content": "", "usage_metadata": usage}}]],
                "llm_output": None,
            },
            prompt_tokens=p if total else None, completion_tokens=c if total else None, total_tokens=total,
        )
    )  # fmt: skip
    for i, tool in enumerate(spec.tools):
        t = node_start + timedelta(milliseconds=10 * (i + 1))
        tid = uuid.uuid4()
        status = "error" if tool.message_error else "success"
        content = tool.message_error or tool.result
        runs.append(
            RunRecord(
                id=tid, name=tool.name, run_type="tool", start_time=t, end_time=t + timedelta(milliseconds=5),
                inputs=tool.args, trace_id=root_id, parent_run_id=node_id,
                dotted_order=f"{node_dotted}.{_dotted(t, tid)}", session_id=session_id,
                error=tool.error, status="error" if tool.error else "success",
                outputs=None if tool.error else {
                    "output": {"content": content, "type": "tool", "name": tool.name,
                               "tool_call_id": f"call-{i}", "status": status}
                },
            )
        )  # fmt: skip
    return runs


GFC = "get_function_configuration"


def dataset_specs() -> list[TraceSpec]:
    """8 runs in the window (5 lambda_timeout, 3 lambda_memory) and one 30 days old."""
    fn = {"function_name": "checkout-api"}
    timeout_entries = ["heur-a", "heur-b"]
    return [
        TraceSpec("r1", "lambda_timeout", True, 1.0, [Tool(GFC, fn), Tool("search_logs", fn), Tool("update_timeout", {"function_name": "checkout-api", "timeout_s": 10})],
                  tokens=(80, 20), retrieved=timeout_entries, used=["heur-a"], age=timedelta(hours=1)),
        TraceSpec("r2", "lambda_timeout", True, 2.0, [Tool(GFC, fn), Tool("search_logs", fn), Tool("update_timeout", fn)],
                  tokens=(150, 50), retrieved=timeout_entries, used=["heur-a"], age=timedelta(hours=2)),
        TraceSpec("r3", "lambda_timeout", False, 3.0, [Tool(GFC, fn), Tool("invoke_function", fn, error="timeout after 3.00 seconds")],
                  tokens=(250, 50), retrieved=timeout_entries, used=[], error_type="timeout", age=timedelta(hours=3)),
        TraceSpec("r4", "lambda_timeout", True, 4.0, [Tool(GFC, fn), Tool("update_timeout", fn, message_error="Function 'checkout-api' not found"), Tool("update_timeout", fn)],
                  tokens=(300, 100), retrieved=timeout_entries, used=["heur-a", "heur-b"], age=timedelta(hours=4)),
        TraceSpec("r5", "lambda_timeout", False, 10.0, [Tool(GFC, fn), Tool("search_logs", fn), Tool("invoke_function", fn, message_error="timeout after 6.02 seconds")],
                  tokens=(400, 100), retrieved=timeout_entries, used=["heur-b"], error_type="timeout", age=timedelta(hours=5)),
        TraceSpec("m1", "lambda_memory", True, 2.0, [Tool(GFC, fn), Tool("get_metrics", fn), Tool("update_memory", fn)],
                  tokens=(40, 10), retrieved=["heur-m"], used=["heur-m"], age=timedelta(hours=6)),
        TraceSpec("m2", "lambda_memory", False, 4.0, [Tool(GFC, fn), Tool("update_memory", fn, message_error="Function 'billing' not found")],
                  tokens=None, retrieved=["heur-m"], used=["heur-m"], error_type="model_error",
                  root_error="ModelError('rate limited for request 5f3a9c2b1d')\n\nTraceback (most recent call last):\n  File \"x.py\", line 1", age=timedelta(hours=7)),
        TraceSpec("m3", "lambda_memory", None, 6.0, [Tool(GFC, fn), Tool("get_metrics", fn)],
                  tokens=(40, 10), retrieved=["heur-m"], used=[], age=timedelta(hours=8)),
        TraceSpec("old", "lambda_timeout", False, 50.0, [Tool("invoke_function", fn, error="boom")],
                  retrieved=timeout_entries, used=["heur-a"], error_type="timeout", age=timedelta(days=30)),
    ]  # fmt: skip


@dataclass
class Dataset:
    roots: dict[str, RunRecord]
    runs: list[RunRecord]
    feedback: list[FeedbackRecord]


def build_dataset(store: LocalTraceStore, project: str = "selfheal", *, other_project: bool = True) -> Dataset:
    """Write the dataset (and feedback on r1, r3, m1, old) to ``store``; a run in another project too."""
    now = utcnow()
    session = store.ensure_project(project).id
    roots: dict[str, RunRecord] = {}
    runs: list[RunRecord] = []
    for spec in dataset_specs():
        trace = make_trace(spec, session, now)
        roots[spec.key] = trace[0]
        runs.extend(trace)
    if other_project:
        other = store.ensure_project(f"{project}-other").id
        trace = make_trace(TraceSpec("x", "lambda_timeout", False, 99.0, [Tool("invoke_function", error="elsewhere")]), other, now)
        roots["x"] = trace[0]
        runs.extend(trace)
    store.write_runs(runs)
    feedback = [
        FeedbackRecord(run_id=roots["r1"].id, key="user_score", score=1.0),
        FeedbackRecord(run_id=roots["r3"].id, key="user_score", score=0.0, comment="wrong fix"),
        FeedbackRecord(run_id=roots["r3"].id, key="correctness", score=0),
        FeedbackRecord(run_id=roots["m1"].id, key="user_score", score=0.5),
        FeedbackRecord(run_id=roots["old"].id, key="user_score", score=1.0),
    ]
    feedback = [store.add_feedback(fb) for fb in feedback]
    return Dataset(roots=roots, runs=runs, feedback=feedback)
