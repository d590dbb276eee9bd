#!/usr/bin/env bash
# Training throughput: modernbert.cpp (bench_train: forward + backward + StableAdamW step) vs
# PyTorch 1.13 eager (bench/peers/torch_train_bench.py: the reference model, autograd, AdamW) on
# the same ModernBERT-base-shaped random weights and the same packed MLM batch, same threads.
#
#   bench/run_train_bench.sh [--out DIR] [--build DIR] [--threads N] [--rows N] [--seq-len N]
#                            [--warmup N] [--repeat N]
#
# Writes DIR/train_ours.json, DIR/train_torch.json and prints a table with the ratio. The first
# step's loss of both must agree (same weights, same batch) or the script stops: a fast wrong
# model is not a result. Only meaningful on an otherwise idle machine (load average recorded).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out/bench
BUILD=$ROOT/build
THREADS=2 ROWS=4 SEQ=512 WARMUP=1 REPEAT=3
PY=/usr/bin/python3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --seq-len) SEQ=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
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
L0=$(cut -d' ' -f1 /proc/loadavg)
log "ours: $ROWS x $SEQ tokens, $THREADS threads (load $L0)"
"$BUILD/bench_train" --model "$MODEL" --rows "$ROWS" --seq-len "$SEQ" --threads "$THREADS" --warmup "$WARMUP" \
  --repeat "$REPEAT" --write-batch "$OUT/train_batch.jsonl" > "$OUT/train_ours.json"
log "torch eager"
"$PY" "$ROOT/bench/peers/torch_train_bench.py" --model "$MODEL" --batch "$OUT/train_batch.jsonl" --threads "$THREADS" \
  --warmup "$WARMUP" --repeat "$REPEAT" > "$OUT/train_torch.json"
L1=$(cut -d' ' -f1 /proc/loadavg)
"$PY" - "$OUT/train_ours.json" "$OUT/train_torch.json" "$L0" "$L1" <<'PYEOF'
import json, sys
o, t = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:3])
if abs(o["loss"] - t["loss"]) > 1e-3 * max(1.0, abs(t["loss"])):
    sys.exit("first-step losses differ: ours %.6f vs torch %.6f -- not benchmarking a different computation" % (o["loss"], t["loss"]))
print("| system | tokens/step | s/step (median) | tokens/s | peak RSS MiB |")
print("|---|---:|---:|---:|---:|")
for r in (o, t):
    print("| %s | %d | %.2f | %.0f | %.0f |" % (r["system"], r["tokens"], r["seconds_median"], r["tokens_per_s"], r["peak_rss_mib"]))
print("\nratio ours/torch: %.2fx (first-step loss %.5f vs %.5f; load average %s -> %s)" %
      (o["tokens_per_s"] / t["tokens_per_s"], o["loss"], t["loss"], sys.argv[3], sys.argv[4]))
PYEOF
