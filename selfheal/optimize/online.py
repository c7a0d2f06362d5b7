"""Online learning: after a run, reflect, curate and apply the deltas to the working cheatsheet.

Called from the graph's ``curate_cheatsheet`` node (and, for counters only,
from ``evaluate``). Everything here is best effort: a model that fails or
answers nonsense is logged and reported in the run's output, never a failed
run. The deltas go through :func:`selfheal.cheatsheet.ops.apply_operations`
with a :class:`~selfheal.cheatsheet.guard.ContentGuard` that knows the
domain's tool names, so a lesson cannot smuggle an instruction into every
later prompt. New entries start as ``candidate``: retrieval shows them as
unproven until their counters earn promotion in batch curation.

Counters: each (run, entry) pair is recorded once (the counter store ignores
repeats), so the tag is decided once: a successful run tags the entries it
used ``helpful`` when checks verified it (``neutral`` otherwise) in
``evaluate``; a failed run gets the Reflector's tags (overridden by the
Curator's TAG operations) in ``curate_cheatsheet``, or ``neutral`` ("used",
no verdict) when there is no reflection.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from selfheal.agent.learning import LearningOutcome
    from selfheal.agent.state import AgentState, RunContext
    from selfheal.optimize.digest import RunDigest
    from selfheal.optimize.reflector import Reflection

log = logging.getLogger(__name__)


@dataclass
class LearningResult:
    """What online learning did for one run (stored in the run's execution record as ``learning``)."""

    applied: list[str] = field(default_factory=list)  # one line per applied change, with its reason
    rejected: list[str] = field(default_factory=list)  # "OP target: reason"
    errors: list[str] = field(default_factory=list)  # model failures and rejected replies
    counted: list[str] = field(default_factory=list)  # "entry-id=tag" counter updates
    reflection: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def suggestions(self) -> list[str]:
        """Lines for ``improvement_suggestions`` (what ``selfheal run`` shows under Learning)."""
        lines = [f"curate_cheatsheet: {line}" for line in self.applied]
        lines += [f"curate_cheatsheet: rejected {r}" for r in self.rejected]
        lines += [f"curate_cheatsheet: {e}" for e in self.errors]
        if not lines:
            lines.append("curate_cheatsheet: reflected on the run; the curator proposed no change")
        return lines


def _tool_names(rc: RunContext) -> set[str]:
    return {t.name for t in getattr(rc.session, "tools", [])}


@contextmanager
def counter_store(rc: RunContext) -> Iterator[Any]:
    """The run's counter store (the injected one, or the state dir's, closed afterwards)."""
    from selfheal.cheatsheet.counters import open_counters

    with open_counters(rc.settings, getattr(rc, "counters", None)) as store:
        yield store


def record_counters(
    rc: RunContext, *, run_id: str, success: bool, tags: Mapping[str, str], now: datetime | None = None
) -> list[str]:
    """Record one use per entry in ``tags`` (entry id -> helpful/harmful/neutral); "id=tag" lines."""
    if not tags or not run_id:
        return []
    done: list[str] = []
    try:
        with counter_store(rc) as store:
            if store is None:
                return []
            for entry_id, tag in tags.items():
                store.record_use(entry_id, run_id=run_id, tag=tag, success=success, at=now)  # type: ignore[arg-type]
                done.append(f"{entry_id}={tag}")
    except Exception as exc:  # counters are bookkeeping: never fail the run over them
        log.warning("could not record cheatsheet counters for run %s: %s", run_id, exc)
    return done


def success_tags(used: list[str], *, verified: bool) -> dict[str, str]:
    """A successful run's tags: used entries helpful when checks verified it, else just used."""
    return {entry_id: ("helpful" if verified else "neutral") for entry_id in used}


def failure_tags(digest: RunDigest, reflection: Reflection | None, curator_tags: Mapping[str, str]) -> dict[str, str]:
    """A failed run's tags: used entries, plus entries the Reflector or Curator judged non-neutral."""
    tags: dict[str, str] = {entry_id: "neutral" for entry_id in digest.used_entries}
    if reflection is not None:
        for entry_id, tag in reflection.entry_tags.items():
            if entry_id in tags or tag != "neutral":
                tags[entry_id] = tag
    for entry_id, tag in curator_tags.items():
        tags[entry_id] = tag
    return tags


def _op_target(op: Mapping[str, Any]) -> str:
    return str(op.get("id") or op.get("section") or "")


REVISES_TAG = "revises:"


def revisions_for_active(batch: Any, cheatsheet: Any) -> Any:
    """Online, an UPDATE of an *active* entry becomes a candidate revision of it.

    One unreviewed run must not overwrite a proven entry (a small model happily
    replaces a general rule with its run's specifics). The revision is an ADD of a
    candidate with the entry's fields merged with the update, tagged
    ``revises:<id>``; it is retrieved in the candidate slot, and maintenance
    retires the original only when the revision is promoted (proved helpful).
    Candidates are still updated in place. Batch curation, reviewed in a PR,
    keeps plain UPDATEs.
    """
    from selfheal.cheatsheet.ops import AddOp, OperationBatch, UpdateOp

    ops: list[Any] = []
    for op in batch.operations:
        entry = cheatsheet.get(op.id) if isinstance(op, UpdateOp) else None
        if entry is None or entry.status != "active":
            ops.append(op)
            continue
        fields = {f: str(getattr(entry, f)) for f in entry.content_fields()}
        fields.update(op.fields)
        tags = [t for t in (re.sub(r"[^a-z0-9_.:-]+", "-", tag.lower()).strip("-") for tag in entry.tags) if t]
        ops.append(AddOp(op="ADD", section=entry.section, task_type=entry.task_type, fields=fields,
                         tags=[*tags, f"{REVISES_TAG}{entry.id}"],
                         reason=f"revision of active {entry.id}: {op.reason}"))
    return OperationBatch(operations=ops)


def apply_batch(rc: RunContext, batch: Any, *, run_id: str, now: datetime) -> tuple[Any, list[str], list[str]]:
    """Apply a batch to the working tree's cheatsheet: (ApplyResult, applied lines, rejected lines)."""
    from selfheal.cheatsheet.guard import ContentGuard
    from selfheal.cheatsheet.lock import lock_path
    from selfheal.cheatsheet.ops import apply_operations

    batch = revisions_for_active(batch, rc.cheatsheet)
    guard = ContentGuard(allowed_tools=_tool_names(rc) or None)
    # Under the cheatsheet's lock, against the files on disk now: other runs may have learned since this one started.
    result = apply_operations(
        rc.settings.cheatsheet_dir, batch, source_runs=[run_id] if run_id else [], now=now, guard=guard,
        lock=lock_path(rc.settings),
    )
    applied = [c.line for c in result.changes]
    rejected = [f"{_describe(op)}: {reason}" for op, reason in result.rejected]
    return result, applied, rejected


def _describe(op: Any) -> str:
    if isinstance(op, Mapping):
        return f"{op.get('op', '?')} {_op_target(op)}".strip()
    kind = getattr(op, "op", "?")
    target = getattr(op, "id", None) or getattr(op, "section", "")
    return f"{kind} {target}".strip()


def learn_from_run(
    rc: RunContext, digest: RunDigest, *, config: Any = None, now: datetime | None = None
) -> LearningResult:
    """Reflect -> curate -> apply for one run, then record the run's counters.

    Never raises for a model or output problem: each lands in ``errors``.
    """
    from selfheal.optimize.curator import curate_with_report, rejection_reason
    from selfheal.optimize.reflector import ReflectionRejected, reflect

    now = now or datetime.now(UTC)
    result = LearningResult()
    model = getattr(rc, "learner_model", None) or rc.model
    reflection: Reflection | None = None
    curator_tags: dict[str, str] = {}
    try:
        reflection = reflect(model, digest, config=config)
        result.reflection = reflection.model_dump()
    except ReflectionRejected as exc:
        result.errors.append(f"reflection rejected: {exc.reason}")
    except Exception as exc:  # a model failure (ModelError, a fake's exhausted script, ...)
        log.warning("reflection failed for run %s: %s", digest.run_id, exc)
        result.errors.append(f"reflection failed: {_one_line(exc)}")

    if reflection is not None:
        try:
            out = curate_with_report(model, reflection, digest, rc.cheatsheet, config=config)
        except ImportError as exc:  # pragma: no cover - the ops module ships with the package
            result.errors.append(f"curation unavailable: {exc}")
            out = None
        except Exception as exc:
            reason = rejection_reason(exc) if type(exc).__name__ == "CurationRejected" else _one_line(exc)
            label = "curation rejected" if type(exc).__name__ == "CurationRejected" else "curation failed"
            log.warning("%s for run %s: %s", label, digest.run_id, reason)
            result.errors.append(f"{label}: {reason}")
            out = None
        if out is not None:
            result.rejected += [f"{_describe(op)}: {reason}" for op, reason in out.rejected]
            if out.batch.operations:
                try:
                    applied, lines, rejected = apply_batch(rc, out.batch, run_id=digest.run_id, now=now)
                except Exception as exc:
                    log.warning("applying the curator's operations failed for run %s: %s", digest.run_id, exc)
                    result.errors.append(f"applying operations failed: {_one_line(exc)}")
                else:
                    result.applied += lines
                    result.rejected += rejected
                    curator_tags = {t.id: t.tag for t in getattr(applied, "tags", [])}

    if digest.success:
        tags = success_tags(digest.used_entries, verified=digest.verified)
    else:
        tags = failure_tags(digest, reflection, curator_tags)
    result.counted = record_counters(rc, run_id=digest.run_id, success=digest.success, tags=tags, now=now)
    return result


def _one_line(exc: BaseException) -> str:
    """A user error's own message, else ``Type: message``; one line, bounded."""
    message = getattr(exc, "message", None)
    text = str(message) if message else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:300]


class OnlineLearner:
    """selfheal's online learner (ACE reflect -> curate -> apply), handed to the graph as its Learner."""

    def count_success(self, rc: RunContext, *, run_id: str, used_entries: list[str], verified: bool) -> list[str]:
        return record_counters(rc, run_id=run_id, success=True, tags=success_tags(used_entries, verified=verified))

    def learn(self, state: AgentState, rc: RunContext, *, run_id: str, config: Any = None) -> LearningOutcome:
        from selfheal.agent.learning import LearningOutcome
        from selfheal.optimize.digest import digest_from_state

        result = learn_from_run(rc, digest_from_state(state, rc, run_id=run_id), config=config)
        return LearningOutcome(record=result.to_record(), suggestions=result.suggestions())


def make_learner() -> OnlineLearner:
    """The default ``learner_factory`` (``selfheal.optimize.online:make_learner``)."""
    return OnlineLearner()
