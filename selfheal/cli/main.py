"""The ``selfheal`` command: a lazy click group over thin command modules.

Subcommands are imported only when invoked, so ``selfheal --help`` does not
pay for LangGraph, boto3 or the model stack.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from selfheal import __version__

# name -> (module, attribute, one-line help shown by --help without importing it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "agents": ("selfheal.cli.agents_cmd", "agents", "List the agent plug-ins this repository can see."),
    "run": ("selfheal.cli.run_cmd", "run", "Run the agent on a task (or a scenario's task)."),
    "lint": ("selfheal.cli.lint_cmd", "lint", "Validate context, templates and cheatsheet files."),
    "scenarios": ("selfheal.cli.scenarios_cmd", "scenarios", "List the agent's scenarios."),
    "model": ("selfheal.cli.model_cmd", "model", "Prepare and inspect the chat model."),
    "traces": ("selfheal.cli.traces_cmd", "traces", "List, show, summarise, sync and prune traces."),
    "feedback": ("selfheal.cli.feedback_cmd", "feedback", "Score a run (with a comment or correction)."),
    "dataset": ("selfheal.cli.dataset_cmd", "dataset", "List, show, push and pull evaluation datasets."),
    "eval": ("selfheal.cli.eval_cmd", "eval_cmd", "Evaluate the context and cheatsheet (optionally against a git ref)."),
    "cache": ("selfheal.cli.cache_cmd", "cache", "Show what the response caches cover; prune unused entries."),
    "optimize": ("selfheal.cli.optimize_cmd", "optimize", "Optimize the context from traces; propose what proves better."),
    "curate": ("selfheal.cli.curate_cmd", "curate", "Batch-curate the cheatsheet from stored traces and feedback."),
    "history": ("selfheal.cli.git_cmd", "history", "List improvement commits, newest first."),
    "blame": ("selfheal.cli.git_cmd", "blame", "Commits and runs behind one cheatsheet entry or instruction."),
    "rollback": ("selfheal.cli.git_cmd", "rollback", "Revert an improvement (or one entry's change)."),
    "init": ("selfheal.cli.init_cmd", "init", "Scaffold selfheal into an existing agent repository."),
    "ask": ("selfheal.cli.ask_cmd", "ask", "Ask about runs in plain words: the filter used, then a summary."),
    "explain": ("selfheal.cli.explain_cmd", "explain", "Why a run did what it did: steps, evidence, entries, cited."),
    "teach": ("selfheal.cli.teach_cmd", "teach", "Teach the agent a rule: a user-authored entry or instruction, as a PR."),
    "cheatsheet": ("selfheal.cli.cheatsheet_cmd", "cheatsheet", "List, show and search cheatsheet entries with their stats."),
    "review": ("selfheal.cli.review_cmd", "review", "List open improvement branches/PRs with their eval summaries."),
    "approve": ("selfheal.cli.review_cmd", "approve", "Re-run the gate on an improvement; merge it only if it passes."),
    "chat": ("selfheal.cli.chat_cmd", "chat", "Talk to selfheal: ask, explain, teach, review, approve, report."),
    "report": ("selfheal.cli.report_cmd", "report", "Write a self-contained HTML report with plots."),
    "status": ("selfheal.cli.status_cmd", "status", "Each optimization trigger's state (fired, quiet, handled) and why."),
    "doctor": ("selfheal.cli.doctor_cmd", "doctor", "Repair what killed commands left (worktrees, temp dirs, open runs)."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        cmd: click.Command = getattr(module, spec[1])
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="selfheal")
@click.option(
    "-C",
    "--repo",
    "repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Repository root (default: nearest directory with selfheal.yaml).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="SELFHEAL_CONFIG",
    help="Path to selfheal.yaml.",
)
@click.option(
    "--agent",
    "agent",
    default=None,
    metavar="NAME",
    help="Agent to work on (overrides selfheal.yaml's agent and SELFHEAL_AGENT).",
)
@click.pass_context
def cli(ctx: click.Context, repo: Path | None, config_path: Path | None, agent: str | None) -> None:
    """selfheal: self-improving LangGraph agents, reviewed in git.

    The agent's context and cheatsheet are files in this repository; every run is
    traced locally (and to LangSmith when configured).
    """
    # Before any command builds a model: LangChain's env-var tracer would upload unredacted
    # (the prefix test spares commands run without such variables the import).
    if any(k.startswith(("LANGSMITH_TRACING", "LANGCHAIN_TRACING", "LANGCHAIN_HANDLER")) for k in os.environ):
        from selfheal.tracing.env_guard import disable_env_tracing

        disable_env_tracing()
    from selfheal.redact import install_log_redaction

    install_log_redaction()  # warnings quote model replies and tool errors
    ctx.obj = {"repo": repo, "config_path": config_path, "agent": agent}


def load_cli_settings(ctx: click.Context, **overrides: Any) -> Any:
    """Settings for the repository the user pointed at (shared by commands)."""
    from selfheal.config import load_settings

    obj = ctx.find_root().obj or {}
    if obj.get("agent"):
        overrides = {"agent": obj["agent"], **overrides}
    return load_settings(obj.get("repo"), config_path=obj.get("config_path"), overrides=overrides or None)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors are one line on stderr and a non-zero exit."""
    from selfheal.errors import SelfhealError

    try:
        # standalone_mode=False returns ctx.exit()'s code instead of raising it.
        rv = cli.main(args=argv, prog_name="selfheal", standalone_mode=False)
    except SelfhealError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
