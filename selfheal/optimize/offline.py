"""Batch curation (``selfheal curate``): stored runs -> one reviewed cheatsheet change.

Selects root runs from the local trace store (by default: failed runs and
runs someone scored low, not yet curated by an earlier batch), reflects on
each, asks the Curator for deltas, collapses duplicate ADDs across runs, then
runs maintenance (merge, prune, decay, promote, budget) with the entries'
counters. All of it is computed on a temporary copy of the cheatsheet, so the
working tree is never half-changed: the result is one change set that is
either shown (``dry_run``), written to the working tree, or published as a
branch and pull request (``publish``).

After a change is applied or published, the counters accumulated since the
last batch are marked folded and the curated runs are stamped
(``metadata.curated_at``) so the next batch does not learn from them twice.
"""

from __future__ import annotations

import difflib
import logging
import shutil
from collections.abc import Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.errors import SelfhealError
from selfheal.journal import interrupted, roll_back, tree_journal
from selfheal.scratch import scratch_dir

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings
    from selfheal.optimize.digest import RunDigest
    from selfheal.tracing.schema import RunRecord

log = logging.getLogger(__name__)

CURATED_KEY = "curated_at"
#: Without a --filter, how many recent roots are scanned for failures / low scores per run wanted.
_SCAN_FACTOR = 20


@dataclass
class RunCuration:
    """What the batch made of one run."""

    run_id: str
    task_type: str
    success: bool
    negative_feedback: bool = False
    insight: str | None = None  # the Reflector's key insight
    proposed: int = 0  # operations the Curator proposed that passed screening
    rejected: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class CurationReport:
    """The batch's outcome: per-run results, the change lines (each with its reason), the files."""

    runs: list[RunCuration] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    files: dict[str, str | None] = field(default_factory=dict)  # repo-relative path -> content (None: deleted)
    diff: str = ""
    applied: bool = False
    dry_run: bool = False
    published: Any = None  # selfheal.gitops.publish.PublishResult
    folded: list[str] = field(default_factory=list)  # entries whose pending counters were folded
    maintenance: list[Any] = field(default_factory=list)  # MaintenanceAction (DECAY ones touch counters only)

    @property
    def changed(self) -> bool:
        return bool(self.files)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        pub = self.published
        data["published"] = pub.model_dump(exclude={"body"}) if hasattr(pub, "model_dump") else pub
        return data


# -- selection -------------------------------------------------------------------------


def parse_since(value: str | None) -> timedelta | datetime | None:
    """``7d`` / ``12h`` / ``2w`` / ``1y`` -> a look-back window; an ISO date -> a datetime; ``all`` -> None.

    The grammar every ``--since`` shares (:mod:`selfheal.timespec`).
    """
    from selfheal.timespec import parse_timespec

    if not value:
        return None
    try:
        return parse_timespec(value)
    except ValueError as exc:
        raise SelfhealError(f"--since {exc}") from None


def select_runs(
    store: Any,
    settings: Settings,
    *,
    since: timedelta | datetime | None,
    filter: str | None,  # noqa: A002 - LangSmith's name
    limit: int,
    force: bool = False,
) -> list[RunRecord]:
    """Root runs to learn from, newest first: ``filter`` as given, else failed or low-scored runs."""
    from selfheal.interact.feedback import feedback_by_run
    from selfheal.optimize.digest import NEGATIVE_SCORE

    project = settings.tracing.project
    if filter:
        roots = store.query_runs(filter, project=project, since=since, is_root=True, limit=None)
        picked = [r for r in roots if force or CURATED_KEY not in r.metadata]
        return picked[:limit]
    roots = store.query_runs(None, project=project, since=since, is_root=True, limit=max(limit * _SCAN_FACTOR, 200))
    roots = [r for r in roots if force or CURATED_KEY not in r.metadata]
    scores = feedback_by_run(store, [r.id for r in roots]) if roots else {}
    picked = []
    for r in roots:
        failed = r.metadata.get("success") is False or (r.status == "error" and "success" not in r.metadata)
        low = any(f.score is not None and f.score < NEGATIVE_SCORE for f in scores.get(r.id, []))
        if failed or low:
            picked.append(r)
    return picked[:limit]


