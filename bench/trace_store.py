"""How the local trace store scales: batched ingest rate and filter-query latency.

Workload: synthetic traces shaped like the agent's (10 runs each: the graph root,
3 node chains, 3 chat-model calls whose message list grows, 3 boto3-style tool
calls), ~1.2 KB of JSON payload per run, the runner's metadata inherited by
every run (task_type...), success/error_type on roots, 1 trace in 12 failing
(root and one tool run in error), run ids uuid7 as LangChain 1.x makes them,
traces spread evenly over the 30 days before now.

* scaling - one file grown to each size in ``--sizes`` (oldest trace first); at
  each size the LangSmith filters in :data:`QUERIES` through
  ``query_runs(limit=100)`` and ``count_matching`` (median of repeats after one
  warm-up), with their query plans, the file size and the process's peak RSS.
  Goal: ``and(eq(status, "error"), gte(start_time, <recent>))`` <= 50 ms at 1M runs.
* ingest - the tracer's path: ``encode_run`` for every run then
  ``LocalTraceStore.write_encoded`` per batch (default 1000 runs), encode and
  write timed, generation not; fresh files, median of ``--ingest-repeats``,
  configurations interleaved so machine noise hits all alike: redaction off/on,
  random uuid4 ids, and the tracer's background-writer path (encode per trace,
  ``submit_encoded``, timed to the flush). Goal: >= 20k runs/s, redaction off.

    python bench/trace_store.py [--sizes 10000,100000,1000000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

RUNS_PER_TRACE = 10
ERROR_EVERY = 12  # one trace in 12 (~8%) fails
SPAN = timedelta(days=30)
TASK_TYPES = ["lambda_latency", "lambda_timeout", "lambda_memory", "iam_permission", "vpc_network"]
SYSTEM = (
    "You are an AWS Lambda operations agent. Diagnose the reported problem with the tools, "
    "change the smallest thing that fixes it, and verify the fix before you answer.\n"
    "## Cheatsheet\n"
    "- heur-vpc-before-memory: High latency in Lambda -> check the VPC configuration before "
    "changing memory (ENI cold starts add seconds).\n"
    "- heur-timeout-logs: raise the timeout only after reading the logs for 'Task timed out'.\n"
    "- heur-iam-least: never widen IAM policies beyond the failing action; name the action.\n"
    "- heur-memory-cpu: CPU-bound handlers get faster with memory (CPU scales with it) up to "
    "1769 MB; above that only multi-threaded code gains.\n"
    "- fail-throttle: 'Rate exceeded' is account concurrency, not the function: check reserved "
    "concurrency before retrying.\n"
)


@dataclass(slots=True)
class Span:
    """What the tracer hands to ``encode_run`` (the ``RunLike`` protocol)."""

    id: uuid.UUID
    name: str
    run_type: str
    start_time: datetime
    end_time: datetime | None
    inputs: Any
    outputs: Any
    error: str | None
    extra: dict[str, Any]
    tags: list[str]
    parent_run_id: uuid.UUID | None
    trace_id: uuid.UUID
    dotted_order: str
    session_id: uuid.UUID | None
    status: str = "success"
    events: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reference_example_id: uuid.UUID | None = None


#: How run ids are made: "uuid7" (time-ordered, what LangChain 1.x's callback manager
#: uses) or "uuid4" (random, older LangChain and many other producers).
ID_KIND = "uuid7"


def new_id(t: datetime) -> uuid.UUID:
    if ID_KIND == "uuid4":
        return uuid.uuid4()
    from langchain_core.utils.uuid import uuid7

    return uuid7(int(t.timestamp() * 1e9))


def _order(t: datetime, run_id: uuid.UUID) -> str:
    return t.strftime("%Y%m%dT%H%M%S%fZ") + str(run_id)


def make_trace(i: int, start: datetime, session_id: uuid.UUID) -> list[Span]:
    """Trace number ``i``: 10 runs, ~1.5 KB of payload each."""
    task_type = TASK_TYPES[i % len(TASK_TYPES)]
    failed = i % ERROR_EVERY == 0
    fn = f"checkout-api-{i % 97}"
    root_id = new_id(start)
    root_order = _order(start, root_id)
    task = f"{fn} p99 latency rose from 180 ms to 2.{i % 10} s after deploy #{i % 1000}; fix it."
    runs: list[Span] = []
    t = start
    # What the runner puts in the graph config; LangChain copies it to every child run.
    inherited = {
        "task_type": task_type,
        "scenario": f"{task_type}-{i % 7}",
        "agent": "lambda_ops",
        "model": "qwen2.5-coder-1.5b",
        "context_version": "v12",
        "cheatsheet_version": "v31",
    }

    def child(
        name: str,
        run_type: str,
        inputs: Any,
        outputs: Any,
        ms: int,
        step: int,
        error: str | None = None,
        tokens: tuple[int, int] | None = None,
    ) -> None:
        nonlocal t
        t = t + timedelta(milliseconds=3)
        rid = new_id(t)
        end = t + timedelta(milliseconds=ms)
        md = {
            **inherited,
            "langgraph_step": step,
            "langgraph_node": name,
            "thread_id": str(root_id),
            "ls_provider": "openai" if run_type == "llm" else None,
        }
        runs.append(
            Span(
                id=rid,
                name=name,
                run_type=run_type,
                start_time=t,
                end_time=end,
                inputs=inputs,
                outputs=None if error else outputs,
                error=error,
                extra={"metadata": md},
                tags=[f"seq:step:{step}"],
                parent_run_id=root_id,
                trace_id=root_id,
                dotted_order=f"{root_order}.{_order(t, rid)}",
                session_id=session_id,
                status="error" if error else "success",
                prompt_tokens=tokens[0] if tokens else None,
                completion_tokens=tokens[1] if tokens else None,
                total_tokens=sum(tokens) if tokens else None,
            )
        )
        t = end

    messages: list[dict[str, Any]] = [
        {"type": "system", "content": SYSTEM},
        {"type": "human", "content": task},
    ]
    child(
        "retrieve",
        "chain",
        {"task": task},
        {
            "heuristics": [
                {
                    "id": f"heur-{task_type}-{k}",
                    "rule": "Check the VPC configuration before"
                    " changing memory; ENI attachment adds seconds to cold starts.",
                    "score": 0.8 - k / 10,
                }
                for k in range(3)
            ]
        },
        4,
        1,
    )
    for turn, tool in enumerate(["get_function_configuration", "search_logs", "update_memory"]):
        if turn:  # the conversation grows by the previous call and its result
            messages = [
                *messages,
                {
                    "type": "ai",
                    "content": "",
                    "tool_calls": [{"name": tool, "id": f"call_{i}_{turn}"}],
                },
                {"type": "tool", "content": f"MemorySize 512, Timeout 3, p99 {2000 + i % 500} ms"},
            ]
        child(
            "ChatOpenAI",
            "llm",
            {"messages": [messages]},
            {
                "generations": [
                    [
                        {
                            "text": "",
                            "message": {
                                "type": "ai",
                                "content": f"Step {turn + 1}: the logs and the configuration"
                                f" decide the next change, so call {tool} for {fn} first.",
                                "tool_calls": [
                                    {
                                        "name": tool,
                                        "args": {"function_name": fn},
                                        "id": f"call_{i}_{turn}",
                                    }
                                ],
                            },
                        }
                    ]
                ],
                "llm_output": {"model_name": "qwen2.5-coder-1.5b"},
            },
            180 + turn * 20,
            2 + 2 * turn,
            tokens=(420 + 60 * turn, 38),
        )
        error = (
            "AccessDeniedException: not authorized to perform lambda:UpdateFunctionConfiguration"
            if (failed and tool == "update_memory")
            else None
        )
        child(
            tool,
            "tool",
            {"input": json.dumps({"function_name": fn, "memory_mb": 1024})},
            {
                "output": {
                    "FunctionName": fn,
                    "MemorySize": 512 + 128 * (i % 4),
                    "Timeout": 3,
                    "FunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{fn}",
                    "Runtime": "python3.12",
                    "Handler": "app.handler",
                    "CodeSize": 48213 + i % 1000,
                    "Role": "arn:aws:iam::123456789012:role/checkout-api-exec",
                    "Environment": {
                        "Variables": {"TABLE": "orders", "STAGE": "prod", "LOG_LEVEL": "INFO"}
                    },
                    "VpcConfig": {
                        "SubnetIds": ["subnet-0abc1234", "subnet-0def5678"],
                        "SecurityGroupIds": ["sg-0def9012"],
                    },
                    "LastModified": start.isoformat(),
                    "Logs": [
                        f"START RequestId: {i:08x}-1c2d Version: $LATEST",
                        "INIT_START Runtime Version: python:3.12.v18",
                        f"REPORT Duration: {2000 + i % 900}.41 ms"
                        f" Billed Duration: {2100 + i % 900} ms"
                        " Memory Size: 512 MB Max Memory Used: 181 MB Init Duration: 1320.77 ms",
                        "Task timed out after 3.00 seconds",
                        "owner alice@example.com",
                    ],
                }
            },
            25,
            3 + 2 * turn,
            error=error,
        )
    child(
        "evaluate",
        "chain",
        {"checks": ["latency_p99_below_500ms"]},
        {"verdict": "fail" if failed else "pass"},
        2,
        8,
    )
    child(
        "curate",
        "chain",
        {"verdict": "fail" if failed else "pass"},
        {"updated": [f"heur-{task_type}-0"]},
        2,
        9,
    )
    end = t + timedelta(milliseconds=2)
    root = Span(
        id=root_id,
        name="LangGraph",
        run_type="chain",
        start_time=start,
        end_time=end,
        inputs={"task": task, "task_type": task_type},
        outputs=None
        if failed
        else {
            "answer": f"Raised {fn} memory to 1024 MB.",
            "messages": messages,
            "verdict": "pass",
            "cheatsheet_used": ["heur-vpc-before-memory"],
        },
        error="AccessDeniedException: update_memory failed" if failed else None,
        extra={
            "metadata": {
                **inherited,
                "success": not failed,
                "latency": 1.2 + i % 10 / 10,
                "error_type": "permission" if failed else None,
            }
        },
        tags=["selfheal", task_type],
        parent_run_id=None,
        trace_id=root_id,
        dotted_order=root_order,
        session_id=session_id,
        status="error" if failed else "success",
    )
    return [root, *runs]


def batches(
    n_runs: int,
    batch: int,
    first_trace: int,
    total_traces: int,
    now: datetime,
    session_id: uuid.UUID,
) -> Iterator[list[Span]]:
    """Traces ``first_trace...`` of ``total_traces`` over ``SPAN``, in batches of ``batch`` runs."""
    step = SPAN / total_traces
    out: list[Span] = []
    for k in range(first_trace, first_trace + n_runs // RUNS_PER_TRACE):
        out += make_trace(k, now - SPAN + k * step, session_id)
        if len(out) >= batch:
            yield out
            out = []
    if out:
        yield out


def ingest(store: Any, spans_batches: Iterator[list[Span]]) -> tuple[int, float, float]:
    """(runs, encode seconds, write seconds) through encode_run + write_encoded."""
    from selfheal.tracing.store import encode_run

    runs, enc_s, write_s = 0, 0.0, 0.0
    for spans in spans_batches:
        t0 = time.perf_counter()
        rows = [encode_run(s, store.max_payload_chars, store.redactor) for s in spans]
        t1 = time.perf_counter()
        store.write_encoded(rows)
        t2 = time.perf_counter()
        runs += len(rows)
        enc_s += t1 - t0
        write_s += t2 - t1
    return runs, enc_s, write_s


def ingest_background(store: Any, spans_batches: Iterator[list[Span]]) -> tuple[int, float]:
    """(runs, seconds) the tracer's way: encode each trace in the caller, write on the store's
    background writer (which batches queued traces into one transaction); timed to the flush."""
    from selfheal.tracing.store import encode_run

    traces = [
        spans[k : k + RUNS_PER_TRACE]
        for spans in spans_batches
        for k in range(0, len(spans), RUNS_PER_TRACE)
    ]
    t0 = time.perf_counter()
    for spans in traces:
        store.submit_encoded(
            [encode_run(s, store.max_payload_chars, store.redactor) for s in spans]
        )
    store.flush()
    return sum(len(t) for t in traces), time.perf_counter() - t0


def rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def file_mib(path: Path) -> float:
    total = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    return round(total / 2**20, 1)


def timed(fn: Any, repeats: int) -> tuple[list[float], Any]:
    fn()  # warm-up (statement cache, OS page cache)
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, result


def ingest_once(
    workdir: Path, runs: int, batch: int, redact: bool, ids: str, background: bool = False
) -> dict[str, float]:
    """One fresh store filled with ``runs`` runs; the rates of encoding and writing."""
    from selfheal.redact import make_redactor
    from selfheal.tracing.store import LocalTraceStore

    global ID_KIND
    ID_KIND = ids
    path = workdir / f"ingest-{'redact' if redact else 'plain'}-{ids}.sqlite"
    store = LocalTraceStore(path, redactor=make_redactor() if redact else None)
    try:
        sid = store.ensure_project("bench").id
        spans = batches(runs, batch, 0, runs // RUNS_PER_TRACE, datetime.now(UTC), sid)
        if background:
            n, wall_s = ingest_background(store, spans)
            enc_s, write_s = wall_s, 0.0
        else:
            n, enc_s, write_s = ingest(store, spans)
        size = file_mib(path)
    finally:
        store.close()
        ID_KIND = "uuid7"
        for p in workdir.glob(f"{path.name}*"):
            p.unlink()
    return {
        "runs_per_s": n / (enc_s + write_s),
        "encode_us": enc_s / n * 1e6,
        "write_us": write_s / n * 1e6,
        "file_mib": size,
    }


def bench_ingest(workdir: Path, runs: int, batch: int, repeats: int) -> list[dict[str, Any]]:
    """Redaction off/on (uuid7 ids) and random uuid4 ids, interleaved so noise hits all alike."""
    from selfheal.tracing.store import encode_run

    configs = [
        (False, "uuid7", False),
        (True, "uuid7", False),
        (False, "uuid4", False),
        (False, "uuid7", True),
        (True, "uuid7", True),
    ]
    samples: dict[tuple[bool, str, bool], list[dict[str, float]]] = {c: [] for c in configs}
    for _ in range(repeats):
        for redact, ids, background in configs:
            samples[(redact, ids, background)].append(
                ingest_once(workdir, runs, batch, redact, ids, background)
            )
    sid = uuid.uuid4()
    sample = [
        encode_run(s) for k in range(RUNS_PER_TRACE) for s in make_trace(k, datetime.now(UTC), sid)
    ]
    out = []
    for (redact, ids, background), got in samples.items():
        med = {k: statistics.median(g[k] for g in got) for k in got[0]}
        out.append(
            {
                "path": "background_writer" if background else "batched",
                "redaction": redact,
                "id_kind": ids,
                "runs": runs,
                "batch_runs": None if background else batch,
                "repeats": repeats,
                "payload_json_chars_per_run_mean": round(
                    statistics.mean(len(r[7]) + len(r[8] or "") + len(r[10]) for r in sample)
                ),
                "runs_per_s_median": round(med["runs_per_s"]),
                "runs_per_s_all": [round(g["runs_per_s"]) for g in got],
                # background: encode and write overlap, so only their sum (wall) is meaningful
                "encode_us_per_run": None if background else round(med["encode_us"], 1),
                "write_us_per_run": None if background else round(med["write_us"], 1),
                "wall_us_per_run": round(1e6 / med["runs_per_s"], 1),
                "file_mib": round(med["file_mib"], 1),
            }
        )
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


#: name -> (filter text with {since}, the largest store it is run on; None = every size).
QUERIES: dict[str, tuple[str, int | None]] = {
    "errors_recent": ('and(eq(status, "error"), gte(start_time, "{since}"))', None),
    "errors_all": ('eq(status, "error")', None),
    "task_failures": (
        'and(eq(metadata.task_type, "lambda_latency"), eq(metadata.success, false),'
        " eq(is_root, true))",
        None,
    ),
    # Full scan through a Python function (Unicode case folding): only on smaller stores.
    "search_scan": ('search("DEPLOY #77;")', 100_000),
}


def plan_of(store: Any, text: str) -> str:
    from selfheal.tracing.filters import parse_filter
    from selfheal.tracing.query import compile_filter

    compiled = compile_filter(parse_filter(text))
    with store._read() as conn:
        rows = conn.execute(
            f"EXPLAIN QUERY PLAN SELECT * FROM runs WHERE {compiled.where}"
            " ORDER BY start_time DESC, dotted_order DESC LIMIT 100",
            dict(compiled.params),
        ).fetchall()
    return " | ".join(r[-1] for r in rows)


def bench_scaling(
    workdir: Path, sizes: list[int], batch: int, repeats: int
) -> list[dict[str, Any]]:
    from selfheal.tracing.store import LocalTraceStore

    path = workdir / "scaling.sqlite"
    store = LocalTraceStore(path)
    now = datetime.now(UTC)
    sid = store.ensure_project("bench").id
    total_traces = max(sizes) // RUNS_PER_TRACE
    done = 0
    out = []
    for size in sizes:
        t0 = time.perf_counter()
        # Traces are written oldest first, as they happen, spread over the final store's 30 days.
        n, enc_s, write_s = ingest(
            store, batches(size - done, batch, done // RUNS_PER_TRACE, total_traces, now, sid)
        )
        build_s = time.perf_counter() - t0
        done += n
        with store._read() as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        # "Recent": the newest 1/30 of the stored time range (the last day, at full size).
        stored_span = SPAN * done / (total_traces * RUNS_PER_TRACE)
        since = (now - SPAN + stored_span - stored_span / 30).isoformat().replace("+00:00", "Z")
        queries: dict[str, Any] = {}
        for name, (template, max_size) in QUERIES.items():
            if max_size is not None and done > max_size:
                continue
            text = template.format(since=since)
            reps = repeats if max_size is None else 3
            q_times, rows = timed(lambda t=text: store.query_runs(t, limit=100), reps)
            c_times, count = timed(lambda t=text: store.count_matching(t), reps)
            queries[name] = {
                "filter": text,
                "matching_runs": count,
                "returned": len(rows),
                "limit100_ms_median": round(statistics.median(q_times), 2),
                "limit100_ms_max": round(max(q_times), 2),
                "count_ms_median": round(statistics.median(c_times), 2),
                "count_ms_max": round(max(c_times), 2),
                "plan": plan_of(store, text),
            }
        out.append(
            {
                "runs": done,
                "queries": queries,
                "ingest_runs_per_s_this_step": round(n / (enc_s + write_s)) if n else None,
                "build_s": round(build_s, 1),
                "file_mib": file_mib(path),
                "peak_rss_mib": round(rss_mib(), 1),
            }
        )
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    store.close()
    for p in workdir.glob(f"{path.name}*"):  # before ingest runs: no writeback competing
        p.unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated run counts")
    ap.add_argument("--batch", type=int, default=1000, help="runs per write transaction")
    ap.add_argument("--ingest-runs", type=int, default=50_000, help="runs per ingest measurement")
    ap.add_argument("--ingest-repeats", type=int, default=5, help="fresh stores per ingest config")
    ap.add_argument("--repeats", type=int, default=15, help="timed repeats per query")
    ap.add_argument("--dir", type=Path, default=None, help="where store files go (default: temp)")
    ap.add_argument("--out", type=Path, default=RESULTS / "trace_store.json")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())

    workdir = Path(tempfile.mkdtemp(prefix="trace-bench-", dir=args.dir))
    try:
        started = time.perf_counter()
        rss_start = rss_mib()
        # Scaling first: its peak RSS is then the store's, not the ingest runs' pre-built traces.
        scaling = bench_scaling(workdir, sizes, args.batch, args.repeats)
        ingest_results = bench_ingest(workdir, args.ingest_runs, args.batch, args.ingest_repeats)
        at_max = scaling[-1]["queries"]["errors_recent"]
        plain, background = (
            next(
                r
                for r in ingest_results
                if r["path"] == path and not r["redaction"] and r["id_kind"] == "uuid7"
            )
            for path in ("batched", "background_writer")
        )
        result = {
            "bench": "trace_store",
            "machine": {
                "python": platform.python_version(),
                "sqlite": sqlite3.sqlite_version,
                "cpus": os.cpu_count(),
            },
            "workload": (
                f"traces of {RUNS_PER_TRACE} runs (root, 3 llm, 3 tool, 3 chain), metadata"
                f" inherited"
                f" by every run, 1 trace in {ERROR_EVERY} failing, spread over {SPAN.days} days;"
                f" encode_run + write_encoded in batches of {args.batch} runs"
            ),
            "goals": {"ingest_runs_per_s": 20_000, "query_ms_at_largest": 50},
            "summary": {
                "ingest_runs_per_s_median": plain["runs_per_s_median"],
                "ingest_background_writer_runs_per_s_median": background["runs_per_s_median"],
                "largest_store_runs": scaling[-1]["runs"],
                "query_limit100_ms_at_largest": at_max["limit100_ms_median"],
                "count_ms_at_largest": at_max["count_ms_median"],
                "file_mib_at_largest": scaling[-1]["file_mib"],
                "peak_rss_mib_through_largest_store": scaling[-1]["peak_rss_mib"],
                "rss_at_start_mib": round(rss_start, 1),
            },
            "ingest": ingest_results,
            "scaling": scaling,
            "total_s": round(time.perf_counter() - started, 1),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
