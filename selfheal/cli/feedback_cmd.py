"""``selfheal feedback``: score a run (and say what the right outcome was)."""

from __future__ import annotations

import json

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import SCORE, json_option


@click.command("feedback")
@click.argument("run_id")
@click.option("--score", type=SCORE, required=True, help="The score from 0 (bad) to 1 (good).")
@click.option("--comment", default=None, help="Why.")
@click.option("--correction", default=None, metavar="TEXT|@FILE",
              help="What the right outcome was: text, or @file.json (a JSON object) / @file.txt.")
@click.option("--key", default="user_score", show_default=True, help="Feedback key.")
@json_option
@click.pass_context
def feedback(
    ctx: click.Context,
    run_id: str,
    score: float,
    comment: str | None,
    correction: str | None,
    key: str,
    as_json: bool,
) -> None:
    """Attach feedback to RUN_ID (a unique prefix is enough), locally and in LangSmith when configured.

    It shows up in `selfheal traces show` and `selfheal traces stats`, and the
    evaluation and curation steps read it from the trace store.
    """
    from selfheal.interact.feedback import parse_correction, record_feedback

    settings = load_cli_settings(ctx)
    stored = record_feedback(
        settings,
        run_id,
        score=score,
        comment=comment,
        correction=parse_correction(correction),
        key=key,
        source="cli",
    )
    pending = _langsmith_pending(settings)
    if as_json:
        data = stored.model_dump(mode="json")
        data["langsmith_pending"] = pending
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"Recorded {stored.key} = {stored.score:g} on run {stored.run_id}")
    if pending:
        click.echo(f"LangSmith has not confirmed {pending} item(s) yet: `selfheal traces sync` sends them.")


def _langsmith_pending(settings: object) -> int | None:
    """Items waiting for LangSmith, or None when LangSmith is not configured."""
    from selfheal.tracing.langsmith_backend import langsmith_configured
    from selfheal.tracing.store import LocalTraceStore
    from selfheal.tracing.sync import pending_count

    if not langsmith_configured(settings):  # type: ignore[arg-type]
        return None
    with LocalTraceStore.from_settings(settings) as store:  # type: ignore[arg-type]
        return pending_count(store)
