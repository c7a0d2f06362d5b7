"""User feedback on runs: a score, a comment, a correction, stored as LangSmith-style feedback.

``selfheal feedback RUN_ID --score 0 --comment "..." --correction @fix.json``
calls :func:`record_feedback`, which writes a :class:`FeedbackRecord` to the
local trace store and, when LangSmith is configured, queues it for LangSmith
through the :class:`~selfheal.tracing.callbacks.TracingHandle` (same feedback
id, delivered after its trace; whatever is not confirmed within
``tracing.langsmith_exit_timeout_s`` stays pending for ``selfheal traces sync``).

Run ids may be abbreviated like git commits: a unique prefix of the full id is
enough, and a prefix shared by one root run and its own child runs means the
root (uuid7 ids of one trace share their leading digits, and roots are what
``selfheal traces list`` shows). See :func:`resolve_run_id`.

Reading feedback (for evaluation and curation)
-----------------------------------------------
Feedback is attached to the run id the user gave (usually a root run)::

    store = LocalTraceStore.from_settings(settings)
    for fb in store.list_feedback(run_ids=[run_id], key=USER_SCORE_KEY):
        fb.score        # float given with --score
        fb.comment      # str | None
        fb.correction   # dict (from @file.json) | str | None: what the right outcome was
        fb.source.metadata["source"]  # "cli", or whatever front end recorded it
        fb.created_at   # aware UTC datetime; newest first

:func:`feedback_by_run` groups it per run for many runs at once (in chunks, so
thousands of ids are fine), and :func:`selfheal.tracing.analysis.analyze`
reports count and mean score per key in ``GroupStats.feedback``.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from selfheal.errors import FileFormatError, SelfhealError
from selfheal.tracing.errors import RunNotFoundError
from selfheal.tracing.schema import FeedbackRecord, FeedbackSource

if TYPE_CHECKING:
    from selfheal.config import Settings
    from selfheal.tracing.store import LocalTraceStore

__all__ = [
    "USER_SCORE_KEY",
    "AmbiguousRunIdError",
    "feedback_by_run",
    "parse_correction",
    "record_feedback",
    "resolve_run_id",
]

#: The feedback key of scores given by people (``selfheal feedback --score``).
USER_SCORE_KEY = "user_score"
#: Shortest run-id prefix accepted (as git's default abbreviation floor).
MIN_PREFIX = 4
_PREFIX = re.compile(r"^[0-9a-f-]+$")


class AmbiguousRunIdError(SelfhealError):
    """A run-id prefix matches more than one run."""


def resolve_run_id(store: LocalTraceStore, ref: str | UUID) -> UUID:
    """The full id of the run ``ref`` names: a full id, or a unique prefix of one.

    A prefix matching several runs resolves to the only *root* run among them
    if there is exactly one; otherwise it is ambiguous. Unknown ids raise
    :class:`RunNotFoundError`, ambiguous ones :class:`AmbiguousRunIdError`;
    both are one-line user errors.
    """
    if isinstance(ref, UUID):
        full: UUID | None = ref
    else:
        text = ref.strip().lower()
        try:
            full = UUID(text) if len(text) >= 32 else None
        except ValueError:
            full = None
    if full is not None:
        if store.get_run(full) is None:
            raise RunNotFoundError(f"run {full} not found in {store.path}")
        return full
    if len(text) < MIN_PREFIX or not _PREFIX.match(text):
        raise SelfhealError(
            f"not a run id: {ref!r} (give the run id or at least its first {MIN_PREFIX} characters)"
        )
    store.flush()
    # Range scan on the primary key: ids are canonical lower-case text, and '~' sorts after them.
    sql = "SELECT id FROM runs WHERE id >= ? AND id < ?{} ORDER BY id LIMIT 4"
    conn = sqlite3.connect(store.path, timeout=30.0)
    try:
        conn.execute("PRAGMA query_only = ON")
        found = [r[0] for r in conn.execute(sql.format(""), (text, text + "~"))]
        if len(found) > 1:
            roots = [r[0] for r in conn.execute(sql.format(" AND parent_run_id IS NULL"), (text, text + "~"))]
            if len(roots) == 1:
                return UUID(roots[0])
            found = roots or found
    except sqlite3.Error as exc:
        raise SelfhealError(f"{store.path}: cannot look up run ids: {exc}") from None
    finally:
        conn.close()
    if not found:
        raise RunNotFoundError(f"no run id starts with {text!r} in {store.path}")
    if len(found) > 1:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise AmbiguousRunIdError(f"run id prefix {text!r} is ambiguous: {shown} (give more characters)")
    return UUID(found[0])


def parse_correction(text: str | None, *, base: Path | None = None) -> dict[str, Any] | str | None:
    """``--correction`` as given: plain text, or ``@file`` (JSON object/string for ``.json``, else text)."""
    if text is None:
        return None
    if not text.startswith("@"):
        return text
    path = Path(text[1:]).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    try:
        content = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SelfhealError(f"{path}: correction file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SelfhealError(f"{path}: cannot read correction file: {exc}") from None
    if path.suffix.lower() != ".json":
        return content.strip()
    try:
        value = json.loads(content)
    except json.JSONDecodeError as exc:
        raise FileFormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    if not isinstance(value, dict | str):
        raise FileFormatError(path, 1, f"a correction must be a JSON object or string, not {type(value).__name__}")
    return value


def record_feedback(
    settings: Settings,
    run_id: str | UUID,
    *,
    score: float,
    comment: str | None = None,
    correction: dict[str, Any] | str | None = None,
    key: str = USER_SCORE_KEY,
    source: str = "cli",
) -> FeedbackRecord:
    """Attach a score (and optionally a comment and a correction) to a run, locally and in LangSmith.

    ``run_id`` may be a unique prefix. Returns the stored record (its
    ``run_id`` is the full id, its ``trace_id`` the run's trace).
    """
    from selfheal.tracing.langsmith_backend import langsmith_configured
    from selfheal.tracing.store import LocalTraceStore

    if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score) \
            or not 0 <= score <= 1:
        raise SelfhealError(f"feedback score must be a finite number from 0 to 1, not {score!r}")
    key = key.strip()
    if not key:
        raise SelfhealError("feedback key must not be empty")
    store = LocalTraceStore.from_settings(settings)
    try:
        rid = resolve_run_id(store, run_id)
        feedback = FeedbackRecord(
            run_id=rid,
            key=key,
            score=float(score),
            comment=comment or None,
            correction=correction,
            feedback_source=FeedbackSource(type="api", metadata={"source": source}),
        )
        if not langsmith_configured(settings):
            return store.add_feedback(feedback)
        from selfheal.tracing.callbacks import tracing_callbacks

        handle = tracing_callbacks(settings, store)
        try:
            return handle.add_feedback(feedback)
        finally:
            handle.finish()  # bounded by tracing.langsmith_exit_timeout_s; the rest stays pending
    finally:
        store.close()


def feedback_by_run(
    store: Any, run_ids: Sequence[UUID | str], *, key: str | None = None
) -> dict[UUID, list[FeedbackRecord]]:
    """Feedback of many runs, grouped by run id (newest first per run); runs without any are absent.

    ``store`` is a ``LocalTraceStore`` or a ``LangSmithTraceReader``.
    """
    from selfheal.tracing.analysis import feedback_for

    out: dict[UUID, list[FeedbackRecord]] = defaultdict(list)
    ids = [r if isinstance(r, UUID) else UUID(str(r)) for r in run_ids]
    for fb in feedback_for(store, ids):
        if fb.run_id is not None and (key is None or fb.key == key):
            out[fb.run_id].append(fb)
    for items in out.values():
        items.sort(key=lambda f: f.created_at, reverse=True)
    return dict(out)
