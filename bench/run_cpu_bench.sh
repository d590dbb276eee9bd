#!/usr/bin/env bash
# CPU benchmark: modernbert.cpp (per weight dtype) vs ONNX Runtime (onnxruntime-node, fp32 and
# int8) vs PyTorch 1.13 eager, same random ModernBERT-base weights, same inputs, same batches, same
# thread count.
#
#   bench/run_cpu_bench.sh [--out DIR] [--build DIR] [--threads N] [--warmup N] [--repeat N]
#                          [--workloads "a b c d"] [--systems "ours ort torch"] [--no-guard]
#                          [--dtypes "f32"] [--avx2-dtypes ""] [--avx2-workloads "a"]
#                          [--quiet-load X] [--quiet-wait S] [--rounds R] [--paired]
#
# Systems: ours (modernbert.cpp, once per --dtypes entry), ort (ORT fp32), ort-int8 (ORT on the
# graph onnxruntime's quantize_dynamic(per_channel=True, QInt8) writes: DynamicQuantizeLinear,
# per-tensor activations), ort-int8-tok (the same with per-token activation scales, as issue #15
# asks; bench/peers/quantize_onnx.py), torch (PyTorch eager).
# --dtypes: f32 bf16 f16 int8 load the F32 checkpoint with `bench --dtype` (converted at load);
# bf16-ckpt f16-ckpt int8-ckpt load a checkpoint written by `modernbert quantize --dtype` (once, into
# DIR/base-<dtype>). --avx2-dtypes runs ours again on --avx2-workloads with ONEDNN_MAX_CPU_ISA=AVX2
# (oneDNN limited to AVX2: an emulation of an AVX2-only CPU such as Zen 3, not the real thing).
# --quiet-load X waits (at most --quiet-wait S seconds, default 120) before each run for the 1-min
# load average to drop under X (the machine may be shared).
# --rounds R (default 1) runs every cell of a workload R times, the cells' order rotated by one each
# round, so that a slow start or drift hits each system alike; a cell's result is its median round
# (by tokens/s), with every round's tokens/s kept in its JSON ("rounds_tokens_per_s").
# --paired also times our converted dtypes (f32 and the other plain --dtypes; likewise
# --avx2-dtypes under the stand-in) in ONE process per workload, `bench --dtype f32,bf16,...`:
# interleaved passes, each dtype's speedup over f32 from the passes of the same round (median, min,
# max). Separate processes drift by 5-25% on a shared host; the paired ratios are the ones to
# compare against #15's goals. Raw lines: DIR/raw/paired_W.jsonl, paired-avx2_W.jsonl.
#
# Steps: build `modernbert` + `bench_sgemm` (in --build, default build/), `npm ci` the ORT peer when
# bench/peers/node_modules is missing, write the base model (`modernbert init --preset base`) and
# the workloads (bench/make_workloads.py) into --out (default out/bench), export the ONNX model once
# (bench/peers/export_onnx.py) and quantize it when an ort-int8 system is asked for
# (bench/peers/quantize_onnx.py, needs Debian's python3-onnx: installed here if missing), check our
# f32 last_hidden_state against ORT's on workload a's first 4 sequences (max-abs <= 1e-3, else stop)
# and every reduced-precision system against its fp32 self (per-token cosine >= 0.99, else stop),
# measure the sgemm rate (the better of OpenBLAS and oneDNN), then run every system on every
# workload (ours first, each dtype in turn) with the same warm-up/repeat counts, and summarise into
# DIR/results.json and DIR/results.md (bench/summarize_bench.py). Raw JSON lines: DIR/raw/
# (SYSTEM_WORKLOAD.json, SYSTEM = ours | ours-DTYPE | ours-DTYPE-avx2 | ort | ort-int8 | ...;
# machine.json: lscpu model and flags, commit). Timings are only meaningful on an otherwise idle
# machine: each run records the load average before and after, and the summary prints it.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out/bench
BUILD=$ROOT/build
THREADS=2 WARMUP=1 REPEAT=5
WORKLOADS="a b c d"
SYSTEMS="ours ort torch"
GUARD=1
DTYPES="f32"
AVX2_DTYPES=""
AVX2_WORKLOADS="a"
QUIET_LOAD="" QUIET_WAIT=120
ROUNDS=1
PAIRED=0
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
    --dtypes) DTYPES=$2; shift 2 ;;
    --avx2-dtypes) AVX2_DTYPES=$2; shift 2 ;;
    --avx2-workloads) AVX2_WORKLOADS=$2; shift 2 ;;
    --quiet-load) QUIET_LOAD=$2; shift 2 ;;
    --quiet-wait) QUIET_WAIT=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --paired) PAIRED=1; shift ;;
    -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
    *) echo "run_cpu_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "run_cpu_bench.sh: --rounds must be a positive integer" >&2; exit 2; }
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

