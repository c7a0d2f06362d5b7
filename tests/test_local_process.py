"""The embedded model lives in a child process selfheal owns: its crashes are one ModelError.

The real process-owning code runs against a stand-in model process
(tests/helpers/fake_model_process.py) that dies by the signal a task asks
for, the way llama.cpp dies on a CPU its build does not fit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from selfheal.errors import ModelError
from selfheal.models import local_process
from selfheal.models.local_chat import ChatLlamaCpp
from selfheal.models.local_process import LocalModelProcess, ModelProcessSpec, death_error, free_cpus

FAKE = Path(__file__).parent / "helpers" / "fake_model_process.py"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def _chat(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


@pytest.fixture
def proc():
    p = LocalModelProcess([sys.executable, str(FAKE)], ready_timeout=20)
    yield p
    p.close()


def test_the_child_answers_and_is_gone_after_close(proc: LocalModelProcess) -> None:
    reply = proc.request("POST", "/v1/chat/completions", _chat("hello"))
    assert reply["choices"][0]["message"]["content"].startswith("done")
    pid = proc.pid
    assert pid is not None and _alive(pid)
    proc.close()
    time.sleep(0.2)
    assert not _alive(pid)


@pytest.mark.parametrize(
    ("sig", "words"),
    [("SIGSEGV", ["signal 11, SIGSEGV", "rebuild it portably"]),
     ("SIGILL", ["signal 4, SIGILL", "another CPU"]),
     ("SIGKILL", ["signal 9, SIGKILL", "out of memory"])],
)
def test_a_native_crash_is_one_model_error_and_the_next_call_restarts(proc: LocalModelProcess, sig: str,
                                                                        words: list[str]) -> None:
    proc.request("POST", "/v1/chat/completions", _chat("warm up"))
    first_pid = proc.pid
    with pytest.raises(ModelError) as info:
        proc.request("POST", "/v1/chat/completions", _chat(f"CRASH:{sig}"))
    message = str(info.value)
    assert message.startswith("the local model process died (")
    for w in words:
        assert w in message
    assert "\n" not in message
    reply = proc.request("POST", "/v1/chat/completions", _chat("again"))
    assert reply["choices"][0]["message"]["content"].startswith("done")
    assert proc.pid != first_pid and proc.starts == 2


def test_a_timed_out_generation_is_stopped_not_left_running(proc: LocalModelProcess) -> None:
    """The abandoned reply would keep the CPU busy and the next request waiting behind it."""
    proc.request("POST", "/v1/chat/completions", _chat("warm up"))
    first_pid = proc.pid
    assert first_pid is not None
    with pytest.raises(ModelError, match=r"did not answer within 1 s \(model.timeout_s\)"):
        proc.request("POST", "/v1/chat/completions", _chat("SLOW:60"), timeout=1)
    time.sleep(0.2)
    assert not _alive(first_pid)
    reply = proc.request("POST", "/v1/chat/completions", _chat("again"), timeout=20)
    assert reply["choices"][0]["message"]["content"].startswith("done")
    assert proc.pid != first_pid and proc.starts == 2


def test_a_model_that_cannot_load_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    env = dict(os.environ, FAKE_MODEL_FAIL_START="ValueError: Failed to load model from file")
    p = LocalModelProcess([sys.executable, str(FAKE)], ready_timeout=20, env=env)
    with pytest.raises(ModelError, match="could not start: ValueError: Failed to load model"):
        p.ensure()
    p.close()


def test_a_child_that_dies_before_ready_names_its_signal() -> None:
    argv = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"]
    p = LocalModelProcess(argv, ready_timeout=20)
    with pytest.raises(ModelError, match=r"died \(signal 4, SIGILL\)"):
        p.ensure()
    p.close()


def test_the_child_never_outlives_selfheal(tmp_path: Path) -> None:
    """A selfheal process killed with SIGKILL (no atexit) still takes its model process with it."""
    script = textwrap.dedent(f"""
        import sys, time
        from selfheal.models.local_process import LocalModelProcess
        p = LocalModelProcess([sys.executable, {str(FAKE)!r}], ready_timeout=20)
        p.ensure()
        print(p.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_death_error_without_signal_names_the_exit_code() -> None:
    assert str(death_error(3)) == "the local model process died (exit code 3)"


def test_threads_default_to_the_free_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (1.1, 0.0, 0.0))
    assert free_cpus() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert free_cpus() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (7.0, 0.0, 0.0))
    assert free_cpus() == 1


