# Sourced by the quickstart scripts: create .venv once and install selfheal into it.
# Usage: ensure_venv "<extras>"   e.g. ensure_venv "local,lambda-ops,dev"
#
# llama-cpp-python has no wheel on PyPI and compiles llama.cpp at install time.
# Built the default (native) way it targets the build machine's exact CPU: on a CPU
# with AVX-512 that build segfaults in decode, and moved to another CPU it dies with
# SIGILL. So selfheal builds it *portably* (-DGGML_NATIVE=OFF: AVX2/FMA/F16C kernels,
# which every x86-64 machine of this kind has) and never lets pip hand back a wheel
# built with other flags: the wheel is built with pip's cache bypassed into a folder
# keyed by (version, CMAKE_ARGS) and installed from there.
#
# Opt-in native build (faster on the build machine, never portable):
#   LLAMA_CPP_NATIVE=1 ./scripts/demo.sh
# (LLAMA_CPP_WHEELS moves the wheel folder.) Not SELFHEAL_* names: selfheal reads every
# SELFHEAL_<SECTION>_<KEY> variable as a setting and refuses unknown ones.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SELFHEAL_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
# the version pyproject.toml pins for the `local` extra (one place to change it)
LLAMA_VERSION="$(grep -o 'llama-cpp-python==[0-9.]*' "$ROOT/pyproject.toml" | head -1 | cut -d= -f3)"

llama_cmake_args() {
  # LLAVA is the multimodal part of llama.cpp: not needed, and it doubles the build.
  if [ "${LLAMA_CPP_NATIVE:-0}" = "1" ]; then
    echo "-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF"
  else
    echo "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DLLAVA_BUILD=OFF"
  fi
}

# Build (once per version + flags) and install llama-cpp-python; the wheel lives in a
# folder whose name is a hash of the version and the flags, so a wheel built with other
# flags is never reused.
install_llama() {
  local args key wheels cache_root
  args="$(llama_cmake_args)"
  if [ "${LLAMA_CPP_NATIVE:-0}" = "1" ]; then
    # a native wheel is only valid on this exact CPU: key it by the CPU's flags too
    key="$(printf '%s|%s|%s' "$LLAMA_VERSION" "$args" "$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)" | sha256sum | cut -c1-16)"
  else
    key="$(printf '%s|%s' "$LLAMA_VERSION" "$args" | sha256sum | cut -c1-16)"
  fi
  cache_root="${LLAMA_CPP_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/selfheal/wheels}"
  wheels="$cache_root/llama-cpp-python-$LLAMA_VERSION-$key"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "==> building llama-cpp-python $LLAMA_VERSION (once per flags: ~5-10 min on 2 cores)"
    echo "    CMAKE_ARGS=$args"
    mkdir -p "$wheels.tmp"
    CMAKE_ARGS="$args" FORCE_CMAKE=1 \
      "$VENV/bin/python" -m pip wheel --quiet --no-cache-dir --no-deps --no-binary llama-cpp-python \
      -w "$wheels.tmp" "llama-cpp-python==$LLAMA_VERSION"
    printf '%s\n' "$args" >"$wheels.tmp/CMAKE_ARGS"
    rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
  fi
  "$VENV/bin/python" -m pip install --quiet --no-cache-dir --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
}

# The HTML report's test opens the report in headless Chromium (Debian's package). CI runs
# as root on a fresh machine: install it there; elsewhere the test skips and says why.
ensure_test_browser() {
  command -v chromium >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = "0" ] && [ "${CI:-}" = "true" ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing chromium (headless browser for the report test)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "    chromium could not be installed: the report's browser test will be skipped"
  fi
}

ensure_venv() {
  local extras="$1"
  if [[ ",$extras," == *",dev,"* ]]; then
    ensure_test_browser
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
  local stamp="$VENV/.selfheal-installed-$(echo "$extras" | tr ',' '-')-$(llama_cmake_args | sha256sum | cut -c1-8)"
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ] || newer_agent_files "$stamp"; then
    if [[ ",$extras," == *",local,"* ]]; then
      install_llama
    fi
    echo "==> installing selfheal[$extras] and the reference agents"
    # llama-cpp-python is already installed from the flag-keyed wheel above; pip sees it
    # satisfies the pin and never compiles or fetches another one.
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$extras]"
    local agent
    for agent in "$ROOT"/agents/*/; do
      [ -f "$agent/pyproject.toml" ] && "$VENV/bin/python" -m pip install --quiet -e "$agent"
    done
    touch "$stamp"
  fi
}

newer_agent_files() {
  local stamp="$1" f
  for f in "$ROOT"/agents/*/pyproject.toml; do
    [ -f "$f" ] && [ "$f" -nt "$stamp" ] && return 0
  done
  return 1
}
