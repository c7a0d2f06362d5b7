"""``selfheal ask "QUESTION"``: runs found by a question in plain words, summarised."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import echo_json, json_option

if TYPE_CHECKING:
    from selfheal.interact.ask import AskResult


@click.command("ask")
@click.argument("question")
@click.option("--source", type=click.Choice(["local", "langsmith"]), default="local", show_default=True,
              help="Read the local store, or LangSmith (when configured).")
@click.option("--project", default=None, help="Trace project (default: tracing.project).")
@click.option("--top", type=click.IntRange(1, 50), default=5, show_default=True, help="Error clusters shown.")
@json_option
@click.pass_context
def ask(ctx: click.Context, question: str, source: str, project: str | None, top: int, as_json: bool) -> None:
    """Answer QUESTION about runs: prints the filter it used, then counts, success, errors, examples.

    \b
    Time, outcome, task type, tool and feedback phrases are translated by rules
    ("failed", "this week", "last 3 days", "since Monday", "that called get_metrics",
    "with negative feedback", "corrected"); other words go to the chat model and
    its filter is validated before it runs. A question it cannot translate exits 2
    without running anything.

    \b
    Examples:
      selfheal ask "show me all failed runs this week"
      selfheal ask "timeouts that called search_logs in the last 3 days" --json
    """
    from selfheal.interact.ask import ask as ask_question

    settings = load_cli_settings(ctx)
    result = ask_question(settings, question, source=source, project=project, top=top)
    if as_json:
        data = result.model_dump(mode="json")
        data["translation"]["used_model"] = result.translation.used_model
        echo_json(data)
        return
    _render(result)


def _render(r: AskResult) -> None:
    from rich.markup import escape

    from selfheal.cli.render import console
    from selfheal.cli.traces_cmd import _fmt_duration, _fmt_rate, _render_group_details

    out = console()
    t = r.translation
    out.print(f"[bold]filter[/]: {escape(t.filter or '(none: every root run)')}", soft_wrap=True)
    if t.tree_filter:
        out.print(f"[bold]tree_filter[/]: {escape(t.tree_filter)}  [dim](a run of the trace matches)[/]",
                  soft_wrap=True)
    if t.corrected:
        out.print("[bold]and[/]: a user's feedback on the run carries a correction")
    for phrase, meaning in t.recognized:
        out.print(f"  [dim]\"{escape(phrase)}\" → {escape(meaning)}[/]")
    if t.model_clause:
        out.print(f"  [dim]\"{escape(t.unmatched)}\" → {escape(t.model_clause)} (chat model, validated)[/]")
    o = r.analysis.overall
    for note in r.notes:
        out.print(f"[dim]{escape(note)}[/]")
    if r.matched == 0:
        out.print(f"No runs match in project {escape(r.project)} ({r.source}).")
        return
    rate = f"{_fmt_rate(o.success_rate)} ({o.successes}/{o.with_outcome} with a known outcome)" if o.with_outcome else "-"
    out.print(f"[bold]{r.matched} run(s)[/] in {escape(r.project)} ({r.source}) · success {rate} · "
              f"p50 {_fmt_duration(o.latency.p50)} · p95 {_fmt_duration(o.latency.p95)}")
    if len(r.analysis.by_task_type) > 1:
        for name, g in r.analysis.by_task_type.items():
            out.print(f"  {escape(name)}: {g.runs} run(s), success {_fmt_rate(g.success_rate)}")
    _render_group_details(out, o)
    if r.examples:
        out.print("[bold]Example runs[/] (`selfheal explain ID` tells why):")
        for e in r.examples:
            line = f"  {e.id}  {e.start_time:%Y-%m-%d %H:%M}  {escape(e.task_type or '-')}  {escape(e.outcome)}"
            if e.error:
                line += f"  [red]{escape(e.error[:100])}[/]"
            out.print(line, soft_wrap=True)
