"""``selfheal traces``: list, show, summarise, sync and prune traced runs.

Thin: parse options, call the trace store / analysis, render with rich (or
print JSON with ``--json``). Reads go to the local store by default and to
LangSmith with ``--source langsmith`` when it is configured.
"""

from __future__ import annotations

import dataclasses
import json
from itertools import pairwise
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import (
    confirm,
    echo_json,
    json_option,
    older_than_option,
    since_option,
    yes_option,
)

if TYPE_CHECKING:
    from rich.console import Console

    from selfheal.tracing.analysis import Analysis, GroupStats
    from selfheal.tracing.schema import FeedbackRecord, RunRecord

def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    return f"{seconds / 60:.1f}m"


def _fmt_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _utc(dt: datetime | None) -> str:
    return "-" if dt is None else dt.strftime("%Y-%m-%d %H:%M:%S")


# -- where runs are read from --------------------------------------------------
source_option = click.option(
    "--source",
    type=click.Choice(["local", "langsmith"]),
    default="local",
    show_default=True,
    help="Read the local store, or LangSmith (when configured).",
)
project_option = click.option("--project", default=None, help="Project (default: tracing.project).")


def _reader(settings: Any, source: str, project: str) -> Any:
    """The local store or a LangSmith reader for ``project`` (the interact library's, one definition)."""
    from selfheal.interact.sources import open_reader

    return open_reader(settings, source, project)


def _langsmith_errors() -> Any:
    from selfheal.interact.sources import langsmith_errors

    return langsmith_errors()


def _summary(run: RunRecord) -> dict[str, Any]:
    """The JSON shape of one run in ``traces list``/``show`` (no payloads)."""
    from selfheal.tracing.analysis import error_message

    return {
        "id": str(run.id),
        "trace_id": str(run.trace_id),
        "parent_run_id": None if run.parent_run_id is None else str(run.parent_run_id),
        "name": run.name,
        "run_type": run.run_type,
        "start_time": run.start_time.isoformat(),
        "end_time": None if run.end_time is None else run.end_time.isoformat(),
        "latency": run.latency,
        "status": run.status,
        "error": error_message(run.error) if run.error else None,
        "total_tokens": run.total_tokens,
        "metadata": run.metadata,
    }


def _outcome(run: RunRecord) -> str:
    md = run.metadata
    if md.get("success") is True:
        return "[green]success[/]"
    if md.get("success") is False:
        et = md.get("error_type")
        return "[red]failed[/]" + (f" ({et})" if et else "")
    if run.status == "interrupted":
        return "[yellow]interrupted[/]"
    return "[red]error[/]" if run.status == "error" else f"[dim]{run.status}[/]"


# -- the group -------------------------------------------------------------------
@click.group("traces")
def traces() -> None:
    """List, inspect, summarise, sync and prune traced runs."""


