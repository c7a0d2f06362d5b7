"""A background thread that writes finished traces, so the traced run does not wait on disk.

A SQLite commit of one trace costs a few hundred microseconds of CPU on a
container's disk, as much as a whole graph run with a zero-latency model.
The writer takes row batches from a queue in order, lingers a few
milliseconds to gather more, and writes what it gathered as one transaction
(under load that halves the cost per trace). SQLite releases the GIL while it
writes, so on two cores the write overlaps the next run. The thread exits
after a short idle spell and is restarted on demand.

:meth:`BackgroundWriter.flush` waits until everything submitted before it is
written (at once when nothing is pending); an ``atexit`` hook flushes every
live writer so a CLI that exits right after a run keeps its trace.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

_IDLE_EXIT_S = 0.5
_LINGER_S = 0.02
_MAX_BATCH = 256
_EXIT_FLUSH_TIMEOUT_S = 10.0
_LIVE: weakref.WeakSet[BackgroundWriter] = weakref.WeakSet()

_Job = Sequence[Any] | threading.Event


class BackgroundWriter:
    """Calls ``write(rows)`` off-thread, in submission order, batching queued submissions."""

    def __init__(
        self, write: Callable[[list[Any]], None], *, name: str = "selfheal-trace-writer"
    ) -> None:
        self._write = write
        self._name = name
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0
        #: Exceptions raised by writes (logged; the writer goes on).
        self.errors: list[Exception] = []
        _LIVE.add(self)

    @property
    def pending(self) -> int:
        """Submitted row batches not written yet."""
        return self._pending

    def submit(self, rows: Sequence[Any]) -> None:
        """Queue the rows of one trace; they share a write with whatever else is queued."""
        with self._lock:
            self._pending += 1
        self._put(rows)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        if self._pending == 0:
            return True
        done = threading.Event()
        self._put(done)
        return done.wait(timeout)

    def _put(self, job: _Job) -> None:
        with self._lock:
            self._queue.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    # -- the thread ----------------------------------------------------------
    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=_IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            jobs = [first]
            # Linger for more traces, but serve a flush (an Event) at once.
            deadline = time.monotonic() + _LINGER_S
            while len(jobs) < _MAX_BATCH and not isinstance(jobs[-1], threading.Event):
                remaining = deadline - time.monotonic()
                try:
                    jobs.append(
                        self._queue.get(timeout=remaining)
                        if remaining > 0
                        else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        parts: list[Sequence[Any]] = []
        for job in jobs:
            if isinstance(job, threading.Event):
                self._write_parts(parts)
                parts = []
                job.set()
            else:
                parts.append(job)
        self._write_parts(parts)

    def _write_parts(self, parts: list[Sequence[Any]]) -> None:
        if not parts:
            return
        try:
            self._write([row for part in parts for row in part])
        except Exception as exc:
            if len(parts) == 1:
                self._failed(exc)
            else:  # one bad trace must not lose the others: retry trace by trace
                for part in parts:
                    try:
                        self._write(list(part))
                    except Exception as part_exc:
                        self._failed(part_exc)
        finally:
            with self._lock:
                self._pending -= len(parts)

    def _failed(self, exc: Exception) -> None:
        logger.warning("trace write failed: %s", exc)
        self.errors.append(exc)


@atexit.register
def _flush_all_at_exit() -> None:
    for writer in list(_LIVE):
        if not writer.flush(_EXIT_FLUSH_TIMEOUT_S):
            logger.warning("traces still unwritten after %.0f s at exit", _EXIT_FLUSH_TIMEOUT_S)
