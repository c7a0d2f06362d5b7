"""What selfheal adds to a run, measured side by side in one process.

Workload: the lambda_timeout scenario's simulated account (seeded once, shared),
a zero-latency scripted chat model that makes the same 3 tool calls and then
answers (4 model turns), and the same 12 lambda_ops tools.

* bare     - LangGraph's canonical tool loop (agent node + ToolNode + tools_condition),
             no tracing, no checkpointer.
* selfheal - ``run_task``: loads prompts/ and cheatsheet/ files, versions them, retrieves,
             renders the Jinja context, runs the workflow with the local tracer and the
             SQLite checkpointer, verifies the account state, stamps the trace.

Runs alternate (bare, selfheal, bare, ...) so machine noise hits both alike; the
figure is the ratio of medians (goal <= 1.2x). Also: peak traced memory per run
(tracemalloc, separate pass), environment seeding time (paid by any agent on a
fresh simulated account) and ``selfheal --help`` cold start (goal <= 0.4 s). The
embedded model's speed is ``bench/local_speed.py``.

    python bench/overhead.py [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

SCRIPT = [
    ("get_function_configuration", {"function_name": "checkout-api"}),
    ("search_logs", {"function_name": "checkout-api", "pattern": "Task timed out", "hours": 24}),
    ("update_timeout", {"function_name": "checkout-api", "timeout_s": 10}),
]
FINAL = "Raised the timeout from 3 s to 10 s.\nUSED: heur-timeout-low-memory"


def scripted_model(latency_s: float = 0.0) -> Any:
    """A fresh model replaying the 4-turn script (one per run), ``latency_s`` per turn."""
    from langchain_core.messages import AIMessage

    from selfheal.models.fakes import ScriptedChatModel

    turns: list[Any] = [
        AIMessage(content="", tool_calls=[{"name": n, "args": a, "id": f"call-{i}"}])
        for i, (n, a) in enumerate(SCRIPT)
    ]
    turns.append(FINAL)
    return ScriptedChatModel(turns, latency_s=latency_s)


def bare_graph(tools: list[Any], holder: dict[str, Any]) -> Any:
    """LangGraph's canonical tool loop; ``holder["model"]`` is the model of the next run."""
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [holder["model"].bind_tools(tools).invoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", agent)
    g.add_node("tools", ToolNode(tools, handle_tool_errors=True))
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition)
    g.add_edge("tools", "agent")
    return g.compile()


def make_repo(tmp: Path) -> Path:
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(ROOT / name, tmp / name)
    shutil.copy(ROOT / "selfheal.yaml", tmp / "selfheal.yaml")
    return tmp


def measure_overhead(runs: int, latency_s: float = 0.0) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage, SystemMessage

    from selfheal.agent.runner import run_task
    from selfheal.config import load_settings
    from selfheal import get_agent

    with tempfile.TemporaryDirectory() as td:
        repo = make_repo(Path(td))
        settings = load_settings(repo, env={})
        domain = get_agent(settings)
        seed_times = []
        for _ in range(3):
            t0 = time.perf_counter()
            s = domain.open(settings, task=None, scenario="lambda_timeout")
            seed_times.append(time.perf_counter() - t0)
            s.close()
        session = domain.open(settings, task=None, scenario="lambda_timeout")
        try:
            holder: dict[str, Any] = {}
            graph = bare_graph(session.tools, holder)

            def bare() -> None:
                holder["model"] = scripted_model(latency_s)
                out = graph.invoke(
                    {"messages": [SystemMessage("You are a Lambda operator."), HumanMessage(session.task)]}
                )
                assert out["messages"][-1].content == FINAL

            def selfheal() -> None:
                out = run_task(settings, model=scripted_model(latency_s), session=session)
                assert out.success and len(out.tool_calls) == 3

            for fn in (bare, selfheal, bare, selfheal):  # warm-up: imports, caches, first DB pages
                fn()
            times: dict[str, list[float]] = {"bare": [], "selfheal": []}
            for _ in range(runs):
                for name, fn in (("bare", bare), ("selfheal", selfheal)):
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)

            peaks: dict[str, float] = {}
            for name, fn in (("bare", bare), ("selfheal", selfheal)):
                tracemalloc.start()
                fn()
                peaks[name] = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
        finally:
            session.close()

    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "workload": f"lambda_timeout scenario, scripted model with {latency_s * 1000:.0f} ms per turn, "
        "4 turns, 3 tool calls, same 12 tools",
        "runs_each": runs,
        "bare_ms_median": round(med["bare"] * 1000, 2),
        "selfheal_ms_median": round(med["selfheal"] * 1000, 2),
        "bare_ms_p90": round(sorted(times["bare"])[int(0.9 * runs) - 1] * 1000, 2),
        "selfheal_ms_p90": round(sorted(times["selfheal"])[int(0.9 * runs) - 1] * 1000, 2),
        "ratio": round(med["selfheal"] / med["bare"], 3),
        "goal_ratio": 1.2,
        "peak_traced_mib": {k: round(v, 2) for k, v in peaks.items()},
        "scenario_seed_s_median": round(statistics.median(seed_times), 3),
    }


def measure_help(runs: int = 10) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("selfheal")
    cmd = [str(exe), "--help"] if exe.exists() else [sys.executable, "-m", "selfheal.cli.main", "--help"]
    subprocess.run(cmd, capture_output=True, check=True)  # warm the OS file cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return {"help_cold_start_s_median": round(statistics.median(times), 3), "goal_s": 0.4, "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()

    result: dict[str, Any] = {
        "bench": "overhead",
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "run_overhead": measure_overhead(args.runs),
        # The same comparison with a fast hosted model's latency (50 ms/turn): what a user pays.
        "run_overhead_50ms_model": measure_overhead(max(10, args.runs // 3), latency_s=0.05),
        "cli_help": measure_help(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = json.dumps(result, indent=2)
    (RESULTS / "overhead.json").write_text(out + "\n")
    print(out)


if __name__ == "__main__":
    main()
