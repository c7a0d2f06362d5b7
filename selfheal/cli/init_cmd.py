"""``selfheal init``: scaffold selfheal into an existing agent repository (never overwriting)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from selfheal.cli.options import echo_json, json_option


def _default_owner(root: Path) -> str:
    """@<owner> of the GitHub remote when there is one, else a placeholder to edit."""
    try:
        import git

        from selfheal.gitops.github import parse_repo_slug

        repo = git.Repo(root, search_parent_directories=True)
        for remote in repo.remotes:
            slug = parse_repo_slug(next(iter(remote.urls), ""))
            if slug:
                return "@" + slug.split("/")[0]
    except Exception:  # no repository or no remote: the placeholder below
        pass
    return "@owner"


@click.command("init")
@click.argument("path", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--agent", default="lambda_ops", show_default=True, help="Agent name (prompts/<agent>/, evals/<agent>/).")
@click.option("--owner", default=None, help="CODEOWNERS reviewer of prompts/ and cheatsheet/ (default: @<remote owner>).")
@click.option("--force-missing-only", "missing_only", is_flag=True,
              help="In a repository set up already, create only the files that are missing.")
@json_option
def init(path: Path, agent: str, owner: str | None, missing_only: bool, as_json: bool) -> None:
    """Create selfheal.yaml, prompts/, cheatsheet/, evals/, the CI workflows and CODEOWNERS.

    Existing files are never overwritten: they are reported as kept.
    """
    from selfheal.scaffold import scaffold

    root = path.resolve()
    report = scaffold(root, agent, owner=owner or _default_owner(root), missing_only=missing_only)
    if as_json:
        echo_json({"root": str(root), "agent": agent, **dataclasses.asdict(report)})
        return
    for rel in report.created:
        click.echo(f"created {rel}")
    for rel in report.appended:
        click.echo(f"appended to {rel}")
    for rel in report.kept:
        click.echo(f"kept existing {rel}")
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.created or report.appended:
        click.echo("next: review the files, run `selfheal lint`, commit, and add OPENAI_API_KEY "
                   "(and LANGSMITH_API_KEY) as repository secrets for the workflows")
