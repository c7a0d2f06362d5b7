"""The background trace writer: order, batching, failures and process exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

from selfheal.tracing import LocalTraceStore
from selfheal.tracing.writer import BackgroundWriter


def test_jobs_run_in_order_and_flush_waits_for_them() -> None:
    log: list[Any] = []
    gate = threading.Event()

    def write(rows: list[Any]) -> None:
        gate.wait(5)
        log.append(list(rows))

    writer = BackgroundWriter(write)
    assert writer.flush(timeout=0)  # nothing pending: returns at once
    writer.submit([1, 2])
    writer.submit([3])
    assert not writer.flush(timeout=0.05)  # the write is still blocked
    assert writer.pending == 2
    gate.set()
    assert writer.flush(timeout=5)
    assert [x for batch in log for x in batch] == [1, 2, 3]
    assert writer.pending == 0 and writer.errors == []


def test_consecutive_traces_share_a_write_and_a_bad_one_loses_no_other() -> None:
    written: list[list[int]] = []
    gate = threading.Event()

    def write(rows: list[int]) -> None:
        gate.wait(5)
        if -1 in rows:
            raise ValueError("bad row")
        written.append(list(rows))

    writer = BackgroundWriter(write)
    writer.submit([0])  # blocks the writer while the next three queue up
    for rows in ([1], [-1], [2]):
        writer.submit(rows)
    gate.set()
    assert writer.flush(timeout=5)
    assert sorted(x for batch in written for x in batch) == [0, 1, 2]
    assert [str(e) for e in writer.errors] == ["bad row"]
    assert writer.pending == 0


def test_traces_survive_a_process_that_exits_right_after_the_run(tmp_path: Path) -> None:
    db = tmp_path / "traces.sqlite"
    script = textwrap.dedent(
        f"""
        from langchain_core.runnables import RunnableLambda
        from selfheal.tracing import LocalTraceStore
        from selfheal.tracing.tracer import LocalTracer

        tracer = LocalTracer(LocalTraceStore({str(db)!r}), "cli")
        RunnableLambda(lambda x: x + 1).invoke(1, config={{"callbacks": [tracer]}})
        print(tracer.last_root_id)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    with LocalTraceStore(db) as store:
        root = store.get_run(out.stdout.strip())
    assert root is not None and root.outputs == {"output": 2}
