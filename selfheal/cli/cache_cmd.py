"""``selfheal cache``: what each response cache covers (``status``) and dropping what nothing uses (``prune``).

Thin: :func:`selfheal.evaluation.replay.status_report` and
:func:`selfheal.evaluation.replay.prune_caches` -> text or JSON.
"""

from __future__ import annotations

from typing import Any

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option


def _short(v: str) -> str:
    return v[:12] + ("-dirty" if v.endswith("-dirty") else "")


@click.group("cache")
def cache() -> None:
    """Inspect and prune the record/replay response caches (one per dataset)."""


@cache.command("status")
@click.option("--dataset", "dataset", default=None, help="Only this dataset's cache.")
@json_option
@click.pass_context
def status(ctx: click.Context, dataset: str | None, as_json: bool) -> None:
    """Each cache: manifest (model, dataset hash, versions, examples), entries, what prune would drop."""
    from selfheal.evaluation.replay import status_report

    report = status_report(load_cli_settings(ctx), dataset)
    if as_json:
        echo_json(report)
        return
    for item in report:
        _print_status(item)


def _print_status(item: dict[str, Any]) -> None:
    size_kb = item["size_bytes"] / 1024
    click.echo(f"{item['dataset']}: {item['path']}")
    m = item["manifest"]
    if m is not None:
        click.echo(f"  entries: {item['entries']} ({size_kb:.0f} KiB), referenced {item['referenced']},"
                   f" unreferenced {item['unreferenced']} (prunable), missing {item['missing']}")
    else:
        click.echo(f"  entries: {item['entries']} ({size_kb:.0f} KiB)")
        click.echo("  manifest: none (replay cannot tell what this cache covers; prune refuses it)")
        return
    click.echo(f"  manifest: {m['name']} · model {m['model']} · dataset {m['dataset']} @ {m['dataset_hash'][:12]}")
    for cov, current in zip(m["coverage"], item["current"], strict=True):
        mark = "  <- the working tree" if current else ""
        click.echo(f"  - {cov['label'] or 'coverage'}: context {_short(cov['context_version'])},"
                   f" cheatsheet {_short(cov['cheatsheet_version'])}, {len(cov['examples'])} example(s),"
                   f" {len(cov['keys'])} response(s), recorded {cov['recorded_at'] or '-'}{mark}")


@cache.command("prune")
@click.option("--dataset", "dataset", default=None, help="Only this dataset's cache.")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@json_option
@click.pass_context
def prune(ctx: click.Context, dataset: str | None, dry_run: bool, as_json: bool) -> None:
    """Delete cached responses no manifest coverage refers to."""
    from selfheal.evaluation.replay import prune_caches

    report = prune_caches(load_cli_settings(ctx), dataset, dry_run=dry_run)
    if as_json:
        echo_json({"dry_run": dry_run, "caches": report})
        return
    verb = "would delete" if dry_run else "deleted"
    for item in report:
        if item["skipped"]:
            click.echo(f"{item['dataset']}: {item['path']}: skipped ({item['skipped']})")
            continue
        click.echo(f"{item['dataset']}: {item['path']}: {verb} {len(item['removed'])} unreferenced response(s)")
        for rel in item["removed"]:
            click.echo(f"  {rel}")
