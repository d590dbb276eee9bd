#!/usr/bin/env bash
# Data-parallel pretraining on this machine (#16 item 6, the numbers of docs/distributed.md):
# N ranks x 1 thread against 1 rank x 1 thread with the same work per rank (--accum micro-batches
# of --micro-batch-size rows per rank per step), on the `base` model shape.
#
#   bench/distributed_scaling.sh [--build DIR] [--model base] [--seq-len 512] [--micro-batch-size 1]
#                                [--accum 1] [--steps 6] [--ranks 2] [--zero 0|1] [--out DIR] [--keep]
#
# Prints lscpu's model and flags and the load average, runs (M = micro-batch size x accum)
#   modernbert pretrain ... --global-batch-size M              --threads 1          (1 rank)
#   mpirun -np N modernbert pretrain ... --global-batch-size N*M --threads 1 [--zero Z]  (N ranks)
# on random token ids (documents of 100..600 tokens, packed into rows of --seq-len), and from each
# run's metrics.jsonl (steps after the first) the median step time and tokens/s, the tokens/s
# ratio N ranks / 1 rank (ideal: N), and the median all-reduce seconds per step ("allreduce_s")
# with its share of the step (plus "allgather_s" under --zero 1); then the N-rank batch in one
# process with N threads (the cores' own scaling without communication, for comparison), and N
# independent 1-rank runs at once (one rank's speed when every core is busy: the baseline that
# separates the hardware's slowdown from the all-reduce's). Both runs end with the usual
# checkpoint (not timed). Timings need an otherwise idle machine: the load average is printed
# before and after. Open MPI's shared-memory transport copies through a bounce buffer
# (btl_vader_single_copy_mechanism=none, as the tests) unless that variable is set (e.g. cma).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
MODEL=base SEQ=512 MBS=1 ACCUM=1 STEPS=6 RANKS=2 ZERO=0 KEEP=0
OUT=""
PY=/usr/bin/python3
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$(realpath "$2"); shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --seq-len) SEQ=$2; shift 2 ;;
    --micro-batch-size) MBS=$2; shift 2 ;;
    --accum) ACCUM=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --ranks) RANKS=$2; shift 2 ;;
    --zero) ZERO=$2; shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "distributed_scaling.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
CLI=$BUILD/modernbert
[ -x "$CLI" ] || { echo "distributed_scaling.sh: $CLI is missing (cmake --build build --target modernbert)" >&2; exit 2; }
command -v mpirun > /dev/null || { echo "distributed_scaling.sh: mpirun not found (apt install openmpi-bin)" >&2; exit 2; }
[ "$STEPS" -ge 2 ] || { echo "distributed_scaling.sh: --steps must be >= 2 (the first step is not timed)" >&2; exit 2; }
if [ -z "$OUT" ]; then OUT=$(mktemp -d "${TMPDIR:-/tmp}/mb_dp_scaling.XXXXXX"); fi
mkdir -p "$OUT"
[ "$KEEP" = 1 ] || trap 'rm -rf "$OUT/one" "$OUT/many" "$OUT/threads" "$OUT"/busy*' EXIT

echo "== machine"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread\(s\) per core|Core\(s\) per socket|Socket\(s\)|L3 cache)' || true
lscpu | grep -E '^Flags' | tr ' ' '\n' | grep -E '^(avx|avx2|fma|avx512f|avx512bw|avx512_bf16|amx_tile)$' | tr '\n' ' ' |
  sed 's/^/SIMD flags: /; s/$/\n/'
mpirun --version 2>&1 | head -1
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# Random ids in [5, 50000): enough documents for every step of both runs.
DATA=$OUT/ids.jsonl
$PY - "$DATA" "$SEQ" "$((MBS * ACCUM))" "$STEPS" "$RANKS" << 'EOF'
import json, random, sys
path, seq, mbs, steps, ranks = sys.argv[1], *map(int, sys.argv[2:])
need = seq * mbs * ranks * (steps + 2) * 2  # tokens, with room for the packer's buffer
rng = random.Random(0)
with open(path, "w") as f:
    total = 0
    while total < need:
        n = rng.randint(100, 600)
        f.write(json.dumps({"input_ids": [rng.randrange(5, 50000) for _ in range(n)]}) + "\n")
        total += n
EOF

COMMON="pretrain --data $DATA --model-config $MODEL --seq-len $SEQ --micro-batch-size $MBS
  --batch-warmup-tokens 0 --max-steps $STEPS --save-every 0 --eval-every 0 --mask-token-id 4 --threads 1
  --log-every 1 --seed 1"