@traces.command("list")
@click.argument("filter_text", metavar="[FILTER]", required=False)
@since_option()
@click.option(
    "--status",
    type=click.Choice(["error", "success", "pending", "interrupted"]),
    default=None,
    help="Run status (error = the run raised; a failed task is eq(metadata.success, false); "
    "pending = still open: running, or interrupted if its process is gone).",
)
@click.option("--task-type", default=None, help="Only runs of this task type.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option("--all-runs", is_flag=True, help="Child runs too (default: root runs only).")
@project_option
@source_option
@json_option
@click.pass_context
def list_cmd(
    ctx: click.Context,
    filter_text: str | None,
    since: timedelta | datetime | None,
    status: str | None,
    task_type: str | None,
    limit: int,
    all_runs: bool,
    project: str | None,
    source: str,
    as_json: bool,
) -> None:
    """Runs, newest first, matching FILTER in LangSmith's filter language.

    \b
    Examples:
      selfheal traces list 'eq(metadata.success, false)' --since 7d
      selfheal traces list 'and(eq(run_type, "tool"), neq(error, null))' --all-runs
    """
    from selfheal.timespec import cutoff
    from selfheal.tracing.filters import FilterError, parse_filter
    from selfheal.tracing.schema import utcnow

    settings = load_cli_settings(ctx)
    project = project or settings.tracing.project
    start = cutoff(since, utcnow())
    is_root = None if all_runs else True
    try:
        if filter_text is not None:
            parse_filter(filter_text)  # the caret error before any I/O, for both sources
        with _reader(settings, source, project) as reader, _langsmith_errors():
            if source == "langsmith":
                runs = reader.list_runs(
                    project,
                    is_root=is_root,
                    since=start,
                    status=status,
                    metadata={"task_type": task_type} if task_type else None,
                    filter=filter_text,
                    limit=limit,
                )
            else:
                from selfheal.tracing.liveness import with_display_status

                # an open root shows as running, or interrupted when its process is gone
                runs = with_display_status(
                    _query_local(reader, filter_text, project, start, status, task_type, is_root, limit))
    except FilterError as exc:
        click.echo(f"error: {exc.message}", err=True)
        click.echo(exc.caret, err=True)
        ctx.exit(2)
        return
    if as_json:
        click.echo(json.dumps([_summary(r) for r in runs], indent=2, default=str))
        return
    _render_list(runs, all_runs=all_runs, title=f"{len(runs)} run(s) in {project}" + (
        f" (first {limit})" if len(runs) == limit else ""))


def _query_local(
    store: Any,
    filter_text: str | None,
    project: str,
    start: datetime | None,
    status: str | None,
    task_type: str | None,
    is_root: bool | None,
    limit: int,
) -> list[RunRecord]:
    """The store's ``query_runs``: the filter is compiled to SQL there."""
    runs: list[RunRecord] = store.query_runs(
        filter_text,
        project=project,
        since=start,
        status=status,
        task_type=task_type,
        is_root=is_root,
        limit=limit,
    )
    return runs


def _short_ids(runs: list[RunRecord], floor: int = 13) -> dict[Any, str]:
    """Abbreviated ids (at least ``floor`` characters) that tell the listed runs apart.

    ``traces show`` and ``feedback`` accept them; a prefix shared with the
    run's own children still resolves to the root.
    """
    ids = sorted(str(r.id) for r in runs)
    width = floor
    for a, b in pairwise(ids):
        common = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), len(a))
        width = max(width, common + 1)
    return {r.id: str(r.id)[:width] for r in runs}


def _render_list(runs: list[RunRecord], *, all_runs: bool, title: str) -> None:
    from rich.markup import escape
    from rich.table import Table

    from selfheal.cli.render import console
    from selfheal.tracing.analysis import error_message

    out = console()
    if not runs:
        out.print("No runs match.")
        return
    short = _short_ids(runs)
    table = Table(title=title, caption="ids are abbreviated: `selfheal traces show ID` takes them")
    table.add_column("started (UTC)", no_wrap=True)
    table.add_column("run id", no_wrap=True)
    if all_runs:
        table.add_column("type")
        table.add_column("name", overflow="fold")
    table.add_column("task type", overflow="fold")
    table.add_column("outcome")
    table.add_column("latency", justify="right", no_wrap=True)
    table.add_column("tokens", justify="right", no_wrap=True)
    table.add_column("error", overflow="fold", max_width=60)
    for r in runs:
        row = [r.start_time.strftime("%m-%d %H:%M:%S"), short[r.id]]
        if all_runs:
            row += [r.run_type, escape(r.name)]
        row += [
            escape(str(r.metadata.get("task_type") or "-")),
            _outcome(r),
            _fmt_duration(r.latency),
            "-" if r.total_tokens is None else str(r.total_tokens),
            escape(error_message(r.error)) if r.error else "",
        ]
        table.add_row(*row)
    out.print(table)


# -- show ---------------------------------------------------------------------------
@traces.command("show")
@click.argument("run_id")
@project_option
@source_option
@json_option
@click.pass_context
def show(ctx: click.Context, run_id: str, project: str | None, source: str, as_json: bool) -> None:
    """The trace of RUN_ID (a unique prefix is enough locally) as a tree.

    Each run shows its type, name, duration, tokens and status; tool calls show
    their arguments and errors; the root's outcome metadata and any feedback
    are summarised above the tree.
    """
    from uuid import UUID

    from selfheal.errors import SelfhealError
    from selfheal.tracing.errors import RunNotFoundError

    settings = load_cli_settings(ctx)
    project = project or settings.tracing.project
    feedback_note = None
    with _reader(settings, source, project) as reader, _langsmith_errors():
        if source == "local":
            from selfheal.interact.feedback import resolve_run_id

            rid = resolve_run_id(reader, run_id)
        else:
            try:
                rid = UUID(run_id.strip())
            except ValueError:
                raise SelfhealError(f"LangSmith needs the full run id, not {run_id!r}") from None
        run = reader.get_run(rid)
        if run is None:
            raise RunNotFoundError(f"run {rid} not found")
        trace = reader.get_trace(run.trace_id)
        try:
            from selfheal.tracing.analysis import feedback_for

            feedback = feedback_for(reader, [r.id for r in trace])
        except Exception as exc:  # feedback is an extra here; the trace is what was asked for
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            feedback, feedback_note = [], f"feedback unavailable: {first}"
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": str(rid),
                    "trace_id": str(run.trace_id),
                    "runs": [_show_summary(r) for r in trace],
                    "feedback": [fb.model_dump(mode="json") for fb in feedback],
                },
                indent=2,
                default=str,
            )
        )
        return
    out = _console()
    _render_trace(out, trace, rid, feedback)
    if feedback_note:
        out.print(f"[dim]{feedback_note}[/]")


