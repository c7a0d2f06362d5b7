"""``selfheal run`` against a LangSmith that accepts connections and never answers exits within the cap.

The cap is ``tracing.langsmith_exit_timeout_s`` (2 s, README). Measured from the
moment LangSmith is first contacted (the upload starts when the run's trace is
saved) to the moment the last exit hook has run: what LangSmith adds. The
interpreter's own teardown after that (1.5-2.5 s on a loaded 2-core box, with or
without LangSmith) is reported, not asserted. Before the fix the process waited
twice, in ``finish()`` and again in the exit hook: 4.0 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from helpers.auto_model_stub import AutoModelStub
from helpers.langsmith_stub import Blackhole
from helpers.reliability import record

from selfheal.config import load_settings
from selfheal.tracing.store import LocalTraceStore
from selfheal.tracing.sync import LangSmithOutbox

REPO = Path(__file__).resolve().parents[1]
SLACK_S = 1.0

# The first atexit hook registered runs last: it stamps the end of every exit wait.
CHILD = (
    "import atexit, sys, time\n"
    "atexit.register(lambda: sys.stderr.write(f'HOOKS-DONE {time.time():.6f}\\n'))\n"
    "from selfheal.cli.main import main\n"
    "main(sys.argv[1:])\n"
)


class TimedBlackhole(Blackhole):
    """A blackhole that notes when each connection arrived (wall clock, comparable across processes)."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted_at: list[float] = []

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted_at.append(time.time())
            self._held.append(conn)


def _repo(tmp_path: Path) -> Path:
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    return tmp_path


def test_selfheal_run_exits_within_the_cap_against_a_hung_langsmith(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    cap = load_settings(repo, env={}).tracing.langsmith_exit_timeout_s
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_", "OPENAI_", "SELFHEAL_"))}
    with AutoModelStub("Checked the function.\nUSED: none") as model, TimedBlackhole() as hole:
        env.update(
            OPENAI_BASE_URL=model.url,
            OPENAI_API_KEY="sk-test-not-real",
            SELFHEAL_EMBEDDINGS_PROVIDER="none",
            LANGSMITH_TRACING="true",
            LANGCHAIN_TRACING_V2="true",
            LANGSMITH_API_KEY="lsv2_pt_test",
            LANGSMITH_ENDPOINT=hole.url,
        )
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, "-C", str(repo), "run", "--scenario", "lambda_timeout", "--no-learn"],
            env=env, capture_output=True, text=True, timeout=120, cwd=repo,
        )
        exited = time.time()
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert hole.accepted_at, "the run never tried LangSmith"
    hooks_done = float(next(line for line in proc.stderr.splitlines() if line.startswith("HOOKS-DONE")).split()[1])
    delay = hooks_done - hole.accepted_at[0]
    print(f"LangSmith delay {delay:.2f} s (cap {cap} s); process exit {exited - hole.accepted_at[0]:.2f} s after contact")
    assert delay <= cap + SLACK_S, f"LangSmith held the exit {delay:.2f} s (cap {cap} s)"
    record("faults", tried=1, held=1, unit="faults", note=f"LangSmith accepts and never answers: exit held {delay:.2f} s (cap {cap} s)")
    assert "Traceback" not in proc.stderr

    # The trace was kept and waits for `selfheal traces sync`.
    settings = load_settings(repo, env={})
    with LocalTraceStore(settings.trace_store_path) as store:
        outbox = LangSmithOutbox(store.path)
        assert len(outbox.pending()) == 1
        outbox.close()