# 3. Model, workloads, ONNX export (each once), machine facts.
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
HIDDEN=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['hidden_size'])" "$MODEL/config.json")
"$PY" - "$OUT/raw/machine.json" "$ROOT" <<'PYEOF'
import json, os, re, subprocess, sys
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
field = lambda k: next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith(k + ":")), None)
git = lambda *a: subprocess.run(["git", "-C", sys.argv[2]] + list(a), capture_output=True, text=True).stdout.strip()
flags = (field("Flags") or "").split()
json.dump({"model_name": field("Model name"), "cpus": field("CPU(s)"), "flags": " ".join(flags),
           "isa": [f for f in flags if re.match(r"avx|amx|fma|f16c|sse4_2", f)],
           "commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
           "kernel": os.uname().release}, open(sys.argv[1], "w"), indent=1)
PYEOF

# The int8 ONNX graphs (only when asked for).
ort_onnx() {  # system -> its .onnx
  case "$1" in
    ort) echo "$ONNX" ;;
    ort-int8) echo "$OUT/base.int8.onnx" ;;
    ort-int8-tok) echo "$OUT/base.int8-tok.onnx" ;;
    *) return 1 ;;
  esac
}
for s in $SYSTEMS; do
  case "$s" in
    ort-int8|ort-int8-tok)
      if ! "$PY" -c "import onnx" 2>/dev/null; then
        log "$s needs Debian's python3-onnx (onnxruntime's python package is not used): apt-get install -y python3-onnx"
        apt-get install -y python3-onnx >&2 || { echo "run_cpu_bench.sh: install python3-onnx (apt-get install -y python3-onnx)" >&2; exit 1; }
      fi
      q=$(ort_onnx "$s")
      if [ ! -f "$q" ] || [ "$q" -ot "$ONNX" ]; then
        log "quantizing $ONNX -> $q"
        act=per-tensor; [ "$s" = ort-int8-tok ] && act=per-token
        "$PY" "$ROOT/bench/peers/quantize_onnx.py" --in "$ONNX" --out "$q" --activations "$act" > "$OUT/raw/quantize_$s.json"
      fi ;;
  esac
done

# Ours per dtype: "f32" (the default, exact), "bf16" (--dtype bf16 on the F32 checkpoint),
# "bf16-ckpt" (the checkpoint `modernbert quantize --dtype bf16` wrote, loaded as it is).
ours_sys() { [ "$1" = f32 ] && echo ours || echo "ours-$1"; }  # dtype -> system name
ours_args() {  # dtype -> bench flags
  case "$1" in
    *-ckpt) local dt=${1%-ckpt}
            if [ ! -f "$OUT/base-$dt/model.safetensors" ] || [ "$OUT/base-$dt/model.safetensors" -ot "$MODEL/model.safetensors" ]; then
              "$MB" quantize --model "$MODEL" --out "$OUT/base-$dt" --dtype "$dt" >&2
            fi
            echo "--model $OUT/base-$dt --dtype $dt" ;;
    *) echo "--model $MODEL --dtype $1" ;;
  esac
}

ort() { (cd "$ROOT/bench/peers" && node ort_bench.mjs --pad-id "$PAD" --threads "$THREADS" "$@"); }