def _console() -> Console:
    from selfheal.cli.render import console

    return console()


def _show_summary(run: RunRecord) -> dict[str, Any]:
    from selfheal.tracing.analysis import error_message, tool_failure

    data = _summary(run)
    if run.run_type == "tool":
        why = tool_failure(run)
        data["inputs"] = run.inputs
        data["tool_error"] = None if why is None else error_message(why)
    data["prompt_tokens"] = run.prompt_tokens
    data["completion_tokens"] = run.completion_tokens
    return data


def _tool_args(run: RunRecord) -> str:
    args = run.inputs
    if set(args) == {"input"}:
        args = args["input"]
    if isinstance(args, dict):
        text = ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in args.items())
    else:
        text = str(args)
    return text if len(text) <= 160 else text[:157] + "..."


def _tool_result(run: RunRecord) -> str:
    out = run.outputs or {}
    msg = out.get("output", out)
    content = msg.get("content") if isinstance(msg, dict) else msg
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    text = " ".join(text.split())
    return text if len(text) <= 100 else text[:97] + "..."


def _label(run: RunRecord, selected: bool) -> str:
    from rich.markup import escape

    from selfheal.tracing.analysis import error_message, tool_failure

    parts = [f"[cyan]{run.run_type}[/] [bold]{escape(run.name)}[/]", _fmt_duration(run.latency)]
    if run.total_tokens:
        parts.append(f"{run.total_tokens} tok")
    failure = tool_failure(run) if run.run_type == "tool" else run.error
    parts.append("[red]✗ error[/]" if failure else ("[green]✓[/]" if run.status == "success" else run.status))
    label = " · ".join(parts)
    if run.run_type == "tool":
        label += f"\n[dim]args:[/] {escape(_tool_args(run))}"
        if failure:
            label += f"\n[red]error: {escape(error_message(failure))}[/]"
        elif run.outputs:
            label += f"\n[dim]result: {escape(_tool_result(run))}[/]"
    elif failure:
        label += f"\n[red]error: {escape(error_message(failure))}[/]"
    if selected:
        label += "  [reverse] selected [/]"
    return label


_META_ORDER = (
    "task_type", "scenario", "success", "error_type", "latency", "steps", "route", "model",
    "context_version", "cheatsheet_version", "retrieved_entries", "used_entries",
)  # fmt: skip
_META_HIDDEN = {"thread_id", "ls_integration", "agent", "success", "error_type"}  # outcome shows them


def _render_trace(out: Console, trace: list[RunRecord], selected: Any, feedback: list[FeedbackRecord]) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.tree import Tree

    if not trace:
        out.print("Empty trace.")
        return
    by_id = {r.id: r for r in trace}
    root = next((r for r in trace if r.parent_run_id is None or r.parent_run_id not in by_id), trace[0])
    md = root.metadata
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column(overflow="fold")
    info.add_row("run", f"{root.id}  ({escape(root.name)})")
    info.add_row("started", f"{_utc(root.start_time)} UTC · {_fmt_duration(root.latency)}"
                 + (f" · {root.total_tokens} tokens" if root.total_tokens else ""))
    info.add_row("outcome", _outcome(root))
    keys = [k for k in _META_ORDER if k in md] + sorted(k for k in md if k not in _META_ORDER)
    keys = [k for k in keys if k not in _META_HIDDEN]
    for key in keys:
        value = md[key]
        if value is None:
            continue
        shown = (", ".join(map(str, value)) or "none") if isinstance(value, list) else str(value)
        info.add_row(escape(key), escape(shown))
    if root.error:
        from selfheal.tracing.analysis import error_message

        info.add_row("error", f"[red]{escape(error_message(root.error))}[/]")
    for fb in feedback:
        note = f"{escape(fb.key)} = {fb.score}" + (f" — {escape(fb.comment)}" if fb.comment else "")
        if fb.correction:
            corr = fb.correction if isinstance(fb.correction, str) else json.dumps(fb.correction)
            note += f" [dim](correction: {escape(corr[:120])})[/]"
        info.add_row("feedback", note)
    out.print(info)

    tree = Tree(_label(root, root.id == selected))
    nodes = {root.id: tree}
    for run in trace:  # dotted order: parents come before children
        if run.id == root.id:
            continue
        parent = nodes.get(run.parent_run_id) if run.parent_run_id else None
        nodes[run.id] = (parent or tree).add(_label(run, run.id == selected))
    out.print(tree)


