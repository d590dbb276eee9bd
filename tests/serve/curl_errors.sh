#!/usr/bin/env bash
# serve.curl_errors: every error code of `modernbert serve` (the table in src/serve/api_error.h) with
# curl: status, and the body shape of the route's family (TEI {"error", "error_type"}; OpenAI
# {"error": {"message", "type", "code"}} under /v1). After the bad requests the server still answers
# a good one correctly (bad input never affects other requests).
# shellcheck source=tests/serve/lib.sh
source "$(dirname "$0")/lib.sh"

make_model "$WORK/m" mlm,cls:3
make_model "$WORK/bare" ""  # no head: /predict, /rerank and /fill-mask are unsupported
LONG=$(printf 'hello %.0s' $(seq 1 9000))  # 9002 tokens > 8192 positions
jsonl_texts "hello world" | ref e1 "$WORK/m" embed --normalize
# The queue-full test: one long request (32 copies of a ~2000-token text) holds the only queue slot
# (--max-concurrent-requests 1) while short ones arrive.
BIG=$(printf 'blocker%.0s ' $(seq 1 1000))
jsonl_texts "$BIG" | ref big "$WORK/bare" embed --normalize
for k in 1 2 3 4 5 6; do jsonl_texts "short request number $k"; done | ref small "$WORK/bare" embed --normalize
export WORK

KEY="key-$RANDOM$RANDOM"
AUTH_ARGS=(-H "Authorization: Bearer $KEY")
start_server "$WORK/m" --api-key "$KEY" --max-client-batch-size 4 --payload-limit 100000


# ---- 400: not JSON, empty input
req POST /embed '{"inputs": '
expect "400 malformed JSON (TEI)" 400 'teiError(b, "validation")'
req POST /v1/embeddings '{"input": "x",'
expect "400 malformed JSON (OpenAI)" 400 'openaiError(b, "invalid_request_error") && b.error.code === 400'
req POST /embed "$(printf '{"inputs": "bad \xff\xfe utf-8"}')"
expect "400 invalid UTF-8 in the JSON text" 400 'teiError(b)'
req POST /embed '{"inputs": []}'
expect "400 empty list" 400 'teiError(b, "empty")'
req POST /embed '{"inputs": ""}'
expect "400 empty text" 400 'teiError(b, "empty")'
req POST /v1/embeddings '{"input": []}'
expect "400 empty list (OpenAI)" 400 'openaiError(b, "invalid_request_error")'
req POST /v1/embeddings '{"input": [[]]}'
expect "400 empty id list (OpenAI)" 400 'openaiError(b)'

