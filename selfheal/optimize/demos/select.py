"""Which demonstrations go into the context, and how many: chosen by dev score under a token budget.

Candidate sets are built from the pool — none (the hand-written examples
only), the best demo of each task type, and as many as fit the budget — and
each is evaluated on the dev split with the context variant in a scratch copy
of ``prompts/`` (the user's files are never touched). The best dev score
wins; ties go to the set that costs fewer prompt tokens, then fewer demos.
A demo is "best" for its type when its example was verified most often
across the k attempts (a reliable success, not a lucky one), then shorter.

The token cost of a set is what it adds to one prompt: with retrieval
(more examples than ``context.max_examples``) a prompt shows only the
``max_examples`` most relevant, so the cost is bounded by the longest of
those, not by the whole set.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from selfheal.context.model import CONTEXT_FILENAME, Example
from selfheal.optimize.demos.bootstrap import success_rates
from selfheal.optimize.demos.context_file import context_with_demos
from selfheal.optimize.demos.model import DemoPool, Demonstration, PhaseCost
from selfheal.tokens import count_tokens
from selfheal.scratch import scratch_dir

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings


@dataclass(frozen=True)
class DevScore:
    """One candidate's result on the dev split, and what the evaluation cost."""

    passed: int
    n: int
    model_calls: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    experiment: str | None = None

    @property
    def rate(self) -> float:
        return self.passed / self.n if self.n else 0.0


#: (settings whose prompts are the candidate's scratch copy, candidate label) -> its dev score.
DevEval = Callable[["Settings", str], DevScore]


@dataclass
class Candidate:
    """A set of demos to try, why it was built, what it costs and how it scored."""

    label: str
    why: str
    demos: list[Demonstration]
    tokens: int
    score: DevScore | None = None

    @property
    def ids(self) -> list[str]:
        return [d.id for d in self.demos]


@dataclass
class Selection:
    """Every candidate with its dev score, the chosen one, and the selection's cost."""

    candidates: list[Candidate]
    chosen: Candidate
    budget_tokens: int
    cost: PhaseCost = field(default_factory=lambda: PhaseCost(phase="selection"))

    def lines(self) -> list[str]:
        """One line per candidate: label, demos, tokens, dev score; the chosen one marked."""
        out = []
        for c in self.candidates:
            s = c.score
            score = f"{s.passed}/{s.n} ({s.rate:.0%})" if s is not None else "not evaluated"
            mark = "chosen" if c is self.chosen else "      "
            out.append(f"{mark} {c.label}: {len(c.demos)} demo(s), +{c.tokens} tokens, dev {score}")
        return out


def _example_tokens(e: Example | Demonstration) -> int:
    return count_tokens(f"Task: {e.task}\n{e.trajectory}")


def prompt_tokens_added(hand: Sequence[Example], demos: Sequence[Demonstration], max_examples: int) -> int:
    """Tokens ``demos`` add to one prompt next to the hand-written examples (retrieval-aware)."""

    def shown(sizes: list[int]) -> int:
        return sum(sorted(sizes, reverse=True)[:max_examples]) if len(sizes) > max_examples else sum(sizes)

    base = [_example_tokens(e) for e in hand]
    return shown(base + [_example_tokens(d) for d in demos]) - shown(base)


def ranked_demos(pool: DemoPool) -> list[Demonstration]:
    """Best first: the most reliably verified example, then the shorter demo, then the id."""
    rates = success_rates(pool)
    return sorted(pool.demos, key=lambda d: (-rates.get(d.provenance.example, 0.0), d.tokens, d.id))


def candidate_sets(
    pool: DemoPool,
    *,
    budget_tokens: int,
    hand: Sequence[Example] = (),
    max_examples: int = 4,
    max_demos: int | None = None,
) -> list[Candidate]:
    """none; the best demo per task type; up to ``max_demos`` (all task types in turn) — each within budget."""
    ranked = ranked_demos(pool)
    limit = len(ranked) if max_demos is None else max(0, max_demos)

    def fill(order: Sequence[Demonstration], cap: int) -> list[Demonstration]:
        chosen: list[Demonstration] = []
        for d in order:
            if len(chosen) >= cap:
                break
            if prompt_tokens_added(hand, [*chosen, d], max_examples) <= budget_tokens:
                chosen.append(d)
        return chosen

    per_type: dict[str, list[Demonstration]] = {}
    for d in ranked:
        per_type.setdefault(d.task_type, []).append(d)
    best_each = [demos[0] for _, demos in sorted(per_type.items())]
    rounds = max((len(v) for v in per_type.values()), default=0)
    interleaved = [v[i] for i in range(rounds) for _, v in sorted(per_type.items()) if i < len(v)]

    sets = [
        ("none", "the hand-written examples only (baseline)", []),
        ("best-per-type", "the most reliable demo of each task type, within the budget", fill(best_each, limit)),
        (f"up-to-{limit}", f"up to {limit} demos, task types in turn, as many as the budget allows",
         fill(interleaved, limit)),
    ]  # fmt: skip
    out: list[Candidate] = []
    seen: set[tuple[str, ...]] = set()
    for label, why, demos in sets:
        key = tuple(d.id for d in demos)
        if key in seen or (demos == [] and label != "none"):
            continue
        seen.add(key)
        out.append(Candidate(label, why, demos, prompt_tokens_added(hand, demos, max_examples)))
    return out


