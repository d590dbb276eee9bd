#!/usr/bin/env bash
# serve.disconnect: clients that disconnect mid-request (curl --max-time, fetch + AbortController,
# raw sockets with half a request) leave the server healthy and correct, and the work of a client
# that went away is dropped (disconnect.mjs has the node part).
# shellcheck source=tests/serve/lib.sh
source "$(dirname "$0")/lib.sh"

make_model "$WORK/m" mlm,cls:3
jsonl_texts "hello world" | ref e1 "$WORK/m" embed --normalize
start_server "$WORK/m"

metric() { curl -s --max-time 5 "$BASE/metrics" | sed -nE "s/^$1 ([0-9.e+]+)$/\1/p" | head -1; }

# curl gives up after 0.3 s on seconds of work (32 sequences of ~8000 tokens).
node -e 'console.log(JSON.stringify({inputs: Array.from({length: 32}, (_, i) => `curl ${i} ` + "a ".repeat(8000))}))' \
  >"$WORK/long.json"
seqs_before=$(metric te_batch_next_size_sum)
rc=0
curl -sS -o /dev/null --max-time 0.3 -H 'Content-Type: application/json' --data-binary "@$WORK/long.json" \
  "$BASE/embed" 2>/dev/null || rc=$?
check "curl --max-time 0.3 gave up (curl exit 28: $rc)" test "$rc" -eq 28
for _ in $(seq 1 300); do  # at most 30 s for the queue to drain
  [[ $(metric te_queue_size) == 0 ]] && break
  sleep 0.1
done
check "queue empty after the curl disconnect" test "$(metric te_queue_size)" == 0
seqs_after=$(metric te_batch_next_size_sum)
ran=$((${seqs_after:-0} - ${seqs_before:-0}))
check "the gone client's queued sequences were dropped ($ran of 32 ran)" test "$ran" -lt 32
check "counted as te_request_failure{err=\"disconnected\"}" test "$(metric 'te_request_failure\{err="disconnected"\}')" == 1
req POST /embed '{"inputs": "hello world"}'
expect "after the curl disconnect: /embed bitwise = embed --normalize" 200 'same(b, ref("e1").map(r => r.embedding))'

BASE=$BASE timeout 100 node "$HERE/disconnect.mjs" || FAILURES=$((FAILURES + 1))
check "the server survived (pid $SERVER_PID alive)" kill -0 "$SERVER_PID"
finish