# -- stats -------------------------------------------------------------------------
@traces.command("stats")
@since_option(default="7d")
@click.option("--task-type", default=None, help="Only runs of this task type.")
@click.option("--top", type=click.IntRange(1, 100), default=10, show_default=True,
              help="Error clusters and sequences shown.")
@project_option
@source_option
@json_option
@click.pass_context
def stats(
    ctx: click.Context,
    since: timedelta | datetime | None,
    task_type: str | None,
    top: int,
    project: str | None,
    source: str,
    as_json: bool,
) -> None:
    """Success, latency, tokens, errors, tools, cheatsheet entries and feedback of recent runs."""
    from selfheal.tracing.analysis import analyze

    settings = load_cli_settings(ctx)
    project = project or settings.tracing.project
    with _reader(settings, source, project) as reader, _langsmith_errors():
        result = analyze(reader, project=project, since=since, task_type=task_type, top=top)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
        return
    _render_stats(_console(), result, since)


def _render_stats(out: Console, a: Analysis, since: timedelta | datetime | None) -> None:
    from rich.markup import escape
    from rich.table import Table

    window = "all time" if since is None else f"since {_utc(a.since)} UTC"
    scope = f"task type {a.task_type}" if a.task_type else "all task types"
    o = a.overall
    if o.runs == 0:
        out.print(f"No runs in project {escape(a.project)} ({window}, {scope}).")
        return
    t = Table(title=f"{o.runs} run(s) in {escape(a.project)}, {window}, {scope}")
    t.add_column("task type", overflow="fold")
    for col in ("runs", "success", "p50", "p95", "tokens/run", "user score"):
        t.add_column(col, justify="right", no_wrap=True)
    rows = list(a.by_task_type.values()) + ([o] if len(a.by_task_type) != 1 else [])
    for g in rows:
        t.add_row(
            "[bold]all[/]" if g.task_type is None else escape(g.task_type),
            str(g.runs),
            f"{_fmt_rate(g.success_rate)} {g.successes}/{g.with_outcome}" if g.with_outcome else "-",
            _fmt_duration(g.latency.p50),
            _fmt_duration(g.latency.p95),
            f"{g.tokens.per_run:.0f}" if g.tokens.per_run is not None else "-",
            _user_score(g),
        )
    out.print(t)
    if o.tokens.runs_counted:
        out.print(f"Tokens: {o.tokens.total} in {o.tokens.runs_counted} run(s) "
                  f"({o.tokens.prompt} prompt, {o.tokens.completion} completion)")
    _render_group_details(out, o)