# 4. Correctness guard: never benchmark a wrong model. Ours f32 vs ORT fp32: max-abs; every
#    reduced-precision system vs its own fp32: per-token cosine.
if [ "$GUARD" = 1 ]; then
  head -n 4 "$OUT/work/a.jsonl" > "$OUT/guard.jsonl"
  head -n 2 "$OUT/work/b.jsonl" >> "$OUT/guard.jsonl"
  "$MB" bench --model "$MODEL" --input "$OUT/guard.jsonl" --threads "$THREADS" --warmup 0 --repeat 1 \
    --dump-hidden "$OUT/guard_ours.safetensors" >/dev/null
  ort --onnx "$ONNX" --input "$OUT/guard.jsonl" --warmup 0 --repeat 1 --dump-hidden "$OUT/guard_ort.bin" >/dev/null
  "$PY" "$ROOT/bench/peers/compare_hidden.py" "$OUT/guard_ours.safetensors" "$OUT/guard_ort.bin" --tol 1e-3 \
    | tee "$OUT/raw/guard.json" >&2
  for dt in $DTYPES; do
    [ "$dt" = f32 ] && continue
    # shellcheck disable=SC2046
    "$MB" bench $(ours_args "$dt") --input "$OUT/guard.jsonl" --threads "$THREADS" --warmup 0 --repeat 1 \
      --dump-hidden "$OUT/guard_ours_$dt.safetensors" >/dev/null
    "$PY" "$ROOT/bench/peers/compare_hidden.py" "$OUT/guard_ours.safetensors" "$OUT/guard_ours_$dt.safetensors" \
      --min-cosine 0.99 | tee "$OUT/raw/guard_$(ours_sys "$dt").json" >&2
  done
  for s in $SYSTEMS; do
    case "$s" in
      ort-int8|ort-int8-tok)
        ort --onnx "$(ort_onnx "$s")" --input "$OUT/guard.jsonl" --warmup 0 --repeat 1 --dump-hidden "$OUT/guard_$s.bin" >/dev/null
        "$PY" "$ROOT/bench/peers/compare_hidden.py" "$OUT/guard_ort.bin" "$OUT/guard_$s.bin" --hidden "$HIDDEN" \
          --min-cosine 0.99 | tee "$OUT/raw/guard_$s.json" >&2 ;;
    esac
  done
fi

# 5. The sgemm rate (linear-layer shapes, M = 8192, OpenBLAS and oneDNN each on THREADS threads).
log "sgemm (load $(loadavg))"
"$BUILD/bench_sgemm" --threads "$THREADS" --m 8192 --reps 3 > "$OUT/raw/sgemm.json"
cat "$OUT/raw/sgemm.json" >&2

