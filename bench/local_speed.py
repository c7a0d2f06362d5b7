"""Generation speed of the embedded model through selfheal vs llama-cpp-python directly.

Workload: one fixed chat prompt (a long, deterministic answer), greedy decoding,
``n_tokens`` new tokens, the same ``Llama`` instance and parameters for every
path. Runs are interleaved (direct, selfheal, raw, direct, ...) so machine
noise hits all paths alike; after a warm-up the prompt is in llama.cpp's prefix
cache, so the figures are generation throughput. Paths:

* ``selfheal``: ``ChatLlamaCpp.invoke`` (LangChain run, message conversion, parsing);
* ``direct``: ``Llama.create_chat_completion`` (the library's chat API);
* ``raw``: ``Llama.create_completion`` on the already-rendered prompt.

Usage: ``python bench/local_speed.py [--tokens 128] [--rounds 3] [--out FILE]``
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

PROMPT = (
    "Write the numbers from 1 to 400 in English words, separated by commas, "
    "without any other text."
)
SYSTEM = "You are a precise assistant."


def measure(n_tokens: int = 128, *, rounds: int = 3, n_ctx: int = 2048, n_threads: int | None = None) -> dict[str, Any]:
    """Median tokens/s of each path and the selfheal/direct ratio (1.0 = no overhead)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    from selfheal.models.llama_tools import render_prompt
    from selfheal.models.local_chat import ChatLlamaCpp, default_threads
    from selfheal.models.local_weights import MODEL_ID, ensure_local_weights

    path = ensure_local_weights()
    model = ChatLlamaCpp(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, max_tokens=n_tokens,
                         temperature=0.0)
    start = time.perf_counter()
    llama = model.loaded().llama
    load_s = time.perf_counter() - start

    lc_messages = [SystemMessage(SYSTEM), HumanMessage(PROMPT)]
    oa_messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    rendered = render_prompt(oa_messages)
    params = {"temperature": 0.0, "max_tokens": n_tokens, "seed": 0, "repeat_penalty": 1.0}

    def via_selfheal() -> int:
        msg = model.invoke(lc_messages)
        return int(msg.usage_metadata["output_tokens"]) if msg.usage_metadata else 0

    def via_direct() -> int:
        res = llama.create_chat_completion(messages=oa_messages, **params)
        return int(res["usage"]["completion_tokens"])

    def via_raw() -> int:
        res = llama.create_completion(prompt=rendered, stop=["<|im_end|>"], **params)
        return int(res["usage"]["completion_tokens"])

    paths = {"direct": via_direct, "selfheal": via_selfheal, "raw": via_raw}
    # Cold prompt processing, measured once on the raw path.
    llama.reset()
    t = time.perf_counter()
    llama.create_completion(prompt=rendered, max_tokens=1, temperature=0.0)
    prompt_tokens = len(llama.tokenize(rendered.encode(), add_bos=False, special=True))
    prompt_s = time.perf_counter() - t
    for fn in paths.values():  # warm-up: prompt now in the prefix cache
        fn()

    rates: dict[str, list[float]] = {k: [] for k in paths}
    tokens: dict[str, list[int]] = {k: [] for k in paths}
    for r in range(rounds):
        order = list(paths) if r % 2 == 0 else list(reversed(paths))
        for name in order:
            t = time.perf_counter()
            n = paths[name]()
            dt = time.perf_counter() - t
            tokens[name].append(n)
            rates[name].append(n / dt if dt > 0 else 0.0)

    median = {k: round(statistics.median(v), 2) for k, v in rates.items()}
    best = {k: round(max(v), 2) for k, v in rates.items()}
    return {
        "benchmark": "local_speed",
        "workload": f"greedy chat completion of {n_tokens} tokens, fixed prompt, prefix-cached, "
                    f"{rounds} interleaved rounds per path",
        "model": MODEL_ID,
        "threads": n_threads or default_threads(),
        "machine": {"python": platform.python_version(), "machine": platform.machine(),
                    "cpus": default_threads()},
        "load_s": round(load_s, 2),
        "prompt_tokens": prompt_tokens,
        "prompt_tok_s": round(prompt_tokens / prompt_s, 1) if prompt_s > 0 else None,
        "tokens_generated": tokens,
        "tok_s": {k: [round(x, 2) for x in v] for k, v in rates.items()},
        "median_tok_s": median,
        "best_tok_s": best,
        "selfheal_vs_direct": round(median["selfheal"] / median["direct"], 3) if median["direct"] else None,
        "direct_vs_raw": round(median["direct"] / median["raw"], 3) if median["raw"] else None,
        "selfheal_vs_direct_best": round(best["selfheal"] / best["direct"], 3) if best["direct"] else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "local_speed.json")
    args = parser.parse_args(argv)
    result = measure(args.tokens, rounds=args.rounds, n_threads=args.threads)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
