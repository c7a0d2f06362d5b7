"""``selfheal review`` and ``selfheal approve``: the open improvements, and merging one the gate passes.

Thin: options -> :mod:`selfheal.interact.review` / :mod:`selfheal.interact.approve`
-> plain text or JSON. ``approve`` exits 1 when the gate fails (each reason on
stderr) and 2 on user errors (dirty tree, unknown branch).
"""

from __future__ import annotations

import sys

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option

GATE_FAILED = 1


@click.command("review")
@click.option("--local", "local_only", is_flag=True, help="Only local branches (do not ask GitHub for open PRs).")
@json_option
@click.pass_context
def review(ctx: click.Context, local_only: bool, as_json: bool) -> None:
    """List open improvement branches and PRs with their evaluation summaries."""
    from selfheal.interact.review import format_review, list_improvements

    items = list_improvements(load_cli_settings(ctx), use_github=not local_only)
    if as_json:
        echo_json([i.model_dump(mode="json") for i in items])
    else:
        click.echo(format_review(items))


@click.command("approve")
@click.argument("branch")
@click.option("--dataset", default=None, help="Dataset under evals/ (default: the agent's).")
@click.option("--split", type=click.Choice(["train", "dev", "test", "all"]), default="test", show_default=True)
@click.option("--margin", type=click.FloatRange(0, 1), default=None,
              help="Tolerated success-rate drop, as a fraction (default: eval.margin).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None, help="Examples run concurrently.")
@click.option("--local", "local_only", is_flag=True, help="Merge the local branch even when it has a PR.")
@click.option("--no-merge", is_flag=True, help="Only run the gate.")
@json_option
@click.pass_context
def approve(ctx: click.Context, branch: str, dataset: str | None, split: str, margin: float | None,
            jobs: int | None, local_only: bool, no_merge: bool, as_json: bool) -> None:
    """Re-run the regression gate on BRANCH (or PR #N) and merge it only when it passes.

    A PR (with GITHUB_TOKEN) is approved and merged through the API; a local
    branch is merged into its base (fast-forward or a merge commit). A dirty
    working tree is refused.
    """
    from selfheal.interact.approve import approve as run_approve
    from selfheal.interact.approve import format_approve

    result = run_approve(load_cli_settings(ctx), branch, dataset=dataset, split=split, jobs=jobs, margin=margin,
                         use_github=not local_only, merge=not no_merge, progress=sys.stderr.isatty())
    if as_json:
        echo_json(result.model_dump(mode="json"))
    else:
        click.echo(format_approve(result))
    if not result.passed:
        for reason in result.reasons:
            click.echo(f"gate failed: {reason}", err=True)
        ctx.exit(GATE_FAILED)
