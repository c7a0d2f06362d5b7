"""How cheatsheet retrieval scales: index build, per-run retrieval latency, memory, curation apply.

Workload: synthetic cheatsheets of ``--sizes`` entries (default 100, 1k, 10k,
100k) mixing the 4 sections and 10 task types (generated text: symptom,
service, cause, action; ~20 words per entry), 85% active / 10% candidate /
5% retired. Queries: ``--queries`` (default 200) task descriptions phrased
unlike the entries, each with one of the task types or none.

* build - ``EmbeddingIndex`` through ``retrieve_entries``'s in-process cache:
  cold (empty vector cache: every text embedded) and warm (a new process: all
  vectors read back from ``<cache>/<identity>.sqlite``). 100 and 1k entries are
  embedded with the real local MiniLM. For 10k/100k, embedding every entry
  would take 40 s / 6 min (~270 texts/s), so those entries get *precomputed*
  vectors: a pool of real MiniLM vectors of ``--pool`` distinct entry texts,
  tiled with a small deterministic perturbation (noise 0.05, renormalised).
  The build path (hashing, SQLite cache, matrix) is the real one; only the
  embedding call is a lookup.
* retrieval - ``retrieve_entries`` p50/p99 per query **including the real
  MiniLM query embedding** (1 intra-op thread), with and without a counter
  store (10% of entries with usage history); the query embedding alone; BM25
  (``retrieval.retrieve``) side by side up to 10k. Goal: p50 <= 5 ms at 10k.
* memory - RSS growth over the cold build and the matrix's bytes.
* near-duplicates - ``similar_pairs(0.92)`` time (maintenance), up to 10k.
* apply - ``ops.apply_operations`` of a 5-op batch (3 ADD, 1 UPDATE, 1 REMOVE)
  against the in-memory snapshot, writing into an empty directory (median of 3).

    python bench/retrieval.py [--sizes 100,1000,10000,100000] [--queries 200] [--pool 2000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

from selfheal.cheatsheet.counters import CounterStore  # noqa: E402
from selfheal.cheatsheet.model import (  # noqa: E402
    Cheatsheet,
    CheatsheetEntry,
    CodeSnippet,
    FailurePattern,
    Heuristic,
    Source,
    Strategy,
)
from selfheal.cheatsheet.ranking import clear_index_cache, prepared_index, retrieve_entries  # noqa: E402
from selfheal.cheatsheet.retrieval import retrieve as bm25_retrieve  # noqa: E402
from selfheal.models.embeddings import LocalEmbedder, normalize_rows  # noqa: E402

TASK_TYPES = ["lambda_latency", "lambda_timeout", "lambda_memory", "lambda_throttling", "iam_permission",
              "vpc_network", "cold_start", "dynamodb_capacity", "sqs_backlog", "api_gateway_5xx"]
SERVICES = ["checkout-api", "payments", "orders-worker", "auth", "search", "image-resizer", "billing", "inventory",
            "notifications", "reports", "gateway", "ingest", "scheduler", "profile", "cart", "ledger"]
SYMPTOMS = ["p99 latency above 2 s", "times out after 3 seconds", "runs out of memory", "is throttled at peak",
            "gets AccessDenied on s3:GetObject", "cannot reach the database from its VPC", "has slow cold starts",
            "sees ProvisionedThroughputExceeded", "falls behind on its queue", "returns 502 through API Gateway",
            "errors after the last deploy", "retries the same message forever"]
CAUSES = ["an ENI attached on every cold start", "a timeout shorter than the downstream call",
          "a memory size too small for the payload", "reserved concurrency set too low",
          "a role missing one action", "a security group without an egress rule", "a large deployment package",
          "on-demand capacity not enabled", "a batch size too large", "an unhandled exception in the handler",
          "a connection pool opened per invocation", "a missing dead-letter queue"]
ACTIONS = ["check the VPC configuration before changing memory", "raise the timeout above the slowest dependency",
           "double the memory and compare duration", "raise reserved concurrency to the peak rate",
           "grant exactly the failing action", "add an egress rule to the database port",
           "trim the package and enable provisioned concurrency", "switch the table to on-demand",
           "lower the batch size and raise visibility timeout", "read the logs of the last failed invocation",
           "reuse the client across invocations", "configure a dead-letter queue with a max receive count"]
QUERY_FORMS = ["{svc} {sym} since this morning, please fix it", "Users report that {svc} {sym}; find the cause",
               "Investigate: {sym} on the {svc} function", "why does {svc} keep failing? it {sym}"]
SOURCE = Source(kind="seed", created=datetime(2026, 1, 1, tzinfo=UTC))


def make_entries(n: int, seed: int = 7) -> list[CheatsheetEntry]:
    rng = random.Random(seed)
    out: list[CheatsheetEntry] = []
    for i in range(n):
        svc, sym, cause, act = (rng.choice(SERVICES), rng.choice(SYMPTOMS), rng.choice(CAUSES), rng.choice(ACTIONS))
        tt = rng.choice(TASK_TYPES) if rng.random() < 0.8 else "general"
        r = rng.random()
        status = "active" if r < 0.85 else "candidate" if r < 0.95 else "retired"
        common = {"id": f"e{i:06d}", "task_type": tt, "status": status, "source": SOURCE}
        kind = i % 4
        if kind == 0:
            out.append(Heuristic(condition=f"{svc} {sym}", rule=f"{act}; usually {cause}", **common))
        elif kind == 1:
            out.append(Strategy(pattern=f"a function {sym} because of {cause}", action=f"{act} ({svc})", **common))
        elif kind == 2:
            out.append(FailurePattern(pattern=f"assuming {cause} when {svc} {sym}", lesson=act, **common))
        else:
            out.append(CodeSnippet(purpose=f"check {cause} for {svc}", snippet=f"# {act}\nlambda_client.get_function_configuration(FunctionName='{svc}')", **common))
    return out


def make_queries(n: int, seed: int = 11) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    return [(rng.choice(QUERY_FORMS).format(svc=rng.choice(SERVICES), sym=rng.choice(SYMPTOMS)),
             rng.choice([*TASK_TYPES, None])) for _ in range(n)]


class TiledEmbedder:
    """Real MiniLM for texts it has not been given vectors for (queries); a lookup for entries."""

    identity = "bench-tiled-minilm"
    dim = 384

    def __init__(self, real: LocalEmbedder, vectors: dict[str, np.ndarray]) -> None:
        self.real = real
        self.vectors = vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if any(t not in self.vectors for t in texts):
            return self.real.embed(texts)
        return np.stack([self.vectors[t] for t in texts])


def tiled_vectors(entries: Sequence[CheatsheetEntry], pool: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    base = pool[np.arange(len(entries)) % len(pool)]
    noisy = normalize_rows(base + rng.normal(0.0, 0.01, base.shape).astype(np.float32))
    return {e.search_text(): noisy[i] for i, e in enumerate(entries)}


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], p: float) -> float:
    return round(float(np.percentile(np.array(xs) * 1000, p)), 3)


def time_interleaved(fns: dict[str, Any], queries: list[tuple[str, str | None]]) -> dict[str, dict[str, float]]:
    """Per-call latency of each variant; variants alternate per query so machine noise hits all alike."""
    for fn in fns.values():
        fn(*queries[0])  # warm-up
    ts: dict[str, list[float]] = {name: [] for name in fns}
    for q, tt in queries:
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(q, tt)
            ts[name].append(time.perf_counter() - t0)
    return {name: {"p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99), "mean_ms": round(statistics.fmean(xs) * 1000, 3)}
            for name, xs in ts.items()}


def bench_apply(sheet: Cheatsheet, tmp: Path) -> dict[str, Any]:
    try:
        from selfheal.cheatsheet.ops import apply_operations, parse_operations
    except ImportError:
        return {"skipped": "selfheal.cheatsheet.ops.apply_operations not available"}
    live = [e for e in sheet.entries if e.status == "active"]
    batch = parse_operations({"operations": [
        {"op": "ADD", "section": "heuristics", "task_type": "lambda_timeout",
         "fields": {"condition": f"bench condition {k} zebra quartz", "rule": f"bench rule {k} violet"},
         "reason": "bench"} for k in range(3)
    ] + [
        {"op": "UPDATE", "id": live[0].id, "fields": {live[0].content_fields()[0]: "reworded by the bench"},
         "reason": "bench"},
        {"op": "REMOVE", "id": live[1].id, "reason": "bench"},
    ]})
    ts = []
    for rep in range(3):
        out = tmp / f"apply{rep}"
        t0 = time.perf_counter()
        result = apply_operations(out, batch, source_runs=["bench-run"], existing=sheet)
        ts.append(time.perf_counter() - t0)
        if not result.ok:
            return {"error": f"rejected: {result.rejected[:1]}"}
    return {"ops": 5, "p50_ms": round(statistics.median(ts) * 1000, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--pool", type=int, default=2000)
    ap.add_argument("--real-max", type=int, default=1000, help="largest size embedded entirely with MiniLM")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    queries = make_queries(args.queries)
    real = LocalEmbedder(threads=1)
    report: dict[str, Any] = {
        "benchmark": "cheatsheet retrieval",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3]},
        "embedder": {"identity": real.identity, "threads": 1, "max_tokens": 256},
        "queries": len(queries),
        "sizes": [],
    }

    pool_entries = make_entries(max(args.pool, 1), seed=99)
    pool: np.ndarray | None = None
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        for n in sizes:
            entries = make_entries(n)
            sheet = Cheatsheet(root=tmp / f"sheet{n}", entries=entries)
            cache_dir = tmp / f"vectors{n}"
            row: dict[str, Any] = {"entries": n, "active": sum(e.status == "active" for e in entries),
                                   "candidate": sum(e.status == "candidate" for e in entries)}
            if n <= args.real_max:
                embedder: Any = real
                row["vectors"] = "real MiniLM"
            else:
                if pool is None:
                    t0 = time.perf_counter()
                    pool = real.embed([e.search_text() for e in pool_entries])
                    report["pool"] = {"texts": len(pool), "embed_s": round(time.perf_counter() - t0, 2),
                                      "texts_per_s": round(len(pool) / (time.perf_counter() - t0), 1)}
                embedder = TiledEmbedder(real, tiled_vectors(entries, pool))
                row["vectors"] = f"precomputed: {len(pool)} real MiniLM vectors tiled with noise"
            clear_index_cache()
            gc.collect()
            rss0 = rss_mb()
            t0 = time.perf_counter()
            prep = prepared_index(sheet, embedder, cache_dir)
            cold = time.perf_counter() - t0
            row["build_cold_s"] = round(cold, 3)
            row["embedded_cold"] = prep.index.embedded
            row["rss_growth_mb"] = round(rss_mb() - rss0, 1)
            row["matrix_mb"] = round(prep.index.nbytes / 2**20, 1)
            if embedder is real:
                row["embed_texts_per_s"] = round(prep.index.embedded / cold, 1)
            clear_index_cache()
            t0 = time.perf_counter()
            prep = prepared_index(sheet, embedder, cache_dir)
            row["build_warm_s"] = round(time.perf_counter() - t0, 3)
            row["embedded_warm"] = prep.index.embedded

            with CounterStore(tmp / f"counters{n}.sqlite") as counters:
                rng = random.Random(5)
                for e in rng.sample(entries, max(1, n // 10)):
                    for r in range(rng.randint(1, 6)):
                        counters.record_use(e.id, run_id=f"{e.id}-{r}", tag=rng.choice(["helpful", "harmful", "neutral"]),
                                            success=rng.random() < 0.7)
                variants: dict[str, Any] = {
                    "query_embedding": lambda q, tt: real.embed([q]),
                    "retrieve": lambda q, tt: retrieve_entries(sheet, q, task_type=tt, top_k=3, embedder=embedder,
                                                               cache_dir=cache_dir),
                    "retrieve_with_counters": lambda q, tt: retrieve_entries(
                        sheet, q, task_type=tt, top_k=3, embedder=embedder, counters=counters, cache_dir=cache_dir),
                }
                if n <= 10_000:
                    variants["bm25_retrieve"] = lambda q, tt: bm25_retrieve(sheet, q, task_type=tt, top_k=3)
                row.update(time_interleaved(variants, queries))
            row["index_p50_ms"] = round(row["retrieve"]["p50_ms"] - row["query_embedding"]["p50_ms"], 3)
            if n <= 10_000:
                t0 = time.perf_counter()
                pairs = prep.index.similar_pairs(0.92)
                row["similar_pairs"] = {"s": round(time.perf_counter() - t0, 3), "pairs": len(pairs)}
            row["apply_operations"] = bench_apply(sheet, tmp)
            report["sizes"].append(row)
            print(json.dumps(row), file=sys.stderr)

    at_10k = next((r for r in report["sizes"] if r["entries"] == 10_000), None)
    if at_10k:
        report["goal_p50_le_5ms_at_10k"] = at_10k["retrieve"]["p50_ms"] <= 5.0
        report["index_share_at_10k_ms"] = at_10k["index_p50_ms"]
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    text = json.dumps(report, indent=2)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "retrieval.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
