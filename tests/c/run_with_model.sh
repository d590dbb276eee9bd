#!/usr/bin/env bash
# Runs a C program of the C API tests on a fresh tiny model (CTest c_api.*, label script).
#   run_with_model.sh CLI HEADS EXPECT PROGRAM [ARGS...]
# Writes the tiny test model with HEADS (`modernbert init`, plus the repository's tokenizer.json) to
# a temporary directory, runs PROGRAM DIR ARGS..., and passes when it exits 0 and its output
# matches the extended regex EXPECT.
set -euo pipefail
CLI=$1 HEADS=$2 EXPECT=$3 PROGRAM=$4
shift 4
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mb-c-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
"$CLI" init --preset tiny --seed 21 --heads "$HEADS" --out "$WORK/m" >"$WORK/init.log" 2>&1 || {
  cat "$WORK/init.log" >&2
  echo "FAIL: modernbert init --heads $HEADS" >&2
  exit 1
}
cp "$ROOT/tests/data/modernbert-tokenizer/tokenizer.json" "$WORK/m/"
status=0
"$PROGRAM" "$WORK/m" "$@" >"$WORK/out.txt" 2>&1 || status=$?
cat "$WORK/out.txt"
if ((status != 0)); then
  echo "FAIL: $PROGRAM exited with $status" >&2
  exit 1
fi
grep -qE "$EXPECT" "$WORK/out.txt" || {
  echo "FAIL: the output does not match '$EXPECT'" >&2
  exit 1
}
