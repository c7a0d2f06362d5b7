"""Cheatsheet upkeep between curation batches: merge, prune, decay, promote, fit the token budget.

ACE's "grow and refine": curation only adds and edits lessons one run at a
time, so near-duplicates pile up, lessons that stopped helping stay, and the
context grows without bound. :func:`plan_maintenance` decides, from the
entries and their counters (``CounterStore``), what to change and why;
:func:`apply_maintenance` writes it (all files or none) and moves counters.
Planning is pure -- same cheatsheet, counters and ``now`` -> same actions --
so a plan can be shown (``--dry-run``) and reviewed before it is applied.

Rules, in this order; an entry retired by one rule is not looked at again:

1. **Merge** near-duplicates: embedding cosine >= ``duplicate_threshold``
   within one section (retired entries excluded). The keeper has more helpful
   uses (tie: older ``source.created``, then smaller id); the other is
   retired and tagged ``merged-into:<keeper>`` (visible in the file and in
   ``git blame``, no schema change), the keeper's ``source.runs`` gains its
   runs (provenance kept) and its counters move to the keeper
   (``CounterStore.rename``). Pairs are taken most similar first; an entry
   merged away is not a keeper for a later pair.
2. **Prune by lift**: an entry is judged against its task type's baseline,
   not by its raw success rate -- a weak model that fails almost everything
   would otherwise retire every lesson. With the trace evidence ``runs``
   (:class:`TaskRun`: task type, success, entries shown/used), an entry with
   ``uses >= min_uses_for_prune`` is retired when its success rate is more
   than ``prune_lift_margin`` below the success rate of the runs of its task
   type that did *not* have it (at least ``min_baseline_runs`` of them). It is
   kept when that baseline is at most ``near_zero_baseline`` (nothing to
   fall below: 0/7 with it against 0/20 without is no evidence against it),
   and when there are too few runs without it to know the baseline. Without
   ``runs`` (no trace store at hand) the old rule applies: success rate below
   ``min_success_rate`` -> retired. The file stays either way.
3. **Decay**: confidence = ``(helpful + 2) / (helpful + harmful + 2)`` x
   ``0.5 ** (days idle / decay_half_life_days)``, idle counted from the last
   use (or creation), stored floored at ``decay_floor``. The first factor
   starts at 1 (a new lesson is trusted) and only harmful marks lower it. It is a function of
   the counters and ``now``, never of the stored value, so running
   maintenance twice does not decay twice. A *candidate* whose unfloored
   confidence falls below the floor is retired (never proven, now stale);
   active entries only lose rank.
4. **Promote**: candidate -> active after ``promote_after_helpful`` helpful
   uses with more helpful than harmful.
5. **Budget**: the tokens (``count_tokens(entry.text())``) of the entries the
   agent can be shown -- active ones, and candidates, which promotion would
   make active -- must fit ``token_budget``. Over it, entries are retired in
   this order until it fits: candidates before active entries; within each,
   lowest confidence x success rate first (an unused entry counts as 0.5
   success), then the larger entry, then id. Seed entries (``source.kind:
   seed``) whose success rate is unknown or at least ``min_success_rate``
   come after every learned entry: human-reviewed knowledge that has not
   failed outranks anything a model learned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from selfheal.cheatsheet.changes import AppliedChange, write_entries
from selfheal.cheatsheet.counters import EntryStats
from selfheal.cheatsheet.model import Cheatsheet, CheatsheetEntry, Status
from selfheal.cheatsheet.store import load_cheatsheet
from selfheal.tokens import count_tokens

if TYPE_CHECKING:
    from selfheal.models.embeddings import Embedder

__all__ = [
    "MaintenanceAction",
    "Lift",
    "MaintenancePolicy",
    "TaskRun",
    "apply_maintenance",
    "entry_confidence",
    "entry_lift",
    "plan_maintenance",
    "summarize",
]

Rule = Literal["merge", "prune", "decay", "promote", "budget"]
MERGED_TAG = "merged-into:"
REVISES_TAG = "revises:"  # an online revision of an active entry (see selfheal.optimize.online)
_SEED_KINDS = frozenset({"seed"})
# Smaller confidence moves are not reported (a day idle is -2%): the summary stays about real change.
_MIN_CONFIDENCE_STEP = 0.05


@dataclass(frozen=True)
class MaintenancePolicy:
    duplicate_threshold: float = 0.92
    min_uses_for_prune: int = 5
    min_success_rate: float = 0.3
    promote_after_helpful: int = 3
    decay_half_life_days: float = 30.0
    decay_floor: float = 0.2
    token_budget: int = 1500
    min_baseline_runs: int = 5
    near_zero_baseline: float = 0.1
    prune_lift_margin: float = 0.1


@dataclass(frozen=True)
class TaskRun:
    """One traced run as pruning evidence: its task type, outcome and the entries it was shown or used."""

    task_type: str
    success: bool
    entries: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Lift:
    """An entry's success with it (its counters) against its task type's runs without it."""

    with_successes: int
    with_runs: int
    without_successes: int
    without_runs: int

    @property
    def rate_with(self) -> float | None:
        return self.with_successes / self.with_runs if self.with_runs else None

    @property
    def baseline(self) -> float | None:
        return self.without_successes / self.without_runs if self.without_runs else None

    @property
    def lift(self) -> float | None:
        if self.rate_with is None or self.baseline is None:
            return None
        return self.rate_with - self.baseline


def entry_lift(entry: CheatsheetEntry, stats: EntryStats, runs: Iterable[TaskRun]) -> Lift:
    """The entry's :class:`Lift`: counters for the runs with it, ``runs`` of its task type without it."""
    without = [r.success for r in runs
               if (entry.is_general or r.task_type == entry.task_type) and entry.id not in r.entries]
    return Lift(stats.successes, stats.uses, sum(without), len(without))


