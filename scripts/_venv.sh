# Sourced by the quickstart scripts: create .venv once and install selfheal into it.
# Usage: ensure_venv "<extras>"   e.g. ensure_venv "local,dev"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SELFHEAL_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

ensure_venv() {
  local extras="$1"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  local stamp="$VENV/.selfheal-installed-$(echo "$extras" | tr ',' '-')"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "==> installing selfheal[$extras] (the first time, llama-cpp-python compiles: ~5-10 min on 2 cores)"
    # LLAVA is the multimodal part of llama.cpp: not needed, and it doubles the build.
    CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" \
      "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$extras]"
    touch "$stamp"
  fi
}
