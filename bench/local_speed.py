"""The embedded model through selfheal's model process vs llama-cpp-python called directly.

Two measurements, each side by side in one run (this machine is noisy):

1. **Generation**: one fixed chat prompt, greedy, ``--tokens`` new tokens,
   prefix-cached; ``selfheal`` (``ChatLlamaCpp.invoke`` -> the model process
   over loopback HTTP) vs ``direct`` (``Llama.create_chat_completion`` in this
   process), interleaved rounds, median tok/s. Goal: selfheal >= 0.95x direct.
2. **Scenarios**: ``run_task`` on ``--scenarios`` lambda_ops scenarios
   (learning off), interleaved per scenario:
   * ``direct``: every model request of the run sent to an in-process
     ``Llama`` with selfheal's tool-calling handler, the KV cache reset before
     each scenario — what a run cost before the model process (the prompt
     shared only ~20 tokens across runs, so every run read ~2,200 tokens cold);
   * ``cold``: selfheal with a fresh model process and no saved prefix state
     (a first CLI invocation);
   * ``warm``: selfheal with its long-lived model process and the fixed prefix
     (tool block, rules, examples) reused from the KV cache / disk.
   Reported: wall seconds and prompt tokens evaluated vs sent per scenario.
   Goal: warm >= 3x less wall time per scenario than direct.

Usage: ``python bench/local_speed.py [--tokens 96] [--rounds 3] [--scenarios 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import PrivateAttr

from selfheal.models.local_chat import ChatLlamaCpp

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Write the numbers from 1 to 400 in English words, separated by commas, without any other text."
SYSTEM = "You are a precise assistant."
# The lambda_ops test split, one task type after another.
SCENARIOS = ["timeout_shipping_quotes", "memory_podcast_encoder", "throttling_ledger_consumer",
             "cold_start_catalog_graphql", "cost_geofence_check", "errors_loyalty_points", "query_declined_count",
             "config_pc_stale_after_deploy", "misleading_oom_not_timeout", "query_p99_fortnight",
             "misleading_throttle_blamed_on_account"]


def _direct_llama(path: str, n_ctx: int, threads: int) -> Any:
    from llama_cpp import Llama

    from selfheal.models.llama_tools import ToolCallingChatHandler

    return Llama(model_path=path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, seed=0,
                 verbose=False, chat_handler=ToolCallingChatHandler())


def measure_generation(llama: Any, model: Any, n_tokens: int, rounds: int) -> dict[str, Any]:
    from langchain_core.messages import HumanMessage, SystemMessage

    lc = [SystemMessage(SYSTEM), HumanMessage(PROMPT)]
    oa = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    bound = model.bind(max_tokens=n_tokens)

    def via_selfheal() -> int:
        msg = bound.invoke(lc)
        return int(msg.usage_metadata["output_tokens"]) if msg.usage_metadata else 0

    def via_direct() -> int:
        res = llama.create_chat_completion(messages=oa, temperature=0.0, max_tokens=n_tokens, seed=0)
        return int(res["usage"]["completion_tokens"])

    paths = {"direct": via_direct, "selfheal": via_selfheal}
    for fn in paths.values():
        fn()  # warm-up: the prompt is now in each process's KV cache
    rates: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(rounds):
        for name in (list(paths) if r % 2 == 0 else list(reversed(paths))):
            t = time.perf_counter()
            n = paths[name]()
            rates[name].append(n / (time.perf_counter() - t))
    median = {k: round(statistics.median(v), 2) for k, v in rates.items()}
    return {"tok_s": {k: [round(x, 2) for x in v] for k, v in rates.items()}, "median_tok_s": median,
            "selfheal_vs_direct": round(median["selfheal"] / median["direct"], 3)}


class _DirectModel:
    """Stands in for the model process: requests go to an in-process Llama (the path before isolation)."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama
        self.stats = {"seconds": 0.0, "prompt_tokens": 0, "prompt_tokens_evaluated": 0}

    def request(self, method: str, path: str, payload: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        assert payload is not None
        evaluated = 0
        real_eval = self.llama.eval

        def counting(tokens: Any) -> None:
            nonlocal evaluated
            evaluated += len(tokens)
            real_eval(tokens)

        self.llama.eval = counting
        t = time.perf_counter()
        try:
            res = self.llama.create_chat_completion(**{k: v for k, v in payload.items() if v is not None})
        finally:
            self.llama.eval = real_eval
        self.stats["seconds"] += time.perf_counter() - t
        self.stats["prompt_tokens"] += int(res["usage"]["prompt_tokens"])
        self.stats["prompt_tokens_evaluated"] += max(0, evaluated - int(res["usage"]["completion_tokens"]))
        return res


class _DirectChat(ChatLlamaCpp):
    """ChatLlamaCpp talking to a :class:`_DirectModel` instead of its model process."""

    _direct: Any = PrivateAttr(default=None)

    @classmethod
    def wrap(cls, chat: ChatLlamaCpp, direct: _DirectModel) -> _DirectChat:
        out = cls(**chat.model_dump())
        out._direct = direct
        return out

    def process(self) -> Any:  # type: ignore[override]
        return self._direct


def measure_scenarios(llama: Any, names: list[str], threads: int, n_ctx: int) -> dict[str, Any]:
    from selfheal.agent.runner import run_task
    from selfheal.config import load_settings
    from selfheal.models import local_process
    from selfheal.models.local_weights import ensure_local_weights

    work = Path(tempfile.mkdtemp(prefix="selfheal-bench-"))
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("replay*", "experiments"))
    shutil.copy(REPO / "selfheal.yaml", work / "selfheal.yaml")
    settings = load_settings(work, env={}, overrides={"learning": False, "model": {"provider": "local"}})
    path = str(ensure_local_weights())
    kv = work / "kv"
    rows: list[dict[str, Any]] = []

    def model_for(mode: str) -> tuple[Any, Any]:
        chat = ChatLlamaCpp(model_path=path, n_ctx=n_ctx, n_threads=threads, max_tokens=settings.model.max_tokens,
                            state_dir=str(kv) if mode == "warm" else "")
        if mode == "direct":
            direct = _DirectModel(llama)
            return _DirectChat.wrap(chat, direct), direct
        proc = chat.process()
        if mode == "cold":
            proc.close()  # a fresh process, nothing reused from an earlier scenario
        return chat, proc

    try:
        for name in names:
            for mode in ("direct", "cold", "warm"):
                if mode == "direct":
                    llama.reset()
                chat, owner = model_for(mode)
                before = dict(owner.stats)
                t = time.perf_counter()
                out = run_task(settings, scenario=name, model=chat, learn=False)
                wall = time.perf_counter() - t
                rows.append({
                    "scenario": name, "mode": mode, "wall_s": round(wall, 2), "success": out.success,
                    "model_s": round(owner.stats["seconds"] - before["seconds"], 2),
                    "prompt_tokens": int(owner.stats["prompt_tokens"] - before["prompt_tokens"]),
                    "prompt_tokens_evaluated": int(owner.stats["prompt_tokens_evaluated"]
                                                   - before["prompt_tokens_evaluated"]),
                })
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        local_process.close_all()
        shutil.rmtree(work, ignore_errors=True)
    by_mode = {m: [r for r in rows if r["mode"] == m] for m in ("direct", "cold", "warm")}
    med = {m: round(statistics.median(r["wall_s"] for r in rs), 2) for m, rs in by_mode.items() if rs}
    total = {m: round(sum(r["wall_s"] for r in rs), 2) for m, rs in by_mode.items() if rs}
    return {
        "rows": rows,
        "median_wall_s": med,
        "total_wall_s": total,
        "prompt_tokens_evaluated": {m: sum(r["prompt_tokens_evaluated"] for r in rs) for m, rs in by_mode.items()},
        "prompt_tokens_sent": {m: sum(r["prompt_tokens"] for r in rs) for m, rs in by_mode.items()},
        "direct_vs_warm_wall": round(total["direct"] / total["warm"], 2) if total.get("warm") else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "local_speed.json")
    args = parser.parse_args(argv)

    from selfheal.models import local_process
    from selfheal.models.local_weights import MODEL_ID, ensure_local_weights

    path = str(ensure_local_weights())
    llama = _direct_llama(path, args.n_ctx, args.threads)
    model = ChatLlamaCpp(model_path=path, n_ctx=args.n_ctx, n_threads=args.threads, state_dir="")
    result: dict[str, Any] = {
        "benchmark": "local_speed",
        "model": MODEL_ID,
        "threads": args.threads,
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
                    "load_before": os.getloadavg()[0]},
        "generation": {"workload": f"greedy chat completion of {args.tokens} tokens, fixed prompt, prefix-cached, "
                                   f"{args.rounds} interleaved rounds"},
    }
    result["generation"].update(measure_generation(llama, model, args.tokens, args.rounds))
    local_process.close_all()
    if args.scenarios:
        result["scenarios"] = {"workload": "run_task, learning off, temperature 0, interleaved direct/cold/warm",
                               **measure_scenarios(llama, SCENARIOS[: args.scenarios], args.threads, args.n_ctx)}
    result["machine"]["load_after"] = os.getloadavg()[0]
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
