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
from contextlib import ExitStack
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
    positions: list[int] | None = None   # the examples' positions in the unsharded selection
    total: int = 0                       # examples in the unsharded selection
    shard: tuple[int, int] | None = None


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
    cache: str | None = None,
    shard: tuple[int, int] | None = None,
) -> EvalOutcome:
    """Evaluate the working tree (and ``against``'s context/cheatsheet); gate when ``gate`` is given.

    ``cache`` (default ``model.cache_mode``) is planned per side against the
    dataset's response cache before anything runs (see
    :mod:`selfheal.evaluation.replay`). ``shard=(K, N)`` runs only the K-th of
    N deterministic parts of the selection (merge them with
    :func:`selfheal.evaluation.shard.merge_shards`).
    """
    from selfheal.evaluation import replay, runner
    from selfheal.evaluation.dataset import Dataset, load_dataset
    from selfheal.evaluation.shard import shard_positions
    from selfheal.models.cache_manifest import track_keys
    from selfheal.versioning import content_version

    ev = eval_settings(settings)
    jobs = jobs or ev.jobs
    timeout_s = timeout_s if timeout_s is not None else ev.timeout_s
    retries = ev.retries if retries is None else retries
    mode = cache or settings.model.cache_mode
    if mode not in ("off", "record", "replay", "auto"):
        raise SelfhealError(f"unknown cache mode '{mode}' (use one of: off, record, replay, auto)")
    ds = dataset if isinstance(dataset, Dataset) else load_dataset(settings, dataset)
    selected = ds.select(split, names, task_types)
    if not selected:
        filters = [f"split '{split}'"] + ([f"task type(s) {', '.join(task_types)}"] if task_types else [])
        raise SelfhealError(f"dataset '{ds.name}' has no example for {' and '.join(filters)}")
    total = len(selected)
    positions = list(range(total))
    if shard is not None:
        positions = shard_positions(total, *shard)
        if not positions:
            raise SelfhealError(f"shard {shard[0]}/{shard[1]} of {total} example(s) is empty; use fewer shards")
        selected = [selected[i] for i in positions]
    chosen = [ex.name for ex in selected] if (names or task_types or shard) else None
    cache_dir = replay.dataset_cache_dir(settings, ds) if mode != "off" else None

    def run(run_settings: Settings, git_ref: str | None, plan: replay.SidePlan) -> ExperimentResult:
        side = replay.side_settings(run_settings, plan)
        if plan.cache_dir is None:
            result = runner.run_experiment(
                side, ds, split=split, names=chosen, jobs=jobs, model_factory=model_factory,
                timeout_s=timeout_s, retries=retries, git_ref=git_ref, progress=progress,
            )  # fmt: skip
        else:
            with track_keys(plan.cache_dir) as uses:
                result = runner.run_experiment(
                    side, ds, split=split, names=chosen, jobs=jobs, model_factory=model_factory,
                    timeout_s=timeout_s, retries=retries, git_ref=git_ref, progress=progress,
                )  # fmt: skip
            plan.uses = uses
        stamp_versions(result, run_settings)
        result.extra["cache"] = plan.as_extra()
        if shard is not None:
            result.extra["shard"] = f"{shard[0]}/{shard[1]}"
        replay.record_coverage(plan, ds, result, label=f"{plan.side} ({git_ref or 'working tree'})")
        return result

    def stamp_versions(result: ExperimentResult, run_settings: Settings) -> None:
        # What was actually evaluated, as git ids (``-dirty`` for uncommitted edits).
        result.context_version = content_version(run_settings.prompts_dir, run_settings.root)
        result.cheatsheet_version = content_version(run_settings.cheatsheet_dir, run_settings.root)

    baseline: ExperimentResult | None = None
    with ExitStack() as stack:
        bs: Settings | None = None
        commit: str | None = None
        if against is not None:
            from selfheal.evaluation.worktree import open_repo, ref_worktree, resolve_ref

            with open_repo(settings.root) as repo:
                top = Path(repo.working_tree_dir or settings.root).resolve()
                commit = resolve_ref(repo, against)
            wt = stack.enter_context(ref_worktree(top, commit, state_dir=settings.state_dir))
            bs = baseline_settings(settings, wt, top)
        # Both sides planned (and a side replay cannot judge refused) before anything runs.
        plans = {"candidate": replay.plan_side(settings, ds, selected, mode, "candidate", cache_dir)}
        if bs is not None:
            plans["baseline"] = replay.plan_side(bs, ds, selected, mode, "baseline", cache_dir)
        replay.refuse_uncovered(list(plans.values()))
        if bs is not None:
            baseline = run(bs, against, plans["baseline"])  # the ref's own ids: a clean checkout, never "-dirty"
            baseline.extra["git_commit"] = commit
            if save:  # stored before the candidate runs: a failing candidate does not lose it
                _save(settings, baseline)
    candidate = run(settings, None, plans["candidate"])
    head = _head_commit(settings.root)
    if head:
        candidate.extra.setdefault("head_commit", head)
    if save:
        _save(settings, candidate)

    outcome = judge_results(candidate, baseline, gate)
    outcome.positions, outcome.total, outcome.shard = positions, total, shard
    return outcome


def judge_results(
    candidate: ExperimentResult, baseline: ExperimentResult | None, gate: GateConfig | None
) -> EvalOutcome:
    """Compare (when there is a baseline) and gate (when asked) finished experiments, e.g. merged shards."""
    comparison = compare(baseline, candidate) if baseline is not None else None
    decision = None
    if gate is not None:
        decision = decide(comparison, gate) if comparison is not None else decide_single(candidate, gate)
    return EvalOutcome(candidate=candidate, baseline=baseline, comparison=comparison, decision=decision)
