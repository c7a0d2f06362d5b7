"""A throwaway checkout of a git ref, for evaluating the baseline side of a comparison.

``git worktree add --detach`` checks the ref out in a temporary directory that
shares the object store: the user's working tree, index, HEAD and stash are
never touched (no stash/checkout dance), and the checkout is removed again
however the block exits, Ctrl-C included.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git

from selfheal.errors import SelfhealError


def open_repo(path: Path) -> git.Repo:
    """The git repository containing ``path``; a one-line error when there is none."""
    try:
        return git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise SelfhealError(f"{path} is not inside a git repository; --against needs one") from None


def resolve_ref(repo: git.Repo, ref: str) -> str:
    """The commit id ``ref`` names; ``unknown git ref 'x'`` otherwise."""
    if not ref or ref.startswith("-"):
        raise SelfhealError(f"unknown git ref '{ref}'")
    try:
        return str(repo.git.rev_parse("--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")).strip()
    except git.GitCommandError:
        raise SelfhealError(f"unknown git ref '{ref}'") from None


@contextmanager
def ref_worktree(repo_root: Path, ref: str) -> Iterator[Path]:
    """Yield a detached checkout of ``ref`` (the repository's top level) and remove it afterwards."""
    repo = open_repo(Path(repo_root))
    commit = resolve_ref(repo, ref)
    tmp = Path(tempfile.mkdtemp(prefix="selfheal-eval-"))
    path = tmp / "worktree"
    added = False
    try:
        try:
            repo.git.worktree("add", "--detach", str(path), commit)
        except git.GitCommandError as exc:
            detail = (exc.stderr or str(exc)).strip().splitlines()
            raise SelfhealError(
                f"could not check out '{ref}' in a temporary worktree: {detail[-1] if detail else exc}"
            ) from None
        added = True
        yield path
    finally:
        try:
            if added:
                try:
                    repo.git.worktree("remove", "--force", "--force", str(path))
                except git.GitCommandError:
                    pass  # already gone or locked: the directory is removed and pruned below
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                repo.git.worktree("prune")
            except git.GitCommandError:
                pass
            repo.close()
