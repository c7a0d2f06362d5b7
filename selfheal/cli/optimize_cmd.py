"""``selfheal optimize``: optimize the agent's context from its traces (``--cheatsheet-only``: the cheatsheet)."""

from __future__ import annotations

import json
import sys

import click

from selfheal.cli.main import load_cli_settings
from selfheal.cli.options import json_option


@click.command("optimize")
@click.option("--dataset", "-d", default=None, help="Dataset under evals/ (default: the agent's).")
@click.option("--train-split", default="train", show_default=True, help="Split learned from (online, in order).")
@click.option("--validate-split", default="dev", show_default=True, help="Split seed vs learned is evaluated on.")
@click.option("--example", "names", multiple=True, help="Learn only from these train examples (repeatable).")
@click.option("--epochs", type=click.IntRange(1, 20), default=1, show_default=True)
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=1, show_default=True, help="Validation concurrency.")
@click.option("--apply", "apply_", is_flag=True, help="Write an accepted cheatsheet into the working tree.")
@click.option("--pr/--no-pr", "publish", default=False, help="Open an accepted change as a branch + PR.")
@click.option("--base", default=None, metavar="BRANCH",
              help="With --pr: the branch the PR targets (default: gitops.base, else the remote's default branch).")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write the Markdown report here.")
@click.option("--cheatsheet-only", is_flag=True,
              help="Only learn the cheatsheet online over the train split (the optimizer before context deltas).")
@click.option("--test-split", default="test", show_default=True,
              help="Context mode: split the best dev variant is confirmed on against the current context.")
@click.option("--since", default=None,
              help="Context mode: also learn from stored runs of this window (7d, 12h, all; never dev/test examples).")
@json_option
@click.option("--keep", "keep_dir", type=click.Path(file_okay=False), default=None,
              help="Also copy the learned cheatsheet (context mode: the best dev variant's prompts and "
                   "cheatsheet) here, accepted or not (for review).")
@click.option("--demos", is_flag=True,
              help="Bootstrap few-shot demonstrations instead: verified train runs, the set chosen on the dev split.")
@click.option("--k", "k", type=click.IntRange(1, 20), default=2, show_default=True,
              help="--demos: attempts per train example.")
@click.option("--temperature", type=click.FloatRange(0.0, 2.0), default=0.7, show_default=True,
              help="--demos: sampling temperature of the attempts.")
@click.option("--seed", "seeds", type=int, multiple=True,
              help="--demos: the attempts' seeds (repeatable; default model.seed, +1 ... for --k attempts).")
@click.option("--budget-tokens", type=click.IntRange(0), default=800, show_default=True,
              help="--demos: most prompt tokens the demos may add to one run.")
@click.option("--max-demos", type=click.IntRange(1), default=None, help="--demos: most demos in the context.")
@click.option("--reason", default=None, metavar="TEXT",
              help="Why optimize now: recorded as a user-request trigger (\"schedule\": the scheduled workflow) "
                   "and shown in the report and the PR (see `selfheal status`).")
