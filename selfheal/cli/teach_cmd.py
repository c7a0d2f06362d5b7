"""``selfheal teach "RULE"``: a user-authored cheatsheet entry (or context instruction), as a PR."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option

if TYPE_CHECKING:
    from selfheal.interact.teach import TeachResult


@click.command("teach")
@click.argument("text")
@click.option("--as", "as_", type=click.Choice(["entry", "instruction"]), default="entry", show_default=True,
              help="A cheatsheet entry (retrieved when relevant) or a context instruction (always in the prompt).")
@click.option("--section", type=click.Choice(["heuristics", "strategies", "failure_patterns", "code_snippets"]),
              default="heuristics", show_default=True, help='Cheatsheet section (code_snippets: "PURPOSE :: CODE").')
@click.option("--task-type", default=None, help="Task type it is for (default: the agent's classification; 'general' for all).")
@click.option("--update", "update", default=None, metavar="ID", help="Change this entry/instruction instead of adding one.")
@click.option("--pr/--no-pr", "publish", default=True, show_default=True,
              help="Propose it as a branch + pull request, or write it to the working tree.")
@click.option("--dry-run", is_flag=True, help="Show the diff; write nothing.")
@json_option
@click.pass_context
def teach(ctx: click.Context, text: str, as_: str, section: str, task_type: str | None, update: str | None,
          publish: bool, dry_run: bool, as_json: bool) -> None:
    """Teach the agent TEXT, e.g. "Always check VPC config before memory changes".

    The words become a user-authored entry (source: user, author from git config)
    through the same guard and duplicate checks as learned lessons; the diff is
    shown, then proposed as a branch + PR (or written with --no-pr). A lesson the
    cheatsheet already holds, or one the guard refuses, changes nothing (exit 1).
    """
    from selfheal.interact.teach import teach as teach_text

    settings = load_cli_settings(ctx)
    result = teach_text(settings, text, as_=as_, section=section, task_type=task_type,  # type: ignore[arg-type]
                        update=update, publish=publish, dry_run=dry_run)
    if as_json:
        echo_json(result_json(result))
        return
    render_teach(result)


def result_json(r: TeachResult) -> dict[str, object]:
    data = r.model_dump(mode="json", exclude={"published"})
    data["published"] = None if r.published is None else r.published.model_dump(mode="json", exclude={"body"})
    return data


def render_teach(r: TeachResult) -> None:
    from rich.markup import escape

    from selfheal.cli.render import console

    c = console()
    for line in r.changes:
        c.print(f"[bold]{escape(line)}[/]", soft_wrap=True)
    if r.author:
        c.print(f"[dim]author: {escape(r.author)}[/]")
    if r.diff:
        c.print(escape(r.diff.rstrip("\n")), soft_wrap=True)
    for note in r.notes:
        c.print(f"[dim]note: {escape(note)}[/]", soft_wrap=True)
    n = len(r.files)
    if r.dry_run:
        c.print(f"[dim]Dry run: {n} file(s) would change; nothing was written.[/]")
    elif r.published is not None:
        pub = r.published
        where = pub.pr_url or pub.pr_body_path or ""
        c.print(f"Proposed on branch [bold]{escape(pub.branch)}[/] {escape(where)}", soft_wrap=True)
        if pub.open_hint and not pub.pr_url:
            c.print(f"[dim]{escape(pub.open_hint)}[/]", soft_wrap=True)
    elif r.written:
        c.print(f"Wrote {n} file(s) to the working tree: review with `git diff`, commit to keep.")
