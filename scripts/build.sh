#!/usr/bin/env bash
# Configures and builds the Release tree in build/ (optimised for this CPU).
#   scripts/build.sh [-DOPTION=VALUE ...] [--target NAME ...]
# -D arguments go to CMake's configure step, the rest to the build step (default: every target,
# including the tests and their ASan/UBSan copy when MODERNBERT_TESTS is on).
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=()
bld=()
while (($#)); do
  case $1 in
    -D*) cfg+=("$1") ;;
    *) bld+=("$1") ;;
  esac
  shift
done
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "${cfg[@]}" >/dev/null
cmake --build build -j"$(nproc)" "${bld[@]}"
