#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job on its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
out=${MB_DEMO_DIR:-out/demo}
mkdir -p "$out"
echo "== creating a small random ModernBERT (tiny preset, MLM head) in $out/tiny"
build/modernbert init --preset tiny --seed 42 --out "$out/tiny"
echo "== its summary"
build/modernbert info "$out/tiny"
