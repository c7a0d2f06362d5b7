"""content_version is memoised, yet follows every edit, new file, staging and commit."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import git
import pytest

from selfheal import versioning
from selfheal.versioning import content_version


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git.Repo.init(tmp_path)
    (tmp_path / "cheatsheet").mkdir()
    (tmp_path / "cheatsheet" / "a.yaml").write_text("id: a\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def test_repeated_calls_do_not_recompute(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(versioning, "RACY_NS", 0)  # the fixture's files are brand new
    first = content_version(repo / "cheatsheet", repo)
    calls = []
    real = versioning._content_version
    monkeypatch.setattr(versioning, "_content_version", lambda *a: calls.append(a) or real(*a))
    assert [content_version(repo / "cheatsheet", repo) for _ in range(3)] == [first] * 3
    assert calls == []


def test_a_same_size_rewrite_right_away_is_seen(repo: Path) -> None:
    path = repo / "cheatsheet" / "a.yaml"
    before = content_version(repo / "cheatsheet", repo)
    path.write_text("id: b\n")  # same size, probably the same coarse mtime tick
    after = content_version(repo / "cheatsheet", repo)
    assert after.endswith("-dirty") and after != before


@pytest.mark.parametrize("racy_ns", [0, versioning.RACY_NS])
def test_memo_follows_edits_new_files_ignores_and_commits(
    repo: Path, monkeypatch: pytest.MonkeyPatch, racy_ns: int
) -> None:
    monkeypatch.setattr(versioning, "RACY_NS", racy_ns)
    cs = repo / "cheatsheet"
    clean = content_version(cs, repo)
    assert clean == _git(repo, "rev-parse", "HEAD:cheatsheet")

    (cs / "b.yaml").write_text("id: b\n")  # untracked new file: content
    with_b = content_version(cs, repo)
    assert with_b.endswith("-dirty") and with_b != clean + "-dirty"

    (repo / ".gitignore").write_text("b.yaml\n")  # now ignored: not content
    assert content_version(cs, repo) == clean

    (repo / ".gitignore").unlink()
    (cs / "a.yaml").write_text("id: a\nrule: edited\n")
    dirty = content_version(cs, repo)
    assert dirty.endswith("-dirty")

    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "edit")
    committed = content_version(cs, repo)
    assert committed == dirty.removesuffix("-dirty") == _git(repo, "rev-parse", "HEAD:cheatsheet")

    _git(repo, "checkout", "-q", "HEAD~1")  # a checkout changes both the files and HEAD
    assert content_version(cs, repo) == clean
