"""``selfheal eval``: evaluate the working tree's context and cheatsheet, optionally against a git ref.

Thin: options -> :func:`selfheal.evaluation.evaluate.evaluate` -> a report
(rich tables on a terminal, Markdown otherwise, or JSON). Exit status 0 when
all is well, 1 when ``--gate`` fails (each reason on stderr), 2 on user and
configuration errors. ``--shard K/N`` writes one shard's results;
``selfheal eval merge`` joins shard files into one report and gates it.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import cache_option, json_option

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


def _emit(ctx: click.Context, fmt: str | None, output: Path | None, outcome: Any) -> None:
    """Write the report (file or stdout), then exit 1 with one line per reason when the gate failed."""
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


def _shard_option(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    from selfheal.errors import SelfhealError
    from selfheal.evaluation.shard import parse_shard

    try:
        return parse_shard(value)
    except SelfhealError as exc:
        raise click.BadParameter(exc.message) from None


@click.group("eval", invoke_without_command=True)
@click.option("--dataset", "dataset", default=None, help="Dataset under evals/ (default: the agent's).")
@click.option("--split", type=click.Choice(["train", "dev", "test", "all"]), default="test", show_default=True)
@click.option("--against", "against", metavar="REF", default=None,
              help="Also run REF's context and cheatsheet (git ref) and compare, paired per example.")
@click.option("--gate", is_flag=True, help="Exit 1 when the candidate regresses (or misses eval.min_success_rate).")
@click.option("--margin", type=click.FloatRange(0, 1), default=None,
              help="Tolerated success-rate drop for --gate, as a fraction (default: eval.margin, 0.05).")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default=None,
              help="Report format (default: table on a terminal, md otherwise).")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=None, help="Examples run concurrently.")
@click.option("--example", "names", multiple=True, metavar="NAME", help="Only this example (repeatable).")
@click.option("--task-type", "task_types", multiple=True, metavar="T", help="Only this task type (repeatable).")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds per example before it counts as a timeout.")
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to FILE (atomically) instead of stdout.")
@cache_option  # eval: the dataset's cache (see `selfheal cache status`); replay refuses a side it does not cover
@click.option("--shard", "shard", metavar="K/N", default=None, callback=_shard_option,
              help="Run only the K-th of N deterministic parts of the examples; write a shard file"
                   " for `selfheal eval merge`.")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the raw results (a shard file) to FILE; with --shard, default"
                   " eval-shard-K-of-N.json.")
@json_option  # the same as --format json
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
    shard: tuple[int, int] | None,
    results_path: Path | None,
    as_json: bool,
) -> None:
    """Evaluate the context and cheatsheet on a dataset split; with --against, compare to a git ref.

    The dataset always comes from the working tree; only the context and
    cheatsheet differ between the two sides.
    """
    if ctx.invoked_subcommand is not None:
        return
    from selfheal.agents.registry import get_agent
    from selfheal.errors import SelfhealError
    from selfheal.evaluation.evaluate import evaluate
    from selfheal.evaluation.gate import GateConfig
    from selfheal.lint import refuse_lint_errors

    fmt = "json" if as_json else fmt  # --json wins: machine-readable output was asked for
    if shard is not None and gate:
        raise SelfhealError("--gate judges the whole dataset: run the shards without it and gate"
                            " `selfheal eval merge SHARD-FILES... --gate`")
    settings = load_cli_settings(ctx)
    refuse_lint_errors(settings, known_tools=set(get_agent(settings).tool_names()))
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
        cache=cache,
        shard=shard,
    )
    if shard is not None or results_path is not None:
        from selfheal.evaluation.shard import ShardResult, write_shard

        k, n = shard or (1, 1)
        path = results_path or Path(f"eval-shard-{k}-of-{n}.json")
        write_shard(path, ShardResult(shard=k, shards=n, total=outcome.total, positions=outcome.positions or [],
                                      candidate=outcome.candidate, baseline=outcome.baseline))
        click.echo(f"wrote the results of shard {k}/{n} to {path}", err=True)
    _emit(ctx, fmt, output, outcome)


@eval_cmd.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--against-results", "against_files", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              metavar="FILE", help="Baseline results (shard files or one experiment) to compare with"
                                   " (repeatable; default: the baselines inside the shard files, if any).")
@click.option("--gate", is_flag=True, help="Exit 1 when the merged candidate regresses (see `selfheal eval`).")
@click.option("--margin", type=click.FloatRange(0, 1), default=None,
              help="Tolerated success-rate drop for --gate, as a fraction (default: eval.margin, 0.05).")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "json"]), default=None,
              help="Report format (default: table on a terminal, md otherwise).")
@json_option  # the same as --format json
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to FILE (atomically) instead of stdout.")
@click.pass_context
def merge_cmd(
    ctx: click.Context,
    files: tuple[Path, ...],
    against_files: tuple[Path, ...],
    gate: bool,
    margin: float | None,
    fmt: str | None,
    as_json: bool,
    output: Path | None,
) -> None:
    """Merge the shard files of `selfheal eval --shard K/N` into one report; --gate judges the merged result."""
    from selfheal.evaluation.evaluate import judge_results
    from selfheal.evaluation.gate import GateConfig
    from selfheal.evaluation.shard import merge_files

    fmt = "json" if as_json else fmt  # --json wins: machine-readable output was asked for
    candidate, baseline = merge_files(list(files))
    if against_files:
        baseline, _ = merge_files(list(against_files))
    gate_config = None
    if gate:
        gate_config = GateConfig.from_settings(load_cli_settings(ctx), margin=margin)
    _emit(ctx, fmt, output, judge_results(candidate, baseline, gate_config))

