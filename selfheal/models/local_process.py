"""selfheal owns the embedded model's process: start it, talk to it, notice when it dies.

The model runs in a child (:mod:`selfheal.models.local_server`) that serves an
OpenAI-compatible endpoint on loopback. One child per model configuration per
selfheal process, started on first use and shared by every thread (the child
serializes generations; a concurrent eval's tracing, tools and retrieval
overlap with them). When the child dies — a segfault from a llama.cpp build
for another CPU, SIGILL, the kernel's OOM killer — the request in flight
fails with one :class:`ModelError` naming the signal and what to do, and the
next request starts a fresh child, so an eval records that example and goes
on. The child never outlives selfheal: it is terminated at exit and, should
selfheal be killed, exits by itself (see ``local_server.die_with_parent``).
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from selfheal.errors import ModelError
from selfheal.models.llama_tools import SELFHEAL_CHAT_FORMAT

READY_TIMEOUT_S = 180.0
_HINTS = {
    signal.SIGSEGV: "llama-cpp-python was probably built for another CPU (a native build); rebuild it "
    "portably: rm -rf .venv && ./scripts/demo.sh (see README, 'The embedded model')",
    signal.SIGILL: "llama-cpp-python was built for another CPU; rebuild it portably: "
    "rm -rf .venv && ./scripts/demo.sh (see README, 'The embedded model')",
    signal.SIGKILL: "killed, most likely out of memory; lower model.n_ctx or free memory",
    signal.SIGBUS: "the model file may have changed or be truncated; run `selfheal model prepare`",
}


@dataclass(frozen=True)
class ModelProcessSpec:
    """Everything that makes two model processes different."""

    model_path: str
    model_name: str
    n_ctx: int
    threads: int
    seed: int = 0
    tool_bias: float = 1.0
    max_tool_calls: int = 1
    state_dir: str | None = None
    chat_format: str = SELFHEAL_CHAT_FORMAT

    def argv(self) -> list[str]:
        args = [
            sys.executable, "-m", "selfheal.models.local_server",
            "--model", self.model_path, "--model-name", self.model_name,
            "--n-ctx", str(self.n_ctx), "--threads", str(self.threads), "--seed", str(self.seed),
            "--tool-bias", str(self.tool_bias), "--max-tool-calls", str(self.max_tool_calls),
            "--chat-format", self.chat_format,
        ]
        if self.state_dir:
            args += ["--state-dir", self.state_dir]
        return args


def signal_name(returncode: int) -> str:
    """-11 -> "signal 11, SIGSEGV"; 3 -> "exit code 3"."""
    if returncode < 0:
        try:
            return f"signal {-returncode}, {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


def death_error(returncode: int, stderr_tail: str = "") -> ModelError:
    """The one line a user sees when the model process died."""
    hint = ""
    if returncode < 0:
        try:
            hint = _HINTS.get(signal.Signals(-returncode), "")
        except ValueError:
            hint = ""
    msg = f"the local model process died ({signal_name(returncode)})"
    if stderr_tail:
        msg += f": {stderr_tail}"
    if hint:
        msg += f"; {hint}"
    return ModelError(msg)


class LocalModelProcess:
    """One child process serving one model; thread-safe, restarted after it dies."""

    def __init__(self, argv: Sequence[str], *, ready_timeout: float = READY_TIMEOUT_S, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.ready_timeout = ready_timeout
        self.env = env
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self._client: httpx.Client | None = None
        self.info: dict[str, Any] = {}
        self.starts = 0
        #: Totals over this process's chat requests (benchmarks and `model check` read them).
        self.stats: dict[str, float] = {"requests": 0, "seconds": 0.0, "prompt_tokens": 0,
                                        "prompt_tokens_evaluated": 0, "completion_tokens": 0}

    # -- lifecycle -------------------------------------------------------------------
    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            lines = [ln.strip() for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    def _start(self) -> None:
        if self._stderr is not None:  # the last child's log: its tail was reported when it died
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile(prefix="selfheal-model-")
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env,
            start_new_session=False,
        )
        self.starts += 1
        line = self._read_ready_line(self._proc)
        try:
            ready = json.loads(line) if line else None
        except ValueError:
            ready = None
        if not isinstance(ready, dict) or not ready.get("ready"):
            try:  # stdout closed: the child is exiting, give the kernel a moment to report how
                code: int | None = self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                code = None
            self._kill()
            if isinstance(ready, dict) and ready.get("error"):
                raise ModelError(f"the local model could not start: {ready['error']}")
            if code is not None:
                raise death_error(code, self._stderr_tail())
            raise ModelError(f"the local model process did not start within {self.ready_timeout:.0f} s")
        self.info = ready
        self._client = httpx.Client(base_url=f"http://127.0.0.1:{int(ready['port'])}", timeout=None, trust_env=False)

    def _read_ready_line(self, proc: subprocess.Popen[bytes]) -> str:
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + self.ready_timeout
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    return ""
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                buf += chunk
        finally:
            sel.close()
        return buf.decode("utf-8", "replace").split("\n", 1)[0]

    def ensure(self) -> tuple[httpx.Client, subprocess.Popen[bytes]]:
        """Start the child if it is not running (a dead one is replaced); its client and process."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._kill()
                self._start()
            assert self._client is not None and self._proc is not None
            return self._client, self._proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()  # the child's watcher exits on EOF
                proc.wait(timeout=2)
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:  # pragma: no cover - a zombie we cannot reap
                    pass
        for stream in (proc.stdin, proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            self._kill()
            if self._stderr is not None:
                self._stderr.close()
                self._stderr = None

    # -- requests ----------------------------------------------------------------------
    def request(self, method: str, path: str, payload: dict[str, Any] | None = None,
                *, timeout: float | None = None) -> dict[str, Any]:
        """A JSON request to the child; its death is a ModelError (the next call restarts it)."""
        client, proc = self.ensure()
        try:
            response = client.request(method, path, json=payload, timeout=timeout)
        except httpx.TimeoutException:
            # The child would go on generating the abandoned reply (its requests are serialized), keeping
            # the CPU busy and the next request waiting behind it: stop it; the next call starts a fresh one.
            with self._lock:
                if self._proc is proc:
                    self._kill()
            raise ModelError(f"the local model did not answer within {timeout:.0f} s (model.timeout_s)") from None
        except httpx.TransportError as exc:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                raise ModelError(f"lost the connection to the local model process: {exc}") from None
            raise death_error(code, self._stderr_tail()) from None
        try:
            body = response.json()
        except ValueError:
            raise ModelError(f"the local model process answered HTTP {response.status_code} without JSON") from None
        if response.status_code >= 400:
            err = body.get("error") if isinstance(body, dict) else None
            message = err.get("message") if isinstance(err, dict) else str(body)[:300]
            raise LocalModelRequestError(str(message), status=response.status_code)
        if not isinstance(body, dict):
            raise ModelError("the local model process answered with something other than a JSON object")
        self._count(body)
        return body

    def _count(self, body: dict[str, Any]) -> None:
        usage, timings = body.get("usage"), body.get("selfheal")
        if not isinstance(usage, dict) or not isinstance(timings, dict):
            return
        with self._lock:
            self.stats["requests"] += 1
            self.stats["seconds"] += float(timings.get("seconds") or 0)
            self.stats["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            self.stats["completion_tokens"] += int(usage.get("completion_tokens") or 0)
            self.stats["prompt_tokens_evaluated"] += int(timings.get("prompt_tokens_evaluated") or 0)


class LocalModelRequestError(ModelError):
    """The model process rejected a request (HTTP 4xx/5xx): context overflow, bad arguments."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


_PROCESSES: dict[Any, LocalModelProcess] = {}
_REGISTRY_LOCK = threading.Lock()
_SLOTS = threading.local()
_NEXT_SLOT: dict[Any, int] = {}


def model_process(spec: ModelProcessSpec, processes: int = 1) -> LocalModelProcess:
    """The child serving ``spec`` for the calling thread (started lazily by its first request).

    With ``processes`` > 1 each thread is bound to one of that many children,
    round-robin at its first request: a conversation stays in one child, whose
    KV cache then holds it. Several conversations in one child would evict each
    other's cache on every turn (measured: ``eval -j 2`` on one child took 2.5x
    the wall time of ``-j 1``).
    """
    with _REGISTRY_LOCK:
        bound = getattr(_SLOTS, "slots", None)
        if bound is None:
            bound = _SLOTS.slots = {}
        slot = bound.get(spec)
        if slot is None or slot >= processes:
            slot = _NEXT_SLOT.get(spec, 0) % max(1, processes)
            _NEXT_SLOT[spec] = slot + 1
            bound[spec] = slot
        proc = _PROCESSES.get((spec, slot))
        if proc is None:
            proc = _PROCESSES[(spec, slot)] = LocalModelProcess(spec.argv())
        return proc


def close_all() -> None:
    """Stop every model process this selfheal process started (also runs at exit)."""
    with _REGISTRY_LOCK:
        procs = list(_PROCESSES.values())
        _PROCESSES.clear()
        _NEXT_SLOT.clear()
    for proc in procs:
        proc.close()


atexit.register(close_all)


def free_cpus() -> int:
    """CPUs not already busy: generation with more threads than free cores collapses.

    Measured here: 2 threads with one competing process 2.3 tok/s vs 7.9 with
    1 thread. So the default is the CPUs this process may use minus the
    1-minute load average (rounded), at least 1.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = 0.0
    return max(1, min(cpus, round(cpus - load)))


def default_state_dir() -> Path:
    """Where fixed-prefix KV states are kept between processes (next to the assembled weights)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "selfheal" / "kv"
