"""Online learning is handed to the graph: a :class:`Learner` on the run context.

The graph decides *when* to learn (a success counts its used entries in
``evaluate``; a failure is curated in ``curate_cheatsheet``); the learner
decides *how*. selfheal's own learner (ACE reflect -> curate -> apply) lives in
:mod:`selfheal.optimize.online`; the runner builds it from
``settings.learner_factory`` unless a caller hands one in, so ``agent/`` never
imports ``optimize/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from selfheal.agent.state import AgentState, RunContext
    from selfheal.config import Settings


@dataclass
class LearningOutcome:
    """What learning did for one run: the execution record's ``learning`` and lines for the user."""

    record: dict[str, Any] = field(default_factory=dict)  # applied, rejected, errors, counted, reflection
    suggestions: list[str] = field(default_factory=list)


@runtime_checkable
class Learner(Protocol):
    """Learns from one run of the graph (best effort: never raises for a model problem)."""

    def count_success(self, rc: RunContext, *, run_id: str, used_entries: list[str], verified: bool) -> list[str]:
        """Record a successful run's use of its entries; returns ``"entry-id=tag"`` lines."""
        ...

    def learn(self, state: AgentState, rc: RunContext, *, run_id: str, config: Any = None) -> LearningOutcome:
        """Reflect on a run that needs improvement and curate the cheatsheet."""
        ...


def make_learner(settings: Settings) -> Learner | None:
    """The learner ``settings.learner_factory`` names (``module:factory``), or None when it is unset."""
    from selfheal.agents.registry import load_object
    from selfheal.errors import ConfigError

    target = settings.learner_factory
    if not target:
        return None
    try:
        learner = load_object(target, root=settings.root)()
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0]
        raise ConfigError(f"learner_factory {target}: {type(exc).__name__}: {text}") from None
    if not all(callable(getattr(learner, m, None)) for m in ("count_success", "learn")):
        raise ConfigError(f"learner_factory {target}: returned {type(learner).__name__}, not a Learner")
    return learner  # type: ignore[no-any-return]
