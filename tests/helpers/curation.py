"""Shared pieces of the reflector / curator / online / offline learning tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_ENTRY = "heur-timeout-low-memory"


def make_repo(tmp_path: Path) -> Path:
    """A copy of the repository's agent files (prompts, cheatsheet, evals, selfheal.yaml)."""
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    return tmp_path


def make_learning_repo(tmp_path: Path, monkeypatch: Any) -> Path:
    """``make_repo`` whose retrieval embeds with the deterministic FakeEmbedder (no model load)."""
    from selfheal.models import embeddings

    fake = embeddings.FakeEmbedder(64)
    monkeypatch.setattr(embeddings, "make_embedder", lambda settings: fake)
    return make_repo(tmp_path)


def call(name: str, args: dict[str, Any], i: int = 0) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"c{i}-{name}"}])


def reflection_json(tags: dict[str, str] | None = None, **overrides: Any) -> str:
    data = {
        "error": "memory was raised but the function still times out",
        "root_cause": "Max Memory Used was far below the memory size; the timeout was the limit",
        "correct_approach": "raise the timeout to about twice the slowest duration, leave memory",
        "key_insight": "Low memory use with timeouts means the timeout is too short, not memory.",
        "entry_tags": tags or {},
    }
    data.update(overrides)
    return "Here is my analysis:\n```json\n" + json.dumps(data) + "\n```"


LESSON_ADD = {
    "op": "ADD",
    "section": "failure_patterns",
    "task_type": "lambda_timeout",
    "fields": {
        "pattern": "Raising memory for timeouts while Max Memory Used stays low",
        "lesson": "Raise the timeout to about twice the slowest duration and leave memory as it is.",
    },
    "reason": "the run raised memory and the timeout check failed",
}


def curator_json(*ops: dict[str, Any]) -> str:
    return json.dumps({"operations": list(ops)})


def wrong_fix_script() -> list[Any]:
    """The agent's part of a failing lambda_timeout run (memory raised instead of the timeout)."""
    return [
        call("update_memory", {"function_name": "checkout-api", "memory_mb": 1024}),
        f"Raised memory to 1024 MB.\nUSED: {TIMEOUT_ENTRY}",
    ]


def right_fix_script() -> list[Any]:
    return [
        call("update_timeout", {"function_name": "checkout-api", "timeout_s": 10}),
        f"Raised the timeout to 10 s.\nUSED: {TIMEOUT_ENTRY}",
    ]


def entry_files(cheatsheet_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(cheatsheet_dir)): p.read_text() for p in sorted(cheatsheet_dir.rglob("*.yaml"))}