@click.pass_context
def optimize(
    ctx: click.Context,
    dataset: str | None,
    train_split: str,
    validate_split: str,
    names: tuple[str, ...],
    epochs: int,
    jobs: int,
    apply_: bool,
    publish: bool,
    base: str | None,
    output: str | None,
    cheatsheet_only: bool,
    test_split: str,
    since: str | None,
    as_json: bool,
    keep_dir: str | None,
    demos: bool,
    k: int,
    temperature: float,
    seeds: tuple[int, ...],
    budget_tokens: int,
    max_demos: int | None,
    reason: str | None,
) -> None:
    """Optimize the agent's context from its own traces; propose the best variant only if it proves better.

    Default (context optimization, ACE offline): run the train split, reflect on
    the runs in batches (failed vs successful runs of a task type side by side,
    the dataset's ground truth when it has one), turn the insights into delta
    operations on instructions, examples, tool descriptions and cheatsheet
    entries, score each variant on --validate-split (epochs, early stop), and
    confirm the best on --test-split against the current context. It is
    proposed (--pr, or --apply) only when significantly better with no task
    type regressing beyond the gate's margin; otherwise the reasons are
    printed. Variants that would collapse the context are rejected
    (optimize.max_shrink). Learning roles may use their own models
    (model.roles.reflector / curator).

    --demos: run the agent --k times per train example, keep the
    environment-verified successes as demonstrations, score candidate sets on
    the dev split (--validate-split) within --budget-tokens, and propose the
    best as bootstrapped examples of context.yaml (--apply / --pr).

    --cheatsheet-only: learn a cheatsheet online on the train split in a
    scratch copy and keep it when the paired evaluation on --validate-split
    does not call it a regression.

    Every run handles the triggers pending when it starts (`selfheal status`);
    --reason records why it runs first.

    Exit 0 proposed/accepted or nothing to propose, 1 rejected by the test
    gate, 2 usage error.
    """
    from selfheal.tracing.trigger_log import optimize_session

    if demos and (keep_dir or epochs != 1):
        raise click.UsageError("--keep and --epochs are for cheatsheet learning, not --demos")
    if base and not publish:
        raise click.UsageError("--base only applies with --pr")
    if reason is not None and not reason.strip():
        raise click.UsageError("--reason must say why (e.g. --reason \"refund answers regressed\")")
    settings = load_cli_settings(ctx)
    mode = "demos" if demos else "cheatsheet" if cheatsheet_only else "context"
    if reason is not None and settings.tracing.redact:
        from selfheal.redact import make_redactor

        reason = str(make_redactor(settings).redact(reason))
    who = _author(settings) if reason else None
    with optimize_session(settings.state_dir, mode=mode, reason=reason, who=who) as session:
        _run(ctx, session, settings, dataset=dataset, train_split=train_split, validate_split=validate_split,
             names=names, epochs=epochs, jobs=jobs, apply_=apply_, publish=publish, base=base, output=output,
             cheatsheet_only=cheatsheet_only, test_split=test_split, since=since, as_json=as_json,
             keep_dir=keep_dir, demos=demos, k=k, temperature=temperature, seeds=seeds,
             budget_tokens=budget_tokens, max_demos=max_demos, reason=reason)


def _author(settings: object) -> str | None:
    from selfheal.interact.teach import git_author

    return git_author(settings.root)  # type: ignore[attr-defined]


def _run(ctx: click.Context, session: object, settings: object, *, dataset: str | None, train_split: str,
         validate_split: str, names: tuple[str, ...], epochs: int, jobs: int, apply_: bool, publish: bool,
         base: str | None, output: str | None, cheatsheet_only: bool, test_split: str, since: str | None,
         as_json: bool, keep_dir: str | None, demos: bool, k: int, temperature: float, seeds: tuple[int, ...],
         budget_tokens: int, max_demos: int | None, reason: str | None) -> None:
    """The chosen mode, run; ``session.outcome`` says how it ended (the triggers it handled show it)."""
    if demos:
        from selfheal.cli.demos_view import run_demos

        run_demos(ctx, dataset=dataset, train_split=train_split, dev_split=validate_split, names=names, k=k,
                  temperature=temperature, seeds=seeds, budget_tokens=budget_tokens, max_demos=max_demos,
                  jobs=jobs, apply_=apply_, publish=publish, output=output, as_json=as_json)
        session.outcome = "finished (--demos)"  # type: ignore[attr-defined]
        return
    from pathlib import Path

    from rich.console import Console

    from selfheal.optimize.training import TrainingRun, optimize as run_optimize
    from selfheal.yamlio import atomic_write_text

    err = Console(stderr=True)

    def show(run: TrainingRun) -> None:
        mark = "[green]ok[/]" if run.success else "[red]FAILED[/]"
        err.print(f"train {run.example} ({run.task_type}): {mark}" + (f" — {run.error}" if run.error else ""))
        for line in run.learned:
            err.print(f"  learned: {line}")

    if not cheatsheet_only:
        _optimize_context(ctx, settings, err, dataset=dataset, train_split=train_split, dev_split=validate_split,
                          test_split=test_split, names=list(names) or None,
                          epochs=epochs if epochs != 1 else None, jobs=jobs, apply_=apply_, publish=publish,
                          output=output, as_json=as_json, since=since, base=base, session=session, reason=reason,
                          keep_dir=keep_dir)
        return
    report = run_optimize(
        settings, dataset=dataset, train_split=train_split, validate_split=validate_split,  # type: ignore[arg-type]
        names=list(names) or None, epochs=epochs, jobs=jobs, apply=apply_, publish=publish,
        progress=sys.stderr.isatty(), on_run=show, keep_dir=Path(keep_dir) if keep_dir else None,
        base=base, reason=reason,
    )
    if output and report.report_markdown:
        atomic_write_text(Path(output), report.report_markdown)
    accepted = bool(report.files) and (report.decision is None or report.decision.passed)
    session.outcome = (  # type: ignore[attr-defined]
        "rejected by the gate" if report.decision is not None and not report.decision.passed
        else "nothing learned" if not report.files
        else "proposed as a PR" if report.publish is not None else "applied" if report.applied else "accepted"
    )
    if as_json:
        click.echo(json.dumps({
            "train_success_rate": report.train_success_rate,
            "train": [r.__dict__ for r in report.train],
            "files": sorted(report.files),
            "summary": report.summary,
            "accepted": accepted,
            "reasons": list(report.decision.reasons) if report.decision else [],
            "applied": report.applied,
            "pr": getattr(report.publish, "pr_url", None) if report.publish else None,
            "published": report.publish.model_dump(exclude={"body"}) if report.publish is not None else None,
            "reason": reason,
            "cost": report.cost.to_dict() if report.cost is not None else [],
        }, indent=2, default=str))
    else:
        click.echo(f"train: {sum(r.success for r in report.train)}/{len(report.train)} succeeded")
        for line in report.summary:
            click.echo(f"  {line}")
        if not report.files:
            click.echo("nothing learned: the cheatsheet is unchanged")
        elif report.report_markdown and not output:
            click.echo(report.report_markdown)
        if report.applied:
            click.echo(f"applied {len(report.files)} file(s) to the working tree")
        if report.publish is not None:
            from selfheal.gitops.outcome import describe_publish

            for line in describe_publish(report.publish, files=len(report.files)):
                click.echo(line)
        elif accepted and not (apply_ or publish):
            click.echo("accepted: rerun with --apply or --pr to keep it")
    if report.decision is not None and not report.decision.passed:
        for reason in report.decision.reasons:
            click.echo(f"gate failed: {reason}", err=True)
        ctx.exit(1)


