"""``selfheal dataset``: list, show, push and pull the evaluation datasets under ``evals/``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option


@click.group("dataset")
def dataset() -> None:
    """List, show, push and pull evaluation datasets (evals/<name>/dataset.yaml)."""


@dataset.command("list")
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, as_json: bool) -> None:
    """Datasets with their example counts per split and content hash."""
    from rich.table import Table

    from selfheal.cli.render import console
    from selfheal.evaluation.dataset import SPLITS, list_datasets, load_dataset

    settings = load_cli_settings(ctx)
    rows: list[dict[str, Any]] = []
    for name in list_datasets(settings):
        ds = load_dataset(settings, name)
        counts = {s: sum(1 for e in ds.examples if e.split == s) for s in SPLITS}
        rows.append({"name": name, "agent": ds.spec.agent, "examples": len(ds.examples), **counts, "hash": ds.hash})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} dataset(s)")
    for col in ("name", "agent", "examples", *SPLITS, "hash"):
        table.add_column(col, justify="right" if col in ("examples", *SPLITS) else "left")
    for r in rows:
        table.add_row(r["name"], r["agent"], str(r["examples"]), *(str(r[s]) for s in SPLITS), r["hash"][:7])
    console().print(table)


@dataset.command("show")
@click.argument("name")
@click.option("--split", default="all", show_default=True, help="train, dev, test or all.")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, name: str, split: str, as_json: bool) -> None:
    """The examples of one dataset (optionally one split)."""
    from selfheal.cli.render import print_rows
    from selfheal.evaluation.dataset import load_dataset

    settings = load_cli_settings(ctx)
    ds = load_dataset(settings, name)
    examples = ds.select(split)
    if as_json:
        payload = {
            "name": ds.name,
            "agent": ds.spec.agent,
            "hash": ds.hash,
            "split": split,
            "examples": [
                {
                    "id": e.id,
                    "name": e.name,
                    "split": e.split,
                    "task_type": e.task_type,
                    "scenario": e.scenario,
                    "task": e.task,
                    "expect": e.expect.dump(),
                    "file": e.path.relative_to(ds.root).as_posix(),
                    "line": e.line,
                }
                for e in examples
            ],
        }
        click.echo(json.dumps(payload, indent=2))
        return
    print_rows(f"{ds.name} ({split}): {len(examples)} example(s), hash {ds.short_hash}",
               ("name", "split", "task_type", "kind", "task"),
               [(e.name, e.split, e.task_type, "scenario" if e.scenario else "plain", e.task) for e in examples])


@contextmanager
def _synced(ctx: click.Context, name: str) -> Iterator[tuple[Any, Any]]:
    """(dataset NAME from the files, a LangSmith client closed on exit); a clear error when unconfigured."""
    from selfheal.errors import ConfigError
    from selfheal.evaluation.dataset import load_dataset
    from selfheal.tracing.langsmith_backend import close_client, langsmith_configured, make_client

    settings = load_cli_settings(ctx)
    ds = load_dataset(settings, name)
    if not langsmith_configured(settings):
        raise ConfigError(
            "LangSmith is not configured: set tracing.langsmith (LANGSMITH_TRACING=true) and LANGSMITH_API_KEY"
        )
    client = make_client(settings)
    try:
        yield ds, client
    finally:
        close_client(client)


@dataset.command("push")
@click.argument("name")
@json_option
@click.pass_context
def push_cmd(ctx: click.Context, name: str, as_json: bool) -> None:
    """Create or update the LangSmith dataset NAME with the files' example ids (idempotent)."""
    from selfheal.evaluation.langsmith_sync import push_dataset

    with _synced(ctx, name) as (ds, client):
        report = push_dataset(client, ds)
    if as_json:
        echo_json({"dataset": ds.name, **dataclasses.asdict(report)})
        return
    click.echo(
        f"pushed {ds.name} to LangSmith (dataset {report.dataset_id}):"
        f" {len(report.created)} created, {len(report.updated)} updated"
    )


@dataset.command("pull")
@click.argument("name")
@json_option
@click.pass_context
def pull_cmd(ctx: click.Context, name: str, as_json: bool) -> None:
    """Apply LangSmith's edits of dataset NAME to the files (by example id); add new examples."""
    from selfheal.evaluation.langsmith_sync import pull_dataset

    with _synced(ctx, name) as (ds, client):
        report = pull_dataset(client, ds)
    if as_json:
        echo_json({"dataset": ds.name, **dataclasses.asdict(report)})
        return
    for line in report.lines():
        click.echo(line)
