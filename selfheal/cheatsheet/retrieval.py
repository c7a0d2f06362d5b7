"""Pick the few cheatsheet entries worth showing the agent for a task (DC-RS's retrieval step).

Lexical BM25 (bm25s, Lucene's non-negative IDF, so terms common to a tiny
cheatsheet never score below zero) over each entry's ``search_text``, with
Snowball stemming so "throttled" meets "throttles". Only active entries of the
run's task type, or general ones, are eligible: a lesson about cold starts
must not crowd out the timeout heuristics of a timeout task. Embedding
retrieval (:mod:`selfheal.cheatsheet.ranking`) implements the same
:class:`Retriever` protocol; BM25 stays the fallback when no embedder is available.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from selfheal.cheatsheet.model import Cheatsheet, CheatsheetEntry

_WORD = re.compile(r"[a-z0-9]+")
# "times out" / "timed out" / "timing out" mean what entries call a timeout.
_TIME_OUT = re.compile(r"\btim(?:e|es|ed|ing)[\s-]+out\b")


@dataclass(frozen=True)
class Retrieved:
    """One retrieved entry. ``candidate``: an unproven entry given a trial slot (the prompt
    marks it ``(unproven)``); ``similarity``: cosine to the task (embedding retrieval only)."""

    entry: CheatsheetEntry
    score: float
    candidate: bool = False
    similarity: float = 0.0


class Retriever(Protocol):
    """Anything that ranks a cheatsheet's entries for a task."""

    def retrieve(self, task: str, *, task_type: str | None, top_k: int) -> list[Retrieved]: ...


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lowercase words, no stopwords, Snowball-stemmed (``p99``, ``24`` survive)."""
    stop = _stopwords()
    text = _TIME_OUT.sub("timeout", text.lower())
    words = [w for w in _WORD.findall(text) if w not in stop]
    return list(_stemmer().stemWords(words))


def eligible(entry: CheatsheetEntry, task_type: str | None) -> bool:
    """Active, and of the run's task type or general (any type when the run has none)."""
    if entry.status != "active":
        return False
    return task_type is None or entry.is_general or entry.task_type == task_type


class BM25Retriever:
    """BM25 index over a cheatsheet's active entries; build once, query per run."""

    def __init__(self, entries: Sequence[CheatsheetEntry], *, k1: float = 1.2, b: float = 0.75) -> None:
        self.entries = [e for e in entries if e.status == "active"]
        self._index: Any = None
        docs = [tokenize(e.search_text()) for e in self.entries]
        if any(docs):
            import bm25s

            self._index = bm25s.BM25(k1=k1, b=b, method="lucene")
            self._index.index(docs, show_progress=False)

    @classmethod
    def from_cheatsheet(cls, cheatsheet: Cheatsheet) -> BM25Retriever:
        return cls(cheatsheet.entries)

    def scores(self, task: str) -> list[float]:
        """One BM25 score per active entry, in ``self.entries`` order."""
        query = tokenize(task)
        if self._index is None or not query:
            return [0.0] * len(self.entries)
        return [float(s) for s in self._index.get_scores(query)]

    def retrieve(self, task: str, *, task_type: str | None, top_k: int) -> list[Retrieved]:
        """Top-k eligible entries by score, ties broken by id.

        An entry with no word in common with the task is still shown when it
        is of the run's own (non-general) task type: the classifier already
        judged it relevant. General entries need a lexical match. An entry
        whose text is one already shown is skipped (the same lesson filed
        under two task types would otherwise fill two slots and be read twice).
        """
        if top_k <= 0:
            return []
        ranked: list[tuple[float, str, CheatsheetEntry]] = []
        for entry, score in zip(self.entries, self.scores(task), strict=True):
            if not eligible(entry, task_type):
                continue
            own_type = task_type is not None and not entry.is_general and entry.task_type == task_type
            if score > 0.0 or own_type:
                ranked.append((score, entry.id, entry))
        ranked.sort(key=lambda r: (-r[0], r[1]))
        return first_distinct((Retrieved(entry=e, score=s) for s, _, e in ranked), top_k, set())


def first_distinct(ranked: Iterable[Retrieved], k: int, seen: set[str]) -> list[Retrieved]:
    """The first ``k`` whose entry's text is not in ``seen`` (theirs are added to it).

    The same lesson filed under two task types would otherwise fill two slots
    and be read twice; both retrievers show it once.
    """
    out: list[Retrieved] = []
    for r in ranked:
        if len(out) >= k:
            break
        if (text := r.entry.text()) not in seen:
            seen.add(text)
            out.append(r)
    return out


_INDEXES: dict[tuple[tuple[str, str, str, str], ...], BM25Retriever] = {}


def _index_for(cheatsheet: Cheatsheet) -> BM25Retriever:
    """The BM25 index of this cheatsheet's content, built once per distinct content."""
    key = tuple((e.id, e.status, e.task_type or "", e.search_text()) for e in cheatsheet.entries)
    index = _INDEXES.get(key)
    if index is None:
        if len(_INDEXES) >= 32:
            _INDEXES.clear()
        index = _INDEXES[key] = BM25Retriever.from_cheatsheet(cheatsheet)
    return index


def retrieve(cheatsheet: Cheatsheet, task: str, *, task_type: str | None, top_k: int) -> list[Retrieved]:
    """The top-k entries for ``task`` (lexical BM25; see :class:`BM25Retriever`)."""
    return _index_for(cheatsheet).retrieve(task, task_type=task_type, top_k=top_k)