def _references(settings: Settings) -> dict[str, str]:
    """Scenario name -> its ``success:`` text (what the Reflector may use as reference)."""
    try:
        from selfheal.agents.registry import get_agent

        return {
            row["name"]: row.get("success", "")
            for row in get_agent(settings).describe_scenarios(settings)
            if row.get("success")
        }
    except Exception as exc:  # a broken scenario file must not block curation of the others
        log.warning("scenario references unavailable: %s", exc)
        return {}


def _tool_names(settings: Settings) -> set[str] | None:
    try:
        from selfheal.agents.registry import get_agent

        return set(get_agent(settings).tool_names()) or None
    except Exception:  # pragma: no cover - an unknown agent fails earlier, at load
        return None


# -- combining the Curator's batches --------------------------------------------------


@dataclass
class _Planned:
    op: Any  # AddOp | UpdateOp | RemoveOp | TagOp
    runs: list[str]


def combine(per_run: Sequence[tuple[str, Any]]) -> tuple[list[_Planned], list[tuple[str, Any]]]:
    """One batch from many: (file ops with the runs behind each, TAG ops with their run).

    Duplicate ADDs (same section, same normalised text) collapse into one
    whose provenance lists every run; repeated UPDATEs of one id merge their
    fields (later runs win); one REMOVE per id.
    """
    from selfheal.cheatsheet.guard import normalize
    from selfheal.cheatsheet.ops import AddOp, RemoveOp, TagOp, UpdateOp

    planned: list[_Planned] = []
    tags: list[tuple[str, Any]] = []
    adds: dict[tuple[str, str], _Planned] = {}
    updates: dict[str, _Planned] = {}
    removes: dict[str, _Planned] = {}
    for run_id, op in per_run:
        if isinstance(op, TagOp):
            tags.append((run_id, op))
        elif isinstance(op, AddOp):
            key = (op.section, normalize(" ".join(op.fields[k] for k in sorted(op.fields))))
            if key in adds:
                adds[key].runs.append(run_id)
            else:
                adds[key] = _Planned(op, [run_id])
                planned.append(adds[key])
        elif isinstance(op, UpdateOp):
            if op.id in updates:
                prev = updates[op.id]
                merged = {**prev.op.fields, **op.fields}
                prev.op = prev.op.model_copy(update={"fields": merged, "reason": op.reason or prev.op.reason})
                prev.runs.append(run_id)
            else:
                updates[op.id] = _Planned(op, [run_id])
                planned.append(updates[op.id])
        elif isinstance(op, RemoveOp):
            if op.id in removes:
                removes[op.id].runs.append(run_id)
            else:
                removes[op.id] = _Planned(op, [run_id])
                planned.append(removes[op.id])
    for p in planned:
        p.runs = list(dict.fromkeys(p.runs))
    return planned, tags


# -- diffing the scratch copy against the working tree --------------------------------


def changed_files(old_dir: Path, new_dir: Path, rel_dir: Path) -> dict[str, str | None]:
    """Repo-relative path -> new content for every YAML file that differs (None: deleted)."""
    old = {p.relative_to(old_dir) for p in old_dir.rglob("*.yaml")} if old_dir.exists() else set()
    new = {p.relative_to(new_dir) for p in new_dir.rglob("*.yaml")}
    out: dict[str, str | None] = {}
    for rel in sorted(old | new):
        if any(part.startswith(".") for part in rel.parts):
            continue
        key = (rel_dir / rel).as_posix()
        if rel not in new:
            out[key] = None
            continue
        text = (new_dir / rel).read_text(encoding="utf-8")
        if rel not in old or (old_dir / rel).read_text(encoding="utf-8") != text:
            out[key] = text
    return out


def unified_diff(root: Path, files: dict[str, str | None]) -> str:
    """A ``git diff``-style text of ``files`` against the working tree."""
    parts: list[str] = []
    for rel, content in files.items():
        path = root / rel
        before = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.exists() else []
        after = content.splitlines(keepends=True) if content is not None else []
        a = f"a/{rel}" if path.exists() else "/dev/null"
        b = f"b/{rel}" if content is not None else "/dev/null"
        parts.extend(difflib.unified_diff(before, after, fromfile=a, tofile=b))
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


