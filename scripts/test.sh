#!/usr/bin/env bash
# Quickstart 2/2: run the test suite (offline). Tests that need the embedded model run
# when it is installed (scripts/demo.sh installs it) and are skipped otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv "dev"
cd "$ROOT"
exec "$VENV/bin/python" -m pytest -q "$@"
