"""``selfheal lint``: validate every context and cheatsheet file."""

from __future__ import annotations

import json

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import json_option


@click.command("lint")
@json_option
@click.pass_context
def lint(ctx: click.Context, as_json: bool) -> None:
    """Check schemas, unknown keys, duplicate ids, Jinja variables and the token budget.

    Prints `file:line: message` per issue; exit 1 when there is any error.
    """
    from selfheal.agents.registry import get_agent
    from selfheal.lint import lint_repository

    settings = load_cli_settings(ctx)
    agent = get_agent(settings)
    issues = lint_repository(settings, known_tools=set(agent.tool_names()))
    errors = [i for i in issues if i.severity == "error"]
    if as_json:
        click.echo(json.dumps([i.to_dict() for i in issues], indent=2))
    else:
        for issue in issues:
            click.echo(issue.format(settings.root), err=False)
        click.echo(f"{len(errors)} error(s), {len(issues) - len(errors)} warning(s)", err=True)
    ctx.exit(1 if errors else 0)
