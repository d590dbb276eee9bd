#!/usr/bin/env bash
# Accuracy of bf16 / f16 / int8 against f32 (#15 item 4), the numbers of docs/precision.md.
#
#   bench/precision_report.sh [--out DIR] [--build DIR] [--threads N] [--texts N] [--max-length N]
#                             [--spam-model DIR] [--spam-data FILE] [--no-spam]
#
# 1. builds `modernbert` and `bench_precision` in --build (default build/, MODERNBERT_BENCH=ON);
# 2. random base-shaped models: `modernbert init --preset base --seed 0 --heads mlm,cls:2` + the
#    ModernBERT tokenizer (tests/data) ("base_random"), and the same file with larger random weights
#    ("base_scaled": U(-1, 1), matrices * 1.5 / sqrt(in), as tests/test_precision.cpp's scale_up; with
#    init's std 0.02 the layers add little to the embeddings and every cosine is near 1);
#    texts: the first --texts (64) documents of the corpus held-out split
#    (/work/shared/data/corpus/heldout.jsonl when present, else the committed
#    tests/data/corpus/heldout.jsonl), truncated to --max-length (128) tokens;
# 3. the spam classifier (--spam-model, default out/spam_full, else out/demo/spam_model from
#    `scripts/demo.sh --quick`) on its test set (--spam-data, default the full spam_assassin
#    test.jsonl of /work/shared/data, else the demo's spam_test.jsonl), truncated to 256 tokens as
#    `modernbert eval` was run for docs/results.md; plus `modernbert eval` in f32 as a cross-check
#    of the accuracy the tool computes;
# 4. writes DIR/base_random.jsonl, DIR/base_scaled.jsonl, DIR/spam.jsonl (one JSON line per dtype, bench_precision's
#    format), DIR/machine.txt and DIR/report.md (the tables).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out/precision
BUILD=$ROOT/build
THREADS=2 TEXTS=64 MAXLEN=128
SPAM_MODEL="" SPAM_DATA="" SPAM=1
SHARED=${MB_SHARED_DATA:-/work/shared/data}
PY=/usr/bin/python3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --texts) TEXTS=$2; shift 2 ;;
    --max-length) MAXLEN=$2; shift 2 ;;
    --spam-model) SPAM_MODEL=$(realpath -m "$2"); shift 2 ;;
    --spam-data) SPAM_DATA=$(realpath -m "$2"); shift 2 ;;
    --no-spam) SPAM=0; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "precision_report.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
mkdir -p "$OUT"

echo "== build ($BUILD)"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMODERNBERT_BENCH=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target modernbert bench_precision >/dev/null
MB=$BUILD/modernbert
BP=$BUILD/bench_precision

{
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p')"
  echo "flags: $(lscpu | sed -n 's/^Flags: *//p' | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512f|avx512_bf16|avx512_vnni|avx_vnni|amx_bf16|amx_int8|amx_tile)$' | tr '\n' ' ')"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src include || echo ' (+ local changes)')"
  echo "threads: $THREADS"
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

echo "== random base-shaped model"
BASE=$OUT/base_random
if [ ! -f "$BASE/model.safetensors" ]; then
  "$MB" init --preset base --seed 0 --heads mlm,cls:2 --out "$BASE"
  cp tests/data/modernbert-tokenizer/tokenizer.json "$BASE/"
fi
SCALED=$OUT/base_scaled
if [ ! -f "$SCALED/model.safetensors" ]; then
  mkdir -p "$SCALED"
  cp "$BASE/config.json" "$BASE/tokenizer.json" "$SCALED/"
  "$PY" - "$BASE/model.safetensors" "$SCALED/model.safetensors" 3 <<'PY'
# Same tensors, new values: U(-1, 1) draws; matrices * 1.5 / sqrt(in), embeddings as drawn, norm
# weights 1 +- 0.3, biases * 0.2 (tests/test_precision.cpp's scale_up).
import json, struct, sys
import numpy as np
src, dst, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
body = bytearray(raw[8 + n:])
rng = np.random.default_rng(seed)
for name, t in hdr.items():
    if name == "__metadata__":
        continue
    assert t["dtype"] == "F32", name
    a, b = t["data_offsets"]
    shape = t["shape"]
    v = rng.uniform(-1, 1, size=int(np.prod(shape))).astype(np.float32)
    if name.endswith(".bias"):
        v *= 0.2
    elif "norm" in name:
        v = 1 + 0.3 * v
    elif "tok_embeddings" not in name and len(shape) == 2:
        v *= 1.5 / np.sqrt(shape[1])
    body[a:b] = v.tobytes()
open(dst, "wb").write(raw[:8 + n] + bytes(body))
PY
fi
TEXTS_FILE=$SHARED/corpus/heldout.jsonl
[ -f "$TEXTS_FILE" ] || TEXTS_FILE=$ROOT/tests/data/corpus/heldout.jsonl
for m in base_random base_scaled; do
  "$BP" --model "$OUT/$m" --input "$TEXTS_FILE" --max-texts "$TEXTS" --max-length "$MAXLEN" --threads "$THREADS" \
    | tee "$OUT/$m.jsonl"
