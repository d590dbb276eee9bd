#!/usr/bin/env bash
# Runs PROGRAM under `mpirun -np NP` (the prefix of tests/mpi_util.h: loopback, oversubscribed, as
# root in CI) and checks the job's exit status (ok: 0, fail: non-zero), that it ended within MAX_S
# seconds, and that its output (every rank's stdout and stderr) matches each --grep REGEX.
#   run.sh NP ok|fail MAX_S [--grep REGEX]... -- PROGRAM [ARGS...]
set -uo pipefail
np=$1 want=$2 max_s=$3
shift 3
greps=()
while [[ $# -gt 0 && $1 == --grep ]]; do
  greps+=("$2")
  shift 2
done
[[ $# -gt 0 && $1 == -- ]] && shift
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
start=$(date +%s%N)
# The outer timeout only keeps a hung job from holding CTest; the MAX_S check below is the test.
out=$(timeout -k 5 $((max_s + 30)) mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$np" "$@" 2>&1)
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
problems=()
if [[ $want == ok ]]; then
  ((rc == 0)) || problems+=("exit status $rc, want 0")
else
  ((rc != 0)) || problems+=("exit status 0, want non-zero")
fi
((elapsed_ms < max_s * 1000)) || problems+=("took ${elapsed_ms} ms, want < ${max_s} s")
for g in "${greps[@]}"; do
  grep -Eq -- "$g" <<<"$out" || problems+=("no line matches /$g/")
done
echo "$out"
echo "run.sh: -np $np $*: exit $rc after ${elapsed_ms} ms"
if ((${#problems[@]})); then
  printf 'run.sh: FAILED: %s\n' "${problems[@]}"
  exit 1
fi
echo "run.sh: ok"
