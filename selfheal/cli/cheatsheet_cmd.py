"""``selfheal cheatsheet list | show ID | search QUERY``: entries with their stats and provenance."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option, since_option

if TYPE_CHECKING:
    from selfheal.interact.cheatsheet_review import EntryView

_SECTIONS = ["strategies", "code_snippets", "heuristics", "failure_patterns"]
_STATUSES = ["candidate", "active", "retired"]


def _filters(f: Any) -> Any:
    f = click.option("--section", type=click.Choice(_SECTIONS), default=None, help="Only this section.")(f)
    f = click.option("--task-type", default=None, help="Only entries of this task type ('general' for general ones).")(f)
    f = click.option("--status", type=click.Choice(_STATUSES), default=None, help="Only entries with this status.")(f)
    return f


_since = since_option("30d", "Trace window for uses and lift")
_source = click.option("--source", type=click.Choice(["local", "langsmith"]), default="local", show_default=True,
                       help="Read traces from the local store, or LangSmith (when configured).")
_json = json_option


@click.group("cheatsheet")
def cheatsheet() -> None:
    """Review the cheatsheet: entries, their stats (helpful/harmful, uses, lift) and provenance."""


@cheatsheet.command("list")
@_filters
@_since
@_source
@_json
@click.pass_context
def list_cmd(ctx: click.Context, section: str | None, task_type: str | None, status: str | None,
             since: timedelta | datetime | None, source: str, as_json: bool) -> None:
    """Entries (active first) with helpful/harmful counters, uses, last use and lift over their task type."""
    from selfheal.interact.cheatsheet_review import list_entries

    settings = load_cli_settings(ctx)
    views = list_entries(settings, section=section, task_type=task_type, status=status, since=since, source=source)
    if as_json:
        echo_json([v.model_dump(mode="json") for v in views])
        return
    _table(views, f"{len(views)} entr{'y' if len(views) == 1 else 'ies'} in {settings.cheatsheet_dir}")


@cheatsheet.command("show")
@click.argument("entry_id")
@_since
@_source
@_json
@click.pass_context
def show(ctx: click.Context, entry_id: str, since: timedelta | datetime | None, source: str, as_json: bool) -> None:
    """One entry: its content, stats, the runs behind it and the commits that made it."""
    from selfheal.interact.cheatsheet_review import show_entry

    settings = load_cli_settings(ctx)
    v = show_entry(settings, entry_id, since=since, source=source)
    if as_json:
        echo_json(v.model_dump(mode="json"))
        return
    _detail(v)


@cheatsheet.command("search")
@click.argument("query")
@click.option("-k", "--limit", "k", type=click.IntRange(1, 100), default=10, show_default=True)
@_filters
@_json
@click.pass_context
def search(ctx: click.Context, query: str, k: int, section: str | None, task_type: str | None,
           status: str | None, as_json: bool) -> None:
    """Entries closest in meaning to QUERY (embeddings; lexical BM25 when no embedder is available)."""
    from selfheal.interact.cheatsheet_review import search_entries

    settings = load_cli_settings(ctx)
    result = search_entries(settings, query, k=k, section=section, task_type=task_type, status=status)
    if as_json:
        echo_json(result.model_dump(mode="json"))
        return
    if result.note:
        click.echo(result.note)
    _table(result.entries, f"{len(result.entries)} match(es) for {query!r} ({result.method})", score=True)


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.0%}" if signed else f"{x:.0%}"


def _table(views: list[EntryView], title: str, *, score: bool = False) -> None:
    from rich.markup import escape
    from rich.table import Table

    from selfheal.cli.render import console

    out = console()
    if not views:
        out.print("No entries.")
        return
    t = Table(title=title)
    t.add_column("id", overflow="fold")
    if score:
        t.add_column("score", justify="right")
    t.add_column("section")
    t.add_column("task type", overflow="fold")
    t.add_column("status")
    t.add_column("help/harm", justify="right")
    t.add_column("uses", justify="right")
    t.add_column("last used", no_wrap=True)
    t.add_column("lift", justify="right")
    t.add_column("source", overflow="fold")
    t.add_column("text", overflow="fold", max_width=60)
    for v in views:
        lift = "-" if v.traces is None else _pct(v.traces.lift, signed=True)
        row = [escape(v.id)] + ([f"{v.score:.2f}"] if score else []) + [
            v.section, escape(v.task_type), v.status, f"{v.helpful}/{v.harmful}", str(v.uses),
            v.last_used.strftime("%Y-%m-%d") if v.last_used else "-", lift,
            escape(v.source_kind + (f" ({v.author})" if v.author else "")), escape(v.text),
        ]
        t.add_row(*row)
    out.print(t)


def _detail(v: EntryView) -> None:
    from rich.markup import escape
    from rich.table import Table

    from selfheal.cli.render import console

    out = console()
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column(overflow="fold")
    info.add_row("entry", f"{escape(v.id)} ({v.section}, {escape(v.task_type)}) · {v.status}")
    info.add_row("file", escape(v.path))
    for name, value in v.fields.items():
        info.add_row(name, escape(value))
    if v.tags:
        info.add_row("tags", escape(", ".join(v.tags)))
    who = f" by {v.author}" if v.author else ""
    info.add_row("source", escape(f"{v.source_kind}{who}, created {v.created:%Y-%m-%d %H:%M} UTC"))
    info.add_row("runs behind it", escape(", ".join(v.source_runs) or "none"))
    info.add_row("counters", f"helpful {v.helpful} · harmful {v.harmful} · uses {v.uses} · successes {v.successes}"
                 + (f" · last used {v.last_used:%Y-%m-%d %H:%M}" if v.last_used else ""))
    if v.traces is not None:
        tr = v.traces
        info.add_row("traces", f"retrieved {tr.retrieved} · used {tr.used} · success when used "
                     f"{_pct(tr.success_rate_used)} (n={tr.runs_used}) vs not used {_pct(tr.success_rate_not_used)} "
                     f"(n={tr.runs_not_used}, {tr.baseline}) · lift {_pct(tr.lift, signed=True)}")
    out.print(info)
    if v.commits:
        t = Table(title="Commits (newest first)")
        t.add_column("commit", no_wrap=True)
        t.add_column("date", no_wrap=True)
        t.add_column("author", overflow="fold")
        t.add_column("change", overflow="fold")
        t.add_column("subject", overflow="fold")
        for c in v.commits:
            t.add_row(c.sha[:10], f"{c.date:%Y-%m-%d}", escape(c.author), escape(c.change), escape(c.subject))
        out.print(t)
    elif v.commits is not None:
        out.print("[dim]No commits touch this entry yet (not committed, or not a git repository).[/]")
