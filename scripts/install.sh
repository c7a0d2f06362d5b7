#!/usr/bin/env bash
# Install selfheal (and the reference agents) into .venv, the way the Quickstart does:
# llama-cpp-python built with portable CPU kernels from a wheel keyed by its flags.
# Usage: ./scripts/install.sh [extras]      default extras: local,dev
#        LLAMA_CPP_NATIVE=1 ./scripts/install.sh   opt-in native build (this CPU only)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv "${1:-local,dev}"
echo "$VENV/bin"
