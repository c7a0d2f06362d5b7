"""Options every command spells the same way: ``--json``, ``--since``/``--older-than``, ``--cache``, scores, ``-y``.

A flag a user learnt on one command means the same on all of them: one
decorator or click type per flag, defined here, used by every command that
takes it (``tests/test_cli_flags.py`` checks that each command has ``--json``).
Light imports only: ``selfheal --help`` imports this module's users.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

#: The response-cache modes of ``model.cache_mode`` (selfheal.config.ModelSettings), as a flag.
CACHE_MODES = ("replay", "record", "off")


def json_option(func: F) -> F:
    """``--json``: machine-readable output on stdout and nothing else there (errors stay on stderr)."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout (nothing else there)."
    )(func)


def echo_json(data: Any) -> None:
    """``data`` as indented JSON on stdout (datetimes, paths and UUIDs as strings)."""
    click.echo(json.dumps(data, indent=2, default=str))


def cache_option(func: F) -> F:
    """``--cache MODE``: the model response cache for this command (``model.cache_mode`` otherwise)."""
    return click.option(
        "--cache",
        "cache",
        type=click.Choice(CACHE_MODES),
        default=None,
        help="Model response cache: replay (recorded responses only; a miss is an error), "
        "record (call the model and store), off (default: model.cache_mode).",
    )(func)


def cache_overrides(cache: str | None) -> dict[str, Any]:
    """The settings override a ``--cache`` value stands for (none when not given)."""
    return {"model": {"cache_mode": cache}} if cache else {}


class TimeSpecType(click.ParamType):
    """``7d`` / ``12h`` / ``30m`` / ``2w`` / ``1y`` / an ISO date or datetime / ``all``.

    Converts to a timedelta (a window back from now), an aware datetime, or
    None for ``all`` (see :mod:`selfheal.timespec`); anything else is a usage
    error (exit 2) naming the flag and the accepted forms.
    """

    name = "when"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from datetime import datetime, timedelta

        from selfheal.timespec import parse_timespec

        if value is None or isinstance(value, timedelta | datetime):
            return value
        try:
            return parse_timespec(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIMESPEC = TimeSpecType()


def since_option(default: str | None = None, what: str = "Only runs started since then") -> Callable[[F], F]:
    """``--since WHEN``: a look-back window, a date, or ``all``; ``what`` starts the help line."""
    return click.option(
        "--since",
        type=TIMESPEC,
        default=default,
        show_default=default is not None,
        help=f"{what}: 30m, 12h, 7d, 2w, 1y, an ISO date/datetime, or all.",
    )


def older_than_option(func: F) -> F:
    """``--older-than AGE``: what to drop, by age or date (``all``: everything up to now); required."""
    return click.option(
        "--older-than",
        "older_than",
        type=TIMESPEC,
        required=True,
        help="Age or date: 30d, 12w, 1y, an ISO date/datetime, or all (everything up to now).",
    )(func)


class ScoreType(click.ParamType):
    """A score from 0 (bad) to 1 (good), finite; anything else is a usage error naming the flag."""

    name = "0..1"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            score = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number: give a finite number from 0 to 1", param, ctx)
        if not math.isfinite(score) or not 0.0 <= score <= 1.0:
            self.fail(f"{value!r} is out of range: give a finite number from 0 to 1", param, ctx)
        return score


SCORE = ScoreType()


def yes_option(func: F) -> F:
    """``-y/--yes``: do not ask; required when stdin is not a terminal."""
    return click.option(
        "--yes", "-y", is_flag=True, help="Do not ask for confirmation (required when not interactive)."
    )(func)


def confirm(question: str, *, yes: bool, refusal: str) -> bool:
    """True when ``--yes`` was given or the user answers yes at the terminal.

    Without a terminal on stdin there is nobody to ask: one line on stderr
    saying ``refusal`` and that ``--yes`` confirms, exit 2 — never a prompt
    reading EOF and an "aborted" exit 130.
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        from selfheal.errors import SelfhealError

        raise SelfhealError(f"{refusal}: pass -y/--yes to confirm when not interactive", exit_code=2)
    return click.confirm(question, err=True)