def _user_score(g: GroupStats) -> str:
    from selfheal.interact.feedback import USER_SCORE_KEY

    for f in g.feedback:
        if f.key == USER_SCORE_KEY and f.mean is not None:
            return f"{f.mean:.2f} (n={f.scored})"
    return "-"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _render_group_details(out: Console, g: GroupStats) -> None:
    from rich.markup import escape
    from rich.table import Table

    if g.error_types:
        out.print("Failures by error type: " + ", ".join(f"{escape(k)} {v}" for k, v in g.error_types.items()))
    if g.errors:
        t = Table(title="Common errors (numbers, ids, names and ARNs folded)")
        t.add_column("count", justify="right")
        t.add_column("pattern / latest example", overflow="fold")
        t.add_column("where", overflow="fold")
        t.add_column("runs", overflow="fold")
        for c in g.errors:
            runs = ", ".join(str(r)[:13] for r in c.run_ids[:2])
            if len(c.run_ids) > 2:
                runs += f" +{len(c.run_ids) - 2}"
            text = escape(c.signature)
            if c.example != c.signature:
                text += f"\n[dim]{escape(c.example)}[/]"
            t.add_row(str(c.count), text, escape(", ".join(c.sources)), runs)
        out.print(t)
    if g.tools:
        t = Table(title="Tools")
        t.add_column("tool", overflow="fold")
        for col in ("calls", "errors", "error rate", "runs"):
            t.add_column(col, justify="right")
        for s in g.tools:
            rate = f"[red]{s.error_rate:.0%}[/]" if s.errors else "0%"
            t.add_row(escape(s.name), str(s.calls), str(s.errors), rate, str(s.runs))
        out.print(t)
    if g.sequences:
        t = Table(title="Frequent tool sequences")
        t.add_column("sequence", overflow="fold")
        t.add_column("runs", justify="right")
        for seq in g.sequences:
            t.add_row(escape(" → ".join(seq.tools)), str(seq.runs))
        out.print(t)
    if g.entries:
        t = Table(title="Cheatsheet entries (success rate of runs that used / did not use each)")
        t.add_column("entry", overflow="fold")
        for col in ("retrieved", "used", "used: ok", "unused: ok", "lift"):
            t.add_column(col, justify="right", no_wrap=True)
        for e in g.entries:
            lift = "-" if e.lift is None else f"{e.lift:+.0%}"
            t.add_row(
                escape(e.entry_id), str(e.retrieved), str(e.used),
                f"{_fmt_rate(e.success_rate_used)} n={e.runs_used}",
                f"{_fmt_rate(e.success_rate_not_used)} n={e.runs_not_used}", lift,
            )  # fmt: skip
        out.print(t)
    if g.feedback:
        t = Table(title="User feedback")
        t.add_column("key", overflow="fold")
        for col in ("count", "mean", "min", "max"):
            t.add_column(col, justify="right")
        for f in g.feedback:
            t.add_row(escape(f.key), str(f.count), _num(f.mean), _num(f.min), _num(f.max))
        out.print(t)


# -- sync and prune -----------------------------------------------------------------
@traces.command("sync")
@json_option
@click.pass_context
def sync(ctx: click.Context, as_json: bool) -> None:
    """Send LangSmith every trace and feedback it has not confirmed yet (same ids).

    Exit status: 0 all delivered, 1 something is still pending, 2 LangSmith not configured.
    """
    from selfheal.tracing.store import LocalTraceStore
    from selfheal.tracing.sync import sync_pending

    settings = load_cli_settings(ctx)
    with LocalTraceStore.from_settings(settings) as store:
        report = sync_pending(settings, store)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report), indent=2))
    elif report.sent == 0 and report.failed == 0 and report.remaining == 0:
        click.echo("Nothing pending for LangSmith.")
    else:
        click.echo(
            f"LangSmith sync: sent {report.sent}, failed {report.failed}, "
            f"still pending {report.remaining} ({report.seconds:.1f}s)"
        )
        for err in report.errors:
            click.echo(f"  {err}", err=True)
    ctx.exit(1 if report.failed or report.remaining else 0)


@traces.command("prune")
@older_than_option
@click.option("--project", default=None, help="Only this project (default: every project).")
@yes_option
@json_option
@click.pass_context
def prune(
    ctx: click.Context, older_than: timedelta | datetime | None, project: str | None, yes: bool, as_json: bool
) -> None:
    """Delete whole traces (runs and their feedback) whose root started before now - AGE (or before a date)."""
    from selfheal.timespec import cutoff as cutoff_of
    from selfheal.tracing.schema import utcnow
    from selfheal.tracing.store import LocalTraceStore

    settings = load_cli_settings(ctx)
    now = utcnow()
    cutoff = cutoff_of(older_than, now) or now  # all: every trace started before now
    removed = 0
    with LocalTraceStore.from_settings(settings) as store:
        old = None if yes else store.count_matching(project=project, is_root=True, until=cutoff)
        if old != 0:
            if not confirm(f"Delete {old} trace(s) started before {_utc(cutoff)} UTC?", yes=yes,
                           refusal=f"{old} trace(s) would be deleted"):
                click.echo("Nothing deleted.", err=as_json)
                ctx.exit(1)
                return
            removed = store.prune(max(now - cutoff, timedelta(0)), project=project)
    if as_json:
        echo_json({"removed": removed, "cutoff": cutoff.isoformat(), "project": project})
    elif old == 0:
        click.echo(f"No traces started before {_utc(cutoff)} UTC.")
    else:
        click.echo(f"Removed {removed} trace(s) started before {_utc(cutoff)} UTC.")
