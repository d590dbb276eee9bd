#!/usr/bin/env bash
# Resident-memory soak of a serving system under steady load.
#
#   bench/serve_soak.sh [--system ours|ort] [--minutes 10] [--rate 0.5] [--interval 5]
#                       [--warmup-seconds 60] [--out out/serve] [--build build] [--threads 2]
#                       [--burst-connections 64] [--serve-flags "..."]
#
# Starts the server (ours: `modernbert serve` on the base-shaped model; ort: bench/peers/
# ort_server.mjs on its ONNX export) on a free loopback port, first sends one burst of
# --burst-connections concurrent requests (one closed-loop round over the texts: the largest batch,
# a full --max-batch-tokens, so the activation arena reaches the size the budget bounds it to before
# the baseline; 0 = no burst), then drives it open-loop at --rate
# requests/s with the mixed-length texts (bench/serve_load.mjs, texts in order, cycling) for
# --minutes, samples VmRSS of the server process from /proc/PID/status every --interval seconds into
# OUT/soak_SYSTEM.jsonl ({"t", "rss_kib", "load1"}), stops the server (SIGTERM; its exit status is
# logged) and writes OUT/soak_SYSTEM_summary.json: RSS after warm-up (the mean of the samples in
# [warmup, warmup + 30 s)), at the end (the mean of the last 30 s), the maximum, and the growth
# end / after-warm-up - 1 (goal <= 5%), plus the load generator's result (errors must be 0).
# Our server runs with --request-timeout 0 (--serve-flags): the burst's requests wait for up to two
# full batches, over the default 60 s on a loaded 2-core machine.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out/serve BUILD=$ROOT/build THREADS=2 SERVE_FLAGS="--request-timeout 0"
SYSTEM=ours MINUTES=10 RATE=0.5 INTERVAL=5 WARMUP_S=60 BURST=64
while [ $# -gt 0 ]; do
  case "$1" in
    --system) SYSTEM=$2; shift 2 ;;
    --minutes) MINUTES=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --interval) INTERVAL=$2; shift 2 ;;
    --burst-connections) BURST=$2; shift 2 ;;
    --warmup-seconds) WARMUP_S=$2; shift 2 ;;
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --serve-flags) SERVE_FLAGS=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "serve_soak.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
MB=$BUILD/modernbert MODEL=$OUT/base ONNX=$OUT/base.onnx
. "$ROOT/bench/serve_common.sh"
[ "$SYSTEM" = ort ] || NEED_PEER=0
prepare

SAMPLES=$OUT/soak_$SYSTEM.jsonl
SUMMARY=$OUT/soak_${SYSTEM}_summary.json
DURATION=$("$PY" -c "print(int(float('$MINUTES') * 60))")
machine_json > "$OUT/soak_${SYSTEM}_machine.json"
start_server "$SYSTEM" "$OUT/soak_${SYSTEM}_server.log"
trap 'stop_server $SERVER_PID' EXIT
log "$SYSTEM server $SERVER_PID at $SERVER_URL: $MINUTES min at $RATE req/s, VmRSS every $INTERVAL s -> $SAMPLES"
: > "$SAMPLES"
if [ "$BURST" -gt 0 ]; then
  echo "{\"t\": -1, \"phase\": \"before burst\", \"rss_kib\": $(rss_kib "$SERVER_PID"), \"load1\": $(cut -d' ' -f1 /proc/loadavg)}" >> "$SAMPLES"
  node "$ROOT/bench/serve_load.mjs" --url "$SERVER_URL" --texts "$OUT/work/texts.jsonl" --mode closed \
    --connections "$BURST" --rounds 1 --label "soak_${SYSTEM}_burst" > "$OUT/soak_${SYSTEM}_burst.json"
  log "burst: $(head -c 300 "$OUT/soak_${SYSTEM}_burst.json")"
  echo "{\"t\": 0, \"phase\": \"after burst\", \"rss_kib\": $(rss_kib "$SERVER_PID"), \"load1\": $(cut -d' ' -f1 /proc/loadavg)}" >> "$SAMPLES"
fi

node "$ROOT/bench/serve_load.mjs" --url "$SERVER_URL" --texts "$OUT/work/texts.jsonl" --mode open \
  --rate "$RATE" --duration "$DURATION" --label "soak_$SYSTEM" --samples "$OUT/soak_${SYSTEM}_requests.jsonl" \
  > "$OUT/soak_${SYSTEM}_load.json" &
LOAD_PID=$!
T0=$(date +%s.%N)
while kill -0 "$LOAD_PID" 2>/dev/null; do
  r=$(rss_kib "$SERVER_PID")
  [ -n "$r" ] || { log "server $SERVER_PID is gone"; break; }
  echo "{\"t\": $(awk "BEGIN {printf \"%.2f\", $(date +%s.%N) - $T0}"), \"rss_kib\": $r, \"load1\": $(cut -d' ' -f1 /proc/loadavg)}" >> "$SAMPLES"
  sleep "$INTERVAL"
done
wait "$LOAD_PID" || log "load generator failed"
curl -s "$SERVER_URL/metrics" > "$OUT/soak_${SYSTEM}_metrics.txt" || true
"$PY" - "$SAMPLES" "$OUT/soak_${SYSTEM}_load.json" "$WARMUP_S" "$SYSTEM" > "$SUMMARY" <<'EOF'
import json, sys
s = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
burst = [x for x in s if "phase" in x]
s = [x for x in s if "phase" not in x]
load = json.load(open(sys.argv[2]))
w = float(sys.argv[3]); end_t = s[-1]["t"]
mean = lambda xs: sum(xs) / len(xs)
after = mean([x["rss_kib"] for x in s if w <= x["t"] < w + 30] or [s[0]["rss_kib"]])
end = mean([x["rss_kib"] for x in s if x["t"] >= end_t - 30])
print(json.dumps({"system": sys.argv[4], "samples": len(s), "seconds": round(end_t, 1),
                  "rss_mib_after_warmup": round(after / 1024, 1), "rss_mib_end": round(end / 1024, 1),
                  "rss_mib_max": round(max(x["rss_kib"] for x in s) / 1024, 1),
                  "growth": round(end / after - 1, 4), "goal_growth_le": 0.05,
                  "burst": {x["phase"]: round(x["rss_kib"] / 1024, 1) for x in burst}, "load": load}))
EOF
cat "$SUMMARY"
