#!/usr/bin/env bash
# Configures and builds the Release tree in build/ (optimised for this CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"