@dataclass(frozen=True)
class MaintenanceAction:
    """One planned change. ``action``: MERGE / RETIRE / PROMOTE change a file, DECAY a counter.

    ``status`` is the entry's new status (None for DECAY), ``keeper`` the entry
    a MERGE folds into, ``confidence`` the new stored confidence (DECAY).
    """

    action: Literal["MERGE", "RETIRE", "PROMOTE", "DECAY"]
    rule: Rule
    entry_id: str
    reason: str
    status: Status | None = None
    keeper: str | None = None
    confidence: float | None = None

    @property
    def line(self) -> str:
        """``RETIRE strat-x: success 1/6 (17%) after 6 uses, below 30%``."""
        return f"{self.action} {self.entry_id}: {self.reason}"


class _Counters(Protocol):
    def rename(self, old_id: str, new_id: str) -> None: ...
    def set_confidence(self, entry_id: str, value: float) -> None: ...


def entry_confidence(
    stats: EntryStats, created: datetime, *, policy: MaintenancePolicy, now: datetime
) -> tuple[float, float]:
    """(unfloored, stored) confidence of an entry at ``now`` (see rule 3 in the module doc)."""
    base = (stats.helpful + 2) / (stats.helpful + stats.harmful + 2)
    idle = max(0.0, (_utc(now) - _utc(stats.last_used or created)).total_seconds() / 86400)
    raw = base * 0.5 ** (idle / policy.decay_half_life_days) if policy.decay_half_life_days > 0 else base
    return raw, max(policy.decay_floor, raw)


@dataclass
class _Plan:
    entries: dict[str, CheatsheetEntry]
    stats: dict[str, EntryStats]
    policy: MaintenancePolicy
    now: datetime
    actions: list[MaintenanceAction] = field(default_factory=list)
    status: dict[str, Status] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    runs: Sequence[TaskRun] | None = None

    def live(self) -> list[CheatsheetEntry]:
        return [e for e in self.entries.values() if self.status[e.id] != "retired"]

    def stat(self, entry_id: str) -> EntryStats:
        return self.stats.get(entry_id) or EntryStats(entry_id)

    def add(self, action: MaintenanceAction) -> None:
        self.actions.append(action)
        if action.status is not None:
            self.status[action.entry_id] = action.status


def plan_maintenance(
    cheatsheet: Cheatsheet,
    counters: dict[str, EntryStats],
    *,
    embedder: Embedder | None,
    policy: MaintenancePolicy | None = None,
    now: datetime | None = None,
    cache_dir: Path | None = None,
    runs: Sequence[TaskRun] | None = None,
) -> list[MaintenanceAction]:
    """The actions maintenance would take, in rule order (merge, prune, decay, promote, budget).

    ``embedder`` None skips merging (no way to judge similarity). ``runs``: the
    traced runs pruning judges lift with (see rule 2); None falls back to raw rates.
    """
    policy = policy or MaintenancePolicy()
    when = _utc(now or datetime.now(UTC))
    entries = {e.id: e for e in sorted(cheatsheet, key=lambda e: e.id)}
    plan = _Plan(entries, dict(counters), policy, when, status={i: e.status for i, e in entries.items()},
                 runs=list(runs) if runs is not None else None)
    if embedder is not None:
        _merge(plan, embedder, cache_dir)
    _prune(plan)
    _decay(plan)
    _promote(plan)
    _budget(plan)
    return plan.actions


