"""``selfheal report``: write the self-contained HTML report (plots inline, nothing fetched to view it)."""

from __future__ import annotations

from pathlib import Path

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option


@click.command("report")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="HTML file to write (default: .selfheal/report.html).")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True,
              help="How far back the trace-based parts look.")
@click.option("--prompt-price", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Price per million prompt tokens (enables the cost figure).")
@click.option("--completion-price", type=click.FloatRange(min=0), default=None, metavar="USD",
              help="Price per million completion tokens.")
@json_option
@click.pass_context
def report(ctx: click.Context, out: Path | None, days: int, prompt_price: float | None,
           completion_price: float | None, as_json: bool) -> None:
    """Success over time, improvements with CIs, cheatsheet growth, errors, tokens and the latest eval, as HTML."""
    from selfheal.interact.report import summary_line, to_json, write_report

    path, data = write_report(load_cli_settings(ctx), out, days=days, prompt_price=prompt_price,
                              completion_price=completion_price)
    click.echo(to_json(data) if as_json else summary_line(path, data))
