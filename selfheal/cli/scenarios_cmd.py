"""``selfheal scenarios``: what the simulated environment can be seeded with."""

from __future__ import annotations

import json

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import json_option


@click.command("scenarios")
@json_option
@click.pass_context
def scenarios(ctx: click.Context, as_json: bool) -> None:
    """List scenarios with their task type and task."""
    from selfheal.cli.render import print_rows
    from selfheal.agents.registry import get_agent

    settings = load_cli_settings(ctx)
    agent = get_agent(settings)
    rows = agent.describe_scenarios(settings)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_rows(f"{len(rows)} scenario(s) in {settings.scenarios_dir}", ("name", "task_type", "task"),
               [(r["name"], r["task_type"], r["task"]) for r in rows])