# -- the batch ---------------------------------------------------------------------------


def _learn_one(
    model: BaseChatModel, digest: RunDigest, cheatsheet: Any, item: RunCuration
) -> tuple[Any, list[Any]]:
    """Reflect and curate one run: (reflection or None, accepted ops)."""
    from selfheal.optimize.curator import curate_with_report, rejection_reason
    from selfheal.optimize.reflector import ReflectionRejected, reflect

    try:
        reflection = reflect(model, digest)
    except ReflectionRejected as exc:
        item.error = f"reflection rejected: {exc.reason}"
        return None, []
    except Exception as exc:
        item.error = f"reflection failed: {_one_line(exc)}"
        return None, []
    item.insight = reflection.summary()
    try:
        out = curate_with_report(model, reflection, digest, cheatsheet)
    except Exception as exc:
        rejected = type(exc).__name__ == "CurationRejected"
        item.error = f"curation {'rejected' if rejected else 'failed'}: {rejection_reason(exc) if rejected else _one_line(exc)}"
        return reflection, []
    item.rejected = [f"{op.get('op', '?')} {op.get('id') or op.get('section') or ''}: {r}" for op, r in out.rejected]
    item.proposed = len(out.batch.operations)
    return reflection, list(out.batch.operations)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "message", None) or exc).split())[:300]


def curate_offline(
    settings: Settings,
    *,
    since: timedelta | datetime | str | None = None,
    filter: str | None = None,  # noqa: A002 - LangSmith's name
    limit: int = 50,
    model: BaseChatModel | None = None,
    embedder: Any = None,
    publish: bool = False,
    dry_run: bool = False,
    force: bool = False,
    now: datetime | None = None,
    base: str | None = None,
) -> CurationReport:
    """Curate the cheatsheet from stored runs into one change set (see the module docstring).

    ``dry_run`` writes nothing (no files, counters or run stamps); ``publish``
    opens a branch and PR through gitops instead of writing the working tree;
    ``force`` re-curates runs an earlier batch already curated (and bypasses
    the PR rate limit). With ``publish``, the base branch (``base``, else
    gitops.base, else the default branch), remote, token and rate limit are
    checked before any run is read or any model is called.
    """
    from selfheal.cheatsheet.counters import CounterStore
    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.optimize.digest import digest_from_store
    from selfheal.optimize.online import failure_tags, success_tags
    from selfheal.tracing.store import LocalTraceStore

    if limit < 1:
        raise SelfhealError("--limit must be at least 1")
    plan = None
    if publish:
        from selfheal.gitops.preflight import plan_publish

        plan = plan_publish(settings, "curate", base=base, force=force, check_limits=not dry_run)
    window = parse_since(since) if isinstance(since, str) else since
    now = (now or datetime.now(UTC)).astimezone(UTC)
    report = CurationReport(dry_run=dry_run)
    if not dry_run:
        report.errors += recover_interrupted(settings)
    cheatsheet_dir = settings.cheatsheet_dir
    cheatsheet = load_cheatsheet(cheatsheet_dir)

    store = LocalTraceStore.from_settings(settings)
    try:
        roots = select_runs(store, settings, since=window, filter=filter, limit=limit, force=force)
        if not roots:
            why = "no uncurated run matches the filter" if filter else "no uncurated failed or low-scored runs"
            report.errors.append(f"no runs to curate ({why} in the window)")
            return report
        if model is None:
            from selfheal.models.providers import make_chat_model

            model = make_chat_model(settings)
        refs = _references(settings)
        per_run: list[tuple[str, Any]] = []
        counter_tags: list[tuple[str, bool, dict[str, str]]] = []
        for root in roots:
            digest = digest_from_store(store, root.id, reference=refs.get(str(root.metadata.get("scenario"))),
                                       cheatsheet=cheatsheet)
            item = RunCuration(str(root.id), digest.task_type, digest.success, digest.negative_feedback)
            reflection, ops = _learn_one(model, digest, cheatsheet, item)
            report.runs.append(item)
            if item.error:
                report.errors.append(f"run {item.run_id[:8]}: {item.error}")
            report.rejected += [f"run {item.run_id[:8]}: {r}" for r in item.rejected]
            per_run += [(item.run_id, op) for op in ops]
            if digest.success:
                tags = success_tags(digest.used_entries, verified=digest.verified)
            else:
                tags = failure_tags(digest, reflection, {})
            counter_tags.append((item.run_id, digest.success, tags))

        planned, tag_ops = combine(per_run)
        for run_id, op in tag_ops:
            for rid, _success, tags in counter_tags:
                if rid == run_id:
                    tags[op.id] = op.tag
        with ExitStack() as journal:
            # Writing the working tree: copy, apply and write under the cheatsheet's lock, so a
            # concurrent run's new entry is neither overwritten nor deleted as "not in the copy".
            with _tree_lock(settings, enabled=not dry_run and not publish):
                report = _build_change(settings, report, cheatsheet_dir, planned, counter_tags, embedder, now,
                                       dry_run)
                if report.files and not dry_run and not publish:
                    # Journaled until the runs are stamped: a kill in between is rolled back, not half kept.
                    journal.enter_context(tree_journal(settings.state_dir, settings.root, report.files, "curate"))
                    _write_working_tree(settings.root, report.files)
                    report.applied = True
            if report.files and not dry_run and publish:
                report.published = _publish(settings, report, roots, model, force=force, plan=plan)
            if not dry_run and (report.applied or report.published is not None or not report.files):
                with CounterStore.from_settings(settings) as counters:
                    _finish_counters(counters, counter_tags, report, now)
                for root in roots:
                    store.merge_metadata(root.id, {CURATED_KEY: now.isoformat()})
    finally:
        store.close()
    return report


