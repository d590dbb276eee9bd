# Helpers shared by bench/serve_bench.sh and bench/serve_soak.sh (sourced, not run).
# Servers listen on 127.0.0.1 on a free port; every server started here is stopped by its PID.

PY=/usr/bin/python3
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
log() { echo "[$(basename "$0") $(date -u +%H:%M:%S)] $*" >&2; }

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# machine_json: lscpu model name + flags, cores, memory, load average and the commit, as one JSON line.
machine_json() {
  "$PY" - "$ROOT" <<'EOF'
import json, os, subprocess, sys
lscpu = dict(l.split(":", 1) for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if ":" in l)
get = lambda k: lscpu.get(k, "").strip()
commit = subprocess.run(["git", "-C", sys.argv[1], "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
mem = next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))
print(json.dumps({"cpu_model": get("Model name"), "cpus": int(get("CPU(s)") or 0), "numa_nodes": get("NUMA node(s)"),
                  "flags": get("Flags"), "mem_gib": round(int(mem) / 2**20, 1),
                  "loadavg": open("/proc/loadavg").read().split()[:3], "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
                  "commit": commit, "date_utc": subprocess.run(["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"], capture_output=True, text=True).stdout.strip()}))
EOF
}

# wait_health URL PID SECONDS: until GET URL/health answers 200 (fails if PID dies or time runs out).
wait_health() {
  local url=$1 pid=$2 t=0
  while [ "$t" -lt "$(( $3 * 5 ))" ]; do
    kill -0 "$pid" 2>/dev/null || { log "server $pid exited before it was healthy"; return 1; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/health")" = 200 ] && return 0
    sleep 0.2; t=$((t + 1))
  done
  log "server $pid not healthy after $3 s"; return 1
}

# start_server SYSTEM LOGFILE: starts `modernbert serve` (ours) or the ONNX Runtime peer (ort) on a
# free port with $THREADS threads; sets SERVER_PID and SERVER_URL.
start_server() {
  local sys=$1 logf=$2 port
  port=$(free_port)
  case "$sys" in
    ours) "$MB" serve --model "$MODEL" --host 127.0.0.1 --port "$port" --threads "$THREADS" $SERVE_FLAGS > "$logf" 2>&1 & ;;
    ort) (cd "$ROOT/bench/peers" && exec node ort_server.mjs --onnx "$ONNX" --tokenizer "$MODEL/tokenizer.json" \
            --port "$port" --threads "$THREADS") > "$logf" 2>&1 & ;;
    *) log "unknown system $sys"; return 1 ;;
  esac
  SERVER_PID=$!
  SERVER_URL=http://127.0.0.1:$port
  wait_health "$SERVER_URL" "$SERVER_PID" 300
}

stop_server() {  # PID: SIGTERM, then wait (SIGKILL after 30 s)
  local pid=$1 t=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null && [ $t -lt 150 ]; do sleep 0.2; t=$((t + 1)); done
  kill -0 "$pid" 2>/dev/null && { log "server $pid ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$pid"; }
  wait "$pid" 2>/dev/null
  log "server $pid exited with status $?"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# prepare: model (base shape, random weights, seed 0, + the real tokenizer), request texts, ONNX export,
# the peer's npm packages. Each only when missing.
prepare() {
  mkdir -p "$OUT/raw"
  if [ ! -x "$MB" ]; then
    cmake --build "$BUILD" -j2 --target modernbert >/dev/null
  fi
  if [ ! -f "$MODEL/model.safetensors" ]; then
    log "writing the base model to $MODEL"
    "$MB" init --preset base --seed 0 --out "$MODEL" >&2
  fi
  [ -f "$MODEL/tokenizer.json" ] || cp "$ROOT/tests/data/modernbert-tokenizer/tokenizer.json" "$MODEL/"
  if [ ! -f "$OUT/work/texts.jsonl" ]; then
    log "writing the request texts to $OUT/work"
    "$PY" "$ROOT/bench/make_serve_texts.py" --modernbert "$MB" --model "$MODEL" --out "$OUT/work" >&2
  fi
  if [ "${NEED_PEER:-1}" = 1 ]; then
    if [ ! -d "$ROOT/bench/peers/node_modules/tokenizers" ]; then
      (cd "$ROOT/bench/peers" && ONNXRUNTIME_NODE_INSTALL=skip ONNXRUNTIME_NODE_INSTALL_CUDA=skip npm ci --no-audit --no-fund >&2)
    fi
    if [ ! -f "$ONNX" ] || [ "$ONNX" -ot "$MODEL/model.safetensors" ]; then
      log "exporting $ONNX"
      "$PY" "$ROOT/bench/peers/export_onnx.py" --model "$MODEL" --out "$ONNX" 2> "$OUT/export_onnx.log" ||
        { cat "$OUT/export_onnx.log" >&2; return 1; }
    fi
  fi
}
