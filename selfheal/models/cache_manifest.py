"""The manifest of a response cache: what it was recorded for and which entries are in use.

A replay cache is only evidence if one can tell what it covers. Its
``manifest.json`` states the model, the dataset (name and content hash) and,
per recorded side, the context and cheatsheet versions, the examples that ran
(id -> content digest) and the response keys they used. ``selfheal eval``
checks a side against it before replaying (a side whose prompts changed is
refused or run live, never run as a wall of misses), ``selfheal cache status``
shows it and ``selfheal cache prune`` deletes entries no coverage refers to.

Keys are collected while a run talks to the cache (:func:`track_keys`), so a
manifest never has to guess which files a recording produced.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfheal.errors import FileFormatError, SelfhealError

MANIFEST_FILE = "manifest.json"
DEFAULT_CACHE_DIR = ".selfheal/cache/responses"


class Coverage(BaseModel):
    """One recorded version of the context and cheatsheet, and what it ran."""

    model_config = ConfigDict(extra="forbid")

    label: str = ""                       # e.g. "baseline (seed cheatsheet)"
    context_version: str
    cheatsheet_version: str
    examples: dict[str, str] = Field(default_factory=dict)  # example id -> example content digest
    keys: list[str] = Field(default_factory=list)           # response keys the recorded runs used
    recorded_at: str = ""


class CacheManifest(BaseModel):
    """``<cache dir>/manifest.json``: the one record of what a response cache covers."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    name: str                              # the cache's name, e.g. "lambda_ops"
    model: str                             # model identity the responses came from
    dataset: str
    dataset_hash: str                      # the dataset's content hash when last recorded
    coverage: list[Coverage] = Field(default_factory=list)

    def referenced_keys(self) -> set[str]:
        return {k for c in self.coverage for k in c.keys}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest_path(cache_dir: Path) -> Path:
    return Path(cache_dir) / MANIFEST_FILE


