#!/usr/bin/env bash
# serve.shutdown: SIGTERM while requests are in flight. The server stops accepting (new connections
# are refused), answers every request it had read with 200 and the right vectors, and exits 0.
# Then SIGINT on a second server: exit 0.
# shellcheck source=tests/serve/lib.sh
source "$(dirname "$0")/lib.sh"

make_model "$WORK/m" mlm,cls:3
N=6
# N requests of 4 texts of ~2000 tokens each: seconds of queued work in all.
TEXTS=$WORK/texts.json
node -e 'console.log(JSON.stringify(Array.from({length: 4 * Number(process.argv[1])},
  (_, i) => `text ${i} ` + "drain ".repeat(2000))))' "$N" >"$TEXTS"
node -e 'for (const t of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(JSON.stringify({text: t}))' \
  "$TEXTS" | ref texts "$WORK/m" embed --normalize
start_server "$WORK/m"
metric() { curl -s --max-time 5 "$BASE/metrics" | sed -nE "s/^$1 ([0-9.e+]+)$/\1/p" | head -1; }

BASE=$BASE N=$N TEXTS=$TEXTS timeout 90 node "$HERE/shutdown.mjs" >"$WORK/results.jsonl" 2>"$WORK/node.err" &
node_pid=$!
# Wait (at most 20 s) until every request is in the engine's queue.
q=0
for _ in $(seq 1 400); do
  q=$(metric te_queue_size)
  [[ ${q:-0} -ge $N ]] && break
  sleep 0.05
done
check "all $N requests in flight before SIGTERM (te_queue_size $q)" test "${q:-0}" -ge "$N"
kill -TERM "$SERVER_PID"
t0=$(date +%s%N)
# New connections are refused while the server drains (within 3 s of the signal).
refused=no
for _ in $(seq 1 60); do
  rc=0
  curl -s -o /dev/null --max-time 1 "$BASE/health" || rc=$?
  if ((rc == 7)); then refused=yes; break; fi
  sleep 0.05
done
draining=no
kill -0 "$SERVER_PID" 2>/dev/null && draining=yes
check "a new connection is refused after SIGTERM" test $refused == yes
rc=0
wait_exit "$SERVER_PID" || rc=$?
check "the server exits 0 after SIGTERM (exit $rc, $((($(date +%s%N) - t0) / 1000000)) ms)" test $rc -eq 0
wait "$node_pid" || true
cat "$WORK/node.err"
n_ok=$(grep -c '"ok":true' "$WORK/results.jsonl") || n_ok=0
check "every in-flight request answered 200 with its own vectors ($n_ok of $N)" test "$n_ok" -eq "$N"
grep -v '"ok":true' "$WORK/results.jsonl" || true
echo "# refusal seen while still draining: $draining"
rc=0
curl -s -o /dev/null --max-time 2 "$BASE/health" || rc=$?
check "after exit: connection refused (curl exit $rc)" test $rc -eq 7

# SIGINT (Ctrl-C) is a graceful stop too.
start_server "$WORK/m"
req POST /embed '{"inputs": "hello world"}'
expect "a second server answers" 200 'b.length === 1'
kill -INT "$SERVER_PID"
rc=0
wait_exit "$SERVER_PID" || rc=$?
check "SIGINT: exit 0 (exit $rc)" test $rc -eq 0
finish
