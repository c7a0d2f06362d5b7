"""A small committed agent repository and the checks the crash tests make on it.

The repository holds the lambda_ops agent's prompts and cheatsheet and a
two-example dataset (``lambda_timeout`` in train, ``lambda_memory`` in dev),
``.selfheal/`` ignored, committed on ``main``: enough for ``run``, ``curate``
(``--pr``), ``eval --against HEAD`` and ``optimize`` to run for a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
KEEP_SCENARIOS = {"lambda_timeout.yaml": "train", "lambda_memory.yaml": "dev"}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def make_committed_repo(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO_ROOT / name, root / name)
    src = REPO_ROOT / "evals" / "lambda_ops"
    dst = root / "evals" / "lambda_ops"
    (dst / "scenarios").mkdir(parents=True)
    shutil.copy(src / "dataset.yaml", dst / "dataset.yaml")
    for name, split in KEEP_SCENARIOS.items():
        text = (src / "scenarios" / name).read_text(encoding="utf-8")
        lines = [f"split: {split}" if line.startswith("split:") else line for line in text.splitlines()]
        (dst / "scenarios" / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    shutil.copy(REPO_ROOT / "selfheal.yaml", root / "selfheal.yaml")
    (root / ".gitignore").write_text(".selfheal/\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    git(root, "config", "user.name", "Dana Developer")
    git(root, "config", "user.email", "dana@example.com")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "agent files")
    return root


def files(root: Path, skip: tuple[str, ...] = (".git",)) -> list[Path]:
    """Every file under ``root``, never entering ``skip`` (git children of a killed command may still
    be changing ``.git`` while we look)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        if Path(dirpath) == root:
            dirnames[:] = [d for d in dirnames if d not in skip]
        found += [Path(dirpath) / f for f in filenames]
    return sorted(found)


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file of the user's tree, tracked or not, outside .git and .selfheal."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files(root, (".git", ".selfheal"))}


def half_written(root: Path) -> list[str]:
    """Files that do not parse: every YAML/JSON file (tree and state), every SQLite database's integrity."""
    bad: list[str] = []
    yaml = YAML(typ="safe")
    for p in files(root):
        rel = p.relative_to(root)
        try:
            if p.suffix in (".yaml", ".yml"):
                yaml.load(p.read_text(encoding="utf-8"))
            elif p.suffix == ".json":
                json.loads(p.read_text(encoding="utf-8"))
            elif p.suffix == ".sqlite":
                with sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=30) as conn:
                    row = conn.execute("PRAGMA integrity_check").fetchone()
                conn.close()
                if row[0] != "ok":
                    bad.append(f"{rel}: {row[0]}")
        except FileNotFoundError:
            continue  # gone since the listing (a lock or temp file): not half-written
        except Exception as exc:  # any parse error is a half-written file
            bad.append(f"{rel}: {type(exc).__name__}: {exc}")
    return bad
