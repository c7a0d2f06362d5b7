"""``selfheal curate``: batch-curate the cheatsheet from stored runs into one reviewed change."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import json_option, since_option

if TYPE_CHECKING:
    from selfheal.optimize.offline import CurationReport


@click.command("curate")
@since_option(default="7d", what="Curate runs started since then")
@click.option("--filter", "filter_", default=None, metavar="FILTER",
              help="LangSmith filter over root runs, e.g. 'eq(status, \"error\")' (replaces the default: "
                   "failed runs and runs scored below 0.5).")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True, help="At most this many runs.")
@click.option("--pr/--no-pr", "publish", default=False, show_default=True,
              help="Open a branch and pull request instead of changing the working tree.")
@click.option("--dry-run", is_flag=True, help="Show the change; write nothing (files, counters, traces).")
@json_option
@click.option("--force", is_flag=True, help="Also re-curate runs an earlier batch curated; bypass the PR rate limit.")
@click.pass_context
def curate(
    ctx: click.Context,
    since: timedelta | datetime | None,
    filter_: str | None,
    limit: int,
    publish: bool,
    dry_run: bool,
    as_json: bool,
    force: bool,
) -> None:
    """Reflect on stored runs, curate delta operations, run maintenance: one change set.

    Without --pr the change is written to the working tree (review it with
    `git diff`); with --pr it becomes a branch and pull request.
    """
    from selfheal.optimize.offline import curate_offline

    settings = load_cli_settings(ctx)
    report = curate_offline(
        settings,
        since=since,
        filter=filter_,
        limit=limit,
        publish=publish,
        dry_run=dry_run,
        force=force,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    _render(report)


def _render(r: CurationReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    from selfheal.cli.render import console

    c = console()
    if r.runs:
        table = Table(title=f"{len(r.runs)} run(s) curated", expand=False)
        table.add_column("run")
        table.add_column("task type")
        table.add_column("outcome")
        table.add_column("key insight", overflow="fold", max_width=70)
        table.add_column("ops", justify="right")
        for item in r.runs:
            outcome = "[green]success[/]" if item.success else "[red]failed[/]"
            if item.negative_feedback:
                outcome += " · low score"
            insight = escape(item.insight or "") if item.insight else f"[yellow]{escape(item.error or '-')}[/]"
            table.add_row(item.run_id[:8], escape(item.task_type), outcome, insight, str(item.proposed))
        c.print(table)
    for line in r.errors:
        c.print(f"[yellow]note[/]: {escape(line)}")
    for line in r.rejected:
        c.print(f"[red]rejected[/]: {escape(line)}")
    if not r.files:
        c.print("No change to the cheatsheet.")
        return
    c.print("[bold]Changes[/]:")
    for line in r.changes:
        c.print(f"  - {escape(line)}")
    if r.diff:
        c.print(escape(r.diff.rstrip("\n")), soft_wrap=True)
    n = len(r.files)
    if r.dry_run:
        c.print(f"[dim]Dry run: {n} file(s) would change; nothing was written.[/]")
    elif r.published is not None:
        pub = r.published
        where = pub.pr_url or pub.pr_body_path or pub.open_hint or ""
        c.print(f"Published {n} file(s) on branch [bold]{escape(pub.branch)}[/] {escape(where)}", soft_wrap=True)
    elif r.applied:
        c.print(f"Wrote {n} file(s) to the working tree: review with `git diff`, commit to keep.")