def _merge(plan: _Plan, embedder: Embedder, cache_dir: Path | None) -> None:
    from selfheal.cheatsheet.embedding_index import EmbeddingIndex

    live = plan.live()
    if len(live) < 2:
        return
    index = EmbeddingIndex.build(live, embedder, cache_dir)
    merged: set[str] = set()
    for a, b, sim in index.similar_pairs(plan.policy.duplicate_threshold):
        ea, eb = plan.entries[a], plan.entries[b]
        if ea.section != eb.section or a in merged or b in merged:
            continue
        keeper, other = sorted((ea, eb), key=lambda e: (-plan.stat(e.id).helpful, _utc(e.source.created), e.id))
        merged.add(other.id)
        reason = (
            f"near-duplicate of {keeper.id} (similarity {sim:.2f} >= {plan.policy.duplicate_threshold:.2f}); "
            f"kept {keeper.id} ({_helpful(plan.stat(keeper.id))} vs {_helpful(plan.stat(other.id))})"
        )
        plan.add(MaintenanceAction("MERGE", "merge", other.id, reason, status="retired", keeper=keeper.id))


def _helpful(s: EntryStats) -> str:
    return f"{s.helpful} helpful"


def _prune(plan: _Plan) -> None:
    if plan.runs is not None:
        _prune_by_lift(plan, plan.runs)
        return
    p = plan.policy
    for e in plan.live():
        s = plan.stat(e.id)
        rate = s.success_rate
        if s.uses >= p.min_uses_for_prune and rate is not None and rate < p.min_success_rate:
            reason = (
                f"success {s.successes}/{s.uses} ({_pct(rate)}) after {s.uses} uses, below {_pct(p.min_success_rate)}"
            )
            plan.add(MaintenanceAction("RETIRE", "prune", e.id, reason, status="retired"))


def _prune_by_lift(plan: _Plan, runs: Sequence[TaskRun]) -> None:
    p = plan.policy
    for e in plan.live():
        s = plan.stat(e.id)
        if s.uses < p.min_uses_for_prune:
            continue
        lift = entry_lift(e, s, runs)
        if lift.without_runs < p.min_baseline_runs or lift.baseline is None or lift.lift is None:
            continue  # the task type's baseline is unknown: no evidence against the entry
        if lift.baseline <= p.near_zero_baseline:
            continue  # the model fails this task type almost always: failing with the entry proves nothing
        if lift.lift < -p.prune_lift_margin:
            reason = (
                f"success {s.successes}/{s.uses} ({_pct(lift.rate_with or 0.0)}) with it vs "
                f"{lift.without_successes}/{lift.without_runs} ({_pct(lift.baseline)}) without it in task type "
                f"{e.task_type}: lift {lift.lift * 100:+.0f} points, below -{p.prune_lift_margin * 100:.0f}"
            )
            plan.add(MaintenanceAction("RETIRE", "prune", e.id, reason, status="retired"))


def _decay(plan: _Plan) -> None:
    p = plan.policy
    for e in plan.entries.values():
        s = plan.stat(e.id)
        raw, stored = entry_confidence(s, e.source.created, policy=p, now=plan.now)
        plan.confidence[e.id] = stored
        if plan.status[e.id] == "retired":
            continue
        idle = (plan.now - _utc(s.last_used or e.source.created)).days
        since = "last use" if s.last_used else "creation"
        if plan.status[e.id] == "candidate" and raw < p.decay_floor:
            reason = (
                f"unused for {idle} days since {since}, confidence {raw:.2f} below floor {p.decay_floor:.2f}"
            )
            plan.add(MaintenanceAction("RETIRE", "decay", e.id, reason, status="retired", confidence=stored))
        elif abs(stored - s.confidence) >= _MIN_CONFIDENCE_STEP:
            reason = (
                f"confidence {s.confidence:.2f} -> {stored:.2f} ({s.helpful} helpful, {s.harmful} harmful, "
                f"{idle} days since {since}, half-life {p.decay_half_life_days:g} d)"
            )
            plan.add(MaintenanceAction("DECAY", "decay", e.id, reason, confidence=stored))


