#!/usr/bin/env bash
# README command 2: install what is missing, build, run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --test
scripts/build.sh
if [[ -f scripts/tokenizer_reference/package.json && ! -d scripts/tokenizer_reference/node_modules ]]; then
  (cd scripts/tokenizer_reference && npm ci --silent --no-audit --no-fund) || echo "note: npm install failed; tokenizer parity tests that need node will skip"
fi
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 1500
