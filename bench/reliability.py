"""The README's reliability table, produced by running the tests that measure it.

    python bench/reliability.py            # long variants (SELFHEAL_LONG_TESTS=1), ~15-30 min on 2 cores
    python bench/reliability.py --short    # the normal suite's variants, a few minutes

Each area is measured by tests (load, faults, bad inputs, secrets, kills,
injections). They run under pytest with ``RELIABILITY_TABLE_OUT`` set, and
each writes what it tried and what held (``tests/helpers/reliability.py``);
fuzz tests, whose cases Hypothesis draws, count as their configured number of
cases per target when they pass. The table is printed as Markdown; any
failing test makes the script exit 1 (a number from a failed run is not
reported as held).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: area -> tests that record it
TESTS: dict[str, list[str]] = {
    "load": ["tests/test_cheatsheet_concurrency.py::test_parallel_processes_lose_no_lesson_8x25"],
    "faults": ["tests/test_model_bad_reply.py::test_the_chat_model_raises_a_model_error",
               "tests/test_langsmith_exit_cli.py"],
    "bad inputs": ["tests/test_loaders_fuzz.py", "tests/test_filters_fuzz.py"],
    "secrets": ["tests/test_secrets_nowhere.py"],
    "kills": ["tests/test_crash_kills.py"],
    "injections": ["tests/test_guard_corpus.py"],
}
#: fuzz modules -> (targets, cases per target in the long run, in the short run)
FUZZ = {"tests/test_loaders_fuzz.py": ("loaders, Jinja renderer, curator replies", 10_000, 200),
        "tests/test_filters_fuzz.py": ("the filter parser", 10_000, 200)}


def _fuzz_targets(module: str) -> int:
    """How many fuzz targets a module has (its parametrised long test's cases)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", module, "-k", "ten_thousand"],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "SELFHEAL_LONG_TESTS": "1"})
    return sum(1 for line in out.stdout.splitlines() if "::" in line) or 1


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--short", action="store_true", help="the normal suite's variants (fewer cases and kills)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="selfheal-reliability-") as tmp:
        out = Path(tmp) / "rows.jsonl"
        env = {**os.environ, "RELIABILITY_TABLE_OUT": str(out)}
        if not args.short:
            env["SELFHEAL_LONG_TESTS"] = "1"
        nodes = sorted({t for ts in TESTS.values() for t in ts if (ROOT / t.split("::")[0]).is_file()})
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout", "3600",
                               *nodes], cwd=ROOT, env=env)
        rows = [json.loads(line) for line in out.read_text().splitlines()] if out.is_file() else []
    totals: dict[str, dict[str, object]] = defaultdict(lambda: {"tried": 0, "held": 0, "lost": 0, "notes": []})
    for row in rows:
        t = totals[row["area"]]
        t["tried"] += row["tried"]  # type: ignore[operator]
        t["held"] += row["held"]  # type: ignore[operator]
        t["lost"] += row["lost"]  # type: ignore[operator]
        if row["note"] and row["note"] not in t["notes"]:  # type: ignore[operator]
            t["notes"].append(row["note"])  # type: ignore[union-attr]
    if proc.returncode == 0:
        for module, (what, long_n, short_n) in FUZZ.items():
            n = (short_n if args.short else long_n) * _fuzz_targets(module)
            t = totals["bad inputs"]
            t["tried"] += n  # type: ignore[operator]
            t["held"] += n  # type: ignore[operator]
            t["notes"].append(f"{n:,} generated inputs to {what}: only the documented error")  # type: ignore[union-attr]
    print("\n| area | tried | held (nothing lost) | lost | what |")
    print("|---|---|---|---|---|")
    for area in TESTS:
        t = totals.get(area)
        if t is None:
            print(f"| {area} | - | - | - | not measured (test missing or failed) |")
            continue
        print(f"| {area} | {t['tried']:,} | {t['held']:,} | {t['lost']} | {'; '.join(t['notes'])} |")  # type: ignore[str-format]
    if proc.returncode != 0:
        print("\nsome tests failed: the table above is incomplete", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
