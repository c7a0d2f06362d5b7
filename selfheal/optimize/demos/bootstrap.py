"""Bootstrapping (DSPy's BootstrapFewShot on selfheal's context): the agent's own verified successes.

Each train example is run ``k`` times, each attempt at a recorded temperature
and seed (deterministic: ``model.seed + i`` unless given), with learning off.
An attempt counts only when the *environment* verified it (its state checks
passed and the dataset's evaluators pass it): the model saying "fixed" is
never evidence. Each such run becomes a :class:`Demonstration` — shortened to
the calls that mattered, redacted, bounded in tokens — with the run id, the
example, the sampling and the context/cheatsheet versions it ran with.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from selfheal.cheatsheet.disk_guard import example_problems
from selfheal.context.model import DemoProvenance
from selfheal.optimize.demos.model import Attempt, DemoPool, Demonstration, PhaseCost
from selfheal.optimize.demos.trajectory import build_demonstration

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings
    from selfheal.redact import Redactor

#: (temperature, seed) -> the chat model of one attempt.
ModelFactory = Callable[[float, int], "BaseChatModel"]
DEFAULT_MAX_DEMO_TOKENS = 400


def attempt_settings(settings: Settings, temperature: float, seed: int) -> Settings:
    """``settings`` with the attempt's sampling (what a default-built model and the trace record)."""
    model = settings.model.model_copy(update={"temperature": temperature, "seed": seed})
    return settings.model_copy(update={"model": model})


def default_model_factory(settings: Settings) -> ModelFactory:
    """The configured chat model at each attempt's temperature and seed.

    With the response cache on, a sampled attempt's seed joins the cache key
    (temperature already does), so attempt 2 is never a replay of attempt 1.
    """
    from selfheal.models.cache import CachedChatModel
    from selfheal.models.providers import make_chat_model

    def make(temperature: float, seed: int) -> BaseChatModel:
        model = make_chat_model(attempt_settings(settings, temperature, seed))
        if isinstance(model, CachedChatModel) and temperature > 0:
            model = model.model_copy(update={"params": {**model.params, "seed": seed}})
        return model

    return make


def attempt_seeds(settings: Settings, k: int, seeds: Sequence[int] | None) -> list[int]:
    """The seeds of the k attempts: the given ones, else ``model.seed``, ``+1`` ... ``+k-1``."""
    if seeds is not None:
        out = [int(s) for s in seeds]
        if not out:
            from selfheal.errors import SelfhealError

            raise SelfhealError("--seed: give at least one seed")
        return out
    return [settings.model.seed + i for i in range(max(1, k))]


@contextmanager
def _kept_warm(settings: Settings) -> Iterator[None]:
    """The agent's optional ``prewarm`` hook held for the whole bootstrap (as evaluations do)."""
    from selfheal.agents.registry import get_agent

    prewarm = getattr(get_agent(settings), "prewarm", None)
    if prewarm is None:
        yield
        return
    with prewarm(settings):
        yield


def _identity(model: object, configured: str, injected: bool) -> str:
    """The model that ran: a cached model's identity, an injected model's name, else the configured one."""
    if getattr(model, "identity", None):
        return str(model.identity)  # type: ignore[attr-defined]
    if injected:
        return f"{type(model).__name__}:{getattr(model, 'model_name', '') or '?'}"
    return configured