# ---- 422: wrong types, bad values, too long, ids out of range
req POST /embed '[1, 2]'
expect "422 body not an object" 422 'teiError(b, "validation")'
req POST /embed '{"text": "no inputs field"}'
expect "422 missing inputs" 422 'teiError(b, "validation") && /inputs/.test(b.error)'
req POST /embed '{"inputs": 5}'
expect "422 inputs a number" 422 'teiError(b, "validation")'
req POST /embed '{"inputs": [1.5, 2]}'
expect "422 fractional token id" 422 'teiError(b, "validation")'
req POST /embed '{"inputs": ["a", {"b": 1}]}'
expect "422 object in the input list" 422 'teiError(b, "validation")'
req POST /embed '{"inputs": "x", "normalize": "yes"}'
expect "422 normalize a string" 422 'teiError(b, "validation") && /normalize/.test(b.error)'
req POST /embed '{"inputs": "x", "truncation_direction": "up"}'
expect "422 truncation_direction up" 422 'teiError(b, "validation")'
req POST /embed '{"inputs": "x", "dimensions": 1000}'
expect "422 dimensions above the model's" 422 'teiError(b, "validation")'
req POST /embed '{"inputs": "x", "prompt_name": "nope"}'
expect "422 unknown prompt_name" 422 'teiError(b, "validation")'
req POST /v1/embeddings '{"input": "x", "encoding_format": "hex"}'
expect "422 encoding_format hex (OpenAI)" 422 'openaiError(b, "invalid_request_error") && b.error.code === 422'
req POST /predict '{"inputs": ["a", "b", "c"]}'
expect "422 /predict three strings (neither pair nor batch)" 422 'teiError(b, "validation")'
printf '{"inputs": "%s"}' "$LONG" >"$WORK/long.json"
req POST /embed "@$WORK/long.json"
expect "422 text longer than the model, truncate off (TEI)" 422 'teiError(b, "validation") && /8192/.test(b.error)'
printf '{"input": "%s"}' "$LONG" >"$WORK/long_oa.json"
req POST /v1/embeddings "@$WORK/long_oa.json"
expect "422 text longer than the model (OpenAI)" 422 'openaiError(b, "invalid_request_error")'
node -e 'console.log(JSON.stringify({input: Array(8193).fill(100)}))' >"$WORK/long_ids.json"
req POST /v1/embeddings "@$WORK/long_ids.json"
expect "422 8193 token ids (OpenAI)" 422 'openaiError(b, "invalid_request_error")'
req POST /embed '{"inputs": [[50281, 50368, 50282]]}'
expect "422 token id = vocab_size (TEI)" 422 'teiError(b, "validation") && /50368/.test(b.error)'
req POST /v1/embeddings '{"input": [[50281, 1073741824, 50282]]}'
expect "422 token id 2^30 (OpenAI)" 422 'openaiError(b, "invalid_request_error")'
req POST /v1/embeddings '{"input": [50281, -1, 50282]}'
expect "422 negative token id (OpenAI)" 422 'openaiError(b)'
req POST /decode '{"ids": [50281, 99999999]}'
expect "422 /decode id out of range" 422 'teiError(b, "validation")'

# ---- 413: too many inputs, oversize body
req POST /embed '{"inputs": ["a", "b", "c", "d", "e"]}'
expect "413 5 inputs > --max-client-batch-size 4" 413 'teiError(b, "validation") && /4/.test(b.error)'
req POST /v1/embeddings '{"input": ["a", "b", "c", "d", "e"]}'
expect "413 5 inputs (OpenAI)" 413 'openaiError(b, "invalid_request_error")'
node -e 'console.log(JSON.stringify({inputs: "x".repeat(150000)}))' >"$WORK/huge.json"
req POST /embed "@$WORK/huge.json"
expect "413 150 kB body > --payload-limit 100000" 413 'teiError(b, "validation")'
req POST /v1/embeddings "@$WORK/huge.json"
expect "413 oversize body (OpenAI)" 413 'openaiError(b)'
req POST /embed "@$WORK/huge.json" -H 'Transfer-Encoding: chunked'
expect "413 oversize chunked body" 413 'teiError(b, "validation")'

# ---- 401: API key
AUTH_ARGS=()
req POST /embed '{"inputs": "hello world"}'
expect "401 no Authorization" 401 'teiError(b, "unauthorized")'
AUTH_ARGS=(-H "Authorization: Bearer ${KEY}x")
req POST /embed '{"inputs": "hello world"}'
expect "401 wrong key" 401 'teiError(b, "unauthorized")'
AUTH_ARGS=(-H "Authorization: Bearer ${KEY:0:-1}")
req POST /v1/embeddings '{"input": "hello world"}'
expect "401 key prefix (OpenAI)" 401 'openaiError(b, "authentication_error") && b.error.code === 401'
AUTH_ARGS=(-H "Authorization: $KEY")
req POST /embed '{"inputs": "hello world"}'
expect "401 key without Bearer" 401 'teiError(b)'
AUTH_ARGS=(-H "Authorization: Bearer $KEY")

