"""``selfheal chat`` driven as a person would: through a pseudo-terminal, typing commands, Ctrl-C and Ctrl-D.

Plus the chat graph itself: free text routed by a (scripted) model, commands
whose library is missing answer "not available", a failing command answers
one error line and the session goes on.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import shutil
import subprocess
import sys
import termios
import time
from datetime import date
from pathlib import Path

import pytest
from helpers.gitrepo import WorkRepo, isolate_git, make_repo

from selfheal.errors import SelfhealError
from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange
from selfheal.gitops.publish import publish_change
from selfheal.interact import chat_handlers
from selfheal.interact.chat import build_chat_graph, parse_route, respond, run_chat
from selfheal.models.fakes import ScriptedChatModel

REPO = Path(__file__).resolve().parents[1]
ENTRY = "cheatsheet/strategies/strat-errors-read-logs.yaml"
SQL_ENTRY = "cheatsheet/sql_analyst/heuristics/heur-cents.yaml"
SQL_TEXT = """id: heur-cents
section: heuristics
task_type: orders
condition: any money figure
rule: amounts are stored in cents; divide by 100.0
status: active
source: {kind: user, runs: [], created: 2026-03-01T09:00:00Z}
"""


def _controlling_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty (so Ctrl-C sends SIGINT).

    SIGINT's default is restored: a test runner started in the background inherits it ignored,
    and Python then leaves it ignored (as it should for a user who ran selfheal under nohup).
    """
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Terminal:
    """A child process on a pseudo-terminal: type into it, read what it shows."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                                     preexec_fn=_controlling_terminal, close_fds=True)
        os.close(slave)
        self.seen = ""
        self.pos = 0  # where the next expect() starts looking

    def expect(self, text: str, timeout: float = 30.0) -> str:
        """Read until ``text`` appears (everything read so far is kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        start = self.pos
        while text not in self.seen[start:]:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} did not appear; the terminal shows:\n{self.seen[-3000:]}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the child closed the terminal
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited before {text!r} appeared:\n{self.seen[-3000:]}")
                self.seen += chunk.decode(errors="replace").replace("\r\n", "\n")
        self.pos = self.seen.index(text, start) + len(text)
        return self.seen[start:self.pos]

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536).decode(errors="replace").replace("\r\n", "\n")
                except OSError:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
            raise AssertionError(f"did not exit:\n{self.seen[-3000:]}")
        return int(self.proc.returncode)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def _repo(tmp_path: Path, agent: str) -> tuple[WorkRepo, str]:
    """A repository of ``agent`` with one open improvement branch; returns it and the branch."""
    repo = make_repo(tmp_path, origin=False, name=agent)
    if agent == "sql_analyst":
        shutil.copytree(REPO / "prompts" / "sql_analyst", repo.root / "prompts" / "sql_analyst")
        shutil.copytree(REPO / "cheatsheet" / "sql_analyst", repo.root / "cheatsheet" / "sql_analyst")
        repo.write("selfheal.yaml", "agent: sql_analyst\nembeddings: {provider: none}\n")
        repo.commit_all("sql_analyst agent")
        files = [FileChange(path=SQL_ENTRY, content=SQL_TEXT)]
    else:
        files = [FileChange(path=ENTRY, content=(repo.root / ENTRY).read_text() + "# sharper\n")]
    change = ChangeSet(kind="curate", title=f"Lesson for {agent}", files=files,
                       eval_summary=EvalSummary(baseline_rate=0.5, candidate_rate=0.75, n=4))
    return repo, publish_change(repo.settings(), change, today=date(2026, 3, 14)).branch


def _terminal(repo: WorkRepo) -> Terminal:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "LANGSMITH", "SELFHEAL_"))}
    env.update(TERM="dumb", PYTHONPATH=os.pathsep.join(sys.path), COLUMNS="120")
    return Terminal([sys.executable, "-m", "selfheal.cli.main", "chat"], repo.root, env)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("agent", ["lambda_ops", "sql_analyst"])
def test_a_chat_session_through_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, agent: str) -> None:
    isolate_git(monkeypatch, tmp_path)
    repo, branch = _repo(tmp_path, agent)
    term = _terminal(repo)
    try:
        term.expect("selfheal> ")
        term.type("/help\r")
        shown = term.expect("selfheal> ")
        assert "/approve BRANCH [--no-merge]" in shown and "/report [FILE]" in shown and "/quit" in shown
        term.type("/review\r")
        shown = term.expect("selfheal> ")
        assert f"- {branch} -> main  [curate]" in shown
        assert "published eval: baseline 50.0% -> candidate 75.0% (n=4)" in shown
        term.type("/approve\r")
        assert "error: usage: /approve BRANCH" in term.expect("selfheal> ")
        term.type("/quit\r")
        assert term.wait() == 0
        assert "bye" in term.seen and "Traceback" not in term.seen
    finally:
        term.close()


