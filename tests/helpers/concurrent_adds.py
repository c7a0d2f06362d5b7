"""One process of the concurrent-curation test: N online-learning applies, each from a fresh snapshot.

Run as ``python concurrent_adds.py <repo> <worker> <count> <go-file>``. Like N
``selfheal run``s, each apply loads the cheatsheet at "run start", then hands
the curator's ADD to :func:`selfheal.optimize.online.apply_batch`, the path a
run's learning takes. Every ADD has the same first words (same id slug) and a
distinct lesson. Prints one JSON line: the ids the applies reported as added.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace


def main() -> None:
    repo, worker, count, go = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    from selfheal.cheatsheet.ops import parse_operations
    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.config import load_settings
    from selfheal.optimize.online import apply_batch

    settings = load_settings(repo)
    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:  # start together
        time.sleep(0.01)
    added: list[str] = []
    for i in range(count):
        snapshot = load_cheatsheet(settings.cheatsheet_dir)  # the run starts
        rc = SimpleNamespace(settings=settings, cheatsheet=snapshot, session=SimpleNamespace(tools=[]))
        batch = parse_operations([{
            "op": "ADD", "section": "failure_patterns", "task_type": "lambda_timeout",
            "fields": {"pattern": f"Concurrent runs learn the same lesson (worker {worker} run {i})",
                       "lesson": f"Lesson {worker}-{i}: keep every concurrent lesson."},
            "reason": f"worker {worker} run {i}",
        }])
        result, _applied, _rejected = apply_batch(rc, batch, run_id=f"w{worker}-r{i}", now=datetime.now(UTC))
        added += [c.entry_id for c in result.changes if c.op == "ADD"]
    print(json.dumps({"added": added}))


if __name__ == "__main__":
    main()
