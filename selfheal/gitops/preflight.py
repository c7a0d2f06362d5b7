"""Everything publishing needs, checked before any model call is spent.

``selfheal curate --pr`` and ``selfheal optimize --pr`` learn for minutes
before they publish; a missing base branch, remote, token or an exhausted rate
limit found only then wastes that work. :func:`plan_publish` checks them first
and says up front what will not happen (no push without a remote, no PR without
a token), so the final report can only confirm it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import git

from selfheal.gitops.github import GitHub, github_token, parse_repo_slug
from selfheal.gitops.ledger import RATE_LIMITED_KINDS, check_rate_limit
from selfheal.gitops.repo import (
    GitError,
    base_ref,
    default_branch,
    has_remote,
    open_repo,
    remote_url,
    toplevel,
)
from selfheal.gitops.settings import GitopsSettings, gitops_settings

#: The secret the scaffolded optimize workflow reads (GITHUB_TOKEN cannot start the eval gate).
BOT_TOKEN_HINT = "set GITHUB_TOKEN (in the optimize workflow: the SELFHEAL_BOT_TOKEN secret or a GitHub App)"


@dataclass(frozen=True)
class PublishPlan:
    """Where a change will go, decided before the work that produces it."""

    base: str                  # the branch the PR targets
    start: str                 # the ref the new branch starts from
    default: str               # the remote's default branch (never pushed to)
    remote: str
    push: bool                 # the branch will be pushed to ``remote``
    slug: str | None           # owner/name on GitHub, when known
    open_pr: bool              # a PR will be opened (or updated) through the API
    notes: tuple[str, ...] = field(default=())  # what will not happen, and why


def in_ci(env: dict[str, str] | None = None) -> bool:
    """True in a GitHub Actions job, where nobody can finish a half-published change by hand."""
    env = dict(os.environ) if env is None else env
    return env.get("GITHUB_ACTIONS") == "true"


def strip_remote(name: str, remote: str) -> str:
    for prefix in ("refs/heads/", f"refs/remotes/{remote}/", f"{remote}/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def repo_slug(repo: git.Repo, cfg: GitopsSettings) -> str | None:
    """owner/name: gitops.github_repo, else GITHUB_REPOSITORY, else parsed from the remote URL."""
    if cfg.github_repo:
        return cfg.github_repo
    if os.environ.get("GITHUB_REPOSITORY"):
        return os.environ["GITHUB_REPOSITORY"]
    url = remote_url(repo, cfg.remote)
    return parse_repo_slug(url) if url else None


def resolve_base(repo: git.Repo, cfg: GitopsSettings, base: str | None = None, *,
                 default: str | None = None) -> tuple[str, str]:
    """(branch name a PR targets, ref to start the branch from): ``base``, gitops.base, the default branch."""
    default = default or default_branch(repo, cfg.remote)
    name = strip_remote(base or cfg.base or default, cfg.remote)
    return name, base_ref(repo, name, cfg.remote)


def plan_publish(
    settings: Any,
    kind: str,
    *,
    base: str | None = None,
    push: bool | None = None,
    open_pr: bool = True,
    force: bool = False,
    check_limits: bool = True,
    now: datetime | None = None,
) -> PublishPlan:
    """Check the repository, base branch, remote, token and rate limit; raise before any work is done.

    ``push`` None pushes when the remote exists. On a CI runner a missing
    remote or token is an error (nobody is there to finish by hand); on a
    workstation it is a note and the report ends with the commands to run.
    """
    cfg = gitops_settings(settings)
    repo = open_repo(Path(settings.root))
    try:
        toplevel(repo)
        remote = cfg.remote
        remote_ok = has_remote(repo, remote)
        ci = in_ci()
        if push and not remote_ok or (ci and not remote_ok and push is None):
            raise GitError(f"no remote '{remote}' to push to (add one with `git remote add {remote} URL`, "
                           "or set gitops.remote)")
        default = default_branch(repo, remote)
        name, start = resolve_base(repo, cfg, base, default=default)
        do_push = remote_ok if push is None else push
        notes: list[str] = []
        if not do_push:
            notes.append(f"the branch stays local: no remote '{remote}'" if not remote_ok
                         else "the branch stays local: pushing is off")
        slug = repo_slug(repo, cfg)
        token = github_token()
        will_open = bool(open_pr and do_push and slug and token)
        if open_pr and do_push and not will_open:
            if slug and not token:
                if ci:
                    raise GitError(f"no GitHub token to open the pull request on {slug}: {BOT_TOKEN_HINT}")
                notes.append(f"no PR will be opened: no GitHub token ({BOT_TOKEN_HINT})")
            elif not slug:
                notes.append(f"no PR will be opened: remote '{remote}' is not on GitHub "
                             "(set gitops.github_repo to owner/name if it is)")
        if check_limits and not force:
            _check_limits(settings, cfg, kind, slug=slug if will_open else None, token=token, now=now)
        return PublishPlan(base=name, start=start, default=default, remote=remote, push=do_push, slug=slug,
                           open_pr=will_open, notes=tuple(notes))
    finally:
        repo.close()


def _check_limits(settings: Any, cfg: GitopsSettings, kind: str, *, slug: str | None, token: str | None,
                  now: datetime | None) -> None:
    """The rate limit, counted from the repository's bot PRs on GitHub when it can be asked."""
    if kind not in RATE_LIMITED_KINDS:
        return
    now = now or datetime.now(UTC)
    opened: list[datetime] | None = None
    where = ""
    if slug and token:
        prefixes = tuple(f"selfheal/{k}/" for k in RATE_LIMITED_KINDS)
        with GitHub(slug, token, timeout_s=cfg.api_timeout_s) as gh:
            opened = gh.opened_since(now - timedelta(days=1), head_prefixes=prefixes)
        where = f" on {slug}"
    check_rate_limit(settings, cfg, kind, now=now, opened=opened, where=where)
