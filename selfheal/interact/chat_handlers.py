"""The chat's commands, as a registry: name -> ``callable(settings, args) -> text``.

Each handler is named by module path and imported on first use, so a command
whose library is not part of this installation (or not written yet) degrades
to one "not available" line instead of breaking the session. A library module
plugs in by defining ``chat_handler(settings, args) -> str`` and adding one
line to :data:`HANDLERS`.
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
    "ask": HandlerSpec("selfheal.interact.ask:chat_handler", "/ask QUESTION",
                       "query the traces in plain words (e.g. failed runs this week)"),
    "explain": HandlerSpec("selfheal.interact.explain:chat_handler", "/explain RUN_ID [QUESTION]",
                           "why a run decided what it did, with cited steps and entries"),
    "teach": HandlerSpec("selfheal.interact.teach:chat_handler", "/teach RULE",
                         "turn a rule into a reviewed cheatsheet entry or instruction"),
    "cheatsheet": HandlerSpec("selfheal.interact.cheatsheet_review:chat_handler",
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
