#!/usr/bin/env bash
# serve.slow_clients: slow and stalled clients (slow_clients.mjs) must not tie up the server: normal
# requests are answered while clients dribble their headers, a stalled client is closed after
# --read-timeout, a slowloris as large as the connection pool does not lock out a normal request,
# and SIGTERM ends the server (exit 0, within 10 s) even while a client is still dribbling.
# shellcheck source=tests/serve/lib.sh
source "$(dirname "$0")/lib.sh"

make_model "$WORK/m" mlm,cls:3
jsonl_texts "hello world" | ref e1 "$WORK/m" embed --normalize
READ_TIMEOUT=2
export READ_TIMEOUT

start_server "$WORK/m" --read-timeout "$READ_TIMEOUT"
BASE=$BASE PART=basic timeout 60 node "$HERE/slow_clients.mjs" || FAILURES=$((FAILURES + 1))
BASE_A=$BASE
PID_A=$SERVER_PID

start_server "$WORK/m" --read-timeout "$READ_TIMEOUT" --http-threads 4
BASE=$BASE PART=slowloris HTTP_THREADS=4 timeout 60 node "$HERE/slow_clients.mjs" || FAILURES=$((FAILURES + 1))

# SIGTERM while one client sends a header byte every 300 ms (for 40 s).
node -e '
  const u = new URL(process.argv[1]), s = require("net").connect(Number(u.port), u.hostname);
  const text = "POST /embed HTTP/1.1\r\nHost: x\r\nX-Slow: " + "z".repeat(1000);
  let i = 0;
  const t = setInterval(() => s.write(text[i++ % text.length]), 300);
  s.on("error", () => {});
  s.on("close", () => { clearInterval(t); process.exit(0); });
  setTimeout(() => process.exit(0), 40000);' "$BASE_A" &
dribbler=$!
sleep 1
kill -TERM "$PID_A"
t0=$(date +%s%N)
for _ in $(seq 1 100); do  # at most 10 s
  kill -0 "$PID_A" 2>/dev/null || break
  sleep 0.1
done
ms=$((($(date +%s%N) - t0) / 1000000))
if kill -0 "$PID_A" 2>/dev/null; then
  check "SIGTERM with a dribbling client connected: exits within 10 s (still running after $ms ms)" false
else
  rc=0
  wait "$PID_A" || rc=$?
  check "SIGTERM with a dribbling client connected: exit 0 within 10 s (exit $rc after $ms ms)" test $rc -eq 0
fi
kill "$dribbler" 2>/dev/null || true
wait "$dribbler" 2>/dev/null || true
finish
