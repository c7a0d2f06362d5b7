"""Provider choice, model identity and what make_chat_model builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from selfheal.config import load_settings
from selfheal.errors import ModelError
from selfheal.models import providers
from selfheal.models.providers import make_chat_model, model_identity, resolve_provider


def _settings(tmp_path: Path, env: dict[str, str] | None = None, **model: object):
    return load_settings(tmp_path, env=env or {}, overrides={"model": model} if model else None)


def test_auto_is_local_without_openai_configuration(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    assert resolve_provider(s) == "local"
    assert model_identity(s) == "local:qwen2.5-coder-1.5b-instruct-q4_k_m"


@pytest.mark.parametrize(
    "env",
    [{"OPENAI_API_KEY": "sk-test"}, {"OPENAI_BASE_URL": "http://127.0.0.1:8080/v1"}],
)
def test_auto_is_openai_when_key_or_base_url_is_set(tmp_path: Path, env: dict[str, str]) -> None:
    assert resolve_provider(_settings(tmp_path, env)) == "openai"


def test_explicit_provider_beats_environment(tmp_path: Path) -> None:
    s = _settings(tmp_path, {"OPENAI_API_KEY": "sk-test"}, provider="local")
    assert resolve_provider(s) == "local"
    s = _settings(tmp_path, {}, provider="openai", base_url="http://127.0.0.1:9/v1")
    assert resolve_provider(s) == "openai"


def test_openai_identity_names_model_and_endpoint(tmp_path: Path) -> None:
    s = _settings(tmp_path, {"OPENAI_BASE_URL": "http://10.0.0.5:8000/v1/", "OPENAI_MODEL": "qwen-7b"})
    assert model_identity(s) == "openai:qwen-7b@http://10.0.0.5:8000/v1"
    s = _settings(tmp_path, {"OPENAI_API_KEY": "sk-test"})
    assert model_identity(s) == "openai:gpt-4o-mini@https://api.openai.com/v1"


def test_gguf_path_override_changes_identity_and_is_checked(tmp_path: Path) -> None:
    bogus = tmp_path / "models" / "tiny-llama.gguf"
    bogus.parent.mkdir()
    bogus.write_bytes(b"not a gguf at all")
    s = _settings(tmp_path, gguf_path="models/tiny-llama.gguf")
    assert model_identity(s) == "local:tiny-llama"
    with pytest.raises(ModelError, match="is not a GGUF file"):
        make_chat_model(s)
    s = _settings(tmp_path, gguf_path="models/missing.gguf")
    with pytest.raises(ModelError, match="does not exist"):
        make_chat_model(s)


def test_openai_provider_without_key_or_url_is_a_clear_error(tmp_path: Path) -> None:
    s = _settings(tmp_path, provider="openai")
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        make_chat_model(s)


def test_replay_mode_never_builds_the_real_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_settings: object) -> None:
        raise AssertionError("the real model was built in replay mode")

    monkeypatch.setattr(providers, "make_base_chat_model", boom)
    s = _settings(tmp_path, cache_mode="replay")
    model = make_chat_model(s)
    from selfheal.models.cache import CachedChatModel

    assert isinstance(model, CachedChatModel)
    assert model.identity == "local:qwen2.5-coder-1.5b-instruct-q4_k_m"
    assert model.cache_dir == tmp_path / ".selfheal" / "cache" / "responses"
    assert model.structured_method == "json_object"


def test_cache_off_returns_the_provider_model(tmp_path: Path) -> None:
    s = _settings(tmp_path, {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, max_tokens=77, temperature=0.3)
    model = make_chat_model(s)
    assert type(model).__name__ == "SelfhealChatOpenAI"
    assert model.max_tokens == 77  # type: ignore[attr-defined]
    assert model.temperature == 0.3  # type: ignore[attr-defined]


def test_importing_providers_loads_no_heavy_library() -> None:
    code = (
        "import sys, selfheal.models, selfheal.models.providers, selfheal.models.local_weights;"
        "heavy=[m for m in ('langchain_core','langchain_openai','openai','llama_cpp','tiktoken') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
