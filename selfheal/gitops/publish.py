"""Publish a change set: a branch and a commit with trailers, pushed, and a pull request.

The user's working tree is never touched: the commit is made in a temporary
``git worktree`` on a new branch at the base ref. Approval is the PR review;
selfheal never pushes to the default branch. Without a GitHub token the PR
body is written to ``.selfheal/prs/`` with the command that opens it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import git
from pydantic import BaseModel, ConfigDict, Field

from selfheal.errors import SelfhealError
from selfheal.gitops.changes import ItemChange, describe_file, touched_ids
from selfheal.gitops.changeset import T_PR, ChangeSet, FileChange, commit_message
from selfheal.gitops.github import GitHub, api_url, github_token, web_url
from selfheal.gitops.ledger import PublishRecord, append_record, read_records
from selfheal.gitops.preflight import PublishPlan, plan_publish, repo_slug, resolve_base, strip_remote
from selfheal.gitops.prbody import change_marker, render_pr_body
from selfheal.gitops.repo import (
    GitError,
    branch_exists,
    checked,
    identity_env,
    open_repo,
    ref_exists,
    show_file,
    toplevel,
)
from selfheal.gitops.settings import GitopsSettings, gitops_settings
from selfheal.scratch import new_item, register, sweep, temp_path, unregister
from selfheal.yamlio import atomic_write_text

__all__ = ["PublishPlan", "PublishResult", "publish_change", "repo_slug", "resolve_base"]

NOTES_REF = "refs/notes/selfheal"


class PublishResult(BaseModel):
    """Where the change went: branch, commit, and the PR (or the PR body file to open it from)."""

    model_config = ConfigDict(extra="forbid")

    branch: str
    base: str
    commit: str | None = None         # None: dry run, or the branch already had exactly this change
    pushed: bool = False
    pr_url: str | None = None
    pr_number: int | None = None
    pr_body_path: str | None = None   # written when no PR was opened through the API
    open_hint: str | None = None      # how to open the PR by hand
    updated: bool = False             # an existing PR/branch of the same change was updated
    not_pushed: str | None = None     # why the branch was not pushed (None: pushed, or a dry run)
    no_pr: str | None = None          # why no PR was opened or updated (None: it was)
    finish: list[str] = Field(default_factory=list)  # the exact commands that finish the job by hand
    dry_run: bool = False
    fingerprint: str
    entries: list[str] = Field(default_factory=list)
    body: str = Field(default="", repr=False)


def _unique_branch(repo: git.Repo, branch: str, remote: str) -> str:
    """``branch``, or ``branch-2``, ``-3``... when a local or remote-tracking branch has the name."""
    candidate, n = branch, 2
    while branch_exists(repo, candidate, remote):
        candidate = f"{branch}-{n}"
        n += 1
    return candidate


def _write_files(root: Path, files: list[FileChange]) -> None:
    for f in files:
        target = root / f.path
        if f.content is None:
            if target.is_file() or target.is_symlink():
                target.unlink()
        else:
            atomic_write_text(target, f.content)


def commit_in_worktree(
    repo: git.Repo,
    *,
    branch: str,
    start: str | None,
    files: list[FileChange],
    message: str,
    env: dict[str, str],
    state_dir: Path | None = None,
) -> str | None:
    """Commit ``files`` on ``branch`` in a temporary worktree; ``start`` given creates the branch there.

    Returns the new commit's sha, or None when the branch already has exactly
    these contents (a new branch is then deleted again). ``state_dir``
    registers the worktree (see :mod:`selfheal.scratch`) so a killed publish
    leaves nothing checked out after the next start.
    """
    tmp = temp_path("selfheal-wt-")
    wt = tmp / "wt"
    item = None
    if state_dir is not None:
        item = register(state_dir, new_item("worktree", "publish", root=str(tmp), worktree=str(wt),
                                            repo=str(repo.working_tree_dir), branch=branch,
                                            delete_branch=start is not None))
    tmp.mkdir(mode=0o700)
    created = False
    ok = False
    try:
        if start is not None:
            checked(lambda: repo.git.worktree("add", "--quiet", "-b", branch, str(wt), start), f"creating branch {branch}")
            created = True
        else:
            checked(lambda: repo.git.worktree("add", "--quiet", str(wt), branch), f"checking out {branch}")
        work = git.Repo(wt)
        _write_files(wt, files)
        paths = [f.path for f in files]
        checked(lambda: work.git.add("-A", "--", *paths), "staging the change")
        if not work.git.diff("--cached", "--name-only"):
            return None
        msg_file = tmp / "message.txt"
        msg_file.write_text(message, encoding="utf-8")
        # --no-verify: the user's local hooks are not the bot's gate; the PR's checks are.
        checked(lambda: work.git.commit("--quiet", "--no-verify", "--cleanup=whitespace", "-F", str(msg_file), env=env),
             "committing the change")
        sha = work.head.commit.hexsha
        ok = True
        return sha
    finally:
        try:
            repo.git.worktree("remove", "--force", str(wt))
        except git.GitCommandError:
            shutil.rmtree(wt, ignore_errors=True)
            repo.git.worktree("prune")
        shutil.rmtree(tmp, ignore_errors=True)
        if created and not ok:
            try:
                repo.git.branch("-D", branch)
            except git.GitCommandError:
                pass
        if item is not None and state_dir is not None:
            unregister(state_dir, item.id)


def push_branch(repo: git.Repo, remote: str, branch: str, *, default: str) -> None:
    """``git push <remote> <branch>``; refuses the default branch (approval is the PR review)."""
    if strip_remote(branch, remote) in {default, "HEAD"}:
        raise GitError(f"refusing to push to the default branch '{default}': selfheal only pushes its own branches")
    checked(lambda: repo.git.push("--quiet", remote, f"refs/heads/{branch}:refs/heads/{branch}", kill_after_timeout=300),
         f"pushing {branch} to {remote}")


def _add_note(repo: git.Repo, sha: str, text: str, env: dict[str, str]) -> None:
    try:
        repo.git.notes("--ref", NOTES_REF, "add", "-f", "-m", text, sha, env=env)
    except git.GitCommandError:
        pass  # a note is a convenience for history; the publish record has the same link


def _run_url(settings: Any, cfg: GitopsSettings) -> Callable[[str], str | None] | None:
    tracing = getattr(settings, "tracing", None)
    if cfg.langsmith_project_url and tracing is not None and getattr(tracing, "langsmith", False):
        base = cfg.langsmith_project_url.rstrip("/")
        return lambda rid: f"{base}/r/{rid}"
    return None


def _existing_branch_for(settings: Any, repo: git.Repo, fingerprint: str, remote: str) -> str | None:
    """A branch this same change was already published to (from the publish records)."""
    for rec in reversed(read_records(settings)):
        if rec.fingerprint == fingerprint and branch_exists(repo, rec.branch, remote):
            return rec.branch
    return None


def _checkout_start(repo: git.Repo, branch: str, remote: str) -> str | None:
    """None when the local branch exists (check it out), else the remote-tracking ref to create it from."""
    if ref_exists(repo, f"refs/heads/{branch}"):
        return None
    if not ref_exists(repo, f"refs/remotes/{remote}/{branch}"):
        checked(lambda: repo.git.fetch("--quiet", remote, f"refs/heads/{branch}:refs/remotes/{remote}/{branch}"),
             f"fetching {branch}")
    return f"refs/remotes/{remote}/{branch}"


def publish_change(
    settings: Any,
    change: ChangeSet,
    *,
    base: str | None = None,
    push: bool | None = None,
    open_pr: bool = True,
    dry_run: bool = False,
    force: bool = False,
    today: date | None = None,
    plan: PublishPlan | None = None,
) -> PublishResult:
    """Turn ``change`` into a branch ``selfheal/<kind>/<date>-<slug>``, a commit, a push and a PR.

    ``push`` None pushes when the remote (``gitops.remote``) exists; ``force``
    bypasses the rate limit; ``dry_run`` computes the branch and PR body only (no git writes, no rate limit).
    ``plan``: the checks :func:`plan_publish` made before the change was computed (made here when None).
    The same change (same file contents) updates its open PR instead of opening another.
    The result says what did not happen (``not_pushed``, ``no_pr``) and the commands that finish it (``finish``).
    """
    if not change.files:
        raise SelfhealError("nothing to publish: the change set has no files")
    cfg = gitops_settings(settings)
    if plan is None:
        plan = plan_publish(settings, change.kind, base=base, push=push, open_pr=open_pr, force=force,
                            check_limits=not dry_run)
    repo = open_repo(Path(settings.root))
    toplevel(repo)
    remote, default, base_branch, start = plan.remote, plan.default, plan.base, plan.start

    state_dir = _state_dir(settings)
    if state_dir is not None and not dry_run:
        sweep(state_dir)  # worktrees and branches of publishes that were killed
    fingerprint = change.fingerprint()
    token = github_token()
    slug = plan.slug
    gh = GitHub(slug, token, timeout_s=cfg.api_timeout_s) if (plan.open_pr and token and slug) else None
    pending = None
    try:
        proposed = change.branch_name(today)
        existing_pr: dict[str, Any] | None = None
        reuse: str | None = None
        if gh is not None:
            existing_pr = gh.find_open_pr(marker=change_marker(fingerprint)) or gh.find_open_pr(head_branch=proposed)
            if existing_pr is not None:
                reuse = str(existing_pr["head"]["ref"])
        if reuse is None:
            reuse = _existing_branch_for(settings, repo, fingerprint, remote)
        branch = reuse or _unique_branch(repo, proposed, remote)
        if branch in {default, base_branch}:
            raise GitError(f"refusing to commit to the default branch '{branch}'")

        diffs = [(f.path, show_file(repo, start, f.path), f.content) for f in change.files]
        items: list[ItemChange] = []
        for path, old, new in diffs:
            items += describe_file(path, old, new)
        entries = touched_ids(items)
        body = render_pr_body(change, items, diffs, fingerprint=fingerprint, run_url=_run_url(settings, cfg))
        result = PublishResult(branch=branch, base=base_branch, fingerprint=fingerprint, entries=entries,
                               body=body, dry_run=dry_run, updated=reuse is not None)
        if dry_run:
            return result

        env = identity_env(cfg)
        message = commit_message(change, entries)
        if reuse is None and state_dir is not None:
            # A new branch stays selfheal's temporary one until the publish is recorded.
            pending = register(state_dir, new_item("branch", "publish", repo=str(repo.working_tree_dir),
                                                   branch=branch, delete_branch=True))
        if reuse is None:
            sha = commit_in_worktree(repo, branch=branch, start=start, files=change.files, message=message, env=env,
                                     state_dir=state_dir)
            if sha is None:
                raise SelfhealError(f"nothing to publish: {base_branch} already has these contents")
        else:
            sha = commit_in_worktree(repo, branch=branch, start=_checkout_start(repo, branch, remote),
                                     files=change.files, message=message, env=env, state_dir=state_dir)
        result.commit = sha

        if plan.push:
            push_branch(repo, remote, branch, default=default)
            result.pushed = True
        else:
            result.not_pushed = next((n.split(": ", 1)[1] for n in plan.notes if n.startswith("the branch stays")),
                                     "pushing is off")

        if gh is not None and result.pushed:
            labels = list(dict.fromkeys([*cfg.labels, f"selfheal:{change.kind}"]))
            if existing_pr is not None:
                pr = gh.update_pr(int(existing_pr["number"]), title=change.title, body=body)
            else:
                pr = gh.create_pr(title=change.title, head=branch, base=base_branch, body=body)
            gh.add_labels(int(pr["number"]), labels)
            result.pr_number = int(pr["number"])
            result.pr_url = str(pr.get("html_url") or pr.get("url") or "")
            if sha is not None and result.pr_url:
                _add_note(repo, sha, f"{T_PR}: {result.pr_url}", env)
        else:
            result.no_pr = _why_no_pr(plan, result)
            _write_body_file(settings, cfg, result, change, slug)

        append_record(settings, PublishRecord(
            time=datetime.now(UTC), kind=change.kind, title=change.title, branch=branch, base=base_branch,
            commit=sha, fingerprint=fingerprint, pr_url=result.pr_url, pr_number=result.pr_number,
            updated=result.updated, entries=entries,
        ))
        if pending is not None and state_dir is not None:
            unregister(state_dir, pending.id)  # recorded: the branch is the PR's now, not temporary
            pending = None
        return result
    finally:
        if pending is not None and state_dir is not None:
            unregister(state_dir, pending.id)
        if gh is not None:
            gh.close()
        repo.close()


def _why_no_pr(plan: PublishPlan, result: PublishResult) -> str:
    if not result.pushed:
        return "the branch was not pushed"
    for note in plan.notes:
        if note.startswith("no PR will be opened: "):
            return note.split(": ", 1)[1]
    return "opening PRs is off"


def _state_dir(settings: Any) -> Path | None:
    """Where the scratch registry lives (None for settings without a state directory)."""
    state = getattr(settings, "state_dir", None)
    return Path(state) if state is not None else None


def _write_body_file(settings: Any, cfg: GitopsSettings, result: PublishResult, change: ChangeSet,
                     slug: str | None) -> None:
    """The PR body as a file, and the one command (or URL) that opens the PR from it."""
    path = Path(settings.path(cfg.pr_dir) if hasattr(settings, "path") else Path(settings.root) / cfg.pr_dir)
    path = path / f"{result.branch.replace('/', '-')}.md"
    atomic_write_text(path, result.body)
    result.pr_body_path = str(path)
    title = change.title.replace('"', '\\"')
    create = f'gh pr create --head {result.branch} --base {result.base} --title "{title}" --body-file {path}'
    hint = create
    if slug:
        hint += f"\n  or open {web_url(api_url())}/{slug}/compare/{result.base}...{result.branch}?expand=1"
    finish = [create]
    if not result.pushed:
        hint = f"git push {cfg.remote} {result.branch}\n  then " + hint
        push = f"git push -u {cfg.remote} {result.branch}"
        if result.not_pushed and result.not_pushed.startswith("no remote"):
            push = f"git remote add {cfg.remote} <URL> && " + push
        finish.insert(0, push)
    result.open_hint = hint
    result.finish = finish