def test_one_model_keeps_one_process_when_the_load_rises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The second run of an eval, with the first model process busy, reuses it (no second process)."""
    from selfheal.models.local_chat import ChatLlamaCpp, default_threads

    default_threads.cache_clear()
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    first = ChatLlamaCpp(model_path=str(weights), model_name="m").process_spec()
    monkeypatch.setattr(os, "getloadavg", lambda: (1.6, 0.0, 0.0))  # the first process generating
    second = ChatLlamaCpp(model_path=str(weights), model_name="m").process_spec()
    assert first == second and first.threads == 2
    default_threads.cache_clear()


# -- through the LangChain chat model and a real run ---------------------------------------


@pytest.fixture
def fake_chat(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """ChatLlamaCpp whose model process is the stand-in (everything else real)."""
    monkeypatch.setattr(ModelProcessSpec, "argv", lambda self: [sys.executable, str(FAKE)])
    monkeypatch.setattr("selfheal.models.local_chat.llama_cpp_installed", lambda: True)
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"GGUF")
    yield ChatLlamaCpp(model_path=str(weights), model_name="fake-gguf", n_threads=1, state_dir="")
    local_process.close_all()


def test_chat_model_reaches_the_child_like_an_endpoint(fake_chat: ChatLlamaCpp) -> None:
    reply = fake_chat.invoke([HumanMessage("hello")])
    assert reply.content.startswith("done")
    assert reply.usage_metadata == {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}


def test_context_overflow_from_the_child_is_the_usual_one_line(fake_chat: ChatLlamaCpp) -> None:
    with pytest.raises(ModelError, match="the prompt needs 9000 tokens but the context window is 8192"):
        fake_chat.invoke([HumanMessage("Requested tokens")])


def test_a_crash_mid_run_is_recorded_as_an_errored_trace(fake_chat: ChatLlamaCpp, tmp_path: Path) -> None:
    from helpers.eval_fixtures import make_repo

    from selfheal.agent.runner import run_task
    from selfheal.config import load_settings
    from selfheal.tracing.store import LocalTraceStore

    root = make_repo(tmp_path / "repo", {"lambda_timeout": "test"})
    settings = load_settings(root, env={}, overrides={"learning": False})
    with pytest.raises(ModelError, match=r"died \(signal 11, SIGSEGV\)") as info:
        run_task(settings, task="checkout-api times out. CRASH:SIGSEGV", scenario="lambda_timeout",
                 model=fake_chat, learn=False)
    run_id = info.value.selfheal_run_id  # type: ignore[attr-defined]
    store = LocalTraceStore.from_settings(settings)
    try:
        root_run = store.get_run(run_id)
    finally:
        store.close()
    assert root_run is not None
    assert root_run.error and "signal 11" in root_run.error
    assert root_run.extra["metadata"]["error_type"] == "model_error"


def test_each_thread_keeps_its_own_model_process_when_there_are_several(fake_chat: ChatLlamaCpp) -> None:
    """model.processes = 2: two eval workers get two children; a worker's turns stay in its child."""
    import threading

    chat = fake_chat.model_copy(update={"processes": 2})
    pids: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        procs = [chat.process() for _ in range(3)]
        for p in procs:
            p.ensure()
        pids[name] = [p.pid for p in procs]

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(pids["a"])) == 1 and len(set(pids["b"])) == 1
    assert pids["a"][0] != pids["b"][0]


def test_eval_caps_jobs_at_the_local_model_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from selfheal.config import load_settings
    from selfheal.evaluation import runner

    two = load_settings(tmp_path, env={}, overrides={"model": {"provider": "local", "processes": 2}})
    assert runner.jobs_for_model(two, 4) == 2 and runner.jobs_for_model(two, 1) == 1
    one = load_settings(tmp_path, env={}, overrides={"model": {"provider": "local"}})
    assert runner.jobs_for_model(one, 4) == 1
    assert runner.jobs_for_model(one, 4, custom_model=True) == 4  # a test's or bench's own model
    replay = load_settings(tmp_path, env={}, overrides={"model": {"provider": "local", "cache_mode": "replay"}})
    assert runner.jobs_for_model(replay, 4) == 4  # replay never generates


def test_the_chat_format_reaches_the_model_process(tmp_path: Path) -> None:
    """A stock llama-cpp-python format is honoured in the child, not silently replaced by selfheal's."""
    weights = tmp_path / "m.gguf"
    weights.write_bytes(b"GGUF")
    chat = ChatLlamaCpp(model_path=str(weights), chat_format="chatml-function-calling", n_threads=1)
    argv = chat.process_spec().argv()
    assert argv[argv.index("--chat-format") + 1] == "chatml-function-calling"
    assert ModelProcessSpec("m", "m", 1, 1).argv()[-1] == "selfheal-tools"
