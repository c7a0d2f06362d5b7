"""One matrix of cheatsheet-entry embeddings, with a disk cache keyed by content hash.

Embedding a cheatsheet costs ~4 ms per entry with the local MiniLM; a curator
run changes a handful of entries. Vectors are therefore cached per
``sha256(entry.search_text())`` in ``<cache_dir>/<embedder identity>.sqlite``
(one row per distinct text, WAL, shared safely by concurrent processes), so
an unchanged entry is never embedded twice and a vector never crosses models.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from selfheal.cheatsheet.model import CheatsheetEntry
from selfheal.models.embeddings import Embedder, safe_identity

_SQL_CHUNK = 900  # below SQLite's default host-parameter limit
_PAIR_BLOCK = 1024  # rows per block when scanning for near-duplicates


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VectorCache:
    """sha256(text) -> vector for one embedder identity, in a small SQLite file."""

    def __init__(self, cache_dir: Path, identity: str, dim: int) -> None:
        self.path = Path(cache_dir) / f"{safe_identity(identity)}.sqlite"
        self.dim = dim
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS vectors (hash TEXT PRIMARY KEY, dim INTEGER NOT NULL, vec BLOB NOT NULL)")
        return conn

    def get_many(self, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with closing(self._connect()) as conn:
            for start in range(0, len(hashes), _SQL_CHUNK):
                chunk = list(hashes[start : start + _SQL_CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT hash, dim, vec FROM vectors WHERE hash IN ({marks})", chunk)
                for h, dim, blob in rows:
                    if dim == self.dim and len(blob) == dim * 4:
                        found[h] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        rows = [(h, self.dim, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for h, v in items.items()]
        with closing(self._connect()) as conn, conn:
            conn.executemany("INSERT OR REPLACE INTO vectors (hash, dim, vec) VALUES (?, ?, ?)", rows)


@dataclass
class EmbeddingIndex:
    """Entry ids, their unit vectors (``matrix[i]`` is ``ids[i]``) and how many texts the build embedded."""

    ids: list[str]
    matrix: np.ndarray
    identity: str
    hashes: list[str] = field(default_factory=list)
    embedded: int = 0  # texts sent to the embedder by the build (0 = everything came from the cache)

    @classmethod
    def build(cls, entries: Sequence[CheatsheetEntry], embedder: Embedder, cache_dir: Path | None) -> EmbeddingIndex:
        """Embed ``entries`` (only texts missing from ``cache_dir``'s cache; identical texts once)."""
        texts = [e.search_text() for e in entries]
        hashes = [text_hash(t) for t in texts]
        dim = embedder.dim
        cache = VectorCache(cache_dir, embedder.identity, dim) if cache_dir is not None else None
        known = cache.get_many(sorted(set(hashes))) if cache is not None else {}
        missing: dict[str, str] = {}
        for h, t in zip(hashes, texts, strict=True):
            if h not in known and h not in missing:
                missing[h] = t
        if missing:
            vectors = embedder.embed(list(missing.values()))
            fresh = dict(zip(missing, vectors, strict=True))
            known.update(fresh)
            if cache is not None:
                cache.put_many(fresh)
        matrix = np.empty((len(entries), dim), dtype=np.float32)
        for row, h in enumerate(hashes):
            matrix[row] = known[h]
        return cls(ids=[e.id for e in entries], matrix=matrix, identity=embedder.identity, hashes=hashes,
                   embedded=len(missing))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes)

    def similarities(self, query_vec: np.ndarray) -> np.ndarray:
        """Cosine similarity of every entry to the (unit) query vector.

        einsum rather than BLAS: single-threaded by construction, so it neither
        fights the ONNX session nor a local LLM for the cores (OpenBLAS's
        threads busy-wait; on a loaded 2-core machine matmul was slower and its p99 3x worse).
        """
        return np.einsum("ij,j->i", self.matrix, np.asarray(query_vec, dtype=np.float32).reshape(-1))

    def search(self, query_vec: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The ``k`` most similar rows (index, cosine), best first; ``mask`` keeps only True rows."""
        if k <= 0 or not self.ids:
            return []
        sims = self.similarities(query_vec)
        rows = np.flatnonzero(mask) if mask is not None else np.arange(len(self.ids))
        return top_rows(sims, rows, k)

    def similar_pairs(self, threshold: float) -> list[tuple[str, str, float]]:
        """Pairs of entries with cosine >= ``threshold`` (near-duplicates to merge), most similar first.

        Scanned in row blocks so 100k entries never materialise a 100k x 100k matrix.
        """
        n = len(self.ids)
        found: list[tuple[str, str, float]] = []
        for start in range(0, n, _PAIR_BLOCK):
            block = self.matrix[start : start + _PAIR_BLOCK] @ self.matrix[start:].T
            rows, cols = np.nonzero(block >= threshold)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                i, j = start + r, start + c
                if j > i:
                    found.append((self.ids[i], self.ids[j], float(block[r, c])))
        found.sort(key=lambda p: (-p[2], p[0], p[1]))
        return found


def top_rows(scores: np.ndarray, rows: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The ``k`` best ``rows`` by ``scores`` (ties by row order), as (row, score)."""
    if k <= 0 or rows.size == 0:
        return []
    sub = scores[rows]
    if k < rows.size:
        part = np.argpartition(-sub, k - 1)[:k]
    else:
        part = np.arange(rows.size)
    part = part[np.lexsort((rows[part], -sub[part]))]
    return [(int(rows[p]), float(sub[p])) for p in part]
