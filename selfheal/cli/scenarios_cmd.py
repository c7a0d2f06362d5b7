"""``selfheal scenarios``: what the simulated environment can be seeded with."""

from __future__ import annotations

import json

import click

from selfheal.cli.main import load_cli_settings


@click.command("scenarios")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def scenarios(ctx: click.Context, as_json: bool) -> None:
    """List scenarios with their task type and task."""
    from rich.markup import escape
    from rich.table import Table

    from selfheal.cli.render import console
    from selfheal.agents.registry import get_agent

    settings = load_cli_settings(ctx)
    agent = get_agent(settings)
    rows = agent.describe_scenarios(settings)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} scenario(s) in {settings.scenarios_dir}")
    for col in ("name", "task_type", "task"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(escape(r["name"]), escape(r["task_type"]), escape(r["task"]))
    console().print(table)
