"""``selfheal explain RUN_ID ["QUESTION"]``: a run's decisions, evidence and context, summarised with citations."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option

if TYPE_CHECKING:
    from selfheal.interact.explain import Explanation


@click.command("explain")
@click.argument("run_id")
@click.argument("question", required=False)
@click.option("--no-model", "no_model", is_flag=True, help="Only the structured part (steps, evidence, entries).")
@click.option("--source", type=click.Choice(["local", "langsmith"]), default="local", show_default=True,
              help="Read the local store, or LangSmith (when configured).")
@click.option("--project", default=None, help="Trace project (default: tracing.project).")
@json_option
@click.pass_context
def explain(ctx: click.Context, run_id: str, question: str | None, no_model: bool, source: str,
            project: str | None, as_json: bool) -> None:
    """Why RUN_ID (a unique prefix is enough) did what it did, answering QUESTION if given.

    Lists every tool call as a step with the evidence it returned, the verdict,
    the cheatsheet entries retrieved and used and the context instructions;
    then the chat model's answer citing [step:N], [entry:ID], [instruction:ID]
    and [run:ID] — every citation checked against the run (invalid ones are
    removed and the answer flagged).
    """
    from selfheal.interact.explain import explain as explain_run

    settings = load_cli_settings(ctx)
    x = explain_run(settings, run_id, question, source=source, project=project, use_model=not no_model)
    if as_json:
        echo_json(x.model_dump(mode="json"))
        return
    _render(x)


def _render(x: Explanation) -> None:
    from rich.markup import escape
    from rich.table import Table

    from selfheal.cli.render import _args, console

    out = console()
    out.print(f"[bold]run[/] {x.run_id} · {escape(x.task_type or '-')} · [bold]{escape(x.outcome)}[/]")
    if x.task:
        out.print(f"[bold]task[/]: {escape(x.task)}", soft_wrap=True)
    if x.reason:
        out.print(f"[bold]verdict[/]: {escape(x.reason)}", soft_wrap=True)
    for c in x.checks:
        out.print(f"  {escape(c)}")
    if x.steps:
        t = Table(title=f"{len(x.steps)} step(s): decisions and the evidence they returned")
        t.add_column("step", justify="right")
        t.add_column("tool")
        t.add_column("arguments", overflow="fold", max_width=48)
        t.add_column("status")
        t.add_column("evidence", overflow="fold", max_width=70)
        for s in x.steps:
            t.add_row(escape(f"[step:{s.n}]"), escape(s.tool), escape(_args(s.args)),
                      "[red]error[/]" if s.status == "error" else "[green]ok[/]", escape(s.output))
        out.print(t)
    else:
        out.print("No tool calls.")
    if x.final_answer:
        out.print(f"[bold]answer[/]: {escape(x.final_answer.strip()[:800])}", soft_wrap=True)
    if x.entries:
        out.print("[bold]Cheatsheet entries[/]:")
        for e in x.entries:
            how = "used" if e.used else "retrieved, not used"
            text = e.text if e.exists else "(no longer in the cheatsheet)"
            out.print("  " + escape(f"[entry:{e.id}] ({how}) {text}"), soft_wrap=True)
    else:
        out.print("No cheatsheet entries retrieved.")
    if x.instructions:
        out.print("[bold]Context instructions[/]:")
        for i in x.instructions:
            out.print("  " + escape(f"[instruction:{i.id}] {i.text}"), soft_wrap=True)
    for note in x.notes:
        out.print(f"[dim]{escape(note)}[/]")
    if x.summary is not None:
        out.print()
        if x.question:
            out.print(f"[bold]Q[/]: {escape(x.question)}")
        out.print(escape(x.summary), soft_wrap=True)
        if x.invalid_citations:
            out.print(f"[yellow]flagged: removed citations not in the run: "
                      f"{escape(', '.join(x.invalid_citations))}[/]")
        elif x.flagged:
            out.print("[yellow]flagged: the answer cites no evidence[/]")
