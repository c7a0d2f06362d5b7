"""Temporary git repositories for gitops tests: the agent's files committed, a bare ``origin``.

:func:`isolate_git` points HOME at an empty directory and turns off the system
config, so no identity exists anywhere but in a test repo's own ``.git/config``
(and tests can prove selfheal's commits never depend on one).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
USER_NAME, USER_EMAIL = "Dana Developer", "dana@example.com"
_ENTRIES = (
    "heuristics/heur-vpc-before-memory.yaml",
    "heuristics/heur-timeout-low-memory.yaml",
    "strategies/strat-errors-read-logs.yaml",
    "failure_patterns/fail-reserved-zero.yaml",
)


def isolate_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No global/system git config, no identity in the environment, no GitHub variables."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL",
                "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GITHUB_TOKEN", "GH_TOKEN", "GITHUB_REPOSITORY",
                "GITHUB_API_URL", "GIT_CONFIG_GLOBAL", "GITHUB_ACTIONS"):
        monkeypatch.delenv(var, raising=False)
    return home


def git(cwd: Path, *args: str, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


@dataclass
class WorkRepo:
    root: Path
    origin: Path | None

    def git(self, *args: str, check: bool = True) -> str:
        return git(self.root, *args, check=check)

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        return p

    def commit_all(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def settings(self, **overrides: object):  # -> Settings
        from selfheal.config import load_settings

        return load_settings(self.root, env={}, overrides=overrides or None)


def make_repo(tmp_path: Path, *, origin: bool = True, name: str = "work") -> WorkRepo:
    """prompts/lambda_ops, four cheatsheet entries and selfheal.yaml committed on ``main``; pushed to a bare origin."""
    root = tmp_path / name
    root.mkdir()
    shutil.copytree(REPO_ROOT / "prompts" / "lambda_ops", root / "prompts" / "lambda_ops")
    for rel in _ENTRIES:
        target = root / "cheatsheet" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / "cheatsheet" / rel, target)
    shutil.copy2(REPO_ROOT / "selfheal.yaml", root / "selfheal.yaml")
    (root / ".gitignore").write_text(".selfheal/\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", USER_NAME)
    git(root, "config", "user.email", USER_EMAIL)
    git(root, "config", "commit.gpgsign", "false")
    repo = WorkRepo(root=root, origin=None)
    repo.commit_all("Initial agent files")
    if origin:
        bare = tmp_path / f"{name}-origin.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
        git(root, "remote", "add", "origin", bare.as_uri())
        git(root, "push", "-q", "-u", "origin", "main")
        repo.origin = bare
    return repo


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` outside .git and selfheal's state dir, as bytes (to prove a tree was untouched)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not {".git", ".selfheal"} & set(p.relative_to(root).parts)
    }