# ---- 404, 405
req GET /no/such/route
expect "404 unknown route (TEI)" 404 'teiError(b)'
req POST /v1/chat/completions '{"messages": []}'
expect "404 unknown route (OpenAI)" 404 'openaiError(b, "not_found_error")'
req GET /embed
expect "405 GET /embed" 405 'teiError(b)'
check "405 names the method in Allow" grep -qi '^Allow: POST' <(curl -sS -i --max-time 10 "${AUTH_ARGS[@]}" "$BASE/embed")

# ---- hostile bodies, headers and URLs
node -e 'const n = 45000; console.log("{\"inputs\": " + "[".repeat(n) + "]".repeat(n) + "}")' >"$WORK/deep.json"
req POST /embed "@$WORK/deep.json"
expect "422 inputs nested 45000 deep" 422 'teiError(b, "validation")'
node -e 'const n = 12000; console.log("{\"inputs\": \"x\", \"extra\": " + "{\"a\":".repeat(n) + "1" + "}".repeat(n) + "}")' \
  >"$WORK/deep2.json"
req POST /embed "@$WORK/deep2.json"
check "an unknown field nested 12000 deep: answered without a server error (HTTP $STATUS)" test "$STATUS" -ge 200 -a "$STATUS" -lt 500
req POST /embed '{"inputs": "x", "dimensions": 1e400}'
expect "422 a number too large for a double" 422 'teiError(b, "validation") && !b.error.includes("json.exception")'
req POST /embed '{"inputs": "a\u0000b \ud83d\ude00"}'
expect "200 a NUL and an emoji (escaped) in the text" 200 'b.length === 1 && b[0].length === 64'
req POST /embed '{"inputs": "\ud83d lone surrogate"}'
expect "400 a lone surrogate escape (not valid JSON text)" 400 'teiError(b)'
req POST /embed '{"inputs": "x"}' -H "X-Big: $(head -c 100000 /dev/zero | tr '\0' a)"
expect "400 a 100 kB header" 400 'teiError(b)'
req POST "/embed?$(head -c 100000 /dev/zero | tr '\0' a)" '{"inputs": "x"}'
expect "414 a 100 kB URL" 414 'teiError(b)'
req POST /embed '{"inputs": "hello world"}' -H 'Transfer-Encoding: chunked'
expect "a chunked body is read" 200 'same(b, ref("e1").map(r => r.embedding))'

# ---- the server is unharmed: a good request right after
req POST /embed '{"inputs": "hello world"}'
expect "after the errors: /embed still bitwise = embed --normalize" 200 'same(b, ref("e1").map(r => r.embedding))'
req GET /metrics
expect "metrics count failures by type" 200 '/te_request_failure\{err="validation"\} [1-9]/.test(text) &&
  /te_request_failure\{err="empty"\} [1-9]/.test(text)'

# ---- unsupported routes of a bare encoder; 429 with --max-concurrent-requests 1
# (the flags from the environment this time, as in a container: MODERNBERT_<FLAG>)
AUTH_ARGS=()
MODERNBERT_MAX_CONCURRENT_REQUESTS=1 start_server "$WORK/bare"
check "/health before the model was ready: only 'not listening' or 503 (seen: ${HEALTH_SEEN[*]})" \
  test -z "$(printf '%s\n' "${HEALTH_SEEN[@]}" | grep -vE '^(000|503|200)$')"
if [[ -f $WORK/health.503 ]]; then
  STATUS=503
  cp "$WORK/health.503" "$BODY_FILE"
  expect "503 from /health while loading" 503 'teiError(b, "unhealthy")'
fi
req GET /info
expect "MODERNBERT_MAX_CONCURRENT_REQUESTS=1 was read" 200 'b.max_concurrent_requests === 1'
req GET /info
expect "/info of a bare encoder: no /predict, /rerank, /fill-mask" 200 'b.routes.includes("/embed") &&
  !["/predict", "/rerank", "/v1/rerank", "/fill-mask"].some(r => b.routes.includes(r))'
