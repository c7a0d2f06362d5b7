"""The chat's commands, as a registry: name -> ``callable(settings, args) -> text``.

Each handler is named by module path and imported on first use, so a command
whose library is not part of an installation degrades to one "not available"
line instead of breaking the session. The handlers here are thin: they parse
the arguments and call the same library functions as the commands
(``selfheal ask``, ``explain``, ``teach``, ``cheatsheet``, ``review``,
``approve``, ``report``), then write plain text.
"""

from __future__ import annotations

import importlib
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfheal.errors import SelfhealError

Handler = Callable[[Any, str], str]


@dataclass(frozen=True)
class HandlerSpec:
    target: str          # "module:attribute"
    usage: str           # e.g. "/approve BRANCH [--no-merge]"
    help: str


HANDLERS: dict[str, HandlerSpec] = {
    "ask": HandlerSpec("selfheal.interact.chat_handlers:ask", "/ask QUESTION",
                       "query the traces in plain words (e.g. failed runs this week)"),
    "explain": HandlerSpec("selfheal.interact.chat_handlers:explain", "/explain RUN_ID [QUESTION]",
                           "why a run decided what it did, with cited steps and entries"),
    "teach": HandlerSpec("selfheal.interact.chat_handlers:teach", "/teach RULE [--no-pr]",
                         "turn a rule into a reviewed cheatsheet entry or instruction"),
    "cheatsheet": HandlerSpec("selfheal.interact.chat_handlers:cheatsheet",
                              "/cheatsheet [list | show ID | search QUERY]", "review cheatsheet entries and their stats"),
    "review": HandlerSpec("selfheal.interact.chat_handlers:review", "/review",
                          "open improvement branches/PRs with their evals"),
    "approve": HandlerSpec("selfheal.interact.chat_handlers:approve", "/approve BRANCH [--no-merge]",
                           "re-run the gate on an improvement and merge it if it passes"),
    "report": HandlerSpec("selfheal.interact.chat_handlers:report", "/report [FILE]",
                          "write the HTML report (default .selfheal/report.html)"),
    "help": HandlerSpec("selfheal.interact.chat_handlers:help_text", "/help", "this list"),
}
QUIT = ("quit", "exit")


class NotAvailable(SelfhealError):
    """A command whose library is not in this installation."""


def resolve(name: str) -> Handler:
    """The handler of ``name``; :class:`NotAvailable` (one line) when its module or function is missing."""
    spec = HANDLERS.get(name)
    if spec is None:
        raise SelfhealError(f"unknown command /{name}: /help lists the commands")
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise NotAvailable(f"/{name} is not available in this installation ({module_name} is missing)") from None
        raise
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise NotAvailable(f"/{name} is not available in this installation ({module_name} has no {attr})")
    return handler  # type: ignore[no-any-return]


def available(name: str) -> bool:
    try:
        resolve(name)
    except NotAvailable:
        return False
    return True


# -- the handlers this module implements ------------------------------------------------
def help_text(settings: Any, args: str = "") -> str:
    """Every command with its usage; commands missing from this installation are marked."""
    width = max(len(s.usage) for s in HANDLERS.values())
    lines = ["Commands (or just type a request in plain words):"]
    for name, spec in HANDLERS.items():
        mark = "" if available(name) else "  (not available)"
        lines.append(f"  {spec.usage.ljust(width)}  {spec.help}{mark}")
    lines.append(f"  {'/quit'.ljust(width)}  leave (Ctrl-D works too)")
    return "\n".join(lines)


def review(settings: Any, args: str = "") -> str:
    from selfheal.interact.review import format_review, list_improvements

    return format_review(list_improvements(settings, use_github="--local" not in args.split()))


def approve(settings: Any, args: str) -> str:
    from selfheal.interact.approve import approve as run_approve
    from selfheal.interact.approve import format_approve

    words = shlex.split(args)
    names = [w for w in words if not w.startswith("--")]
    if len(names) != 1:
        raise SelfhealError("usage: /approve BRANCH [--no-merge] (/review lists the open ones)")
    return format_approve(run_approve(settings, names[0], merge="--no-merge" not in words))


def report(settings: Any, args: str = "") -> str:
    from pathlib import Path

    from selfheal.interact.report import summary_line, write_report

    words = shlex.split(args)
    path, data = write_report(settings, Path(words[0]) if words else None)
    return summary_line(path, data)


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{100 * rate:.0f}%"


