"""Which response cache an eval side uses, and whether that cache can judge it.

A dataset's committed cache is found from the dataset: ``cache:`` in its
``dataset.yaml`` (a directory relative to it), else its ``replay/`` directory.
``model.cache_dir`` (e.g. ``SELFHEAL_MODEL_CACHE_DIR``) overrides both when set
to anything but the default. The cache's manifest (see
:mod:`selfheal.models.cache_manifest`) says which model, context/cheatsheet
versions and examples it covers, so each side of an eval is planned before
anything runs:

- ``replay``: a side the cache does not cover is refused up front with the
  reason (exit 2), instead of running as a wall of cache misses that reads as
  a drop to 0%;
- ``auto``: every side is served from the cache where its requests were
  recorded and runs live (recorded) wherever they are new — a covered side
  too, since the manifest knows the prompts but not the agent's code (a
  changed loop asks new questions of the same prompts); the report says
  which happened;
- ``record``: runs live and records; the manifest gains the side's coverage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.errors import SelfhealError
from selfheal.models.cache_manifest import (
    DEFAULT_CACHE_DIR,
    CacheManifest,
    Coverage,
    KeyUse,
    add_coverage,
    digest_items,
    find_coverage,
    keys_of,
    load_manifest,
    now,
    save_manifest,
)

if TYPE_CHECKING:
    from selfheal.config import Settings
    from selfheal.evaluation.dataset import Dataset, Example
    from selfheal.evaluation.results import ExperimentResult

#: Example outcomes a replay reproduces (an error while recording errors again); timeouts and misses do not.
_REPRODUCIBLE = ("ok", "error")


def dataset_cache_dir(settings: Settings, dataset: Dataset) -> Path:
    """The response cache for ``dataset``: the override, the dataset's named cache, or the default."""
    return _resolve(settings, dataset.root, dataset.spec.cache)


def cache_dirs(settings: Settings, dataset: str | None = None) -> list[tuple[str, Path]]:
    """(dataset name, cache directory) of every dataset (or one), plus the default directory when it exists.

    Reads only each ``dataset.yaml`` (no example is loaded), so a dataset of
    another agent is listed too.
    """
    from selfheal.evaluation.dataset import DATASET_FILE, DatasetSpec, datasets_root, list_datasets
    from selfheal.yamlio import read_yaml, validate

    names = [dataset] if dataset else list_datasets(settings)
    out: list[tuple[str, Path]] = []
    for name in names:
        root = datasets_root(settings) / name
        spec_path = root / DATASET_FILE
        if not spec_path.is_file():
            raise SelfhealError(f"unknown dataset '{name}' (no {spec_path})")
        spec = validate(DatasetSpec, read_yaml(spec_path), spec_path)
        out.append((name, _resolve(settings, root, spec.cache)))
    default = settings.response_cache_dir
    if dataset is None and default.is_dir() and all(d != default.resolve() for _, d in out):
        out.append(("(default)", default.resolve()))
    unique: dict[Path, str] = {}
    for name, path in out:
        unique.setdefault(path, name)  # two datasets sharing one cache: listed once
    return [(name, path) for path, name in unique.items()]


def _resolve(settings: Settings, root: Path, named: str | None) -> Path:
    if settings.model.cache_dir != DEFAULT_CACHE_DIR:
        return settings.response_cache_dir.resolve()
    if named:
        return (root / named).resolve()
    if (root / "replay").is_dir():
        return (root / "replay").resolve()
    return settings.response_cache_dir.resolve()


def example_digest(example: Example) -> str:
    """A digest of what defines an example (its file, and its place in it)."""
    try:
        data = example.path.read_bytes()
    except OSError:
        data = b""
    return digest_items([(example.path.name, data), ("index", str(example.index).encode())])


