"""``selfheal run``: run the agent once and show what happened."""

from __future__ import annotations

import json
from typing import Any

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import cache_option, cache_overrides, json_option


@click.command("run")
@click.argument("task", required=False)
@click.option("--scenario", "-s", default=None, help="Seed the simulated AWS account from this scenario.")
@json_option
@cache_option
@click.option("--no-learn", is_flag=True, help="Do not learn from this run.")
@click.option("--max-steps", type=click.IntRange(1, 100), default=None, help="Bound on model turns.")
@click.pass_context
def run(
    ctx: click.Context,
    task: str | None,
    scenario: str | None,
    as_json: bool,
    no_learn: bool,
    max_steps: int | None,
    cache: str | None,
) -> None:
    """Run the agent on TASK (or on --scenario's task).

    Exit status: 0 task succeeded, 1 task failed, 2 usage/configuration error.
    """
    from selfheal.agent.runner import run_task
    from selfheal.cli.render import render_outcome

    overrides: dict[str, Any] = {"thresholds": {"max_steps": max_steps}} if max_steps else {}
    overrides.update(cache_overrides(cache))
    settings = load_cli_settings(ctx, **overrides)
    if not task and not scenario:
        raise click.UsageError("give a TASK, or --scenario NAME to run a scenario's task")
    outcome = run_task(settings, task, scenario=scenario, learn=not no_learn)
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), indent=2, default=str))
    else:
        render_outcome(outcome)
        _render_learning(outcome.extra.get("learning"))
    ctx.exit(0 if outcome.success else 1)


def _render_learning(learning: object) -> None:
    """The Reflector's diagnosis (the applied changes are already among the Learning lines)."""
    if not isinstance(learning, dict) or not isinstance(learning.get("reflection"), dict):
        return
    from rich.markup import escape

    from selfheal.cli.render import console

    reflection = learning["reflection"]
    c = console()
    if reflection.get("root_cause"):
        c.print(f"[yellow]Reflection[/]: root cause: {escape(str(reflection['root_cause']))}")
    c.print(f"[yellow]Reflection[/]: key insight: {escape(str(reflection.get('key_insight', '')))}")
