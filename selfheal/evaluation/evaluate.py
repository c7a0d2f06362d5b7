"""The library behind ``selfheal eval``: run the working tree, optionally against a git ref, and gate.

The candidate is the working tree's context and cheatsheet. The baseline (with
``against``) is the same dataset — loaded once from the working tree, because
the dataset is the measuring instrument — run with the context and cheatsheet
checked out from the ref in a temporary worktree. Everything else (trace store,
state, response cache, model settings) stays the user's, so with
``model.cache_mode: replay`` both sides replay offline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.errors import SelfhealError
from selfheal.evaluation.compare import Comparison, compare
from selfheal.evaluation.gate import GateConfig, GateDecision, decide, decide_single, eval_settings
from selfheal.evaluation.results import ExperimentResult

if TYPE_CHECKING:
    from selfheal.config import Settings
    from selfheal.evaluation.dataset import Dataset


@dataclass
class EvalOutcome:
    """What one ``selfheal eval`` produced; ``baseline``/``comparison`` only with ``against``."""

    candidate: ExperimentResult
    baseline: ExperimentResult | None = None
    comparison: Comparison | None = None
    decision: GateDecision | None = None


def _inside(path: Path, top: Path, what: str) -> Path:
    try:
        return path.resolve().relative_to(top)
    except ValueError:
        raise SelfhealError(
            f"{what} ({path}) is outside the git repository {top}; --against can only compare files in it"
        ) from None


def baseline_settings(settings: Settings, worktree: Path, top: Path) -> Settings:
    """``settings`` with the context and cheatsheet read from ``worktree`` (a checkout of ``top``'s repo).

    The root moves into the worktree so versions are computed against the ref's
    commit; every other path is pinned to the user's absolute location.
    """
    top = top.resolve()
    root_rel = _inside(settings.root, top, "the selfheal root")
    prompts_rel = _inside(settings.path(settings.paths.prompts), top, "paths.prompts")
    cheatsheet_rel = _inside(settings.cheatsheet_dir, top, "paths.cheatsheet")
    paths = settings.paths.model_copy(update={
        "prompts": str(worktree / prompts_rel),
        "cheatsheet": str(worktree / cheatsheet_rel),
        "evals": str(settings.path(settings.paths.evals).resolve()),
        "state": str(settings.state_dir.resolve()),
    })
    tracing = settings.tracing.model_copy(update={"store": str(settings.trace_store_path.resolve())})
    model_update: dict[str, Any] = {"cache_dir": str(settings.response_cache_dir.resolve())}
    if settings.model.gguf_path:
        model_update["gguf_path"] = str(settings.path(settings.model.gguf_path).resolve())
    model = settings.model.model_copy(update=model_update)
    return settings.model_copy(update={
        "root": worktree / root_rel,
        "paths": paths,
        "tracing": tracing,
        "model": model,
    })


def _save(settings: Settings, result: ExperimentResult) -> None:
    from selfheal.evaluation.experiments import save_experiment
    from selfheal.tracing.store import LocalTraceStore

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = LocalTraceStore.from_settings(settings)
    try:
        save_experiment(store, result)
    finally:
        store.close()


def _head_commit(root: Path) -> str | None:
    import git

    try:
        with git.Repo(root, search_parent_directories=True) as repo:
            return repo.head.commit.hexsha
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None


def evaluate(
    settings: Settings,
    *,
    dataset: Dataset | str | None = None,
    split: str = "test",
    against: str | None = None,
    jobs: int | None = None,
    names: list[str] | None = None,
    task_types: list[str] | None = None,
    gate: GateConfig | None = None,
    timeout_s: float | None = None,
    retries: int | None = None,
    model_factory: Callable[..., Any] | None = None,
    progress: bool = True,
    save: bool = True,
) -> EvalOutcome:
    """Evaluate the working tree (and ``against``'s context/cheatsheet); gate when ``gate`` is given."""
    from selfheal.evaluation import runner
    from selfheal.evaluation.dataset import Dataset, load_dataset
    from selfheal.versioning import content_version

    ev = eval_settings(settings)
    jobs = jobs or ev.jobs
    timeout_s = timeout_s if timeout_s is not None else ev.timeout_s
    retries = ev.retries if retries is None else retries
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(settings, dataset)
    selected = ds.select(split, names, task_types)
    if not selected:
        filters = [f"split '{split}'"] + ([f"task type(s) {', '.join(task_types)}"] if task_types else [])
        raise SelfhealError(f"dataset '{ds.name}' has no example for {' and '.join(filters)}")
    chosen = [ex.name for ex in selected] if (names or task_types) else None

    def run(run_settings: Settings, git_ref: str | None) -> ExperimentResult:
        return runner.run_experiment(
            run_settings, ds, split=split, names=chosen, jobs=jobs, model_factory=model_factory,
            timeout_s=timeout_s, retries=retries, git_ref=git_ref, progress=progress,
        )

    def stamp_versions(result: ExperimentResult, run_settings: Settings) -> None:
        # What was actually evaluated, as git ids (``-dirty`` for uncommitted edits).
        result.context_version = content_version(run_settings.prompts_dir, run_settings.root)
        result.cheatsheet_version = content_version(run_settings.cheatsheet_dir, run_settings.root)

    baseline: ExperimentResult | None = None
    if against is not None:
        from selfheal.evaluation.worktree import open_repo, ref_worktree, resolve_ref

        with open_repo(settings.root) as repo:
            top = Path(repo.working_tree_dir or settings.root).resolve()
            commit = resolve_ref(repo, against)
        with ref_worktree(top, commit, state_dir=settings.state_dir) as wt:
            bs = baseline_settings(settings, wt, top)
            baseline = run(bs, against)
            stamp_versions(baseline, bs)  # the ref's own ids: a clean checkout, never "-dirty"
        baseline.extra["git_commit"] = commit
        if save:  # stored before the candidate runs: a failing candidate does not lose it
            _save(settings, baseline)
    candidate = run(settings, None)
    stamp_versions(candidate, settings)
    head = _head_commit(settings.root)
    if head:
        candidate.extra.setdefault("head_commit", head)
    if save:
        _save(settings, candidate)

    comparison = compare(baseline, candidate) if baseline is not None else None
    decision = None
    if gate is not None:
        decision = decide(comparison, gate) if comparison is not None else decide_single(candidate, gate)
    return EvalOutcome(candidate=candidate, baseline=baseline, comparison=comparison, decision=decision)
