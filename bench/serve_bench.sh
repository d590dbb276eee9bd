#!/usr/bin/env bash
# Serving benchmark: `modernbert serve` vs the bare forward (`modernbert bench`) on the same texts vs
# a peer server (ONNX Runtime via onnxruntime-node, bench/peers/ort_server.mjs), in one run.
#
#   bench/serve_bench.sh [--out out/serve] [--build build] [--threads 2] [--connections 64]
#                        [--rounds 2] [--peer-rounds 1] [--alternations 2] [--peer-alternations 1]
#                        [--open-seconds 90]
#                        [--open-warmup 10] [--short-requests 200] [--systems "ours ort"]
#                        [--steps "sat lat short"] [--wrk-seconds 120] [--bare-repeat 2]
#                        [--serve-flags "..."]
#
# Prepares (once, when missing) the base-shaped model with random weights + the real tokenizer, the
# mixed-length request texts (bench/make_serve_texts.py: 64 texts, 24..513 tokens) and the ONNX
# export, starts both servers on free loopback ports with --threads threads each (one idles while
# the other is measured), then:
#   sat    throughput at saturation, alternating --alternations times: `modernbert bench` over the
#          texts (--warmup 1 --repeat --bare-repeat, default 2), ours, the peer (in the first --peer-alternations only): each
#          server closed-loop with --connections clients x --rounds requests each
#          (bench/serve_load.mjs --mode closed). Ratio = server tokens/s / bench tokens/s (medians;
#          goal >= 0.9), also per alternation (ours_a / bare_a, run back to back).
#   lat    p50/p99 latency at half of each server's saturation rate (median of its `sat` runs):
#          open loop, fixed intervals, --open-seconds (the first --open-warmup seconds not counted).
#   short  added latency of one short request (9 tokens): `modernbert bench` of that one input
#          (--repeat --short-requests, median = the bare forward) vs sequential HTTP round trips
#          (median of --short-requests), twice, alternating (goal: ours - bare <= 2 ms); for ours
#          also the server's own mean batch time of the same requests (/metrics before and after).
#   wrk    cross-check of `sat` with wrk (Debian) and bench/serve_wrk.lua: each server, --connections
#          connections for --wrk-seconds (a time window: it cuts batches' bursts, so make it long).
# Our server runs with --request-timeout 0 (default --serve-flags): at saturation a request waits
# for up to two 16k-token batches, longer than the default 60 s on a slow or loaded machine.
# Every result is one JSON line in OUT/raw/ with the load average before/after; the machine (lscpu
# model name + flags, uptime) in OUT/raw/machine.json; bench/summarize_serve.py writes
# OUT/results.json and OUT/results.md. Only meaningful on an otherwise idle machine: read the loads.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/out/serve BUILD=$ROOT/build THREADS=2 SERVE_FLAGS="--request-timeout 0"
CONNECTIONS=64 ROUNDS=2 PEER_ROUNDS=1 ALTERNATIONS=2 PEER_ALTS=1 OPEN_S=90 OPEN_WARMUP=10 SHORT_N=200 WRK_S=120
SYSTEMS="ours ort" STEPS="sat lat short" BARE_REPEAT=2
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$(realpath -m "$2"); shift 2 ;;
    --build) BUILD=$(realpath -m "$2"); shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --peer-rounds) PEER_ROUNDS=$2; shift 2 ;;
    --alternations) ALTERNATIONS=$2; shift 2 ;;
    --peer-alternations) PEER_ALTS=$2; shift 2 ;;
    --open-seconds) OPEN_S=$2; shift 2 ;;
    --open-warmup) OPEN_WARMUP=$2; shift 2 ;;
    --short-requests) SHORT_N=$2; shift 2 ;;
    --wrk-seconds) WRK_S=$2; shift 2 ;;
    --bare-repeat) BARE_REPEAT=$2; shift 2 ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    --steps) STEPS=$2; shift 2 ;;
    --serve-flags) SERVE_FLAGS=$2; shift 2 ;;
    -h|--help) sed -n '2,34p' "$0"; exit 0 ;;
    *) echo "serve_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
