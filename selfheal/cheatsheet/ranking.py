"""Embedding retrieval of cheatsheet entries (DC-RS), ranked by similarity and proven success.

One query embedding per run; the entries' matrix is built once per distinct
cheatsheet content (in process) and per entry text (on disk, see
:mod:`selfheal.cheatsheet.embedding_index`).

Eligibility (mirrors the BM25 fallback in :mod:`selfheal.cheatsheet.retrieval`):
retired entries never; the run's task type or general ones only; an entry of
the run's own task type is always eligible, any other must reach
``min_similarity`` (the classifier already vouched for the former).

Score (documented because reviewers tune it)::

    score = similarity
          + SUCCESS_WEIGHT * (success_rate - 0.5)                    if uses >= MIN_USES
          - HARM_WEIGHT * (harmful - helpful) / (helpful + harmful + neutral)   if harmful > helpful

With the weights below an entry's record moves it by at most +0.05 / -0.15:
enough to order entries about equally similar to the task (proven before
unproven, harmful-dominated last), never enough to push an off-topic entry
above an on-topic one. Ties go to the better success rate, then the id.
``confidence`` is curation's business and does not enter the score.

Active entries fill ``top_k``; up to ``candidate_slots`` candidate entries
(curated but unproven) ride along, marked ``candidate=True`` so the prompt
shows them as ``[id] (unproven)`` and their outcome can promote or retire them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from selfheal.cheatsheet.counters import CounterStore, EntryStats
from selfheal.cheatsheet.embedding_index import EmbeddingIndex, top_rows
from selfheal.cheatsheet.model import Cheatsheet, CheatsheetEntry
from selfheal.cheatsheet.retrieval import Retrieved, first_distinct
from selfheal.models.embeddings import Embedder

if TYPE_CHECKING:
    from selfheal.config import Settings

log = logging.getLogger(__name__)

SUCCESS_WEIGHT = 0.10
MIN_USES = 3
HARM_WEIGHT = 0.10
MIN_SIMILARITY = 0.15
# The largest boost a record can give bounds how far down the similarity order
# re-ranking has to look; _WINDOW_CAP bounds it outright (a cheatsheet whose 256
# most similar entries are all within 0.05 of each other is tied anyway).
_MAX_UP = SUCCESS_WEIGHT * 0.5
_WINDOW_CAP = 256
_STATS_BATCH = 16

_ACTIVE, _CANDIDATE, _RETIRED = 0, 1, 2
_STATUS_CODE = {"active": _ACTIVE, "candidate": _CANDIDATE, "retired": _RETIRED}


def record_adjustment(stats: EntryStats | None) -> float:
    """The success bonus minus the harm penalty of the module docstring's formula."""
    if stats is None:
        return 0.0
    adj = 0.0
    if stats.uses >= MIN_USES and stats.success_rate is not None:
        adj += SUCCESS_WEIGHT * (stats.success_rate - 0.5)
    tagged = stats.helpful + stats.harmful + stats.neutral
    if tagged and stats.harmful > stats.helpful:
        adj -= HARM_WEIGHT * (stats.harmful - stats.helpful) / tagged
    return adj


def _proven_rate(stats: EntryStats | None) -> float:
    if stats is None or stats.uses < MIN_USES or stats.success_rate is None:
        return 0.5
    return stats.success_rate


