"""Git plumbing shared by publish, history, blame and rollback (GitPython over the git CLI).

Every commit selfheal makes passes its identity explicitly as author and
committer (environment variables), so a bot in CI never commits as git's
``root@host`` fallback, and nothing here edits the user's git config.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git

from selfheal.errors import SelfhealError
from selfheal.gitops.settings import GitopsSettings

_IN_PROGRESS = {
    "MERGE_HEAD": "a merge",
    "CHERRY_PICK_HEAD": "a cherry-pick",
    "REVERT_HEAD": "a revert",
    "rebase-merge": "a rebase",
    "rebase-apply": "a rebase (or git am)",
    "BISECT_LOG": "a bisect",
    "sequencer": "a cherry-pick/revert sequence",
}


class GitError(SelfhealError):
    """A git operation selfheal needs failed or the repository is not in a state to do it."""


def open_repo(root: Path) -> git.Repo:
    """The repository containing ``root`` (one line error when there is none)."""
    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise GitError(f"{root}: not inside a git repository (run `git init` first)") from None


def toplevel(repo: git.Repo) -> Path:
    if repo.working_tree_dir is None:
        raise GitError(f"{repo.git_dir}: a bare repository has no working tree")
    return Path(repo.working_tree_dir)


def identity_env(cfg: GitopsSettings) -> dict[str, str]:
    """Author and committer for a selfheal commit, whatever git's own config says."""
    return {
        "GIT_AUTHOR_NAME": cfg.author_name,
        "GIT_AUTHOR_EMAIL": cfg.author_email,
        "GIT_COMMITTER_NAME": cfg.author_name,
        "GIT_COMMITTER_EMAIL": cfg.author_email,
    }


def has_remote(repo: git.Repo, name: str) -> bool:
    return any(r.name == name for r in repo.remotes)


def remote_url(repo: git.Repo, name: str) -> str | None:
    if not has_remote(repo, name):
        return None
    try:
        return str(repo.git.remote("get-url", name))
    except git.GitCommandError:
        return None


def ref_exists(repo: git.Repo, ref: str) -> bool:
    try:
        repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def resolve_commit(repo: git.Repo, rev: str) -> str | None:
    """Full sha of ``rev`` when it names a commit, else None."""
    if not rev or rev.startswith("-"):
        return None
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}"))
    except git.GitCommandError:
        return None


def default_branch(repo: git.Repo, remote: str) -> str:
    """The remote's default branch name, else the current branch's upstream, else ``main``."""
    if has_remote(repo, remote):
        try:
            ref = str(repo.git.symbolic_ref("--quiet", f"refs/remotes/{remote}/HEAD"))
            return ref.split(f"refs/remotes/{remote}/", 1)[1]
        except git.GitCommandError:
            pass
        try:
            out = str(repo.git.ls_remote("--symref", remote, "HEAD", kill_after_timeout=20))
            m = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", out, re.MULTILINE)
            if m:
                return m.group(1)
        except git.GitCommandError:
            pass
    try:
        upstream = str(repo.git.rev_parse("--abbrev-ref", "--symbolic-full-name", "@{u}"))
        return upstream.split("/", 1)[1] if "/" in upstream else upstream
    except git.GitCommandError:
        pass
    return "main"


def base_ref(repo: git.Repo, branch: str, remote: str) -> str:
    """The ref to branch from: the remote-tracking ``<remote>/<branch>`` if known, else the local branch."""
    for ref in (f"refs/remotes/{remote}/{branch}", f"refs/heads/{branch}", branch):
        if ref_exists(repo, ref):
            return ref
    raise GitError(f"base branch '{branch}' not found (fetch it, or set gitops.base / pass --base)")


def branch_exists(repo: git.Repo, branch: str, remote: str | None = None) -> bool:
    refs = [f"refs/heads/{branch}"] + ([f"refs/remotes/{remote}/{branch}"] if remote else [])
    return any(ref_exists(repo, r) for r in refs)


def current_branch(repo: git.Repo) -> str | None:
    """The checked-out branch, None on a detached HEAD."""
    try:
        return str(repo.git.symbolic_ref("--quiet", "--short", "HEAD"))
    except git.GitCommandError:
        return None


def operation_in_progress(repo: git.Repo) -> str | None:
    """'a merge', 'a rebase', ... when one is half done in this worktree."""
    gitdir = Path(repo.git_dir)
    for name, what in _IN_PROGRESS.items():
        if (gitdir / name).exists():
            return what
    return None


def dirty_paths(repo: git.Repo) -> list[str]:
    """Tracked files modified in the working tree or staged (untracked files do not count)."""
    out = str(repo.git.status("--porcelain", "--untracked-files=no", "-z"))
    return sorted({item[3:] for item in out.split("\0") if len(item) > 3})


def ensure_clean(repo: git.Repo) -> None:
    """Refuse (one line, exit 2) unless the worktree is on a branch, clean and not mid-operation."""
    what = operation_in_progress(repo)
    if what:
        raise GitError(f"{what} is in progress: finish or abort it first")
    if current_branch(repo) is None:
        raise GitError("HEAD is detached: check out a branch first")
    dirty = dirty_paths(repo)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise GitError(f"uncommitted changes in {shown}: commit or stash them first")


def show_file(repo: git.Repo, rev: str, path: str) -> str | None:
    """A file's content at a commit, None when it does not exist there."""
    try:
        return str(repo.git.show(f"{rev}:{path}", strip_newline_in_stdout=False))
    except git.GitCommandError:
        return None


def checked(call: Callable[[], Any], what: str) -> Any:
    """Run a git call; its failure becomes one line naming what selfheal was doing."""
    try:
        return call()
    except git.GitCommandError as exc:
        detail = " ".join(str(exc.stderr or exc).replace("stderr:", "").split()).strip(" '")
        raise GitError(f"{what} failed: {detail[:300]}") from None
