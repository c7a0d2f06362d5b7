"""``selfheal history``, ``selfheal blame`` and ``selfheal rollback``: the audit trail in git.

Thin: each command calls :mod:`selfheal.gitops` and renders a rich table (or
JSON with ``--json``). Refusals are one line on stderr and exit 2.
"""

from __future__ import annotations

import json

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import confirm, json_option, yes_option


def _console():  # -> rich Console
    from selfheal.cli.render import console

    return console()


@click.command("history")
@json_option
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="Show at most N commits.")
@click.pass_context
def history(ctx: click.Context, as_json: bool, limit: int | None) -> None:
    """Improvement commits (with Selfheal-* trailers) on all local branches, newest first."""
    from rich.markup import escape
    from rich.table import Table

    from selfheal.gitops.history import improvement_history

    items = improvement_history(load_cli_settings(ctx), limit=limit)
    if as_json:
        click.echo(json.dumps([i.model_dump(mode="json") for i in items], indent=2))
        return
    out = _console()
    if not items:
        out.print("no improvement commits yet (selfheal's commits carry a Selfheal-Kind trailer)")
        return
    table = Table(show_lines=False)
    for col in ("commit", "date", "kind", "title", "eval", "PR"):
        table.add_column(col, overflow="fold")
    for i in items:
        pr = f"#{i.pr_number}" if i.pr_number else (i.pr_url or "-")
        table.add_row(i.short, f"{i.date:%Y-%m-%d %H:%M}", i.kind, escape(i.title),
                      escape((i.eval or "-").replace("baseline ", "").replace("candidate ", "")), escape(pr))
    out.print(table)


@click.command("blame")
@click.argument("entry_id")
@json_option
@click.pass_context
def blame(ctx: click.Context, entry_id: str, as_json: bool) -> None:
    """Commits that created and changed a cheatsheet entry or a context instruction, with their runs."""
    from rich.markup import escape
    from rich.table import Table

    from selfheal.gitops.history import blame as blame_entry

    result = blame_entry(load_cli_settings(ctx), entry_id)
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json"), indent=2))
        return
    out = _console()
    state = f", status {result.status}" if result.status else ""
    gone = "" if result.exists else " (no longer in the working tree)"
    out.print(f"[bold]{escape(result.id)}[/] ({result.kind} in {escape(result.path)}{state}){gone}")
    if result.source_runs:
        out.print(f"source runs: {', '.join(result.source_runs)}")
    table = Table(show_lines=False)
    for col in ("commit", "date", "author", "change", "subject", "runs"):
        table.add_column(col, overflow="fold")
    for c in result.commits:
        who = escape(c.author) + (f" [dim](selfheal {c.kind})[/]" if c.kind else "")
        table.add_row(c.short, f"{c.date:%Y-%m-%d}", who, escape(c.change), escape(c.subject),
                      escape(", ".join(c.traces) or "-"))
    out.print(table)


@click.command("rollback")
@click.argument("target")
@click.option("--no-pr", "no_pr", is_flag=True, help="Commit the revert on the current branch instead of opening a PR.")
@yes_option
@click.option("--base", default=None, help="Branch the rollback PR targets (default: the remote's default branch).")
@json_option
@click.pass_context
def rollback(ctx: click.Context, target: str, no_pr: bool, yes: bool, base: str | None, as_json: bool) -> None:
    """Revert an improvement commit, or only an entry's (instruction's) latest change.

    TARGET is a commit (sha, ref) or a cheatsheet entry / instruction id. By
    default the rollback goes out as a branch and pull request.
    """
    from selfheal.gitops import rollback as rb

    settings = load_cli_settings(ctx)
    if not yes:
        checked = rb.preflight(settings, target, pr=not no_pr, base=base)  # refusals before any question
        checked.repo.close()
        how = "as a commit on the current branch" if no_pr else "as a rollback pull request"
        if not confirm(f"Roll back {checked.describe()} {how}?", yes=yes,
                       refusal=f"this would roll back {checked.describe()} {how}"):
            click.echo("Nothing rolled back.", err=True)
            ctx.exit(1)
    result = rb.rollback(settings, target, pr=not no_pr, base=base)
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json", exclude={"publish": {"body"}}), indent=2))
        return
    click.echo(f"rolled back {result.reverted[:10]} \"{result.subject}\" ({', '.join(result.files)})")
    if result.commit:
        click.echo(f"commit {result.commit[:10]} on the current branch")
    if result.publish is not None:
        p = result.publish
        click.echo(f"branch {p.branch}" + (" (pushed)" if p.pushed else ""))
        if p.pr_url:
            click.echo(f"pull request {p.pr_url}")
        elif p.open_hint:
            click.echo(f"PR body: {p.pr_body_path}\nopen it with: {p.open_hint}")
