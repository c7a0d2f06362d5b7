"""A git ref checked out for the baseline leaves the user's checkout exactly as it was."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from selfheal.errors import SelfhealError
from selfheal.evaluation.worktree import ref_worktree


def _commit(repo: git.Repo, files: dict[str, str], message: str) -> str:
    root = Path(repo.working_tree_dir or ".")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    repo.index.add(list(files))
    return repo.index.commit(message).hexsha


@pytest.fixture()
def repo(tmp_path: Path) -> git.Repo:
    r = git.Repo.init(tmp_path / "repo", initial_branch="main")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "Test")
        cw.set_value("user", "email", "test@example.com")
    _commit(r, {"cheatsheet/a.yaml": "rule: v1\n", "b.txt": "b1\n"}, "v1")
    _commit(r, {"cheatsheet/a.yaml": "rule: v2\n"}, "v2")
    root = Path(r.working_tree_dir or ".")
    # A stash, a staged change, a dirty tracked file and an untracked file.
    (root / "b.txt").write_text("stashed\n")
    r.git.stash("push", "-m", "keep me")
    (root / "b.txt").write_text("staged\n")
    r.index.add(["b.txt"])
    (root / "cheatsheet/a.yaml").write_text("rule: dirty\n")
    (root / "untracked.txt").write_text("mine\n")
    return r


def _snapshot(r: git.Repo) -> dict[str, str]:
    root = Path(r.working_tree_dir or ".")
    return {
        "status": r.git.status("--porcelain", "--untracked-files=all"),
        "head": r.head.commit.hexsha,
        "branch": r.active_branch.name,
        "stash": r.git.stash("list"),
        "staged": r.git.diff("--cached"),
        "a": (root / "cheatsheet/a.yaml").read_text(),
        "b": (root / "b.txt").read_text(),
        "u": (root / "untracked.txt").read_text(),
        "worktrees": r.git.worktree("list", "--porcelain"),
    }


def test_checks_out_the_ref_and_leaves_the_user_tree_untouched(repo: git.Repo) -> None:
    before = _snapshot(repo)
    with ref_worktree(Path(repo.working_tree_dir or "."), "HEAD~1") as path:
        assert (path / "cheatsheet/a.yaml").read_text() == "rule: v1\n"
        assert not (path / "untracked.txt").exists()
        assert path.is_dir()
    assert not path.exists()
    assert _snapshot(repo) == before


def test_cleans_up_on_an_exception_inside_the_block(repo: git.Repo) -> None:
    before = _snapshot(repo)
    with pytest.raises(RuntimeError), ref_worktree(Path(repo.working_tree_dir or "."), "main") as path:
        (path / "cheatsheet/a.yaml").write_text("scribbled\n")  # changes in the worktree do not leak
        raise RuntimeError("boom")
    assert not path.exists()
    assert _snapshot(repo) == before


def test_cleans_up_on_ctrl_c(repo: git.Repo) -> None:
    before = _snapshot(repo)
    with pytest.raises(KeyboardInterrupt), ref_worktree(Path(repo.working_tree_dir or "."), "HEAD") as path:
        raise KeyboardInterrupt
    assert not path.exists()
    assert _snapshot(repo) == before


def test_unknown_ref_is_a_one_line_user_error(repo: git.Repo) -> None:
    before = _snapshot(repo)
    with pytest.raises(SelfhealError, match=r"^unknown git ref 'no-such-branch'$"):
        with ref_worktree(Path(repo.working_tree_dir or "."), "no-such-branch"):
            pass
    with pytest.raises(SelfhealError, match="unknown git ref"):
        with ref_worktree(Path(repo.working_tree_dir or "."), "--orphan"):
            pass
    assert _snapshot(repo) == before


def test_not_a_git_repository(tmp_path: Path) -> None:
    with pytest.raises(SelfhealError, match="not inside a git repository"):
        with ref_worktree(tmp_path, "HEAD"):
            pass