MB=$BUILD/modernbert MODEL=$OUT/base ONNX=$OUT/base.onnx
. "$ROOT/bench/serve_common.sh"
case " $SYSTEMS " in *" ort "*) NEED_PEER=1 ;; *) NEED_PEER=0 ;; esac
prepare
RAW=$OUT/raw
rm -f "$RAW"/*.json "$RAW"/*_requests.jsonl "$RAW"/m_*.txt
machine_json > "$RAW/machine.json"
log "machine: $(cat "$RAW/machine.json" | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print(d["cpu_model"], "|", d["uptime"])')"

declare -A URL PID
cleanup() { for s in "${!PID[@]}"; do stop_server "${PID[$s]}"; done; }
trap cleanup EXIT
for s in $SYSTEMS; do
  start_server "$s" "$OUT/server_$s.log"
  URL[$s]=$SERVER_URL PID[$s]=$SERVER_PID
  log "$s server ${PID[$s]} at ${URL[$s]}"
done

# record NAME JSON-LINE: adds the load average before ($L0) and after, the server's RSS, saves it.
record() {
  local name=$1 line=$2 rss=""
  [ -n "${3:-}" ] && rss=$(rss_kib "$3")
  "$PY" -c "import json,sys; d=json.loads(sys.argv[1]); d.update(step=sys.argv[2], load_before=sys.argv[3], load_after=sys.argv[4], server_rss_kib=int(sys.argv[5]) if sys.argv[5] else None); print(json.dumps(d))" \
    "$line" "$name" "$L0" "$(loadavg)" "$rss" > "$RAW/$name.json"
  log "$name: $(head -c 400 "$RAW/$name.json")"
}
bare() {  # NAME INPUT WARMUP REPEAT
  L0=$(loadavg)
  record "$1" "$("$MB" bench --model "$MODEL" --input "$2" --threads "$THREADS" --warmup "$3" --repeat "$4")"
}
load() {  # NAME SYSTEM serve_load flags...
  local name=$1 sys=$2; shift 2
  L0=$(loadavg)
  record "$name" "$(node "$ROOT/bench/serve_load.mjs" --url "${URL[$sys]}" --label "$name" --samples "$RAW/${name}_requests.jsonl" "$@")" "${PID[$sys]}"
}
TEXTS=$OUT/work/texts.jsonl SHORT=$OUT/work/short.jsonl

for step in $STEPS; do
  case "$step" in
    sat)
      for a in $(seq 1 "$ALTERNATIONS"); do
        bare "sat_bare_$a" "$TEXTS" 1 "$BARE_REPEAT"
        for s in $SYSTEMS; do
          r=$ROUNDS; [ "$s" = ours ] || r=$PEER_ROUNDS
          [ "$s" = ours ] || [ "$a" -le "$PEER_ALTS" ] || continue
          load "sat_${s}_$a" "$s" --texts "$TEXTS" --mode closed --connections "$CONNECTIONS" --rounds "$r"
        done
      done
      ;;
    lat)
      for s in $SYSTEMS; do
        rate=$("$PY" -c "import json,glob,statistics,sys; r=[json.load(open(f))['requests_per_s'] for f in glob.glob(sys.argv[1])]; print(round(statistics.median(r) / 2, 3))" "$RAW/sat_${s}_*.json")
        load "lat_$s" "$s" --texts "$TEXTS" --mode open --rate "$rate" --duration "$OPEN_S" --warmup "$OPEN_WARMUP"
      done
      ;;
    short)
      for a in 1 2; do
        bare "short_bare_$a" "$SHORT" 20 "$SHORT_N"
        for s in $SYSTEMS; do
          # Ours: /metrics before and after pair the round trips with the server's own batch times of
          # the same requests (bench/metrics_delta.py), robust to a machine whose speed drifts.
          node "$ROOT/bench/serve_load.mjs" --url "${URL[$s]}" --texts "$SHORT" --mode seq --requests 20 \
            --warmup-requests 0 > /dev/null  # warm-up, outside the /metrics window
          [ "$s" = ours ] && curl -s "${URL[$s]}/metrics" > "$RAW/m_before.txt"
          load "short_${s}_$a" "$s" --texts "$SHORT" --mode seq --requests "$SHORT_N" --warmup-requests 0
          if [ "$s" = ours ]; then
            curl -s "${URL[$s]}/metrics" > "$RAW/m_after.txt"
            "$PY" "$ROOT/bench/metrics_delta.py" "$RAW/m_before.txt" "$RAW/m_after.txt" > "$RAW/short_${s}_${a}_server.json"
            log "server side: $(cat "$RAW/short_${s}_${a}_server.json")"
          fi
        done
      done
      ;;
    wrk)
      for s in $SYSTEMS; do
        L0=$(loadavg)
        record "wrk_$s" "$(TEXTS=$TEXTS wrk -t1 -c"$CONNECTIONS" -d"${WRK_S}s" --timeout 600s -s "$ROOT/bench/serve_wrk.lua" \
                           "${URL[$s]}" | grep '^{"generator"')" "${PID[$s]}"
      done
      ;;
    *) log "unknown step $step"; exit 2 ;;
  esac
done
# Ours only: the peer has no /metrics (and may still be computing requests wrk dropped).
[ -n "${URL[ours]:-}" ] && curl -s "${URL[ours]}/metrics" > "$OUT/metrics_ours.txt"
"$PY" "$ROOT/bench/summarize_serve.py" "$OUT"
