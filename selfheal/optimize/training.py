"""ACE offline optimisation: online learning over the train split, kept only if it validates.

``selfheal optimize`` copies the cheatsheet into a scratch directory, runs the
train split through the agent with online learning on (each failure reflected
on and curated into the copy, every used entry's counters updated), then
evaluates the seed cheatsheet and the learned copy on the validation split as a
paired experiment. The learned copy becomes one reviewed change set (a PR
through gitops, or the working tree) only when the gate does not call it a
regression. The user's cheatsheet is never touched while learning.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.scratch import scratch_dir

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings


@dataclass
class TrainingRun:
    """One train example run with learning on."""

    example: str
    task_type: str
    run_id: str | None
    success: bool
    learned: list[str] = field(default_factory=list)  # change lines the curator applied
    error: str | None = None


@dataclass
class OptimizeReport:
    """What learning produced and how it validated."""

    train: list[TrainingRun]
    files: dict[str, str | None]  # repo-relative path -> new content (None: deleted)
    summary: list[str]
    comparison: Any = None  # selfheal.evaluation.compare.Comparison
    decision: Any = None  # selfheal.evaluation.gate.GateDecision
    report_markdown: str = ""
    applied: bool = False
    publish: Any = None  # selfheal.gitops.publish.PublishResult
    cost: Any = None  # selfheal.optimize.cost.CostMeter: learn, validate

    @property
    def train_success_rate(self) -> float:
        return sum(r.success for r in self.train) / len(self.train) if self.train else 0.0


def scratch_settings(settings: Settings, cheatsheet_dir: Path, state_dir: Path, *, learning: bool) -> Settings:
    """Settings that read/write the cheatsheet and counters in scratch dirs.

    The trace store and the response cache stay the user's, so learning runs are
    traced like any other run and replay offline.
    """
    paths = settings.paths.model_copy(update={"cheatsheet": str(cheatsheet_dir), "state": str(state_dir)})
    tracing = settings.tracing.model_copy(update={"store": str(settings.trace_store_path)})
    model = settings.model.model_copy(update={"cache_dir": str(settings.response_cache_dir)})
    return settings.model_copy(update={"paths": paths, "tracing": tracing, "model": model, "learning": learning})


def learn_on_split(
    settings: Settings,
    examples: list[Any],
    *,
    epochs: int = 1,
    model_factory: Callable[[], BaseChatModel] | None = None,
    on_run: Callable[[TrainingRun], None] | None = None,
) -> list[TrainingRun]:
    """Run ``examples`` in order with online learning (``settings`` point at the scratch copy)."""
    from selfheal.agent.runner import run_task
    from selfheal.errors import SelfhealError

    model = model_factory() if model_factory is not None else None
    runs: list[TrainingRun] = []
    for epoch in range(epochs):
        for ex in examples:
            try:
                outcome = run_task(
                    settings,
                    ex.task,
                    scenario=ex.scenario,
                    model=model,
                    learn=True,
                    metadata={"optimize_epoch": epoch, "example_id": ex.id, "split": ex.split},
                    tags=["optimize", "train"],
                )
            except SelfhealError as exc:
                run = TrainingRun(ex.name, ex.task_type, None, False, error=exc.message)
            else:
                learning = (outcome.extra or {}).get("learning") or {}
                lines = list(learning.get("applied", [])) if isinstance(learning, dict) else []
                run = TrainingRun(ex.name, ex.task_type, outcome.run_id, outcome.success, lines)
            runs.append(run)
            if on_run is not None:
                on_run(run)
    return runs


def fold_counters(learn_settings: Settings, learned_dir: Path) -> list[str]:
    """Maintenance on the learned copy with the counters its training runs accumulated.

    Promotes candidates that proved helpful, retires entries whose success falls
    below their task type's baseline (lift, from the trace store), merges
    near-duplicates: the same rules as ``selfheal curate``, one line each.
    """
    from selfheal.cheatsheet.counters import CounterStore
    from selfheal.cheatsheet.maintenance import apply_maintenance, plan_maintenance
    from selfheal.cheatsheet.ranking import embedding_cache_dir
    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.errors import SelfhealError
    from selfheal.models.embeddings import make_embedder
    from selfheal.optimize.evidence_runs import task_runs
    from selfheal.optimize.offline import _policy

    now = datetime.now(UTC)
    with CounterStore.from_settings(learn_settings) as counters:
        stats = counters.all()
    try:
        embedder = make_embedder(learn_settings)
    except SelfhealError:
        embedder = None
    actions = plan_maintenance(
        load_cheatsheet(learned_dir), stats, embedder=embedder, policy=_policy(learn_settings), now=now,
        cache_dir=embedding_cache_dir(learn_settings), runs=task_runs(learn_settings),
    )
    file_actions = [a for a in actions if a.action != "DECAY"]
    apply_maintenance(learned_dir, file_actions, now=now)
    return [a.line for a in file_actions]


def optimize(
    settings: Settings,
    *,
    dataset: str | None = None,
    train_split: str = "train",
    validate_split: str = "dev",
    names: list[str] | None = None,
    validate_names: list[str] | None = None,
    epochs: int = 1,
    jobs: int = 1,
    model_factory: Callable[[], BaseChatModel] | None = None,
    apply: bool = False,
    publish: bool = False,
    progress: bool = True,
    on_run: Callable[[TrainingRun], None] | None = None,
    keep_dir: Path | None = None,
    base: str | None = None,
    reason: str | None = None,
) -> OptimizeReport:
    """Learn on ``train_split``, validate seed vs learned on ``validate_split``, then apply/publish.

    ``reason`` (why it runs: a user's request, "schedule") heads the report and so the PR body.

    With ``publish`` the base branch, remote, token and rate limit are checked
    first: a run that could not be published spends no model call.
    """
    from selfheal.evaluation.compare import compare
    from selfheal.evaluation.dataset import load_dataset
    from selfheal.evaluation.gate import GateConfig, decide
    from selfheal.evaluation.report import to_markdown
    from selfheal.evaluation.runner import run_experiment
    from selfheal.optimize.cost import CostMeter
    from selfheal.optimize.offline import _write_working_tree, changed_files

    plan = None
    if publish:
        from selfheal.gitops.preflight import plan_publish

        plan = plan_publish(settings, "optimize", base=base)
    ds = load_dataset(settings, dataset)
    train = ds.select(train_split, names=names)
    if not train:
        from selfheal.errors import SelfhealError

        raise SelfhealError(f"dataset '{ds.name}' has no examples in split '{train_split}'")
    seed_dir = settings.cheatsheet_dir
    rel_dir = seed_dir.relative_to(settings.root) if seed_dir.is_relative_to(settings.root) else Path(seed_dir.name)
    with scratch_dir(settings.state_dir, "selfheal-optimize-", "optimize") as work:
        learned_dir = work / "cheatsheet"
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        if seed_dir.exists():
            shutil.copytree(seed_dir, learned_dir)
        else:
            learned_dir.mkdir()
        learn_settings = scratch_settings(settings, learned_dir, work / "state", learning=True)
        meter = CostMeter()
        with meter.phase("learn"):
            runs = learn_on_split(learn_settings, train, epochs=epochs, model_factory=model_factory, on_run=on_run)
        meter.add_traces(settings.trace_store_path, [r.run_id for r in runs if r.run_id], "learn")
        summary = [line for r in runs for line in r.learned]
        summary += fold_counters(learn_settings, learned_dir)
        if keep_dir is not None:  # a copy of what was learned, whatever the gate says (for review)
            shutil.copytree(learned_dir, keep_dir, dirs_exist_ok=True)
        files = changed_files(seed_dir, learned_dir, rel_dir)

        comparison = decision = None
        markdown = ""
        if files:
            frozen = scratch_settings(settings, learned_dir, work / "state-eval", learning=False)
            with meter.phase("validate"):
                baseline = run_experiment(
                    settings, ds, split=validate_split, names=validate_names, jobs=jobs,
                    model_factory=model_factory, progress=progress, git_ref="seed cheatsheet",
                    experiment_name=f"optimize-{ds.name}-{validate_split}-seed-{stamp}",
                )
                candidate = run_experiment(
                    frozen, ds, split=validate_split, names=validate_names, jobs=jobs,
                    model_factory=model_factory, progress=progress, git_ref="learned cheatsheet",
                    experiment_name=f"optimize-{ds.name}-{validate_split}-learned-{stamp}",
                )
            meter.add_experiment(baseline, "validate")
            meter.add_experiment(candidate, "validate")
            comparison = compare(baseline, candidate)
            decision = decide(comparison, GateConfig.from_settings(settings))
            markdown = to_markdown(comparison=comparison, decision=decision)
            if reason:
                markdown = f"- trigger: {reason}\n\n{markdown}"
            markdown += f"\n\n### Cost\n\n{meter.markdown()}\n"

        report = OptimizeReport(runs, files, summary, comparison, decision, markdown, cost=meter)
        accepted = bool(files) and (decision is None or decision.passed)
        if accepted and publish:
            from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange

            change = ChangeSet(
                kind="optimize",
                title=f"selfheal: cheatsheet learned from {len(train)} {train_split} runs",
                summary=summary or [f"{len(files)} entry files changed"],
                files=[FileChange(path=p, content=c) for p, c in files.items()],
                trace_ids=[r.run_id for r in runs if r.run_id],
                eval_summary=_eval_summary(comparison, ds.name, validate_split, markdown),
                model=comparison.candidate.model if comparison is not None else "",
            )
            from selfheal.gitops.publish import publish_change

            report.publish = publish_change(settings, change, plan=plan)
        elif accepted and apply:
            from selfheal.journal import tree_journal

            with tree_journal(settings.state_dir, settings.root, files, "optimize --apply"):
                _write_working_tree(settings.root, files)
            report.applied = True
        return report


def _eval_summary(comparison: Any, dataset: str, split: str, markdown: str) -> Any:
    from selfheal.gitops.changeset import EvalSummary

    if comparison is None:
        return None
    return EvalSummary(
        baseline_rate=comparison.overall.baseline.rate,
        candidate_rate=comparison.overall.candidate.rate,
        n=comparison.overall.n_paired,
        p_value=comparison.overall.mcnemar_p,
        dataset=dataset,
        split=split,
        report_markdown=markdown,
    )
