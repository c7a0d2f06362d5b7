"""``import selfheal`` is the public API: a small explicit ``__all__``, loaded lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import selfheal

PUBLIC = {
    "Settings", "load_settings", "AgentPlugin", "AgentSession", "Verdict", "CheckResult", "get_agent",
    "run_task", "RunOutcome", "evaluate", "SelfhealError", "ConfigError", "ModelError",
}  # fmt: skip


def test_all_is_explicit_and_every_name_resolves() -> None:
    assert PUBLIC <= set(selfheal.__all__)
    for name in selfheal.__all__:
        assert getattr(selfheal, name) is not None, name
    assert selfheal.run_task.__module__ == "selfheal.agent.runner"
    assert issubclass(selfheal.ConfigError, selfheal.SelfhealError)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = selfheal.nope  # type: ignore[attr-defined]


def test_import_selfheal_loads_nothing_heavy() -> None:
    code = (
        "import sys, selfheal\n"
        "heavy = [m for m in ('langgraph', 'langchain_core', 'boto3', 'moto', 'pydantic', 'selfheal.config')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert proc.stdout.strip() == "HEAVY []", proc.stderr
