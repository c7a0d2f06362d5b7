"""Whole processes: exit stays bounded against a hung LangSmith, and env-only tracing never sneaks in.

Each test runs a traced LangGraph graph in a fresh interpreter, because what is
tested (exit hooks, non-daemon threads, LangSmith's env-var caches) is
per-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from helpers.langsmith_stub import GRAPH_INPUT, Blackhole, LangSmithStub, build_graph

from selfheal.config import load_settings
from selfheal.tracing import LocalTraceStore
from selfheal.tracing.callbacks import tracing_callbacks
from selfheal.tracing.sync import LangSmithOutbox, sync_pending

TESTS = Path(__file__).parent

CHILD = """
import json, sys, time
from pathlib import Path
from helpers.langsmith_stub import GRAPH_INPUT, build_graph
from selfheal.config import load_settings
from selfheal.tracing.callbacks import tracing_callbacks
from selfheal.tracing.store import LocalTraceStore

settings = load_settings(Path(sys.argv[1]))
store = LocalTraceStore(settings.trace_store_path)
handle = tracing_callbacks(settings, store)
if sys.argv[2] == "selfheal":
    with handle.context():
        build_graph().invoke(GRAPH_INPUT, config=handle.config())
    build_graph().invoke(GRAPH_INPUT, config=handle.config())  # the guard alone
else:  # what happens without selfheal's guard: only a local tracer in the callbacks
    build_graph().invoke(GRAPH_INPUT, config={"callbacks": [handle.tracer]})
handle.tracer.flush()
print(json.dumps({
    "roots": [str(r) for r in handle.root_run_ids],
    "langsmith": handle.langsmith,
    "done_at": time.time(),
}), flush=True)
# No finish(): the atexit hook must bound the wait by itself.
"""


def _run_child(root: Path, mode: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """Run the child; returns its report and the seconds from its traced run's end to its exit."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_"))}
    full_env.update(env)
    full_env["PYTHONPATH"] = os.pathsep.join([str(TESTS), full_env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), mode],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    ended = time.time()
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report, ended - report["done_at"]


def test_exit_is_bounded_against_a_hung_langsmith_and_the_trace_is_kept(tmp_path: Path) -> None:
    with Blackhole() as hole:
        report, exit_delay = _run_child(
            tmp_path,
            "selfheal",
            {
                "LANGSMITH_TRACING": "true",
                "LANGSMITH_API_KEY": "ls-test-key",
                "LANGSMITH_ENDPOINT": hole.url,
            },
        )
        assert report["langsmith"] and len(report["roots"]) == 2
        assert hole.connections >= 1  # it did try
        assert exit_delay < 4.0, f"process took {exit_delay:.1f} s to exit after its run"

    # Nothing lost: both traces wait in the store, and a later sync delivers them.
    with LangSmithStub() as stub:
        settings = load_settings(
            tmp_path,
            env={},
            overrides={
                "tracing": {
                    "langsmith": True,
                    "langsmith_api_key": "ls-test-key",
                    "langsmith_endpoint": stub.url,
                }
            },
        )
        with LocalTraceStore(settings.trace_store_path) as store:
            outbox = LangSmithOutbox(store.path)
            assert {i.id for i in outbox.pending()} == set(report["roots"])
            outbox.close()
            result = sync_pending(settings, store)
            assert (result.sent, result.failed, result.remaining) == (2, 0, 0)
            local = {str(r.id) for root in report["roots"] for r in store.get_trace(root)}
            assert stub.run_ids == local


def test_env_tracing_without_a_key_never_reaches_langsmith(tmp_path: Path) -> None:
    env = {
        "LANGSMITH_TRACING": "true",
        "LANGCHAIN_TRACING_V2": "true",
        # LangSmith's client needs no key for a loopback endpoint.
    }
    with LangSmithStub() as stub:
        env["LANGSMITH_ENDPOINT"] = stub.url
        report, _ = _run_child(tmp_path / "guarded", "selfheal", env)
        assert not report["langsmith"] and len(report["roots"]) == 2
        assert stub.requests == []

        # The same environment without selfheal's guard does trace to LangSmith,
        # so the assertion above can fail.
        report, _ = _run_child(tmp_path / "unguarded", "langchain", env)
        assert stub.wait_for_runs(report["roots"], timeout=5.0)


def test_finish_gives_up_on_a_hung_langsmith_within_its_timeout(tmp_path: Path) -> None:
    with Blackhole() as hole:
        settings = load_settings(
            tmp_path,
            env={},
            overrides={
                "tracing": {
                    "langsmith": True,
                    "langsmith_api_key": "ls-test-key",
                    "langsmith_endpoint": hole.url,
                }
            },
        )
        with LocalTraceStore(settings.trace_store_path) as store:
            handle = tracing_callbacks(settings, store)
            with handle.context():
                build_graph().invoke(GRAPH_INPUT, config=handle.config())
            started = time.monotonic()
            assert handle.finish(0.5) is False
            assert time.monotonic() - started < 1.5
            assert handle.pending() == 1
            handle.uploader.close()  # type: ignore[union-attr]