req POST /predict '{"inputs": "x"}'
expect "400 /predict without a classifier" 400 'teiError(b, "unsupported") && /classif/.test(b.error)'
req POST /rerank '{"query": "q", "texts": ["a"]}'
expect "400 /rerank without a classifier" 400 'teiError(b, "unsupported")'
req POST /fill-mask '{"inputs": "a [MASK]"}'
expect "400 /fill-mask without an MLM head" 400 'teiError(b, "unsupported") && /masked-language-model/.test(b.error)'
req POST /v1/rerank '{"query": "q", "documents": ["a"]}'
expect "400 /v1/rerank without a classifier (OpenAI)" 400 'openaiError(b, "not_supported_error")'

node -e 'console.log(JSON.stringify({inputs: Array(32).fill(process.argv[1])}))' "$BIG" >"$WORK/big.json"
curl -sS -o "$WORK/q.big" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
  --data-binary "@$WORK/big.json" "$BASE/embed" >"$WORK/q.big.status" 2>/dev/null &
big_pid=$!
# Wait (at most 10 s) until the long request holds the queue slot.
for _ in $(seq 1 200); do
  curl -s --max-time 2 "$BASE/metrics" | grep -q '^te_queue_size 1' && break
  sleep 0.05
done
pids=()
for k in 1 2 3 4 5 6; do
  curl -sS -o "$WORK/q.$k" -w '%{http_code}' --max-time 60 -H 'Content-Type: application/json' \
    --data-binary "{\"inputs\": \"short request number $k\"}" "$BASE/embed" >"$WORK/q.$k.status" 2>/dev/null &
  pids+=($!)
done
wait "${pids[@]}" "$big_pid" || true
n429=0
for k in big 1 2 3 4 5 6; do
  STATUS=$(cat "$WORK/q.$k.status")
  CURL_RC=0
  cp "$WORK/q.$k" "$BODY_FILE"
  if [[ $STATUS == 429 ]]; then
    n429=$((n429 + 1))
    expect "429 body of request $k" 429 'teiError(b, "overloaded")'
  elif [[ $k == big ]]; then
    expect "the long request under load: 200 and its own vectors" 200 'b.length === 32 && b.every(v => close([v], ref("big").map(r => r.embedding)))'
  else
    expect "short request $k under load: 200 and its own vector" 200 "close(b, [ref('small')[$k - 1].embedding])"
  fi
done
check "at least one 429 while the only queue slot was taken ($n429 of 7)" test "$n429" -ge 1
req POST /embed '{"inputs": "short request number 1"}'
expect "after 429s: the queue is free again" 200 "same(b, [ref('small')[0].embedding])"

# ---- 504: --request-timeout 1 on a request of 32 sequences of 8000 tokens (tens of seconds of work
# here, seconds on any machine): answered at the timeout, its queued work dropped (the queue is empty
# long before that work could have run).
start_server "$WORK/bare" --request-timeout 1
node -e 'console.log(JSON.stringify({inputs: Array.from({length: 32}, (_, i) => `${i} ` + "slow ".repeat(8000))}))' \
  >"$WORK/slow.json"
t0=$(date +%s%N)
req POST /embed "@$WORK/slow.json"
ms=$((($(date +%s%N) - t0) / 1000000))
expect "504 past --request-timeout 1 (after $ms ms)" 504 'teiError(b, "timeout")'
for _ in $(seq 1 100); do  # at most 10 s
  curl -s --max-time 2 "$BASE/metrics" | grep -q '^te_queue_size 0' && break
  sleep 0.1
done
req GET /metrics
expect "the timed-out request's work was dropped (queue empty), counted as err=timeout" 200 \
  '/^te_queue_size 0$/m.test(text) && /te_request_failure\{err="timeout"\} 1/.test(text)'
req POST /embed '{"inputs": "short request number 2"}'
expect "after the 504: answers correctly" 200 "same(b, [ref('small')[1].embedding])"

finish