echo "== 1 rank x 1 thread: $MODEL, $ACCUM x $MBS x $SEQ tokens per step"
# shellcheck disable=SC2086
"$CLI" $COMMON --global-batch-size $((MBS * ACCUM)) --output-dir "$OUT/one" 2>&1 | grep -vE '^pretrain: step' | tail -3
CMA=${OMPI_MCA_btl_vader_single_copy_mechanism:-none}
echo "== $RANKS ranks x 1 thread (--zero $ZERO, vader single copy: $CMA): $RANKS x $ACCUM x $MBS x $SEQ tokens per step"
# shellcheck disable=SC2086
OMPI_MCA_btl_vader_single_copy_mechanism=$CMA mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$RANKS" \
  "$CLI" $COMMON --global-batch-size $((MBS * ACCUM * RANKS)) --zero "$ZERO" --output-dir "$OUT/many" 2>&1 |
  grep -vE '^pretrain: step' | tail -4
# The same global batch in ONE process with N threads: what the hardware gives N cores without any
# communication (memory-bandwidth and cache contention between the cores), to separate that from the
# cost of the ranks' all-reduce.
echo "== 1 rank x $RANKS threads: the $RANKS-rank batch ($RANKS x $ACCUM x $MBS x $SEQ tokens per step)"
# shellcheck disable=SC2086
"$CLI" ${COMMON/--threads 1/--threads $RANKS} --global-batch-size $((MBS * ACCUM * RANKS)) --output-dir "$OUT/threads" 2>&1 |
  grep -vE '^pretrain: step' | tail -3
# N independent 1-rank runs at once: one rank's speed when the other cores are equally busy (clock
# boost, memory bandwidth and caches shared as in the N-rank job, but no communication), so the
# N-rank job's efficiency can be split into the hardware's share and the all-reduce's.
echo "== $RANKS independent 1-rank x 1-thread runs at the same time (the 1-rank work each)"
for i in $(seq 1 "$RANKS"); do
  # shellcheck disable=SC2086
  "$CLI" $COMMON --global-batch-size $((MBS * ACCUM)) --output-dir "$OUT/busy$i" > "$OUT/busy$i.log" 2>&1 &
done
wait
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== result (median over steps 2..$STEPS)"
$PY - "$OUT/one/metrics.jsonl" "$OUT/many/metrics.jsonl" "$RANKS" "$OUT/threads/metrics.jsonl" "$OUT"/busy*/metrics.jsonl << 'EOF'
import json, statistics, sys
def steps(path):
    recs = [r for r in map(json.loads, open(path)) if "event" not in r]
    out, prev = [], 0.0
    for r in recs:  # step seconds = the step's tokens / its tokens_per_s
        r["seconds"] = (r["tokens"] - prev) / r["tokens_per_s"]
        prev = r["tokens"]
        if r["step"] >= 2:
            out.append(r)
    return out
one, many, ranks = steps(sys.argv[1]), steps(sys.argv[2]), int(sys.argv[3])
med = lambda recs, key: statistics.median(r.get(key, 0.0) for r in recs)
t1, tn = med(one, "tokens_per_s"), med(many, "tokens_per_s")
s1, sn = med(one, "seconds"), med(many, "seconds")
ar, ag = med(many, "allreduce_s"), med(many, "allgather_s")
print(f"1 rank:   {t1:9.1f} tokens/s   step {s1:7.3f} s")
print(f"{ranks} ranks:  {tn:9.1f} tokens/s   step {sn:7.3f} s")
print(f"speed-up: {tn / t1:.3f}x of the ideal {ranks}x (efficiency {100 * tn / t1 / ranks:.1f}%)")
print(f"all-reduce per step: {ar:.3f} s = {100 * ar / sn:.1f}% of the {ranks}-rank step")
if any("allgather_s" in r for r in many):
    print(f"parameter all-gather per step (--zero 1): {ag:.3f} s = {100 * ag / sn:.1f}% of the step")
th = steps(sys.argv[4])
tt = med(th, "tokens_per_s")
print(f"1 rank x {ranks} threads: {tt:9.1f} tokens/s = {tt / t1:.3f}x of 1 thread; "
      f"the {ranks} ranks reach {100 * tn / tt:.1f}% of it")
busy = [med(steps(p), "tokens_per_s") for p in sys.argv[5:]]
tb = statistics.mean(busy)
print(f"1 rank x 1 thread with the other {ranks - 1} core(s) busy alike: {tb:9.1f} tokens/s "
      f"({100 * tb / t1:.1f}% of alone); the {ranks} ranks reach {100 * tn / (ranks * tb):.1f}% of {ranks} such ranks "
      f"(the data-parallel overhead proper)")
print("per step: step, 1-rank tokens/s, N-rank tokens/s, N-rank allreduce_s")
for a, b in zip(one, many):
    print(f"  {a['step']:3d} {a['tokens_per_s']:9.1f} {b['tokens_per_s']:9.1f} {b.get('allreduce_s', 0.0):7.3f}")
EOF