def ask(settings: Any, args: str) -> str:
    """The filter a question became, then the counts and example runs (as ``selfheal ask``)."""
    from selfheal.interact.ask import ask as ask_question

    if not args.strip():
        raise SelfhealError("usage: /ask QUESTION, e.g. /ask failed runs this week")
    r = ask_question(settings, args.strip())
    lines = [f"filter: {r.translation.filter or '(none: every root run)'}"]
    if r.translation.tree_filter:
        lines.append(f"tree_filter: {r.translation.tree_filter}")
    lines += r.notes
    if r.matched == 0:
        return "\n".join([*lines, f"No runs match in project {r.project}."])
    o = r.analysis.overall
    lines.append(f"{r.matched} run(s), success {_pct(o.success_rate)} ({o.successes}/{o.with_outcome} with an outcome)")
    lines += [f"  {e.id}  {e.start_time:%Y-%m-%d %H:%M}  {e.task_type or '-'}  {e.outcome}"
              + (f"  {e.error[:80]}" if e.error else "") for e in r.examples]
    return "\n".join(lines)


def explain(settings: Any, args: str) -> str:
    """A run's steps with their evidence and the model's cited answer (as ``selfheal explain``)."""
    from selfheal.interact.explain import explain as explain_run

    words = args.strip().split(maxsplit=1)
    if not words:
        raise SelfhealError("usage: /explain RUN_ID [QUESTION] (/ask lists runs with their ids)")
    x = explain_run(settings, words[0], words[1] if len(words) > 1 else None)
    lines = [f"run {x.run_id}: {x.outcome}" + (f" ({x.reason})" if x.reason else ""), f"task: {x.task}"]
    lines += [f"  [step:{s.n}] {s.tool}({s.args}) -> {s.output[:120]}" for s in x.steps]
    used = [e.id for e in x.entries if e.used]
    if used:
        lines.append(f"entries used: {', '.join(used)}")
    if x.summary:
        lines += ["", x.summary + ("  (some citations did not check out and were removed)" if x.flagged else "")]
    return "\n".join(lines + x.notes)


def teach(settings: Any, args: str) -> str:
    """A rule becomes a user-authored entry, proposed as a PR (``--no-pr``: the working tree)."""
    from selfheal.interact.teach import teach as teach_rule

    words = shlex.split(args)
    publish = "--no-pr" not in words
    text = " ".join(w for w in words if w != "--no-pr").strip()
    if not text:
        raise SelfhealError("usage: /teach RULE [--no-pr], e.g. /teach Always check VPC config before memory changes")
    r = teach_rule(settings, text, publish=publish)
    head = f"{r.op} {r.kind} {r.id or ''}".strip()
    where = "proposed as a pull request" if r.published else "written to the working tree" if r.written else "not written"
    return "\n".join([f"{head}: {where}", *r.notes, r.diff.rstrip()])


def cheatsheet(settings: Any, args: str) -> str:
    """``list`` (default), ``show ID`` or ``search QUERY`` over the cheatsheet, with counters."""
    from selfheal.interact.cheatsheet_review import list_entries, search_entries, show_entry

    words = args.strip().split(maxsplit=1)
    verb = words[0] if words else "list"
    rest = words[1] if len(words) > 1 else ""
    if verb == "show" and rest:
        e = show_entry(settings, rest.strip())
        return "\n".join([f"{e.id} [{e.section}, {e.task_type}, {e.status}] {e.text}",
                          f"helpful {e.helpful} harmful {e.harmful} uses {e.uses}; source {e.source_kind}"
                          + (f" by {e.author}" if e.author else "")
                          + (f"; runs {', '.join(e.source_runs[:5])}" if e.source_runs else "")])
    if verb == "search" and rest:
        found = search_entries(settings, rest)
        return "\n".join([f"{len(found.entries)} match(es) ({found.method})"]
                         + [f"  {e.id}  {e.text[:100]}" for e in found.entries])
    if verb != "list":
        raise SelfhealError("usage: /cheatsheet [list | show ID | search QUERY]")
    entries = list_entries(settings, traces=False)
    return "\n".join([f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"]
                     + [f"  {e.id}  [{e.status}] +{e.helpful}/-{e.harmful}  {e.text[:90]}" for e in entries])