@pytest.mark.timeout(120)
def test_ctrl_c_keeps_the_session_and_ctrl_d_ends_it_cleanly(tmp_path: Path, monkeypatch) -> None:
    isolate_git(monkeypatch, tmp_path)
    repo, _ = _repo(tmp_path, "lambda_ops")
    term = _terminal(repo)
    try:
        term.expect("selfheal> ")
        # readline sets the terminal up just after printing the prompt; a Ctrl-C typed in that
        # instant can be swallowed (a person would press it again), so press it until it lands
        for attempt in range(5):
            term.type("\x03")
            try:
                term.expect("(/quit or Ctrl-D leaves)", timeout=3)
                break
            except AssertionError:
                if attempt == 4:
                    raise
        term.type("/review\r")
        term.expect("Approve one with")
        term.expect("selfheal> ")
        term.type("\x04")
        assert term.wait() == 0
        assert "Traceback" not in term.seen
    finally:
        term.close()


# -- the graph, without a terminal -----------------------------------------------------------
@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    isolate_git(monkeypatch, tmp_path)
    repo, _ = _repo(tmp_path, "lambda_ops")
    return repo.settings()


def test_free_text_is_routed_by_the_model_to_a_command(settings) -> None:
    model = ScriptedChatModel(["review", "I am not sure what you mean."])
    graph = build_chat_graph(settings, model_factory=lambda: model)
    out = respond(graph, "which improvements are waiting for me?")
    assert out["command"] == "review" and "1 open improvement:" in out["reply"]
    out = respond(graph, "make me a sandwich")
    assert out["reply"] == "I could not tell which command that is; /help lists them."
    assert "which improvements are waiting for me?" in str(model.calls[0]["messages"][0].content)


def test_router_answers_are_parsed_strictly() -> None:
    assert parse_route("ask failed runs this week") == ("ask", "failed runs this week")
    assert parse_route("/explain 3f2a why memory?") == ("explain", "3f2a why memory?")
    assert parse_route("`report` out.html") == ("report", "out.html")
    assert parse_route("rm -rf /") is None and parse_route("") is None


def test_missing_library_says_not_available_and_the_session_goes_on(settings, monkeypatch) -> None:
    monkeypatch.setitem(chat_handlers.HANDLERS, "ask", chat_handlers.HandlerSpec(
        "selfheal.interact.no_such_module:chat_handler", "/ask Q", "ask"))
    monkeypatch.setitem(chat_handlers.HANDLERS, "teach", chat_handlers.HandlerSpec(
        "selfheal.interact.review:no_such_function", "/teach R", "teach"))
    lines = iter(["/ask failed runs", "/teach be careful", "/report " + str(settings.root / "r.html"), "/quit"])
    shown: list[str] = []
    code = run_chat(settings, read=lambda _: next(lines), write=shown.append)
    assert code == 0
    assert shown[1] == "/ask is not available in this installation (selfheal.interact.no_such_module is missing)"
    assert shown[2] == "/teach is not available in this installation (selfheal.interact.review has no no_such_function)"
    assert shown[3].startswith(f"wrote {settings.root / 'r.html'}: 0 runs, 1 improvement(s)")
    assert "(not available)" in chat_handlers.help_text(settings)


def test_a_failing_command_is_one_error_line(settings, monkeypatch) -> None:
    def boom(settings, args):
        raise SelfhealError("the store is locked")

    monkeypatch.setattr(chat_handlers, "review", boom)
    lines = iter(["/review", "/nope", ""])
    shown: list[str] = []

    def read(_: str) -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    assert run_chat(settings, read=read, write=shown.append) == 0
    assert shown[1:3] == ["error: the store is locked", "error: unknown command /nope: /help lists the commands"]


def test_every_command_is_available_and_teach_cheatsheet_ask_work_in_conversation(settings) -> None:
    assert "(not available)" not in chat_handlers.help_text(settings)
    lines = iter(["/teach Always check VPC config before memory changes --no-pr", "/cheatsheet search VPC",
                  "/ask failed runs this week", "/cheatsheet show nope", "/quit"])
    shown: list[str] = []
    assert run_chat(settings, read=lambda _: next(lines), write=shown.append) == 0
    taught, found, asked, missing = shown[1:5]
    assert taught.startswith("ADD entry ") and "written to the working tree" in taught
    assert "Always check VPC config before memory changes" in taught  # the diff
    new_id = taught.split()[2].rstrip(":")
    assert new_id in found
    assert asked.startswith("filter: ") and "No runs match" in asked
    assert missing.startswith("error: ")