@dataclass
class _Bootstrap:
    """What every attempt of one bootstrap shares."""

    settings: Settings
    evaluators: Any            # the dataset's EvaluatorConfig
    custom: list[Any]          # the dataset's own evaluators, imported once
    factory: ModelFactory
    injected: bool             # the caller gave the model factory (name the model by its class)
    redactor: Redactor
    created: str
    max_demo_tokens: int

    def attempt(self, ex: Any, temperature: float, seed: int) -> tuple[Attempt, Demonstration | None]:
        """One run of ``ex`` at (temperature, seed): the attempt's record and the demo it became, if any."""
        from selfheal.agent.runner import run_task
        from selfheal.errors import SelfhealError
        from selfheal.evaluation.evaluators import evaluate_outcome
        from selfheal.models.providers import model_identity

        run_settings = attempt_settings(self.settings, temperature, seed)
        attempt = Attempt(example=ex.name, task_type=ex.task_type, seed=seed, temperature=temperature)
        model = self.factory(temperature, seed)
        try:
            outcome = run_task(
                run_settings, ex.task, scenario=ex.scenario or None, model=model, learn=False,
                metadata={"example_id": ex.id, "split": ex.split, "bootstrap_seed": seed,
                          "bootstrap_temperature": temperature},
                tags=["bootstrap"],
            )  # fmt: skip
        except SelfhealError as exc:
            attempt.reason = exc.message
            attempt.run_id = getattr(exc, "selfheal_run_id", None)
            return attempt, None
        passed, _score, _scores = evaluate_outcome(ex, outcome, self.evaluators, custom=self.custom)
        attempt.run_id = outcome.run_id
        attempt.verified = outcome.verified
        attempt.success = bool(outcome.verified and outcome.success and passed)
        attempt.model_calls = outcome.steps
        attempt.tokens = int((outcome.usage or {}).get("total_tokens", 0) or 0)
        attempt.latency_s = outcome.latency_s
        if not outcome.success:
            attempt.reason = outcome.error_type or outcome.reason
        elif not outcome.verified:
            attempt.reason = "not verified: the environment had no checks for this run"
        elif not passed:
            attempt.reason = "the dataset's evaluators did not pass it"
        if not attempt.success:
            return attempt, None
        identity = _identity(model, outcome.model or model_identity(run_settings), self.injected)
        provenance = DemoProvenance(
            run_id=outcome.run_id, example=ex.name, split=ex.split, seed=seed, temperature=temperature,
            model=identity, context_version=outcome.context_version, cheatsheet_version=outcome.cheatsheet_version,
            created=self.created,
        )  # fmt: skip
        demo = build_demonstration(
            task=ex.task, task_type=ex.task_type, tool_calls=outcome.tool_calls, final_answer=outcome.final_answer,
            used_entries=outcome.used_entries, provenance=provenance, redactor=self.redactor,
            max_tokens=self.max_demo_tokens,
        )  # fmt: skip
        if demo is None:
            attempt.reason = f"verified, but no demonstration fits {self.max_demo_tokens} tokens"
            return attempt, None
        refused = demo_refusal(demo)
        if refused:  # the context file would refuse to load with it: drop it here, not in the dev selection
            attempt.reason = f"verified, but the content guard refuses its demonstration: {refused}"
            return attempt, None
        attempt.demo_id = demo.id
        return attempt, demo


def demo_refusal(demo: Demonstration) -> str:
    """Why the content guard would refuse ``demo`` in context.yaml (``field: category: ...``), or ``""``.

    A trajectory holds tool results, which hold whatever logs say; the
    context loader runs the guard over every example, so a demo it refuses
    would stop every run of the variant that carries it.
    """
    problems = example_problems(demo.to_example())
    return f"{problems[0][0]}: {problems[0][1]}" if problems else ""


def bootstrap_demos(
    settings: Settings,
    *,
    dataset: str | None = None,
    split: str = "train",
    names: Sequence[str] | None = None,
    k: int = 2,
    temperature: float = 0.7,
    seeds: Sequence[int] | None = None,
    model_factory: ModelFactory | None = None,
    max_demo_tokens: int = DEFAULT_MAX_DEMO_TOKENS,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> DemoPool:
    """Run the agent ``k`` times on every example of ``split``; keep verified successes as demos.

    ``model_factory(temperature, seed)`` builds each attempt's model (tests
    pass a scripted one); default: the configured model at that sampling.
    Demos with identical content (two attempts that did the same) are kept once.
    """
    from selfheal.errors import SelfhealError
    from selfheal.evaluation.custom import load_evaluator
    from selfheal.evaluation.dataset import load_dataset
    from selfheal.redact import make_redactor

    ds = load_dataset(settings, dataset)
    examples = ds.select(split, list(names) if names else None)
    if not examples:
        raise SelfhealError(f"dataset '{ds.name}' has no examples in split '{split}'")
    seed_list = attempt_seeds(settings, k, seeds)
    run = _Bootstrap(
        settings=settings, evaluators=ds.spec.evaluators,
        custom=[(spec, load_evaluator(spec.function, settings.root)) for spec in ds.spec.evaluators.custom],
        factory=model_factory or default_model_factory(settings), injected=model_factory is not None,
        redactor=make_redactor(settings), created=datetime.now(UTC).replace(microsecond=0).isoformat(),
        max_demo_tokens=max_demo_tokens,
    )  # fmt: skip
    pool = DemoPool()
    demos: dict[str, Demonstration] = {}
    started = time.perf_counter()
    with _kept_warm(settings):
        for ex in examples:
            for seed in seed_list:
                attempt, demo = run.attempt(ex, temperature, seed)
                if demo is not None:
                    demos.setdefault(demo.id, demo)
                pool.attempts.append(attempt)
                if on_attempt is not None:
                    on_attempt(attempt)
    pool.demos = list(demos.values())
    pool.cost = PhaseCost(
        phase="bootstrap", runs=len(pool.attempts), model_calls=sum(a.model_calls for a in pool.attempts),
        tokens=sum(a.tokens for a in pool.attempts), wall_s=round(time.perf_counter() - started, 3),
    )  # fmt: skip
    return pool


def success_rates(pool: DemoPool) -> dict[str, float]:
    """Per example: the fraction of its attempts the environment verified (how reliable its demo is)."""
    tally: dict[str, list[bool]] = {}
    for a in pool.attempts:
        tally.setdefault(a.example, []).append(a.success)
    return {name: sum(flags) / len(flags) for name, flags in tally.items()}
