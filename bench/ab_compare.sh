#!/usr/bin/env bash
# A/B comparison of two builds of modernbert.cpp on the same machine in one run, alternating
# the order each round (A B, then B A, ...) so that drift and the second-runner penalty measured on
# this machine (~3-5% for whichever build runs second) hit both alike: inference (`modernbert bench`
# on workloads a-d, base shape) and the training step (`bench_train`, base shape, 4 x 512).
#
#   bench/ab_compare.sh --a BUILD_DIR_A --b BUILD_DIR_B [--out DIR] [--rounds N] [--threads N]
#                       [--workloads "a b c d"] [--train-shapes "4x512"] [--repeat N]
#
# Each build dir must hold `modernbert` and `bench_train`. Writes DIR/ab.jsonl (one line a
# measurement) and prints a table of median tokens/s per build and the ratio B/A (B = the change).
# Records `lscpu` model and flags and the load average (timings are only meaningful on an idle
# machine).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out/ab
A="" B=""
ROUNDS=3 THREADS=2 REPEAT=3
WORKLOADS="a b c d"
SHAPES="4x512"
PY=/usr/bin/python3
while [ $# -gt 0 ]; do
  case "$1" in
    --a) A=$(realpath "$2"); shift 2 ;;
    --b) B=$(realpath "$2"); shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --train-shapes) SHAPES=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "ab_compare.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$A" ] && [ -n "$B" ] || { echo "ab_compare.sh: --a and --b are required" >&2; exit 2; }
for d in "$A" "$B"; do
  for t in modernbert bench_train; do
    [ -x "$d/$t" ] || { echo "ab_compare.sh: $d/$t is missing" >&2; exit 2; }
  done
done
mkdir -p "$OUT/work"
lscpu | grep -E 'Model name|^Flags' > "$OUT/lscpu.txt"
MODEL=$OUT/base
[ -f "$MODEL/model.safetensors" ] || "$A/modernbert" init --preset base --seed 0 --out "$MODEL" >/dev/null
"$PY" "$ROOT/bench/make_workloads.py" "$OUT/work" >/dev/null
RAW=$OUT/ab.jsonl
: > "$RAW"
record() {  # build-label kind name json
  "$PY" -c "import json,sys; d=json.loads(sys.argv[4].strip().splitlines()[-1]); d.update(build=sys.argv[1], kind=sys.argv[2], name=sys.argv[3], load=float(open('/proc/loadavg').read().split()[0])); print(json.dumps(d))" \
    "$1" "$2" "$3" "$4" >> "$RAW"
}
for r in $(seq 1 "$ROUNDS"); do
  order="A B"; [ $((r % 2)) = 0 ] && order="B A"
  for label in $order; do
    dir=$A; [ $label = B ] && dir=$B
    for w in $WORKLOADS; do
      out=$("$dir/modernbert" bench --model "$MODEL" --input "$OUT/work/$w.jsonl" --threads "$THREADS" --warmup 1 --repeat "$REPEAT")
      record $label infer "$w" "$out"
    done
    for s in $SHAPES; do
      out=$("$dir/bench_train" --model "$MODEL" --rows "${s%x*}" --seq-len "${s#*x}" --threads "$THREADS" --warmup 1 --repeat "$REPEAT")
      record $label train "$s" "$out"
    done
    echo "[ab_compare] round $r build $label done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  done
done
"$PY" - "$RAW" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = sorted({(r["kind"], r["name"]) for r in rows})
print("| kind | workload | A tokens/s (median of rounds) | B tokens/s | B/A |")
print("|---|---|---:|---:|---:|")
for k in keys:
    a = statistics.median(r["tokens_per_s"] for r in rows if (r["kind"], r["name"]) == k and r["build"] == "A")
    b = statistics.median(r["tokens_per_s"] for r in rows if (r["kind"], r["name"]) == k and r["build"] == "B")
    print("| %s | %s | %.1f | %.1f | %.3f |" % (k[0], k[1], a, b, b / a))
print("load average during the run: %.1f .. %.1f" % (min(r["load"] for r in rows), max(r["load"] for r in rows)))
PYEOF
