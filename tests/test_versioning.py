"""Content versions: git object ids when clean, a working hash + -dirty when not, nogit- outside git."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import git
import pytest

from selfheal.versioning import EMPTY_TREE, blob_id, content_version


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git.Repo.init(tmp_path)
    (tmp_path / "prompts" / "agent").mkdir(parents=True)
    (tmp_path / "prompts" / "agent" / "context.yaml").write_text("version: 1\n")
    (tmp_path / "prompts" / "agent" / "system.md.j2").write_text("hello {{ task }}\n")
    (tmp_path / "cheatsheet" / "heuristics").mkdir(parents=True)
    (tmp_path / "cheatsheet" / "heuristics" / "h.yaml").write_text("id: h\n")
    # git orders the directory "heuristics" as "heuristics/", after this file
    (tmp_path / "cheatsheet" / "heuristics.txt").write_text("notes\n")
    script = tmp_path / "cheatsheet" / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (tmp_path / ".gitignore").write_text("*.pyc\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_clean_dir_and_file_are_git_object_ids(repo: Path) -> None:
    for rel in ("prompts/agent", "cheatsheet", "prompts/agent/context.yaml"):
        assert content_version(repo / rel, repo) == _git(repo, "rev-parse", f"HEAD:{rel}")


def test_ignored_files_do_not_make_it_dirty(repo: Path) -> None:
    (repo / "cheatsheet" / "cache.pyc").write_bytes(b"\0")
    assert content_version(repo / "cheatsheet", repo) == _git(repo, "rev-parse", "HEAD:cheatsheet")


def test_edit_makes_it_dirty_and_committing_gives_the_same_id(repo: Path) -> None:
    path = repo / "cheatsheet" / "heuristics" / "h.yaml"
    path.write_text("id: h\nrule: new\n")
    dirty = content_version(repo / "cheatsheet", repo)
    assert dirty.endswith("-dirty")
    # untouched sibling directory stays clean
    assert not content_version(repo / "prompts" / "agent", repo).endswith("-dirty")
    _git(repo, "commit", "-qam", "edit")
    assert content_version(repo / "cheatsheet", repo) == dirty.removesuffix("-dirty")


def test_new_untracked_file_and_deletion_are_dirty(repo: Path) -> None:
    (repo / "cheatsheet" / "heuristics" / "new.yaml").write_text("id: new\n")
    added = content_version(repo / "cheatsheet", repo)
    assert added.endswith("-dirty")
    (repo / "cheatsheet" / "heuristics" / "new.yaml").unlink()
    (repo / "cheatsheet" / "heuristics" / "h.yaml").unlink()
    removed = content_version(repo / "cheatsheet", repo)
    assert removed.endswith("-dirty") and removed != added
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "rm")
    assert content_version(repo / "cheatsheet", repo) == _git(repo, "rev-parse", "HEAD:cheatsheet")


def test_mode_change_is_dirty(repo: Path) -> None:
    (repo / "cheatsheet" / "run.sh").chmod(0o644)
    assert content_version(repo / "cheatsheet", repo).endswith("-dirty")


def test_path_not_in_head(repo: Path) -> None:
    (repo / "evals").mkdir()
    assert content_version(repo / "evals", repo) == EMPTY_TREE  # empty: nothing to version
    (repo / "evals" / "a.yaml").write_text("x: 1\n")
    assert content_version(repo / "evals", repo).endswith("-dirty")


def test_repo_without_commits(tmp_path: Path) -> None:
    git.Repo.init(tmp_path)
    (tmp_path / "c.yaml").write_text("a\n")
    assert content_version(tmp_path / "c.yaml", tmp_path) == blob_id(b"a\n") + "-dirty"


def test_outside_git(tmp_path: Path) -> None:
    d = tmp_path / "cheatsheet"
    d.mkdir()
    (d / "h.yaml").write_text("id: h\n")
    v1 = content_version(d, tmp_path)
    assert v1.startswith("nogit-") and len(v1) == len("nogit-") + 12
    assert content_version(d, tmp_path) == v1
    (d / "h.yaml").write_text("id: h2\n")
    assert content_version(d, tmp_path) != v1


def test_fast_enough(repo: Path) -> None:
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        content_version(repo / "cheatsheet", repo)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.05  # best of 5: the machine is shared
