#!/usr/bin/env bash
# Tokenizer throughput, ours vs Hugging Face tokenizers (Rust core via npm), same corpus, same run.
#   bench/tokenizer_vs_hf.sh [BUILD_DIR] [CORPUS.jsonl]
# Needs: BUILD_DIR/bench_tokenizer built, node, and `npm ci` done in scripts/tokenizer_reference.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$here/build}"
shared="${MB_SHARED_DATA:-$here/../shared/data}"
corpus="${2:-$shared/corpus/train.jsonl}"
tok="$shared/modernbert-tokenizer/tokenizer.json"
ref="$here/scripts/tokenizer_reference"
[[ -x "$build/bench_tokenizer" ]] || { echo "build $build/bench_tokenizer first" >&2; exit 1; }
[[ -d "$ref/node_modules/tokenizers" ]] || { echo "run 'npm ci' in $ref first" >&2; exit 1; }

ours=$("$build/bench_tokenizer" --tokenizer "$tok" --corpus "$corpus" | tee /dev/stderr | grep '^RESULT')
hf1=$(cd "$ref" && RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node bench_hf.mjs "$tok" "$corpus" encode | grep '^RESULT')
hfb1=$(cd "$ref" && RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node bench_hf.mjs "$tok" "$corpus" batch | grep '^RESULT')
hfb2=$(cd "$ref" && RAYON_NUM_THREADS=2 TOKENIZERS_PARALLELISM=true node bench_hf.mjs "$tok" "$corpus" batch | grep '^RESULT')

get() { sed -n "s/.*$2=\([0-9.]*\).*/\1/p" <<<"$1"; }
tokens=$(get "$ours" tokens)
[[ "$(get "$hf1" tokens)" == "$tokens" ]] || echo "WARNING: token counts differ (ours $tokens, HF $(get "$hf1" tokens))" >&2
python3 - "$tokens" "$(get "$ours" single_cold_s)" "$(get "$ours" batch1_s)" "$(get "$ours" batch2_s)" \
  "$(get "$hf1" seconds)" "$(get "$hfb1" seconds)" "$(get "$hfb2" seconds)" <<'PY'
import sys
n = int(sys.argv[1]); o1, ob1, ob2, h1, hb1, hb2 = map(float, sys.argv[2:])
rows = [("single thread, encode per doc", o1, h1), ("batch, 1 thread", ob1, hb1), ("batch, 2 threads", ob2, hb2)]
print(f"\n{'mode':32} {'ours tok/s':>12} {'HF tok/s':>12} {'ours/HF':>8}")
for name, o, h in rows:
    print(f"{name:32} {n/o:12.0f} {n/h:12.0f} {h/o:8.2f}x")
print(f"\n2-thread scaling: ours {ob1/ob2:.2f}x, HF {hb1/hb2:.2f}x  ({n} tokens per pass)")
PY
