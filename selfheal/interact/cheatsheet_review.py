"""``selfheal cheatsheet list | show | search``: every entry with what the runs say about it.

Three sources, each for what it knows best:

* the entry files: content, status, section, task type, provenance
  (``source.kind``, the runs behind it, the author of a taught entry);
* the counter store (``cheatsheet_state.sqlite``): ACE's helpful / harmful
  tags, uses, last use — read only, never created by a listing;
* the traces (:func:`selfheal.tracing.analysis.analyze` over a window): how
  often runs retrieved and used the entry, and its *lift* — the success rate
  of runs of the entry's task type that used it minus that of runs of the same
  task type that did not (general entries: against all runs);
* with ``show``, git: the commits that created and changed the file
  (:func:`selfheal.gitops.history.blame`).

``search`` ranks entries by embedding similarity (the retrieval index the
agent uses, over every status) and falls back to BM25 when no embedder can be
built; the result says which.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from selfheal.errors import ModelError, SelfhealError

if TYPE_CHECKING:
    from selfheal.cheatsheet.model import CheatsheetEntry
    from selfheal.config import Settings
    from selfheal.models.embeddings import Embedder
    from selfheal.tracing.analysis import Analysis

log = logging.getLogger("selfheal.interact")

__all__ = ["EntryView", "SearchResult", "TraceUse", "UnknownEntry", "list_entries", "search_entries", "show_entry"]

DEFAULT_WINDOW = timedelta(days=30)


class UnknownEntry(SelfhealError):
    """No cheatsheet entry has that id."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TraceUse(_Model):
    """What the traces of the window say about an entry (within its task type)."""

    retrieved: int = 0
    used: int = 0
    runs_used: int = 0
    success_rate_used: float | None = None
    runs_not_used: int = 0
    success_rate_not_used: float | None = None
    lift: float | None = None
    baseline: str = "task type"  # "task type" or "all runs" (general entries)


class Commit(_Model):
    sha: str
    date: datetime
    author: str
    subject: str
    change: str
    kind: str | None = None


class EntryView(_Model):
    id: str
    section: str
    task_type: str
    status: str
    text: str
    fields: dict[str, str] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    path: str = ""
    source_kind: str
    source_runs: list[str] = Field(default_factory=list)
    created: datetime
    author: str | None = None
    helpful: int = 0
    harmful: int = 0
    uses: int = 0
    successes: int = 0
    last_used: datetime | None = None
    traces: TraceUse | None = None
    commits: list[Commit] | None = None
    score: float | None = None


class SearchResult(_Model):
    query: str
    method: Literal["embedding", "lexical"]
    note: str = ""
    entries: list[EntryView] = Field(default_factory=list)


# -- building views -------------------------------------------------------------------------


def _counters(settings: Settings, ids: list[str]) -> dict[str, Any]:
    from selfheal.cheatsheet.counters import STATE_FILENAME, CounterStore

    path = settings.state_dir / STATE_FILENAME
    if not path.exists() or not ids:
        return {}
    store = CounterStore(path)
    try:
        return dict(store.get_many(ids))
    finally:
        store.close()


def _analysis(settings: Settings, since: timedelta | datetime | None, source: str) -> Analysis | None:
    from selfheal.interact.sources import open_reader
    from selfheal.tracing.analysis import analyze

    if source == "local" and not settings.trace_store_path.exists():
        return None
    with open_reader(settings, source) as reader:
        return analyze(reader, project=settings.tracing.project, since=since)


def _trace_use(entry: CheatsheetEntry, analysis: Analysis | None) -> TraceUse | None:
    if analysis is None:
        return None
    general = entry.is_general
    group = analysis.overall if general else analysis.by_task_type.get(entry.task_type)
    if group is None:
        return TraceUse(baseline="task type")
    stats = next((e for e in group.entries if e.entry_id == entry.id), None)
    if stats is None:
        rate = group.success_rate
        return TraceUse(runs_not_used=group.with_outcome, success_rate_not_used=rate,
                        baseline="all runs" if general else "task type")
    return TraceUse(**stats.model_dump(exclude={"entry_id"}), baseline="all runs" if general else "task type")


def _view(settings: Settings, entry: CheatsheetEntry, path: Any, counters: dict[str, Any],
          analysis: Analysis | None) -> EntryView:
    c = counters.get(entry.id)
    try:
        rel = path.resolve().relative_to(settings.root.resolve()).as_posix() if path else ""
    except ValueError:
        rel = str(path)
    return EntryView(
        id=entry.id, section=entry.section, task_type=entry.task_type, status=entry.status, text=entry.text(),
        fields={f: str(getattr(entry, f)) for f in entry.content_fields()}, tags=list(entry.tags), path=rel,
        source_kind=entry.source.kind, source_runs=list(entry.source.runs), created=entry.source.created,
        author=getattr(entry.source, "author", None),
        helpful=c.helpful if c else 0, harmful=c.harmful if c else 0, uses=c.uses if c else 0,
        successes=c.successes if c else 0, last_used=c.last_used if c else None,
        traces=_trace_use(entry, analysis),
    )  # fmt: skip