@dataclass
class _Prepared:
    """An index plus per-row status and task-type codes, with masks cached per task type."""

    entries: list[CheatsheetEntry]
    index: EmbeddingIndex
    status: np.ndarray
    general: np.ndarray
    task_types: np.ndarray
    #: rows whose text repeats an earlier row's (the same lesson filed twice): how many, at most
    repeated_texts: int = 0
    _masks: dict[tuple[str | None, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def build(cls, entries: Sequence[CheatsheetEntry], embedder: Embedder, cache_dir: Path | None) -> _Prepared:
        # Retired entries are never retrieved: don't spend embeddings on them.
        live = [e for e in entries if e.status != "retired"]
        return cls(
            entries=live,
            index=EmbeddingIndex.build(live, embedder, cache_dir),
            status=np.array([_STATUS_CODE[e.status] for e in live], dtype=np.int8),
            general=np.array([e.is_general for e in live], dtype=bool),
            task_types=np.array([e.task_type for e in live], dtype=object),
            repeated_texts=len(live) - len({e.text() for e in live}),
        )

    def masks(self, task_type: str | None, status: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows of this status and eligible type, whether each such row is of the run's own type)."""
        key = (task_type, status)
        got = self._masks.get(key)
        if got is None:
            of_status = self.status == status
            if task_type is None:
                own = np.zeros(len(self.entries), dtype=bool)
                ok = of_status
            else:
                own = (self.task_types == task_type) & ~self.general
                ok = of_status & (own | self.general)
            rows = np.flatnonzero(ok)
            got = self._masks[key] = (rows, own[rows])
            if len(self._masks) > 64:
                self._masks.clear()
        return got


_lock = threading.Lock()
_BY_OBJECT: dict[tuple[int, str], tuple[weakref.ref[Cheatsheet], _Prepared]] = {}
_BY_CONTENT: dict[tuple[str, str, str], _Prepared] = {}


def _content_key(entries: Sequence[CheatsheetEntry]) -> str:
    h = hashlib.sha256()
    for e in entries:
        for part in (e.id, e.status, e.task_type or "", e.search_text()):
            h.update(part.encode())
            h.update(b"\x1f")
        h.update(b"\x1e")
    return h.hexdigest()


def prepared_index(cheatsheet: Cheatsheet, embedder: Embedder, cache_dir: Path | None) -> _Prepared:
    """The cheatsheet's index: same snapshot object -> no work; same content -> no embedding."""
    okey = (id(cheatsheet), embedder.identity)
    with _lock:
        hit = _BY_OBJECT.get(okey)
        if hit is not None and hit[0]() is cheatsheet:
            return hit[1]
    ckey = (embedder.identity, _content_key(cheatsheet.entries), str(cache_dir))
    with _lock:
        prepared = _BY_CONTENT.get(ckey)
    if prepared is None:
        prepared = _Prepared.build(cheatsheet.entries, embedder, cache_dir)
        with _lock:
            if len(_BY_CONTENT) >= 8:
                _BY_CONTENT.clear()
            _BY_CONTENT[ckey] = prepared
    with _lock:
        if len(_BY_OBJECT) >= 32:
            _BY_OBJECT.clear()
        _BY_OBJECT[okey] = (weakref.ref(cheatsheet), prepared)
    return prepared


def clear_index_cache() -> None:
    with _lock:
        _BY_OBJECT.clear()
        _BY_CONTENT.clear()


def _rank(
    prep: _Prepared,
    sims: np.ndarray,
    rows: np.ndarray,
    own: np.ndarray,
    k: int,
    counters: CounterStore | None,
    min_similarity: float,
) -> list[tuple[int, float, float]]:
    """The ``k`` best eligible rows as (row, score, similarity)."""
    if k <= 0 or rows.size == 0:
        return []
    row_sims = sims[rows]
    keep = own | (row_sims >= min_similarity)
    rows, row_sims = rows[keep], row_sims[keep]
    if rows.size == 0:
        return []
    if counters is None:
        best = top_rows(sims, rows, k)
        picked = [(r, s, s) for r, s in best]
        picked.sort(key=lambda t: (-t[1], prep.entries[t[0]].id))
        return picked
    # Walk the entries by similarity, fetching records a few at a time; stop once no
    # remaining entry could reach the k-th best adjusted score even with the top bonus.
    shortlist = top_rows(sims, rows, min(rows.size, max(k, _WINDOW_CAP)))
    scored: list[tuple[int, float, float, float]] = []
    for start in range(0, len(shortlist), _STATS_BATCH):
        batch = shortlist[start : start + _STATS_BATCH]
        if len(scored) >= k:
            kth = sorted(t[1] for t in scored)[-k]
            if batch[0][1] + _MAX_UP < kth:
                break
        stats = counters.get_many([prep.entries[r].id for r, _ in batch])
        for r, s in batch:
            st = stats.get(prep.entries[r].id)
            scored.append((r, s + record_adjustment(st), s, _proven_rate(st)))
    scored.sort(key=lambda t: (-round(t[1], 9), -t[3], prep.entries[t[0]].id))
    return [(r, score, s) for r, score, s, _ in scored[:k]]


_QUERY_CACHE: OrderedDict[tuple[int, str], tuple[Any, Any]] = OrderedDict()
_QUERY_CACHE_SIZE = 256
_QUERY_LOCK = threading.Lock()


def query_vector(embedder: Embedder, text: str) -> Any:
    """The embedding of a task, memoised by (embedder, text): an eval or a retried run embeds once.

    A MiniLM query costs ~7-12 ms of CPU here, the largest fixed cost of a run.
    """
    key = (id(embedder), text)  # the entry holds the embedder, so its id is never reused meanwhile
    with _QUERY_LOCK:
        hit = _QUERY_CACHE.get(key)
        if hit is not None and hit[0] is embedder:
            _QUERY_CACHE.move_to_end(key)
            return hit[1]
    vec = embedder.embed([text])[0]
    with _QUERY_LOCK:
        _QUERY_CACHE[key] = (embedder, vec)
        while len(_QUERY_CACHE) > _QUERY_CACHE_SIZE:
            _QUERY_CACHE.popitem(last=False)
    return vec


def retrieve_entries(
    cheatsheet: Cheatsheet,
    task: str,
    *,
    task_type: str | None,
    top_k: int,
    embedder: Embedder,
    counters: CounterStore | None = None,
    candidate_slots: int = 1,
    cache_dir: Path | None = None,
    min_similarity: float = MIN_SIMILARITY,
) -> list[Retrieved]:
    """The top-k active entries for ``task`` plus at most ``candidate_slots`` candidates (marked).

    An entry whose text is one already shown is skipped: the same lesson filed
    under two task types would otherwise fill two slots and be read twice.
    """
    if top_k <= 0 or not len(cheatsheet):
        return []
    prep = prepared_index(cheatsheet, embedder, cache_dir)
    if not prep.entries:
        return []
    sims = prep.index.similarities(query_vector(embedder, task))
    out: list[Retrieved] = []
    shown: set[str] = set()
    for status, k, candidate in ((_ACTIVE, top_k, False), (_CANDIDATE, max(candidate_slots, 0), True)):
        rows, own = prep.masks(task_type, status)
        ranked = _rank(prep, sims, rows, own, k + prep.repeated_texts, counters, min_similarity)
        out += first_distinct((Retrieved(entry=prep.entries[r], score=score, similarity=sim, candidate=candidate)
                               for r, score, sim in ranked), k, shown)
    return out


class EmbeddingRetriever:
    """:class:`~selfheal.cheatsheet.retrieval.Retriever` over one cheatsheet snapshot."""

    def __init__(self, cheatsheet: Cheatsheet, embedder: Embedder, *, counters: CounterStore | None = None,
                 candidate_slots: int = 1, cache_dir: Path | None = None) -> None:
        self.cheatsheet = cheatsheet
        self.embedder = embedder
        self.counters = counters
        self.candidate_slots = candidate_slots
        self.cache_dir = cache_dir

    def retrieve(self, task: str, *, task_type: str | None, top_k: int) -> list[Retrieved]:
        return retrieve_entries(self.cheatsheet, task, task_type=task_type, top_k=top_k, embedder=self.embedder,
                                counters=self.counters, candidate_slots=self.candidate_slots,
                                cache_dir=self.cache_dir)


def embedding_cache_dir(settings: Settings) -> Path:
    """Where entry vectors are cached: ``<state_dir>/embeddings``."""
    return settings.state_dir / "embeddings"


def retrieve_for_run(
    settings: Settings,
    cheatsheet: Cheatsheet,
    task: str,
    *,
    task_type: str | None,
    top_k: int,
    counters: CounterStore | None = None,
    candidate_slots: int = 1,
) -> list[Retrieved]:
    """Embedding retrieval with the configured embedder; BM25 when no embedder can be built.

    The fallback keeps a run going on a machine without the embedding model
    (it logs why); a failing OpenAI endpoint is not hidden: its error propagates.
    """
    from selfheal.errors import ModelError
    from selfheal.models.embeddings import make_embedder

    try:
        embedder = make_embedder(settings)
    except ModelError as exc:
        log.warning("embedding retrieval unavailable (%s); using BM25", exc)
        from selfheal.cheatsheet.retrieval import retrieve

        return retrieve(cheatsheet, task, task_type=task_type, top_k=top_k)
    return retrieve_entries(cheatsheet, task, task_type=task_type, top_k=top_k, embedder=embedder,
                            counters=counters, candidate_slots=candidate_slots,
                            cache_dir=embedding_cache_dir(settings))
