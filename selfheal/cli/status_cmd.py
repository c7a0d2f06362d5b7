"""``selfheal status``: each optimization trigger's state and the numbers behind it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import json_option, since_option


@click.command("status")
@since_option(default="7d", what="Window of runs the triggers are computed over")
@json_option
@click.pass_context
def status(ctx: click.Context, since: timedelta | datetime | None, as_json: bool) -> None:
    """Which optimization triggers fired, are quiet, or were handled, and why.

    \b
    success_rate   per task type: the latest thresholds.recent_runs runs of the
                   window vs thresholds.success_rate
    error_cluster  error signatures of the window no earlier run had
    user_request   `selfheal optimize --reason ...`, pending until optimize runs
    schedule       the optimize workflow's cron: next time, last scheduled run

    Nothing is optimized here or in a run: `selfheal optimize` acts on the
    triggers and marks them handled. Exit 0.
    """
    from selfheal.tracing.triggers import trigger_status

    settings = load_cli_settings(ctx)
    result = trigger_status(settings, since=since)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    _render(result)


def _when(t: datetime | None) -> str:
    return f"{t:%Y-%m-%d %H:%M}" if t is not None else "-"


def _numbers(n: Any) -> str:
    """The numbers behind a trigger, in one cell."""
    if n is None:
        return ""
    if n.kind == "success_rate":
        return f"{n.successes}/{n.runs} = {n.rate:.0%} (threshold {n.threshold:.0%}, last {n.window} runs)"
    if n.kind == "error_cluster":
        return f"{n.count}x, first {_when(n.first_seen)}, last {_when(n.last_seen)}"
    if n.kind == "schedule":
        return f"cron {', '.join(n.cron) or '-'}; next {_when(n.next_run)}; previous {_when(n.previous_run)}"
    return f"{n.reason!r} by {n.who or 'unknown'} at {_when(n.time)}"


def _render(result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from selfheal.cli.render import console

    colour = {"fired": "red", "handled": "green", "quiet": "dim"}
    window = f"since {_when(result.since)}" if result.since else "all runs"
    table = Table(title=f"Optimization triggers ({escape(result.project)}, {window})")
    for col in ("trigger", "task type", "state", "numbers", "why"):
        table.add_column(col, overflow="fold")
    for t in result.triggers:
        state = f"[{colour[t.state]}]{t.state}[/]"
        table.add_row(t.kind, escape(t.task_type or "-"), state, escape(_numbers(t.numbers)), escape(t.explanation))
    out = console()
    out.print(table)
    last = result.last_optimize
    if last is None:
        out.print("last optimize run: none recorded")
    else:
        why = f", reason {last.reason!r}" if last.reason else ""
        out.print(escape(f"last optimize run: {_when(last.finished)} ({last.mode}{why}): {last.outcome}; "
                         f"handled {len(last.handled)} trigger(s)"))
    fired = sum(1 for t in result.triggers if t.state == "fired")
    if fired:
        out.print(f"{fired} trigger(s) fired: run `selfheal optimize` to act on them")