# 6. Every system on every workload, ours first (each dtype in turn).
wait_quiet() {
  [ -n "$QUIET_LOAD" ] || return 0
  local t=0
  while [ "$t" -lt "$QUIET_WAIT" ] && "$PY" -c "import sys; sys.exit(float(sys.argv[1]) < float(sys.argv[2]))" "$(loadavg)" "$QUIET_LOAD"; do
    sleep 5; t=$((t + 5))
  done
}
run_one() {  # system workload [dtype] [round suffix of the raw file]
  local sys=$1 w=$2 dt=${3:-} sfx=${4:-} in=$OUT/work/$2.jsonl l0 line
  wait_quiet
  l0=$(loadavg)
  case "$sys" in
    ours-*-avx2) # shellcheck disable=SC2046
      line=$(ONEDNN_MAX_CPU_ISA=AVX2 "$MB" bench $(ours_args "$dt") --input "$in" --threads "$THREADS" --warmup "$WARMUP" --repeat "$REPEAT") ;;
    ours|ours-*) # shellcheck disable=SC2046
      line=$("$MB" bench $(ours_args "${dt:-f32}") --input "$in" --threads "$THREADS" --warmup "$WARMUP" --repeat "$REPEAT") ;;
    ort|ort-int8|ort-int8-tok) line=$(ort --onnx "$(ort_onnx "$sys")" --input "$in" --warmup "$WARMUP" --repeat "$REPEAT") ;;
    torch) line=$("$PY" "$ROOT/bench/peers/torch_bench.py" --model "$MODEL" --input "$in" --threads "$THREADS" \
                  --warmup "$WARMUP" --repeat "$REPEAT") ;;
    *) echo "unknown system $sys" >&2; return 1 ;;
  esac
  # A reduced-precision run that came back in another dtype (a loader ignoring --dtype) is an error.
  line=$("$PY" -c "
import json, sys
d = json.loads(sys.argv[1]); want = sys.argv[6].split('-')[0]
if want and d.get('dtype', want) != want:
    sys.exit('asked for dtype %s, bench ran %s' % (want, d.get('dtype')))
d.update(workload=sys.argv[2], bench_system=sys.argv[3], load_before=float(sys.argv[4]), load_after=float(sys.argv[5]))
print(json.dumps(d))" "$line" "$w" "$sys" "$l0" "$(loadavg)" "$dt") || return 1
  echo "$line" > "$OUT/raw/${sys}_${w}${sfx}.json"
  log "$sys $w${sfx}: $(echo "$line" | "$PY" -c "import json,sys; d=json.load(sys.stdin); print('%.1f tok/s, median %.2fs, rss %.0f MiB, load %.1f->%.1f' % (d['tokens_per_s'], d['seconds_median'], d['peak_rss_mib'], d['load_before'], d['load_after']))")"
}
paired_list() {  # dtypes... -> "f32,bf16,..." (f32 first; checkpoints left out), empty if f32 alone
  local l=f32 d
  for d in "$@"; do [ "$d" = f32 ] || [[ "$d" == *-ckpt ]] || l="$l,$d"; done
  [ "$l" = f32 ] || echo "$l"
}
run_paired() {  # workload, list, raw name [, env assignment]
  local w=$1 list=$2 name=$3 in=$OUT/work/$1.jsonl
  wait_quiet
  if ! env ${4:-} "$MB" bench --model "$MODEL" --input "$in" --dtype "$list" --threads "$THREADS" \
      --warmup "$WARMUP" --repeat "$REPEAT" > "$OUT/raw/${name}_${w}.jsonl"; then
    log "$name $w FAILED"; return 0
  fi
  log "$name $w: $("$PY" -c "
import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l); p = d.get('paired')
    if p: print('%s %.2fx [%.2f, %.2f]' % (d['dtype'], p['speedup_median'], p['speedup_min'], p['speedup_max']), end='  ')" \
    "$OUT/raw/${name}_${w}.jsonl")"
}
for w in $WORKLOADS; do
  cells=()  # "system dtype" (dtype "-" for peers)
  for s in $SYSTEMS; do
    if [ "$s" = ours ]; then
      for dt in $DTYPES; do cells+=("$(ours_sys "$dt") $dt"); done
      if [[ " $AVX2_WORKLOADS " == *" $w "* ]]; then
        for dt in $AVX2_DTYPES; do cells+=("ours-$dt-avx2 $dt"); done
      fi
    else
      cells+=("$s -")
    fi
  done
  n=${#cells[@]}
  for ((r = 0; r < ROUNDS; r++)); do
    sfx=""
    [ "$ROUNDS" -gt 1 ] && sfx=".r$((r + 1))"
    for ((i = 0; i < n; i++)); do
      read -r sys dt <<< "${cells[$(((i + r) % n))]}"
      [ "$dt" = - ] && dt=""
      run_one "$sys" "$w" "$dt" "$sfx" || log "$sys $w$sfx FAILED"
    done
  done
  if [ "$ROUNDS" -gt 1 ]; then  # each cell: its median round, with every round's tokens/s
    for c in "${cells[@]}"; do
      read -r sys dt <<< "$c"
      "$PY" "$ROOT/bench/median_round.py" "$OUT/raw/${sys}_${w}" "$ROUNDS" || log "$sys $w: no round succeeded"
    done
  fi
  if [ "$PAIRED" = 1 ] && [[ " $SYSTEMS " == *" ours "* ]]; then
    # shellcheck disable=SC2086
    l=$(paired_list $DTYPES); [ -z "$l" ] || run_paired "$w" "$l" paired
    if [[ " $AVX2_WORKLOADS " == *" $w "* ]]; then
      # shellcheck disable=SC2086
      l=$(paired_list $AVX2_DTYPES); [ -z "$l" ] || run_paired "$w" "$l" paired-avx2 ONEDNN_MAX_CPU_ISA=AVX2
    fi
  fi
done

# 7. Table.
"$PY" "$ROOT/bench/summarize_bench.py" "$OUT"
