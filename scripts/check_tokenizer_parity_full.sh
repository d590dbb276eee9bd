#!/usr/bin/env bash
# Tokenizer parity with Hugging Face over every document (129,614) of the full corpus and
# downstream sets, not just the committed sample the test suite checks. Needs the full data
# folder (see tests/data/README.md) and a built tree (scripts/build.sh).
#   scripts/check_tokenizer_parity_full.sh [DATA_DIR]   (default: $MB_SHARED_DATA or ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-${MB_SHARED_DATA:-../shared/data}}"
[[ -f "$data/corpus/train.jsonl" ]] || { echo "no corpus/train.jsonl under $data" >&2; exit 1; }
MB_PARITY_FULL_DATA="$(cd "$data" && pwd)" build/modernbert_tests --gtest_filter=TokenizerParity.CorpusAndDownstreamSets
