"""``selfheal doctor``: find and repair what killed selfheal processes left behind."""

from __future__ import annotations

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option


@click.command("doctor")
@click.option("--dry-run", is_flag=True, help="Only report what would be repaired; change nothing.")
@json_option
@click.pass_context
def doctor(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Repair leftovers of interrupted commands: stale worktrees and their branches, temp dirs,
    half-done curate changes, runs left open, pending LangSmith uploads, locks.

    One line per repair. Exit 0 when the repository is clean or was repaired.
    """
    from selfheal.maintenance.doctor import doctor as run_doctor

    report = run_doctor(load_cli_settings(ctx), dry_run=dry_run)
    if as_json:
        echo_json(report.to_dict())
        return
    for line in report.repairs:
        click.echo(line)
    for line in report.notes:
        click.echo(f"note: {line}")
    if report.clean:
        click.echo("nothing to repair" if not report.notes else "nothing to repair (see the notes)")
    elif dry_run:
        click.echo(f"dry run: {len(report.repairs)} repair(s) to do; run `selfheal doctor` to do them")