def recover_interrupted(settings: Settings, *, dry_run: bool = False) -> list[str]:
    """Roll back working-tree changes of curate/optimize runs that were killed mid-change (one line each)."""
    lines: list[str] = []
    with _tree_lock(settings, enabled=not dry_run):
        for path, journal in interrupted(settings.state_dir):
            lines += roll_back(path, journal, dry_run=dry_run)
    return lines


def _tree_lock(settings: Settings, *, enabled: bool) -> AbstractContextManager[None]:
    from selfheal.cheatsheet.lock import cheatsheet_lock, lock_path

    return cheatsheet_lock(lock_path(settings)) if enabled else nullcontext()


def _build_change(
    settings: Settings,
    report: CurationReport,
    cheatsheet_dir: Path,
    planned: list[_Planned],
    counter_tags: list[tuple[str, bool, dict[str, str]]],
    embedder: Any,
    now: datetime,
    dry_run: bool,
) -> CurationReport:
    """Apply ops then maintenance to a scratch copy; fill ``report.changes/files/diff``."""
    from selfheal.cheatsheet.guard import ContentGuard
    from selfheal.cheatsheet.ops import OperationBatch, apply_operations

    rel_dir = cheatsheet_dir.relative_to(settings.root) if cheatsheet_dir.is_relative_to(settings.root) else Path(
        cheatsheet_dir.name
    )
    guard = ContentGuard(allowed_tools=_tool_names(settings))
    with scratch_dir(settings.state_dir, "selfheal-curate-", "curate") as tmp:
        scratch = tmp / "cheatsheet"
        if cheatsheet_dir.exists():
            shutil.copytree(cheatsheet_dir, scratch, ignore=shutil.ignore_patterns(".*"))
        else:
            scratch.mkdir()
        for p in planned:
            result = apply_operations(scratch, OperationBatch(operations=[p.op]), source_runs=p.runs, now=now,
                                      guard=guard)
            report.changes += [c.line for c in result.changes]
            report.rejected += [f"{op.get('op', '?')} {op.get('id') or op.get('section') or ''}: {r}"
                                for op, r in result.rejected]
        report.changes += _maintenance(settings, scratch, counter_tags, embedder, now, dry_run, report)
        report.files = changed_files(cheatsheet_dir, scratch, rel_dir)
        report.diff = unified_diff(settings.root, report.files)
    return report


