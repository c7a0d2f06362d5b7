"""``selfheal agents``: the agent plug-ins this repository can see, and where each comes from."""

from __future__ import annotations

import json

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import json_option


@click.command("agents")
@json_option
@click.pass_context
def agents(ctx: click.Context, as_json: bool) -> None:
    """List installed agents (entry points) and the configured agent_factory."""
    from selfheal.agents.registry import agent_sources
    from selfheal.cli.render import print_rows

    settings = load_cli_settings(ctx)
    sources = agent_sources(settings)
    if as_json:
        rows = [{**s.to_dict(), "configured": s.name == settings.agent} for s in sources]
        click.echo(json.dumps(rows, indent=2))
        return
    print_rows(f"{len(sources)} agent(s); selfheal.yaml runs '{settings.agent}'", ("", "name", "source"),
               [("*" if s.name == settings.agent else "", s.name, s.describe()) for s in sources])
    if settings.agent not in {s.name for s in sources}:
        click.echo(f"note: the configured agent '{settings.agent}' is not among them", err=True)
