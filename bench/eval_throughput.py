"""Eval runner throughput: the same 100 examples at -j 1 and -j 10, side by side in one run.

Workload. A chat model stub with a fixed 100 ms latency per call and a fixed
2-call script (one ``list_functions`` tool call, then a final answer), so
every example costs exactly 200 ms of "model time". The examples are plain
examples (no scenario): each run opens an *empty* simulated AWS account, so
what is measured is selfheal's own per-example work — context and cheatsheet
loading, the LangGraph run with SQLite checkpoints, tracing into the local
store, evaluation, storing the experiment — not moto seeding.

Seeding a scenario's account is measured separately (``seed_s_per_scenario``:
mean over the repository's scenarios) because it is CPU-bound moto work that
no number of threads hides on a 2-core machine; a small scenario run
(``scenario_examples`` seeded examples at -j 1 and -j 10) shows its effect.

Figures: wall time per job count, speedup (goal >= 8x at -j 10), and the
per-example overhead excluding model time (wall per example at -j 1 minus the
200 ms of model latency).

    .venv/bin/python bench/eval_throughput.py [--examples 100] [--scenario-examples 12]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfheal.config import load_settings  # noqa: E402
from selfheal.evaluation.dataset import load_dataset  # noqa: E402
from selfheal.evaluation.runner import run_experiment  # noqa: E402
from selfheal.models.fakes import ScriptedChatModel  # noqa: E402
from selfheal.yamlio import read_yaml, write_yaml  # noqa: E402

LATENCY_S = 0.1
CALLS_PER_EXAMPLE = 2
DATASET_YAML = """\
name: lambda_ops
description: eval throughput benchmark
agent: lambda_ops
examples: [scenarios/*.yaml, examples/*.yaml]
"""


def two_calls(messages: list[BaseMessage]) -> AIMessage:
    """First call: one tool call; second call (after the tool result): the final answer."""
    if any(isinstance(m, ToolMessage) for m in messages):
        return AIMessage(content="No functions need changes.")
    return AIMessage(content="", tool_calls=[{"name": "list_functions", "args": {}, "id": "call-1"}])


def make_model() -> ScriptedChatModel:
    return ScriptedChatModel([two_calls], repeat=True, latency_s=LATENCY_S)


def make_repo(root: Path, plain: int, scenarios: int) -> Path:
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(ROOT / name, root / name)
    shutil.copy(ROOT / "selfheal.yaml", root / "selfheal.yaml")
    ds = root / "evals" / "lambda_ops"
    (ds / "examples").mkdir(parents=True)
    (ds / "scenarios").mkdir()
    (ds / "dataset.yaml").write_text(DATASET_YAML)
    examples = [
        {"name": f"plain-{i:03d}", "task": f"Check the Lambda functions of team {i} for problems.",
         "task_type": "general", "split": "test", "expect": {"tool_calls": {"required": ["list_functions"]}}}
        for i in range(plain)
    ]  # fmt: skip
    write_yaml(ds / "examples" / "plain.yaml", {"examples": examples})
    sources = sorted((ROOT / "evals" / "lambda_ops" / "scenarios").glob("*.yaml"))
    for i in range(scenarios):
        data = read_yaml(sources[i % len(sources)])
        name = f"{data['name']}_{i:03d}"
        data["name"] = name
        data["split"] = "dev"
        data.pop("id", None)
        write_yaml(ds / "scenarios" / f"{name}.yaml", data)
    return root


def measure(settings: Any, split: str, jobs: int) -> dict[str, Any]:
    dataset = load_dataset(settings)
    started = time.perf_counter()
    result = run_experiment(settings, dataset, split=split, jobs=jobs, model_factory=make_model, progress=False)
    wall = time.perf_counter() - started
    statuses = {r.status for r in result.results}
    assert statuses == {"ok"}, f"unexpected statuses {statuses}: {[r.error for r in result.results if r.error]}"
    return {"jobs": jobs, "examples": result.n, "wall_s": round(wall, 2), "passed": result.passed}


def seed_cost() -> float:
    from lambda_ops.aws import SimulatedAccount
    from lambda_ops.scenario import load_scenario

    times = []
    paths = sorted((ROOT / "evals" / "lambda_ops" / "scenarios").glob("*.yaml"))
    for path in paths:
        spec = load_scenario(path)
        started = time.perf_counter()
        with SimulatedAccount(spec):
            pass
        times.append(time.perf_counter() - started)
    return round(statistics.mean(times[1:] if len(times) > 1 else times), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=100)
    ap.add_argument("--scenario-examples", type=int, default=12)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "eval_throughput.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
        root = make_repo(Path(tmp), args.examples, args.scenario_examples)
        settings = load_settings(root, env={})
        # warm-up: imports, graph compile, store migration (not part of either figure)
        run_experiment(settings, load_dataset(settings), split="test", names=["plain-000"],
                       model_factory=make_model, progress=False)  # fmt: skip
        serial = measure(settings, "test", 1)
        parallel = measure(settings, "test", args.jobs)
        scenario_runs = []
        if args.scenario_examples:
            scenario_runs = [measure(settings, "dev", 1), measure(settings, "dev", args.jobs)]
    model_time = LATENCY_S * CALLS_PER_EXAMPLE
    per_example = serial["wall_s"] / serial["examples"]
    report = {
        "benchmark": "eval_throughput",
        "workload": (
            f"{args.examples} plain examples (empty simulated account), model stub {int(LATENCY_S * 1000)} ms/call,"
            f" {CALLS_PER_EXAMPLE} calls/example (tool call + answer); -j 1 vs -j {args.jobs}"
        ),
        "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
        "serial": serial,
        "parallel": parallel,
        "speedup": round(serial["wall_s"] / parallel["wall_s"], 2),
        "speedup_goal": 8.0,
        "model_s_per_example": model_time,
        "overhead_s_per_example": round(per_example - model_time, 3),
        # selfheal's per-example work is Python holding the GIL: threads overlap the model's
        # waiting, never each other's CPU, so -j N cannot beat (model + overhead) / overhead.
        "speedup_ceiling_if_overhead_all_gil_cpu": round(per_example / max(per_example - model_time, 1e-9), 2),
        "seed_s_per_scenario": seed_cost(),
        "scenario_runs": {
            "workload": f"{args.scenario_examples} seeded scenario examples (copies of the repository's scenarios)",
            "runs": scenario_runs,
            "speedup": round(scenario_runs[0]["wall_s"] / scenario_runs[1]["wall_s"], 2) if scenario_runs else None,
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
