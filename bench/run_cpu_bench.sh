#!/usr/bin/env bash
# CPU benchmark: modernbert.cpp vs ONNX Runtime (onnxruntime-node) vs PyTorch 1.13 eager, same
# random ModernBERT-base weights, same inputs, same batches, same thread count.
#
#   bench/run_cpu_bench.sh [--out DIR] [--build DIR] [--threads N] [--warmup N] [--repeat N]
#                          [--workloads "a b c d"] [--systems "ours ort torch"] [--no-guard]
#
# Steps: build `modernbert` + `bench_sgemm` (in --build, default build/), `npm ci` the ORT peer when
# bench/peers/node_modules is missing, write the base model (`modernbert init --preset base`) and
# the workloads (bench/make_workloads.py) into --out (default out/bench), export the ONNX model once
# (bench/peers/export_onnx.py), check our last_hidden_state against ORT's on workload a's first 4
# sequences (max-abs <= 1e-3, else stop), measure the sgemm rate (the better of OpenBLAS and oneDNN), then run every system on
# every workload (ours first) with the same warm-up/repeat counts, and summarise into
# DIR/results.json and DIR/results.md (bench/summarize_bench.py). Raw JSON lines: DIR/raw/.
# Timings are only meaningful on an otherwise idle machine: each run records the load average
# before and after, and the summary prints it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out/bench
BUILD=$ROOT/build
THREADS=2 WARMUP=1 REPEAT=5
WORKLOADS="a b c d"
SYSTEMS="ours ort torch"
GUARD=1
PY=/usr/bin/python3
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    --no-guard) GUARD=0; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run_cpu_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
log() { echo "[run_cpu_bench $(date +%H:%M:%S)] $*" >&2; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }

# 1. Build (only what the benchmark needs).
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD" -j2 --target modernbert bench_sgemm >/dev/null
MB=$BUILD/modernbert

# 2. ORT peer (the GPU download of onnxruntime-node's install script is skipped; the CPU library
#    ships in the package).
if [ ! -d "$ROOT/bench/peers/node_modules/onnxruntime-node" ]; then
  (cd "$ROOT/bench/peers" && ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund >&2)
fi

# 3. Model, workloads, ONNX export (each once).
mkdir -p "$OUT/raw"
MODEL=$OUT/base
if [ ! -f "$MODEL/model.safetensors" ]; then
  log "writing the base model to $MODEL"
  "$MB" init --preset base --seed 0 --out "$MODEL"
fi
"$PY" "$ROOT/bench/make_workloads.py" "$OUT/work" >&2
ONNX=$OUT/base.onnx
if [ ! -f "$ONNX" ] || [ "$ONNX" -ot "$MODEL/model.safetensors" ]; then
  log "exporting $ONNX"
  "$PY" "$ROOT/bench/peers/export_onnx.py" --model "$MODEL" --out "$ONNX" 2> "$OUT/export_onnx.log" ||
    { cat "$OUT/export_onnx.log" >&2; exit 1; }
fi
PAD=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1])).get('pad_token_id', 50283))" "$MODEL/config.json")

ort() { (cd "$ROOT/bench/peers" && node ort_bench.mjs --onnx "$ONNX" --pad-id "$PAD" --threads "$THREADS" "$@"); }

# 4. Correctness guard: never benchmark a wrong model.
if [ "$GUARD" = 1 ]; then
  head -n 4 "$OUT/work/a.jsonl" > "$OUT/guard.jsonl"
  "$MB" bench --model "$MODEL" --input "$OUT/guard.jsonl" --threads "$THREADS" --warmup 0 --repeat 1 \
    --dump-hidden "$OUT/guard_ours.safetensors" >/dev/null
  ort --input "$OUT/guard.jsonl" --warmup 0 --repeat 1 --dump-hidden "$OUT/guard_ort.bin" >/dev/null
  "$PY" "$ROOT/bench/peers/compare_hidden.py" "$OUT/guard_ours.safetensors" "$OUT/guard_ort.bin" --tol 1e-3 \
    | tee "$OUT/raw/guard.json" >&2
fi

# 5. The sgemm rate (linear-layer shapes, M = 8192, OpenBLAS and oneDNN each on THREADS threads).
log "sgemm (load $(loadavg))"
"$BUILD/bench_sgemm" --threads "$THREADS" --m 8192 --reps 3 > "$OUT/raw/sgemm.json"
cat "$OUT/raw/sgemm.json" >&2

# 6. Every system on every workload, ours first.
run_one() {  # system workload
  local sys=$1 w=$2 in=$OUT/work/$2.jsonl l0 line
  l0=$(loadavg)
  case "$sys" in
    ours) line=$("$MB" bench --model "$MODEL" --input "$in" --threads "$THREADS" --warmup "$WARMUP" --repeat "$REPEAT") ;;
    ort) line=$(ort --input "$in" --warmup "$WARMUP" --repeat "$REPEAT") ;;
    torch) line=$("$PY" "$ROOT/bench/peers/torch_bench.py" --model "$MODEL" --input "$in" --threads "$THREADS" \
                  --warmup "$WARMUP" --repeat "$REPEAT") ;;
    *) echo "unknown system $sys" >&2; return 1 ;;
  esac
  line=$("$PY" -c "import json,sys; d=json.loads(sys.argv[1]); d.update(workload=sys.argv[2], load_before=float(sys.argv[3]), load_after=float(sys.argv[4])); print(json.dumps(d))" \
         "$line" "$w" "$l0" "$(loadavg)")
  echo "$line" > "$OUT/raw/${sys}_${w}.json"
  log "$sys $w: $(echo "$line" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print('%.1f tok/s, median %.2fs, rss %.0f MiB, load %.1f->%.1f' % (d['tokens_per_s'], d['seconds_median'], d['peak_rss_mib'], d['load_before'], d['load_after']))")"
}
for w in $WORKLOADS; do
  for s in $SYSTEMS; do
    run_one "$s" "$w" || log "$s $w FAILED"
  done
done

# 7. Table.
"$PY" "$ROOT/bench/summarize_bench.py" "$OUT"
