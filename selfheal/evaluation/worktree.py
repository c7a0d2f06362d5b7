"""A throwaway checkout of a git ref, for evaluating the baseline side of a comparison.

``git worktree add --detach`` checks the ref out in a temporary directory that
shares the object store: the user's working tree, index, HEAD and stash are
never touched (no stash/checkout dance), and the checkout is removed again
however the block exits, Ctrl-C included. Given the state directory, the
checkout is registered in :mod:`selfheal.scratch` before it is made, so one
left by a SIGKILL is removed (with git's admin dir) by the next ``eval
--against`` or ``selfheal doctor``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git

from selfheal.errors import SelfhealError
from selfheal.scratch import new_item, register, sweep, temp_path, unregister


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
def ref_worktree(repo_root: Path, ref: str, *, state_dir: Path | None = None) -> Iterator[Path]:
    """Yield a detached checkout of ``ref`` (the repository's top level) and remove it afterwards.

    ``state_dir`` registers the checkout (and first sweeps ones whose process died).
    """
    repo = open_repo(Path(repo_root))
    commit = resolve_ref(repo, ref)
    tmp = temp_path("selfheal-eval-")
    path = tmp / "worktree"
    item = None
    if state_dir is not None:
        sweep(state_dir)
        item = register(state_dir, new_item("worktree", "eval --against", root=str(tmp), worktree=str(path),
                                            repo=str(repo.working_tree_dir)))
    tmp.mkdir(mode=0o700)
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
            if item is not None and state_dir is not None:
                unregister(state_dir, item.id)
