"""Rich renderings of library results (kept out of the library itself)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from selfheal.agent.runner import RunOutcome


def console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def print_rows(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A table of plain-text cells (escaped: a name is never read as markup), long cells folded."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    console().print(table)


def _args(args: Any) -> str:
    if isinstance(args, dict):
        return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in args.items())
    return str(args)


def render_outcome(outcome: RunOutcome, out: Console | None = None) -> None:
    """Steps, tool calls with arguments, verdict and why, entries used, run id, trace."""
    c = out or console()
    where = f"scenario [bold]{escape(outcome.scenario)}[/]" if outcome.scenario else "no scenario"
    c.print(f"[bold]Task[/] ({escape(outcome.task_type)}, {where}): {escape(outcome.task)}")
    c.print(f"[dim]model {escape(outcome.model)} · context {outcome.context_version[:12]} · "
            f"cheatsheet {outcome.cheatsheet_version[:12]}[/]")

    table = Table(title=f"{outcome.steps} model turn(s), {len(outcome.tool_calls)} tool call(s)",
                  show_lines=False, expand=False)
    table.add_column("step", justify="right")
    table.add_column("tool")
    table.add_column("arguments", overflow="fold", max_width=48)
    table.add_column("status")
    table.add_column("result", overflow="fold", max_width=60)
    for call in outcome.tool_calls:
        ok = call["status"] != "error"
        table.add_row(
            str(call["step"]),
            escape(str(call["name"])),
            escape(_args(call.get("args"))),
            "[green]ok[/]" if ok else "[red]error[/]",
            escape(str(call.get("output", ""))[:240]),
        )
    c.print(table)
    if outcome.final_answer:
        c.print(f"[bold]Agent's answer[/]: {escape(outcome.final_answer.strip()[:1200])}")
    if outcome.stop_reason == "step_limit":
        c.print("[yellow]Stopped at the step limit before the agent finished.[/]")

    for check in outcome.checks:
        mark = "[green]✓[/]" if check["passed"] else "[red]✗[/]"
        detail = f" — {escape(check['detail'])}" if check.get("detail") else ""
        c.print(f"  {mark} {escape(check['description'])}{detail}")
    verdict = "[bold green]SUCCESS[/]" if outcome.success else "[bold red]FAILED[/]"
    basis = "verified by state checks" if outcome.verified else "not verified by state checks"
    err = f", error_type={outcome.error_type}" if outcome.error_type else ""
    c.print(f"{verdict} ({basis}{err}): {escape(outcome.reason)}")

    retrieved = ", ".join(outcome.retrieved_entries) or "none"
    used = ", ".join(outcome.used_entries) or "none stated"
    c.print(f"Cheatsheet entries: retrieved {escape(retrieved)}; used {escape(used)}")
    for note in outcome.improvement_suggestions:
        c.print(f"[yellow]Learning[/]: {escape(note)}")
    tokens = outcome.usage.get("total_tokens", 0)
    c.print(f"Run [bold]{outcome.run_id}[/] · {outcome.latency_s:.1f}s · {tokens} tokens · "
            f"trace in {escape(_shown_path(outcome.trace_store))}", soft_wrap=True)
    c.print(f"[dim]See it with: selfheal traces show {outcome.run_id} · "
            f"rate it with: selfheal feedback {outcome.run_id} --score 0..1[/]", soft_wrap=True)


def _shown_path(path: str) -> str:
    """A path relative to the working directory when it is below it."""
    from pathlib import Path

    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