done

if ((SPAM)); then
  echo "== spam classifier"
  if [ -z "$SPAM_MODEL" ]; then
    for d in "$ROOT/out/spam_full" "$ROOT/out/demo/spam_model"; do
      if [ -f "$d/model.safetensors" ]; then SPAM_MODEL=$d; break; fi
    done
  fi
  if [ -z "$SPAM_MODEL" ]; then
    echo "no spam model: run scripts/demo.sh --quick (writes out/demo/spam_model) or pass --spam-model" >&2
    exit 1
  fi
  if [ -z "$SPAM_DATA" ]; then
    SPAM_DATA=$SHARED/downstream/spam_assassin/test.jsonl
    [ -f "$SPAM_DATA" ] || SPAM_DATA=$ROOT/out/demo/data-quick/spam_test.jsonl
  fi
  echo "model $SPAM_MODEL, data $SPAM_DATA"
  "$BP" --model "$SPAM_MODEL" --input "$SPAM_DATA" --max-texts 100000 --max-length 256 --threads "$THREADS" \
    | tee "$OUT/spam.jsonl"
  "$MB" eval --task classification --model "$SPAM_MODEL" --data "$SPAM_DATA" --max-length 256 --quiet \
    --threads "$THREADS" --output "$OUT/spam_eval_f32.json"
fi

"$PY" - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
def rows(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p)] if os.path.exists(p) else []
md = ["machine: " + open(os.path.join(out, "machine.txt")).read().replace("\n", "; ").strip("; "), ""]
def cos(s):
    return f"{s['mean']:.8f} / {s['min']:.8f}"
for name, what in [("base_random.jsonl", "random base-shaped model, init weights"),
                   ("base_scaled.jsonl", "random base-shaped model, larger random weights")]:
    base = rows(name)
    if not base:
        continue
    r0 = base[0]
    md += [f"{what} ({r0['layers']} layers, hidden {r0['hidden_size']}, heads {r0['heads']}), "
           f"{r0['texts']} texts, {r0['tokens']} tokens", "",
           "| dtype | emb mean-pool cos mean / min | emb CLS cos mean / min | token cos mean / min | "
           "MLM top-1 [MASK] (margin) | MLM top-5 [MASK] | MLM top-1 all (margin) | MLM top-5 all | "
           "cls agreement | max abs dlogit |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in base[1:]:
        m = r.get("mlm", {}); k = r.get("classification", {})
        mm, ma = m.get("masked", {}), m.get("all_positions", {})
        def agree(a):
            return (f"{100*a.get('top1_agreement',0):.2f}% ({100*a.get('top1_agreement_above_margin',0):.2f}% "
                    f"of {a.get('n_above_margin',0)}/{a.get('n',0)})")
        md.append(f"| {r['dtype']} | {cos(r['embedding_mean_pool_cos'])} | {cos(r['embedding_cls_cos'])} | "
                  f"{cos(r['last_hidden_state_token_cos'])} | {agree(mm)} | {mm.get('top5_overlap',0):.4f} | "
                  f"{agree(ma)} | {ma.get('top5_overlap',0):.4f} | {100*k.get('label_agreement',0):.2f}% | "
                  f"{k.get('max_abs_dlogit',0):.3g} |")
    md += ["", "GEMM paths: " + "; ".join(f"{r['dtype']}: {r['gemm']}" for r in base), ""]
spam = rows("spam.jsonl")
if spam:
    r0 = spam[0]
    md += [f"spam classifier {r0['model']} ({r0['layers']} layers, hidden {r0['hidden_size']}), "
           f"{r0['input']}: {r0['texts']} texts, {r0['tokens']} tokens", "",
           "| dtype | test accuracy | delta vs f32 (points) | label agreement | max abs dlogit | emb mean-pool cos mean / min | token cos mean / min |",
           "|---|---|---|---|---|---|---|",
           f"| f32 | {100*r0['accuracy']:.2f}% | – | – | – | – | – |"]
    for r in spam[1:]:
        e, t, k = r["embedding_mean_pool_cos"], r["last_hidden_state_token_cos"], r["classification"]
        md.append(f"| {r['dtype']} | {100*r['accuracy']:.2f}% | {r['accuracy_delta_points']:+.2f} | "
                  f"{100*k['label_agreement']:.2f}% | {k['max_abs_dlogit']:.3g} | {cos(e)} | {cos(t)} |")
    ev = os.path.join(out, "spam_eval_f32.json")
    if os.path.exists(ev):
        md.append("")
        md.append(f"`modernbert eval` (f32) accuracy: {100*json.load(open(ev))['accuracy']:.2f}%")
open(os.path.join(out, "report.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
