"""``selfheal eval``: evaluate the working tree's context and cheatsheet, optionally against a git ref.

Thin: options -> :func:`selfheal.evaluation.evaluate.evaluate` -> a report
(rich tables on a terminal, Markdown otherwise, or JSON). Exit status 0 when
all is well, 1 when ``--gate`` fails (each reason on stderr), 2 on user errors.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import json_option

GATE_FAILED = 1


def _default_format() -> str:
    return "table" if sys.stdout.isatty() else "md"


def _render(fmt: str, outcome: Any, *, width: int | None = None) -> str:
    from rich.console import Console

    from selfheal.evaluation.report import render_table, to_json, to_markdown

    single = outcome.candidate if outcome.comparison is None else None
    if fmt == "json":
        return to_json(single=outcome.candidate, comparison=outcome.comparison, decision=outcome.decision)
    if fmt == "md":
        return to_markdown(single=single, comparison=outcome.comparison, decision=outcome.decision)
    console = Console(file=io.StringIO(), highlight=False, soft_wrap=False, width=width or 120, color_system=None)
    render_table(console, single=single, comparison=outcome.comparison, decision=outcome.decision)
    return console.file.getvalue()  # type: ignore[attr-defined]


@click.command("eval")
@click.option("--dataset", "dataset", default=None, help="Dataset under evals/ (default: the agent's).")
@click.option("--split", type=click.Choice(["train", "dev", "test", "all"]), default="test", show_default=True)
@click.option("--against", "against", metavar="REF", default=None,
              help="Also run REF's context and cheatsheet (git ref) and compare, paired per example.")
@click.option("--gate", is_flag=True, help="Exit 1 when the candidate regresses (or misses eval.min_success_rate).")
@click.option("--margin", type=click.FloatRange(0, 1), default=None,
              help="Tolerated success-rate drop for --gate, as a fraction (default: eval.margin, 0.05).")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default=None,
              help="Report format (default: table on a terminal, md otherwise).")
@json_option  # the same as --format json
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None, help="Examples run concurrently.")
@click.option("--example", "names", multiple=True, metavar="NAME", help="Only this example (repeatable).")
@click.option("--task-type", "task_types", multiple=True, metavar="T", help="Only this task type (repeatable).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per example before it counts as a timeout.")
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to FILE (atomically) instead of stdout.")
@click.option("--cache", "cache", type=click.Choice(["replay", "record", "off"]), default=None,
              help="Model response cache mode (default: model.cache_mode).")
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    dataset: str | None,
    split: str,
    against: str | None,
    gate: bool,
    margin: float | None,
    fmt: str | None,
    jobs: int | None,
    names: tuple[str, ...],
    task_types: tuple[str, ...],
    timeout_s: float | None,
    output: Path | None,
    cache: str | None,
    as_json: bool,
) -> None:
    """Evaluate the context and cheatsheet on a dataset split; with --against, compare to a git ref.

    The dataset always comes from the working tree; only the context and
    cheatsheet differ between the two sides.
    """
    from selfheal.evaluation.evaluate import evaluate
    from selfheal.evaluation.gate import GateConfig

    overrides: dict[str, Any] = {"model": {"cache_mode": cache}} if cache else {}
    settings = load_cli_settings(ctx, **overrides)
    gate_config = GateConfig.from_settings(settings, margin=margin) if gate else None
    outcome = evaluate(
        settings,
        dataset=dataset,
        split=split,
        against=against,
        jobs=jobs,
        names=list(names) or None,
        task_types=list(task_types) or None,
        gate=gate_config,
        timeout_s=timeout_s,
        progress=sys.stderr.isatty(),
    )

    fmt = "json" if as_json else fmt
    fmt = fmt or ("md" if output is not None else _default_format())
    if output is not None:
        from selfheal.yamlio import atomic_write_text

        atomic_write_text(output, _render(fmt, outcome, width=120))
        click.echo(f"wrote the {fmt} report to {output}")
    elif fmt == "table":
        from selfheal.cli.render import console
        from selfheal.evaluation.report import render_table

        single = outcome.candidate if outcome.comparison is None else None
        render_table(console(), single=single, comparison=outcome.comparison, decision=outcome.decision)
    else:
        click.echo(_render(fmt, outcome), nl=False)

    decision = outcome.decision
    if decision is not None and not decision.passed:
        for reason in decision.reasons:
            click.echo(f"gate failed: {reason}", err=True)
        ctx.exit(GATE_FAILED)
