"""``selfheal optimize --demos``: call :func:`selfheal.optimize.demos.optimize_demos` and show what it did.

Progress on stderr (each attempt, each candidate's dev score), then per-phase
cost, the candidate sets with their dev scores, the chosen demos and where the
change went. Exit 0 whether or not something was proposed (the output says why).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from selfheal.cli.main import load_cli_settings


def run_demos(
    ctx: click.Context,
    *,
    dataset: str | None,
    train_split: str,
    dev_split: str,
    names: tuple[str, ...],
    k: int,
    temperature: float,
    seeds: tuple[int, ...],
    budget_tokens: int,
    max_demos: int | None,
    jobs: int,
    apply_: bool,
    publish: bool,
    output: str | None,
    as_json: bool,
) -> None:
    from pathlib import Path

    from rich.console import Console

    from selfheal.optimize.demos import Attempt, Candidate, optimize_demos
    from selfheal.yamlio import atomic_write_text

    settings = load_cli_settings(ctx)
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def on_attempt(a: Attempt) -> None:
        mark = "[green]verified[/]" if a.success else "[red]no[/]"
        demo = f" -> {a.demo_id}" if a.demo_id else ""
        why = f" — {a.reason}" if a.reason else ""  # a verified run that became no demo says why
        err.print(f"bootstrap {a.example} ({a.task_type}) seed {a.seed} t={a.temperature:g}: {mark}{demo}{why}")

    def on_candidate(c: Candidate) -> None:
        s = c.score
        err.print(f"dev {c.label}: {len(c.demos)} demo(s), +{c.tokens} tokens: "
                  + (f"{s.passed}/{s.n} passed" if s is not None else "not evaluated"))

    report = optimize_demos(
        settings, dataset=dataset, train_split=train_split, dev_split=dev_split, names=list(names) or None, k=k,
        temperature=temperature, seeds=list(seeds) or None, budget_tokens=budget_tokens, max_demos=max_demos,
        jobs=jobs, apply=apply_, publish=publish, progress=sys.stderr.isatty(), on_attempt=on_attempt,
        on_candidate=on_candidate,
    )  # fmt: skip
    if output and report.markdown:
        atomic_write_text(Path(output), report.markdown)
    if as_json:
        click.echo(json.dumps(_as_dict(report), indent=2, default=str))
        return
    for cost in report.costs:
        click.echo(cost.line())
    if report.selection is not None:
        click.echo(f"candidate sets (dev split '{dev_split}', budget {report.selection.budget_tokens} tokens):")
        for line in report.selection.lines():
            click.echo(f"  {line}")
        chosen = report.selection.chosen
        click.echo(f"chosen: {chosen.label} — {chosen.why}; best dev score, ties to fewer tokens")
        for d in chosen.demos:
            p = d.provenance
            click.echo(f"  {d.id} ({d.task_type}): {p.example}, run {p.run_id}, seed {p.seed}, "
                       f"{len(d.calls)} call(s) kept, {d.dropped_calls} dropped, {d.tokens} tokens")
    for reason in report.reasons:
        click.echo(f"nothing proposed: {reason}")
    if report.applied:
        click.echo(f"applied: {', '.join(report.files)} written to the working tree")
    elif report.publish is not None:
        click.echo(f"published branch {report.publish.branch}: {report.publish.pr_url or report.publish.open_hint}")
    elif report.files:
        click.echo("accepted: rerun with --apply or --pr to keep it")


def _as_dict(report: Any) -> dict[str, Any]:
    sel = report.selection
    return {
        "attempts": [a.model_dump(mode="json") for a in report.pool.attempts],
        "demos": [d.model_dump(mode="json") | {"trajectory": d.trajectory, "tokens": d.tokens}
                  for d in report.pool.demos],
        "candidates": [] if sel is None else [
            {"label": c.label, "why": c.why, "demos": c.ids, "tokens": c.tokens, "chosen": c is sel.chosen,
             "dev": None if c.score is None else {"passed": c.score.passed, "n": c.score.n, "rate": c.score.rate,
                                                  "experiment": c.score.experiment}}
            for c in sel.candidates
        ],
        "chosen": None if sel is None else sel.chosen.ids,
        "cost": [c.model_dump(mode="json") for c in report.costs],
        "files": sorted(report.files),
        "reasons": report.reasons,
        "applied": report.applied,
        "pr": getattr(report.publish, "pr_url", None) if report.publish else None,
        "branch": getattr(report.publish, "branch", None) if report.publish else None,
    }  # fmt: skip