def load_manifest(cache_dir: Path) -> CacheManifest | None:
    """The manifest of ``cache_dir``; None when it has none; a one-line error when it is malformed."""
    path = manifest_path(cache_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return CacheManifest.model_validate_json(text)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        raise FileFormatError(path, None, f"invalid cache manifest ({loc}: {err['msg']})") from None


def save_manifest(cache_dir: Path, manifest: CacheManifest) -> Path:
    """Write the manifest atomically (sorted keys and examples: a small, stable diff)."""
    from selfheal.yamlio import atomic_write_text

    data = manifest.model_dump(mode="json")
    for cov in data["coverage"]:
        cov["keys"] = sorted(set(cov["keys"]))
        cov["examples"] = dict(sorted(cov["examples"].items()))
    path = manifest_path(cache_dir)
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def version_core(version: str) -> str:
    """The content id inside a version string (``-dirty`` and ``nogit-`` marks removed)."""
    from selfheal.versioning import DIRTY_SUFFIX, NOGIT_PREFIX

    v = version[: -len(DIRTY_SUFFIX)] if version.endswith(DIRTY_SUFFIX) else version
    return v[len(NOGIT_PREFIX):] if v.startswith(NOGIT_PREFIX) else v


def same_content(a: str, b: str) -> bool:
    """Two versions name the same content (a ``nogit-`` id is a 12-character prefix of git's id)."""
    x, y = version_core(a), version_core(b)
    n = min(len(x), len(y))
    return n >= 12 and x[:n] == y[:n]


def find_coverage(manifest: CacheManifest, context_version: str, cheatsheet_version: str) -> Coverage | None:
    for cov in manifest.coverage:
        if same_content(cov.context_version, context_version) and same_content(
            cov.cheatsheet_version, cheatsheet_version
        ):
            return cov
    return None


def add_coverage(
    manifest: CacheManifest, coverage: Coverage
) -> CacheManifest:
    """``manifest`` with ``coverage`` merged in (same versions: examples and keys united)."""
    out = manifest.model_copy(deep=True)
    existing = find_coverage(out, coverage.context_version, coverage.cheatsheet_version)
    if existing is None:
        out.coverage.append(coverage)
    else:
        existing.examples.update(coverage.examples)
        existing.keys = sorted(set(existing.keys) | set(coverage.keys))
        existing.recorded_at = coverage.recorded_at or existing.recorded_at
        existing.label = coverage.label or existing.label
    return out


# -- entries on disk --------------------------------------------------------------
def entry_keys(cache_dir: Path) -> dict[str, Path]:
    """Every stored response: key -> file (``<dir>/<key[:2]>/<key>.json``)."""
    root = Path(cache_dir)
    if not root.is_dir():
        return {}
    return {p.stem: p for p in sorted(root.glob("??/*.json")) if p.stem[:2] == p.parent.name}


class CacheStatus(BaseModel):
    """What ``selfheal cache status`` reports for one cache directory."""

    model_config = ConfigDict(extra="forbid")

    path: str
    manifest: CacheManifest | None
    entries: int
    size_bytes: int
    referenced: int                       # entries some coverage refers to
    unreferenced: int                     # what `cache prune` would delete
    missing: int                          # keys a coverage names but no file holds


def cache_status(cache_dir: Path) -> CacheStatus:
    entries = entry_keys(cache_dir)
    manifest = load_manifest(cache_dir)
    refs = manifest.referenced_keys() if manifest else set()
    return CacheStatus(
        path=str(cache_dir),
        manifest=manifest,
        entries=len(entries),
        size_bytes=sum(p.stat().st_size for p in entries.values()),
        referenced=sum(1 for k in entries if k in refs),
        unreferenced=sum(1 for k in entries if k not in refs),
        missing=sum(1 for k in refs if k not in entries),
    )


def prune_cache(cache_dir: Path, *, dry_run: bool = False) -> list[Path]:
    """Delete (or with ``dry_run`` list) the entries no coverage of the manifest refers to.

    A cache without a manifest is refused: nothing says which entries are in use.
    """
    manifest = load_manifest(cache_dir)
    if manifest is None:
        raise SelfhealError(
            f"{cache_dir} has no {MANIFEST_FILE}: nothing says which entries are in use, so nothing is pruned"
            " (record with `selfheal eval --cache record` to write one)"
        )
    refs = manifest.referenced_keys()
    doomed = [p for k, p in entry_keys(cache_dir).items() if k not in refs]
    if not dry_run:
        for p in doomed:
            p.unlink(missing_ok=True)
            try:
                p.parent.rmdir()  # only when it became empty
            except OSError:
                pass
    return doomed


# -- which keys a run used ----------------------------------------------------------
KeyUse = Literal["replay", "record"]
_trackers: list[tuple[str, dict[str, KeyUse]]] = []
_track_lock = threading.Lock()


@contextmanager
def track_keys(cache_dir: Path) -> Iterator[dict[str, KeyUse]]:
    """Collect, while the block runs, every key served (replay) or stored (record) under ``cache_dir``.

    Process-wide (the eval's worker threads all report into it); the mapping
    is filled in place and stays readable after the block.
    """
    entry = (str(Path(cache_dir).resolve()), {})
    with _track_lock:
        _trackers.append(entry)  # type: ignore[arg-type]
    try:
        yield entry[1]  # type: ignore[misc]
    finally:
        with _track_lock:
            _trackers.remove(entry)  # type: ignore[arg-type]


def note_key(cache_dir: Path, key: str, use: KeyUse) -> None:
    """Called by the cached model for every response it serves or stores."""
    if not _trackers:
        return
    where = str(Path(cache_dir).resolve())
    with _track_lock:
        for path, keys in _trackers:
            if path == where:
                keys.setdefault(key, use)


def keys_of(uses: dict[str, KeyUse], use: KeyUse | None = None) -> list[str]:
    return sorted(k for k, u in uses.items() if use is None or u == use)


def digest_items(items: Iterable[tuple[str, bytes]]) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, data in items:
        h.update(name.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:16]