def _promote(plan: _Plan) -> None:
    p = plan.policy
    for e in plan.live():
        s = plan.stat(e.id)
        if plan.status[e.id] == "candidate" and s.helpful >= p.promote_after_helpful and s.helpful > s.harmful:
            reason = f"helpful {s.helpful}x, harmful {s.harmful}x (needs {p.promote_after_helpful} helpful, more than harmful)"
            plan.add(MaintenanceAction("PROMOTE", "promote", e.id, reason, status="active"))
            for tag in e.tags:  # a promoted revision supersedes the entry it revises
                original = tag[len(REVISES_TAG):] if tag.startswith(REVISES_TAG) else None
                if original and original in plan.status and plan.status[original] != "retired":
                    plan.add(MaintenanceAction("RETIRE", "superseded", original,
                                               f"superseded by its promoted revision {e.id}", status="retired"))


def _budget(plan: _Plan) -> None:
    p = plan.policy
    shown = plan.live()
    tokens = {e.id: count_tokens(e.text()) for e in shown}
    total = sum(tokens.values())
    if total <= p.token_budget:
        return

    def score(e: CheatsheetEntry) -> float:
        rate = plan.stat(e.id).success_rate
        return plan.confidence.get(e.id, 1.0) * (0.5 if rate is None else rate)

    def protected(e: CheatsheetEntry) -> bool:
        rate = plan.stat(e.id).success_rate
        return e.source.kind in _SEED_KINDS and (rate is None or rate >= p.min_success_rate)

    order = sorted(
        shown,
        key=lambda e: (protected(e), plan.status[e.id] != "candidate", round(score(e), 6), -tokens[e.id], e.id),
    )
    for e in order:
        if total <= p.token_budget:
            break
        before = total
        total -= tokens[e.id]
        rate = plan.stat(e.id).success_rate
        reason = (
            f"over token budget ({before} > {p.token_budget} tokens): lowest priority "
            f"{plan.status[e.id]}, confidence {plan.confidence.get(e.id, 1.0):.2f} x success "
            f"{'unknown' if rate is None else _pct(rate)}, {tokens[e.id]} tokens"
        )
        plan.add(MaintenanceAction("RETIRE", "budget", e.id, reason, status="retired"))


def apply_maintenance(
    cheatsheet_dir: Path,
    actions: Sequence[MaintenanceAction],
    *,
    now: datetime | None = None,
    counter_store: _Counters | None = None,
) -> list[AppliedChange]:
    """Write the planned status changes (all files or none), then move/set counters.

    Counters are touched only after every file is written, so a failed write
    leaves both files and counters as they were. ``now`` is accepted for
    symmetry with curation; file changes carry no timestamps of their own.
    """
    del now
    root = Path(cheatsheet_dir)
    sheet = load_cheatsheet(root)
    current: dict[str, CheatsheetEntry] = {e.id: e for e in sheet}
    order: list[str] = []
    changes: list[AppliedChange] = []

    def put(entry: CheatsheetEntry) -> None:
        current[entry.id] = entry
        if entry.id not in order:
            order.append(entry.id)

    for a in actions:
        entry = current.get(a.entry_id)
        if entry is None:
            raise KeyError(f"maintenance action for unknown entry '{a.entry_id}'")
        if a.action == "MERGE" and a.keeper is not None:
            keeper = current[a.keeper]
            runs = list(dict.fromkeys([*keeper.source.runs, *entry.source.runs]))
            if runs != keeper.source.runs:
                put(keeper.model_copy(update={"source": keeper.source.model_copy(update={"runs": runs})}))
            tags = [t for t in entry.tags if not t.startswith(MERGED_TAG)] + [f"{MERGED_TAG}{a.keeper}"]
            put(entry.model_copy(update={"status": "retired", "tags": tags}))
        elif a.status is not None and a.status != entry.status:
            put(entry.model_copy(update={"status": a.status}))
        changes.append(AppliedChange(op=a.action, entry_id=a.entry_id, path=None, reason=a.reason, line=a.line))

    paths = write_entries(root, [current[i] for i in order]) if order else {}
    for c in changes:
        c.path = paths.get(c.entry_id)
    if counter_store is not None:
        for a in actions:
            if a.confidence is not None:
                counter_store.set_confidence(a.entry_id, a.confidence)
            if a.action == "MERGE" and a.keeper is not None:
                counter_store.rename(a.entry_id, a.keeper)
    return changes


def _pct(x: float) -> str:
    return f"{math.floor(x * 100 + 0.5)}%"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def summarize(actions: Iterable[MaintenanceAction]) -> str:
    """One line per action, for a dry run or a commit body."""
    return "\n".join(a.line for a in actions)

