#!/usr/bin/env bash
# Training throughput: modernbert.cpp (bench_train: forward + backward + StableAdamW step) vs
# PyTorch 1.13 eager (bench/peers/torch_train_bench.py: the reference model, autograd, AdamW) on
# the same ModernBERT-base-shaped random weights and the same packed MLM batch, same threads.
#
#   bench/run_train_bench.sh [--out DIR] [--build DIR] [--threads N] [--shapes "4x512 2x1024"]
#                            [--warmup N] [--repeat N]
#
# Each shape is ROWSxSEQ_LEN (2048 tokens a step by default, at 512 and at 1024 -- the recipe's
# pre-training length). For each shape ours runs first, then PyTorch, back to back. Writes
# DIR/train_<shape>_{ours,torch}.json and prints a table with the ratios. The first step's loss of
# both must agree (same weights, same batch) or the script stops: a fast wrong model is not a
# result. Two warm-up steps by default: PyTorch's first two steps are 1.5-2x slower than its
# steady state (allocator growth), and timing them would flatter us. Only meaningful on an
# otherwise idle machine (load average recorded).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out/bench
BUILD=$ROOT/build
THREADS=2 SHAPES="4x512 2x1024" WARMUP=2 REPEAT=3
PY=/usr/bin/python3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --shapes) SHAPES=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "run_train_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "[run_train_bench $(date +%H:%M:%S)] $*" >&2; }
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j2 --target modernbert bench_train >/dev/null
mkdir -p "$OUT"
MODEL=$OUT/base
if [ ! -f "$MODEL/model.safetensors" ]; then
  log "writing the base model to $MODEL"
  "$BUILD/modernbert" init --preset base --seed 0 --out "$MODEL"
fi
RESULTS=()
for shape in $SHAPES; do
  ROWS=${shape%x*} SEQ=${shape#*x}
  L0=$(cut -d' ' -f1 /proc/loadavg)
  log "$shape ours: $ROWS x $SEQ tokens, $THREADS threads (load $L0)"
  "$BUILD/bench_train" --model "$MODEL" --rows "$ROWS" --seq-len "$SEQ" --threads "$THREADS" --warmup "$WARMUP" \
    --repeat "$REPEAT" --write-batch "$OUT/train_batch_$shape.jsonl" > "$OUT/train_${shape}_ours.json"
  log "$shape torch eager"
  "$PY" "$ROOT/bench/peers/torch_train_bench.py" --model "$MODEL" --batch "$OUT/train_batch_$shape.jsonl" \
    --threads "$THREADS" --warmup "$WARMUP" --repeat "$REPEAT" > "$OUT/train_${shape}_torch.json"
  L1=$(cut -d' ' -f1 /proc/loadavg)
  RESULTS+=("$OUT/train_${shape}_ours.json" "$OUT/train_${shape}_torch.json" "$L0" "$L1")
done
"$PY" - "${RESULTS[@]}" <<'PYEOF'
import json, sys
a = sys.argv[1:]
print("| shape | system | tokens/step | s/step (median) | s/step (min) | tokens/s | peak RSS MiB |")
print("|---|---|---:|---:|---:|---:|---:|")
lines = []
for i in range(0, len(a), 4):
    o, t = (json.loads(open(p).read().strip().splitlines()[-1]) for p in a[i:i + 2])
    if abs(o["loss"] - t["loss"]) > 1e-3 * max(1.0, abs(t["loss"])):
        sys.exit("first-step losses differ: ours %.6f vs torch %.6f -- not benchmarking a different computation" % (o["loss"], t["loss"]))
    shape = "%dx%d" % (o["rows"], o["seq_len"])
    for r in (o, t):
        print("| %s | %s | %d | %.2f | %.2f | %.0f | %.0f |" % (shape, r["system"], r["tokens"], r["seconds_median"],
                                                             r["seconds_min"], r["tokens_per_s"], r["peak_rss_mib"]))
    lines.append("%s: ours/torch %.2fx on medians, %.2fx on minima (first-step loss %.5f vs %.5f; load average %s -> %s)" %
                 (shape, o["tokens_per_s"] / t["tokens_per_s"], t["seconds_min"] / o["seconds_min"], o["loss"], t["loss"],
                  a[i + 2], a[i + 3]))
print()
print("\n".join(lines))
PYEOF