def experiment_dev_eval(
    *,
    dataset: str | None = None,
    split: str = "dev",
    names: Sequence[str] | None = None,
    model_factory: Callable[[], BaseChatModel] | None = None,
    jobs: int = 1,
    progress: bool = False,
) -> DevEval:
    """The default dev evaluation: ``run_experiment`` on ``split``, stored like any experiment."""

    def run(settings: Settings, label: str) -> DevScore:
        from selfheal.evaluation.dataset import load_dataset
        from selfheal.evaluation.runner import run_experiment

        ds = load_dataset(settings, dataset)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        started = time.perf_counter()
        result = run_experiment(
            settings, ds, split=split, names=list(names) if names else None, jobs=jobs,
            model_factory=model_factory, progress=progress, git_ref=f"demos: {label}",
            experiment_name=f"demos-{ds.name}-{split}-{label}-{stamp}",
        )  # fmt: skip
        return DevScore(
            passed=result.passed, n=result.n, model_calls=sum(r.steps for r in result.results),
            tokens=sum(r.total_tokens for r in result.results), wall_s=round(time.perf_counter() - started, 3),
            experiment=result.name,
        )  # fmt: skip

    return run


def variant_settings(settings: Settings, prompts_root: Path) -> Settings:
    """``settings`` reading prompts from ``prompts_root`` (a scratch copy); everything else stays the user's."""
    paths = settings.paths.model_copy(update={"prompts": str(prompts_root)})
    return settings.model_copy(update={"paths": paths})


def write_variant(settings: Settings, work: Path, demos: Sequence[Demonstration]) -> Settings:
    """A scratch copy of the agent's prompts with ``demos`` as its bootstrapped examples; its settings."""
    root = work / "prompts"
    target = root / settings.agent
    shutil.copytree(settings.prompts_dir, target)
    path = target / CONTEXT_FILENAME
    text = context_with_demos(path.read_text(encoding="utf-8"), demos, path=path)
    path.write_text(text, encoding="utf-8")
    return variant_settings(settings, root)


def choose(candidates: Sequence[Candidate]) -> Candidate:
    """Best dev score; ties: fewer tokens, then fewer demos, then the earlier candidate."""
    order = {id(c): i for i, c in enumerate(candidates)}
    scored = [c for c in candidates if c.score is not None]
    return min(scored, key=lambda c: (-c.score.rate, c.tokens, len(c.demos), order[id(c)]))  # type: ignore[union-attr]


def select_demos(
    settings: Settings,
    pool: DemoPool,
    *,
    budget_tokens: int,
    dev_eval: DevEval | None = None,
    max_demos: int | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
) -> Selection:
    """Score every candidate set on the dev split (``dev_eval``, default :func:`experiment_dev_eval`)."""
    from selfheal.context.loader import load_context

    ctx = load_context(settings.prompts_dir)
    hand = [e for e in ctx.examples if e.source != "bootstrapped"]
    candidates = candidate_sets(pool, budget_tokens=budget_tokens, hand=hand,
                                max_examples=settings.context.max_examples, max_demos=max_demos)
    evaluate = dev_eval or experiment_dev_eval()
    started = time.perf_counter()
    if len(candidates) > 1:  # with nothing to choose between, there is nothing to evaluate
        with scratch_dir(settings.state_dir, "selfheal-demos-", "optimize") as tmp:
            for i, cand in enumerate(candidates):
                work = Path(tmp) / f"{i:02d}"
                cand.score = evaluate(write_variant(settings, work, cand.demos), cand.label)
                if on_candidate is not None:
                    on_candidate(cand)
    else:
        candidates[0].score = None
    scored = [c.score for c in candidates if c.score is not None]
    chosen = choose(candidates) if scored else candidates[0]
    cost = PhaseCost(
        phase="selection", runs=sum(s.n for s in scored), model_calls=sum(s.model_calls for s in scored),
        tokens=sum(s.tokens for s in scored), wall_s=round(time.perf_counter() - started, 3),
    )  # fmt: skip
    return Selection(candidates, chosen, budget_tokens, cost)
