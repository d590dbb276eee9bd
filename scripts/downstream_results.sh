#!/usr/bin/env bash
# Fine-tune and evaluate one pretrained checkpoint on the five shared downstream sets (data README
# §3) and write the results table of docs/results.md:
#   classification: spam_assassin, rt_polarity, wordnet_supersense  (finetune --task classification)
#   retrieval:      manpages_retrieval, python_code_retrieval        (finetune --task embedding)
#                   manpages_retrieval, python_code_retrieval        (finetune --task colbert)
# Each model is selected on dev (best epoch) and scored once on test with `modernbert eval`.
#
#   scripts/downstream_results.sh --model CKPT [--data DIR] [--out DIR] [--build DIR] [--only "spam rt ..."]
#
# CKPT is an MLM checkpoint directory with tokenizer.json (e.g. from `modernbert pretrain`).
# Output: DIR/<set>/ (fine-tuned model, finetune_log.jsonl), DIR/<set>_test.json (eval report),
# DIR/results.md (table) — run scripts/downstream_table.py DIR to re-print it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATA=$ROOT/../shared/data/downstream
OUT=$ROOT/out/downstream
BUILD=$ROOT/build
MODEL=
ONLY="spam rt wordnet manpages code manpages_colbert code_colbert"
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$(realpath "$2"); shift 2 ;;
    --data) DATA=$(realpath "$2"); shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "downstream_results.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$MODEL" ] || { echo "downstream_results.sh: --model is required" >&2; exit 2; }
[ -f "$MODEL/tokenizer.json" ] || { echo "downstream_results.sh: $MODEL has no tokenizer.json" >&2; exit 2; }
[ -d "$DATA/spam_assassin" ] || { echo "downstream_results.sh: no downstream data in $DATA" >&2; exit 2; }
MB=$BUILD/modernbert
[ -x "$MB" ] || { echo "downstream_results.sh: build $MB first (scripts/build.sh)" >&2; exit 2; }
mkdir -p "$OUT"
log() { echo "[downstream $(date +%H:%M:%S)] $*" >&2; }
want() { [[ " $ONLY " == *" $1 "* ]]; }

classify() {  # name dir max_len epochs batch lr every [eval flags]; every = keep every Nth training line
  local name=$1 dir=$2 len=$3 epochs=$4 bs=$5 lr=$6 every=$7; shift 7
  local train=$DATA/$dir/train.jsonl
  if [ "$every" -gt 1 ]; then
    train=$OUT/${name}_train_every$every.jsonl
    awk -v n="$every" '(NR - 1) % n == 0' "$DATA/$dir/train.jsonl" > "$train"
  fi
  log "$name: fine-tune (classification, max length $len, $epochs epochs, $(wc -l < "$train") training examples)"
  rm -rf "$OUT/$name"
  "$MB" finetune --task classification --model "$MODEL" --train "$train" --dev "$DATA/$dir/dev.jsonl" \
    --out "$OUT/$name" --epochs "$epochs" --batch-size "$bs" --lr "$lr" --max-length "$len" --pooling mean \
    --seed 17 --quiet > "$OUT/${name}_finetune.json"
  log "$name: test"
  "$MB" eval --task classification --model "$OUT/$name" --data "$DATA/$dir/test.jsonl" --max-length "$len" --quiet \
    "$@" --output "$OUT/${name}_test.json"
}

retrieve() {  # name dir task epochs batch lr
  local name=$1 dir=$2 task=$3 epochs=$4 bs=$5 lr=$6
  log "$name: fine-tune ($task, $epochs epochs)"
  rm -rf "$OUT/$name"
  "$MB" finetune --task "$task" --model "$MODEL" --train "$DATA/$dir/queries_train.jsonl" \
    --dev "$DATA/$dir/queries_dev.jsonl" --corpus "$DATA/$dir/corpus.jsonl" --out "$OUT/$name" --epochs "$epochs" \
    --batch-size "$bs" --lr "$lr" --query-max-length 64 --doc-max-length 256 --seed 17 --quiet > "$OUT/${name}_finetune.json"
  log "$name: test"
  "$MB" eval --task "$([ "$task" = colbert ] && echo colbert || echo retrieval)" --model "$OUT/$name" \
    --corpus "$DATA/$dir/corpus.jsonl" --queries "$DATA/$dir/queries_test.jsonl" --split test --scope both \
    --query-max-length 64 --doc-max-length 256 --quiet --output "$OUT/${name}_test.json"
}

# WordNet: every 3rd training gloss (25.4 k of 76 k; the file is ordered by synset, so this keeps
# every class) for one epoch — the full set is ~3.4 M tokens, ~25 minutes per epoch on 2 cores.
want spam && classify spam spam_assassin 256 2 16 5e-4 1 --group-field group
want rt && classify rt rt_polarity 64 3 32 5e-4 1
want wordnet && classify wordnet wordnet_supersense 64 1 32 5e-4 3
want manpages && retrieve manpages manpages_retrieval embedding 2 32 3e-4
want code && retrieve code python_code_retrieval embedding 2 32 3e-4
want manpages_colbert && retrieve manpages_colbert manpages_retrieval colbert 2 32 3e-4
want code_colbert && retrieve code_colbert python_code_retrieval colbert 2 32 3e-4
/usr/bin/python3 "$ROOT/scripts/downstream_table.py" "$OUT" | tee "$OUT/results.md"
