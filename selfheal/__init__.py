"""selfheal: git-native prompt and cheatsheet ops for self-improving LangGraph agents.

The public API — what a team's own code (an agent plug-in, a script, a CI job)
imports. Names load lazily on first access (PEP 562), so ``import selfheal``
and ``selfheal --help`` stay fast::

    from selfheal import AgentPlugin, AgentSession, Verdict, CheckResult   # write a plug-in
    from selfheal import load_settings, get_agent, run_task, evaluate      # drive selfheal
    from selfheal import wrap_graph, prepare_context, context_node         # keep your own graph

Besides these names, :mod:`selfheal.errors` (the error types) and
:mod:`selfheal.yamlio` (YAML reading with line numbers and pydantic validation
as ``file:line`` errors) are public modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any


__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Settings": "selfheal.config",
    "load_settings": "selfheal.config",
    "AgentPlugin": "selfheal.agents.protocol",
    "AgentSession": "selfheal.agents.protocol",
    "Verdict": "selfheal.agents.protocol",
    "CheckResult": "selfheal.agents.protocol",
    "get_agent": "selfheal.agents.registry",
    "run_task": "selfheal.agent.runner",
    "RunOutcome": "selfheal.agent.runner",
    "evaluate": "selfheal.evaluation.evaluate",
    "wrap_graph": "selfheal.agents.wrapped",
    "prepare_context": "selfheal.agent.prepare",
    "context_node": "selfheal.agent.prepare",
    "PreparedContext": "selfheal.agent.prepare",
    "SelfhealError": "selfheal.errors",
    "ConfigError": "selfheal.errors",
    "ModelError": "selfheal.errors",
    "FileFormatError": "selfheal.errors",
    "ScenarioError": "selfheal.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from selfheal.agent.runner import RunOutcome, run_task
    from selfheal.agents.protocol import AgentPlugin, AgentSession, CheckResult, Verdict
    from selfheal.agents.registry import get_agent
    from selfheal.config import Settings, load_settings
    from selfheal.errors import ConfigError, FileFormatError, ModelError, ScenarioError, SelfhealError
    from selfheal.evaluation.evaluate import evaluate
    from selfheal.agent.prepare import PreparedContext, context_node, prepare_context
    from selfheal.agents.wrapped import wrap_graph


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'selfheal' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
