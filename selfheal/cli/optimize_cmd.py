"""``selfheal optimize``: ACE offline epochs — learn on the train split, keep what validates."""

from __future__ import annotations

import json
import sys

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import json_option


@click.command("optimize")
@click.option("--dataset", "-d", default=None, help="Dataset under evals/ (default: the agent's).")
@click.option("--train-split", default="train", show_default=True, help="Split learned from (online, in order).")
@click.option("--validate-split", default="dev", show_default=True, help="Split seed vs learned is evaluated on.")
@click.option("--example", "names", multiple=True, help="Learn only from these train examples (repeatable).")
@click.option("--epochs", type=click.IntRange(1, 20), default=1, show_default=True)
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Validation concurrency.")
@click.option("--apply", "apply_", is_flag=True, help="Write an accepted cheatsheet into the working tree.")
@click.option("--pr/--no-pr", "publish", default=False, help="Open an accepted change as a branch + PR.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write the Markdown report here.")
@json_option
@click.option("--keep", "keep_dir", type=click.Path(file_okay=False), default=None,
              help="Also copy the learned cheatsheet here, accepted or not (for review).")
@click.pass_context
def optimize(
    ctx: click.Context,
    dataset: str | None,
    train_split: str,
    validate_split: str,
    names: tuple[str, ...],
    epochs: int,
    jobs: int,
    apply_: bool,
    publish: bool,
    output: str | None,
    as_json: bool,
    keep_dir: str | None,
) -> None:
    """Learn a cheatsheet on the train split in a scratch copy, validate it against the seed.

    The change is kept only when the paired evaluation does not call it a
    regression (the eval gate's margin and alpha). Exit 0 accepted or nothing
    learned, 1 rejected by the gate, 2 usage error.
    """
    from pathlib import Path

    from rich.console import Console

    from selfheal.optimize.training import TrainingRun, optimize as run_optimize
    from selfheal.yamlio import atomic_write_text

    settings = load_cli_settings(ctx)
    err = Console(stderr=True)

    def show(run: TrainingRun) -> None:
        mark = "[green]ok[/]" if run.success else "[red]FAILED[/]"
        err.print(f"train {run.example} ({run.task_type}): {mark}" + (f" — {run.error}" if run.error else ""))
        for line in run.learned:
            err.print(f"  learned: {line}")

    report = run_optimize(
        settings, dataset=dataset, train_split=train_split, validate_split=validate_split,
        names=list(names) or None, epochs=epochs, jobs=jobs, apply=apply_, publish=publish,
        progress=sys.stderr.isatty(), on_run=show, keep_dir=Path(keep_dir) if keep_dir else None,
    )
    if output and report.report_markdown:
        atomic_write_text(Path(output), report.report_markdown)
    accepted = bool(report.files) and (report.decision is None or report.decision.passed)
    if as_json:
        click.echo(json.dumps({
            "train_success_rate": report.train_success_rate,
            "train": [r.__dict__ for r in report.train],
            "files": sorted(report.files),
            "summary": report.summary,
            "accepted": accepted,
            "reasons": list(report.decision.reasons) if report.decision else [],
            "applied": report.applied,
            "pr": getattr(report.publish, "pr_url", None) if report.publish else None,
        }, indent=2, default=str))
    else:
        click.echo(f"train: {sum(r.success for r in report.train)}/{len(report.train)} succeeded")
        for line in report.summary:
            click.echo(f"  {line}")
        if not report.files:
            click.echo("nothing learned: the cheatsheet is unchanged")
        elif report.report_markdown and not output:
            click.echo(report.report_markdown)
        if report.applied:
            click.echo(f"applied {len(report.files)} file(s) to the working tree")
        if report.publish is not None:
            click.echo(f"published branch {report.publish.branch}: {report.publish.pr_url or report.publish.open_hint}")
        elif accepted and not (apply_ or publish):
            click.echo("accepted: rerun with --apply or --pr to keep it")
    if report.decision is not None and not report.decision.passed:
        for reason in report.decision.reasons:
            click.echo(f"gate failed: {reason}", err=True)
        ctx.exit(1)