def _maintenance(
    settings: Settings,
    scratch: Path,
    counter_tags: list[tuple[str, bool, dict[str, str]]],
    embedder: Any,
    now: datetime,
    dry_run: bool,
    report: CurationReport,
) -> list[str]:
    """Plan and apply maintenance on the scratch copy with the counters (this batch's tags included)."""
    from selfheal.cheatsheet.counters import CounterStore, EntryStats
    from selfheal.cheatsheet.maintenance import apply_maintenance, plan_maintenance
    from selfheal.cheatsheet.ranking import embedding_cache_dir
    from selfheal.cheatsheet.store import load_cheatsheet

    with CounterStore.from_settings(settings) as counters:
        stats: dict[str, EntryStats] = counters.all()
    if dry_run:
        # Nothing is recorded in a dry run: add this batch's tags in memory so the plan is the real one.
        for _run, success, tags in counter_tags:
            for entry_id, tag in tags.items():
                s = stats.setdefault(entry_id, EntryStats(entry_id))
                setattr(s, tag, getattr(s, tag) + 1)
                s.uses += 1
                s.successes += int(success)
                s.failures += int(not success)
    else:
        with CounterStore.from_settings(settings) as counters:
            for run_id, success, tags in counter_tags:
                for entry_id, tag in tags.items():
                    counters.record_use(entry_id, run_id=run_id, tag=tag, success=success, at=now)  # type: ignore[arg-type]
            stats = counters.all()
    if embedder is None:
        try:
            from selfheal.models.embeddings import make_embedder

            embedder = make_embedder(settings)
        except SelfhealError as exc:
            report.errors.append(f"near-duplicate merging skipped: {exc.message}")
    policy = _policy(settings)
    from selfheal.optimize.evidence_runs import task_runs

    actions = plan_maintenance(load_cheatsheet(scratch), stats, embedder=embedder, policy=policy, now=now,
                               cache_dir=embedding_cache_dir(settings), runs=task_runs(settings))
    file_actions = [a for a in actions if a.action != "DECAY"]
    report_lines = [a.line for a in file_actions]
    apply_maintenance(scratch, file_actions, now=now)
    report.maintenance = list(actions)  # their counter effects are replayed once the change lands
    return report_lines


def _policy(settings: Settings) -> Any:
    """Maintenance policy, with the embeddings' configured near-duplicate threshold."""
    from selfheal.cheatsheet.maintenance import MaintenancePolicy
    from selfheal.models.embeddings import embedding_settings

    return MaintenancePolicy(duplicate_threshold=embedding_settings(settings).duplicate_threshold)


def _finish_counters(counters: Any, counter_tags: list[tuple[str, bool, dict[str, str]]],
                     report: CurationReport, now: datetime) -> None:
    """After the change landed: move/set counters as maintenance decided, then fold the batch."""
    for a in report.maintenance:
        if a.confidence is not None:
            counters.set_confidence(a.entry_id, a.confidence)
        if a.action == "MERGE" and a.keeper is not None:
            counters.rename(a.entry_id, a.keeper)
    pending = sorted(counters.pending_since_fold())
    if pending:
        counters.mark_folded(pending, at=now)
    report.folded = pending


def _write_working_tree(root: Path, files: dict[str, str | None]) -> None:
    from selfheal.yamlio import atomic_write_text

    for rel, content in files.items():
        target = root / rel
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(target, content)


def _publish(settings: Settings, report: CurationReport, roots: Sequence[Any], model: Any, *, force: bool,
             plan: Any = None) -> Any:
    from selfheal.gitops.changeset import ChangeSet, FileChange
    from selfheal.gitops.publish import publish_change

    n = len(report.runs)
    change = ChangeSet(
        kind="curate",
        title=f"selfheal: cheatsheet curated from {n} run{'s' if n != 1 else ''}",
        summary=report.changes or [f"{len(report.files)} entry files changed"],
        files=[FileChange(path=p, content=c) for p, c in report.files.items()],
        trace_ids=[str(r.id) for r in roots],
        model=str(getattr(model, "model_name", "") or type(model).__name__),
    )
    return publish_change(settings, change, force=force, plan=plan)