def _selected(settings: Settings, section: str | None, task_type: str | None, status: str | None) -> tuple[Any, list[Any]]:
    from selfheal.cheatsheet.store import load_cheatsheet

    sheet = load_cheatsheet(settings.cheatsheet_dir)
    chosen = [e for e in sheet
              if (section is None or e.section == section)
              and (task_type is None or e.task_type == task_type)
              and (status is None or e.status == status)]  # fmt: skip
    return sheet, chosen


def list_entries(
    settings: Settings,
    *,
    section: str | None = None,
    task_type: str | None = None,
    status: str | None = None,
    since: timedelta | datetime | None = DEFAULT_WINDOW,
    traces: bool = True,
    source: str = "local",
) -> list[EntryView]:
    """Entries (filtered), each with counters and, when ``traces``, trace use and lift over ``since``."""
    sheet, chosen = _selected(settings, section, task_type, status)
    counters = _counters(settings, [e.id for e in chosen])
    analysis = _analysis(settings, since, source) if traces and chosen else None
    views = [_view(settings, e, sheet.paths.get(e.id), counters, analysis) for e in chosen]
    order = {"active": 0, "candidate": 1, "retired": 2}
    views.sort(key=lambda v: (order.get(v.status, 3), v.section, v.id))
    return views


def show_entry(
    settings: Settings,
    entry_id: str,
    *,
    since: timedelta | datetime | None = DEFAULT_WINDOW,
    source: str = "local",
) -> EntryView:
    """One entry with its stats and the commits behind it (when the repository is a git repository)."""
    from selfheal.cheatsheet.store import load_cheatsheet

    sheet = load_cheatsheet(settings.cheatsheet_dir)
    entry = sheet.get(entry_id)
    if entry is None:
        raise UnknownEntry(f"no cheatsheet entry '{entry_id}' in {settings.cheatsheet_dir}"
                           " (`selfheal cheatsheet search` finds entries by meaning)")
    view = _view(settings, entry, sheet.paths.get(entry.id), _counters(settings, [entry.id]),
                 _analysis(settings, since, source))
    try:
        from selfheal.gitops.history import blame

        found = blame(settings, entry_id)
        view.commits = [Commit(sha=c.sha, date=c.date, author=c.author, subject=c.subject, change=c.change,
                               kind=c.kind) for c in found.commits]
    except Exception as exc:  # not a git repository, or no history yet: provenance from the file only
        log.info("no git history for %s: %s", entry_id, exc)
        view.commits = []
    return view


def search_entries(
    settings: Settings,
    query: str,
    *,
    k: int = 10,
    section: str | None = None,
    task_type: str | None = None,
    status: str | None = None,
    embedder: Embedder | None = None,
) -> SearchResult:
    """Entries most similar to ``query`` (embeddings; BM25 when no embedder can be built)."""
    if not query.strip():
        raise SelfhealError("search for what? give a few words, e.g. \"memory before timeout\"")
    sheet, chosen = _selected(settings, section, task_type, status)
    counters = _counters(settings, [e.id for e in chosen])
    note = ""
    scored: list[tuple[float, Any]] = []
    method: Literal["embedding", "lexical"] = "embedding"
    if embedder is None:
        try:
            from selfheal.models.embeddings import make_embedder

            embedder = make_embedder(settings)
        except (ModelError, OSError) as exc:
            method, note = "lexical", f"embedding search unavailable ({exc}); lexical (BM25) ranking"
    if chosen and method == "embedding" and embedder is not None:
        from selfheal.cheatsheet.embedding_index import EmbeddingIndex
        from selfheal.cheatsheet.ranking import embedding_cache_dir, query_vector

        index = EmbeddingIndex.build(chosen, embedder, embedding_cache_dir(settings))
        for row, sim in index.search(query_vector(embedder, query), k):
            scored.append((sim, chosen[row]))
    elif chosen:
        from selfheal.cheatsheet.retrieval import BM25Retriever

        # BM25Retriever indexes active entries: present every chosen one as active to rank them all.
        bm = BM25Retriever([e.model_copy(update={"status": "active"}) for e in chosen])
        ranked = sorted(zip(bm.scores(query), chosen, strict=True), key=lambda p: (-p[0], p[1].id))
        scored = [(s, e) for s, e in ranked[:k] if s > 0]
    views = []
    for score, entry in scored:
        v = _view(settings, entry, sheet.paths.get(entry.id), counters, None)
        v.score = round(float(score), 4)
        views.append(v)
    return SearchResult(query=query, method=method, note=note, entries=views)