def _optimize_context(ctx: click.Context, settings: object, err: object, *, dataset: str | None, train_split: str,
                      dev_split: str, test_split: str, names: list[str] | None, epochs: int | None, jobs: int,
                      apply_: bool, publish: bool, output: str | None, as_json: bool,
                      since: str | None = None, base: str | None = None, session: object = None,
                      reason: str | None = None, keep_dir: str | None = None) -> None:
    """The default mode: :func:`selfheal.optimize.context_opt.optimize_context`, rendered."""
    from pathlib import Path

    from selfheal.optimize.context_opt import optimize_context
    from selfheal.yamlio import atomic_write_text

    report = optimize_context(
        settings, dataset=dataset, train_split=train_split, dev_split=dev_split,  # type: ignore[arg-type]
        test_split=test_split, names=names, epochs=epochs, jobs=jobs, apply=apply_, publish=publish,
        progress=sys.stderr.isatty(), on_event=lambda m: err.print(m, markup=False),  # type: ignore[attr-defined]
        since=since, base=base, reason=reason, keep_dir=Path(keep_dir) if keep_dir else None,
    )
    if session is not None:
        session.outcome = (  # type: ignore[attr-defined]
            ("proposed as a PR" if report.publish is not None else "applied" if report.applied else "proposed")
            if report.proposed else "rejected by the gate" if report.comparison is not None
            else "nothing proposed" + (f": {report.reasons[0]}" if report.reasons else "")
        )
    if output and report.markdown:
        atomic_write_text(Path(output), report.markdown)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        click.echo(report.markdown or "\n".join(report.reasons))
        if report.publish is not None:
            from selfheal.gitops.outcome import describe_publish

            for line in describe_publish(report.publish, files=len(report.files)):
                click.echo(line)
        elif report.applied:
            click.echo(f"applied {len(report.files)} file(s) to the working tree")
        elif report.proposed:
            click.echo("accepted: rerun with --apply or --pr to keep it")
    if not report.proposed:
        for reason in report.reasons:
            click.echo(f"nothing proposed: {reason}", err=True)
    if report.comparison is not None and not report.proposed:
        ctx.exit(1)