def _display(path: Path) -> str:
    """A path as a reader of the report knows it: relative to the current directory when inside it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _short(version: str) -> str:
    return version[:12] + ("-dirty" if version.endswith("-dirty") else "")


@dataclass
class SidePlan:
    """How one side of an eval talks to the model, and why."""

    side: str                          # "baseline" | "candidate"
    mode: str                          # the cache mode it runs with: off | replay | auto | record
    cache_dir: Path | None
    context_version: str = ""
    cheatsheet_version: str = ""
    covered: bool | None = None        # None: no manifest to tell
    reason: str = ""                   # why it is not covered
    uses: dict[str, KeyUse] = field(default_factory=dict)  # filled while it runs

    def note(self) -> str:
        """One line for the report."""
        where = f" {_display(self.cache_dir)}" if self.cache_dir is not None else ""
        if self.mode == "off":
            return ""
        replayed, recorded = len(keys_of(self.uses, "replay")), len(keys_of(self.uses, "record"))
        counts = f"{replayed} response(s) replayed, {recorded} recorded"
        if self.mode == "replay":
            state = "covered by the manifest" if self.covered else "no manifest to check coverage"
            return f"replayed from{where} ({state}; {counts})"
        if self.mode == "auto" and self.covered:
            return f"replayed from{where} (covered by the manifest), live where its requests were new ({counts})"
        if self.mode == "auto":
            return f"ran live where its requests are new: {self.reason}; recorded into{where} ({counts})"
        return f"ran live, recorded into{where} ({counts})"

    def as_extra(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "dir": None if self.cache_dir is None else str(self.cache_dir),
            "covered": self.covered, "reason": self.reason or None, "note": self.note(),
            "replayed": len(keys_of(self.uses, "replay")), "recorded": len(keys_of(self.uses, "record")),
        }  # fmt: skip


def uncovered_reason(
    manifest: CacheManifest, identity: str, context_version: str, cheatsheet_version: str,
    examples: list[Example],
) -> str:
    """Why the cache cannot replay this side ("" when it can)."""
    if manifest.model != identity:
        return f"the cache was recorded with model {manifest.model}, this eval uses {identity}"
    cov = find_coverage(manifest, context_version, cheatsheet_version)
    if cov is None:
        known = "; ".join(f"{_short(c.context_version)}/{_short(c.cheatsheet_version)}" for c in manifest.coverage)
        return (f"its prompts changed: context {_short(context_version)} / cheatsheet {_short(cheatsheet_version)}"
                f" is not among the recorded versions ({known or 'none'})")
    changed = [ex.name for ex in examples if cov.examples.get(ex.id) != example_digest(ex)]
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        return f"{len(changed)} example(s) were not recorded for this version or changed since: {shown}"
    return ""


def plan_side(
    settings: Settings, dataset: Dataset, examples: list[Example], mode: str, side: str, cache_dir: Path | None,
) -> SidePlan:
    """Decide the cache mode of one side from its versions and the cache's manifest."""
    from selfheal.models.providers import model_identity
    from selfheal.versioning import content_version

    if mode == "off" or cache_dir is None:
        return SidePlan(side, "off", None)
    ctx = content_version(settings.prompts_dir, settings.root)
    cs = content_version(settings.cheatsheet_dir, settings.root)
    plan = SidePlan(side, mode, cache_dir, ctx, cs)
    manifest = load_manifest(cache_dir)
    if mode == "record":
        return plan
    if manifest is None:
        plan.reason = f"{cache_dir} has no manifest"
        return plan
    plan.reason = uncovered_reason(manifest, model_identity(settings), ctx, cs, examples)
    plan.covered = not plan.reason
    return plan


def refuse_uncovered(plans: list[SidePlan]) -> None:
    """``--cache replay`` on a side the cache does not cover: one line per side, exit 2, nothing run."""
    bad = [p for p in plans if p.mode == "replay" and p.covered is False]
    if bad:
        detail = "; ".join(f"the {p.side} side: {p.reason}" for p in bad)
        raise SelfhealError(
            f"--cache replay cannot judge this change from {_display(bad[0].cache_dir)}: {detail}."
            " Use --cache auto to run those sides live (recorded), or --cache record to re-record"
        )


def side_settings(settings: Settings, plan: SidePlan) -> Settings:
    """``settings`` with the side's cache mode and directory."""
    update: dict[str, Any] = {"cache_mode": plan.mode}
    if plan.cache_dir is not None:
        update["cache_dir"] = str(plan.cache_dir)
    return settings.model_copy(update={"model": settings.model.model_copy(update=update)})


def record_coverage(
    plan: SidePlan, dataset: Dataset, result: ExperimentResult, *, label: str = ""
) -> Path | None:
    """After a recording side: add what it ran (versions, examples, keys) to the cache's manifest."""
    if plan.cache_dir is None or plan.mode not in ("record", "auto") or not plan.uses:
        return None
    examples = {ex.id: ex for ex in dataset.examples}
    ran = {r.example_id: example_digest(examples[r.example_id]) for r in result.results
           if r.status in _REPRODUCIBLE and r.example_id in examples}
    manifest = load_manifest(plan.cache_dir)
    if manifest is None or manifest.model != result.model:
        manifest = CacheManifest(name=dataset.name, model=result.model, dataset=dataset.name,
                                 dataset_hash=dataset.hash)
    manifest = manifest.model_copy(update={"dataset_hash": dataset.hash})
    cov = Coverage(label=label, context_version=result.context_version, cheatsheet_version=result.cheatsheet_version,
                   examples=ran, keys=keys_of(plan.uses), recorded_at=now())
    return save_manifest(plan.cache_dir, add_coverage(manifest, cov))


# -- selfheal cache status / prune ------------------------------------------------------
def status_report(settings: Settings, dataset: str | None = None) -> list[dict[str, Any]]:
    """Each cache's status, and which of its coverages the working tree's context/cheatsheet match now."""
    from selfheal.models.cache_manifest import cache_status, same_content
    from selfheal.versioning import content_version

    ctx = content_version(settings.prompts_dir, settings.root)
    cs = content_version(settings.cheatsheet_dir, settings.root)
    out = []
    for name, path in cache_dirs(settings, dataset):
        st = cache_status(path)
        current = [same_content(c.context_version, ctx) and same_content(c.cheatsheet_version, cs)
                   for c in (st.manifest.coverage if st.manifest else [])]
        out.append({"dataset": name, **st.model_dump(mode="json"), "current": current,
                    "working_tree": {"context_version": ctx, "cheatsheet_version": cs}})
    return out


def prune_caches(settings: Settings, dataset: str | None = None, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """Prune every cache with a manifest (or the one dataset's, where a missing manifest is an error)."""
    from selfheal.models.cache_manifest import load_manifest, prune_cache

    out = []
    for name, path in cache_dirs(settings, dataset):
        if dataset is None and load_manifest(path) is None:
            out.append({"dataset": name, "path": str(path), "skipped": "no manifest", "removed": []})
            continue
        removed = prune_cache(path, dry_run=dry_run)
        out.append({"dataset": name, "path": str(path), "skipped": None,
                    "removed": [str(p.relative_to(path)) for p in removed]})
    return out
