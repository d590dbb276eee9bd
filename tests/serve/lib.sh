# Shared helpers of the real-client tests of `modernbert serve` (sourced, not run).
#   usage of every test script: tests/serve/<name>.sh /path/to/modernbert
# Everything runs on 127.0.0.1: each server gets a free ephemeral port, a bounded wait for /health and
# is killed by the EXIT trap whatever happens; every loop here has a fixed bound.
set -euo pipefail

CLI=${1:?usage: $0 /path/to/modernbert}
CLI=$(cd "$(dirname "$CLI")" && pwd)/$(basename "$CLI")
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mb-serve-test.XXXXXX")
export WORK CLI HERE
SERVER_PIDS=()
FAILURES=0
CHECKS=0

cleanup() {
  local p
  for p in "${SERVER_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "FAIL: $*" >&2
  exit 1
}

# make_model DIR HEADS: the tiny test model with HEADS (e.g. mlm,cls:3) and the repository's tokenizer.
make_model() {
  "$CLI" init --preset tiny --seed 21 --heads "$2" --out "$1" >/dev/null 2>&1 || die "init --heads $2 failed"
  cp "$ROOT/tests/data/modernbert-tokenizer/tokenizer.json" "$1/"
}

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# start_server MODEL_DIR [serve flags...]: starts `modernbert serve` on a free port and waits (at most
# 60 s) for GET /health to answer 200. Sets PORT, SERVER_PID, SERVER_LOG, BASE, and HEALTH_SEEN (the
# /health statuses before the 200: 000 = not listening yet; the last 503 body is $WORK/health.503). A start that loses the
# port to another process (the port was free a moment ago) is retried with a new port, 3 tries.
start_server() {
  local model=$1 code
  shift
  HEALTH_SEEN=()
  rm -f "$WORK/health.503"
  for _ in 1 2 3; do
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    SERVER_LOG="$WORK/server.$PORT.log"
    "$CLI" serve --model "$model" --host 127.0.0.1 --port "$PORT" "$@" >"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")
    for _ in $(seq 1 600); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
      code=$(curl -s -o "$WORK/health.body" -w '%{http_code}' --max-time 2 "$BASE/health" "${AUTH_ARGS[@]}") || code=000
      HEALTH_SEEN+=("$code")
      [[ $code == 503 ]] && cp "$WORK/health.body" "$WORK/health.503"
      [[ $code == 200 ]] && return 0
      sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -20 "$SERVER_LOG" >&2
      die "server on port $PORT not healthy after 60 s"
    fi
    grep -qi "address\|bind\|in use" "$SERVER_LOG" || break
  done
  echo "---- server log:" >&2
  tail -20 "$SERVER_LOG" >&2
  die "modernbert serve $* exited before /health answered 200"
}
AUTH_ARGS=()

# wait_exit PID: at most 30 s for the server to exit; returns its exit status (124: still running,
# then killed).
wait_exit() {
  local pid=$1 rc=0
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "server $pid still running 30 s after SIGTERM: killed" >&2
    return 124
  fi
  wait "$pid" || rc=$?
  return $rc
}
# stop_server PID: SIGTERM and wait_exit.
stop_server() {
  kill -TERM "$1" 2>/dev/null || true
  wait_exit "$1"
}

# req METHOD PATH [BODY|@FILE] [curl args...]: one request to the current server. Sets STATUS and
# writes the body to $WORK/body (and BODY_FILE). The curl exit code is in CURL_RC (0 = answered).
BODY_FILE="$WORK/body"
CURL_RC=0
req() {
  local method=$1 path=$2 data=${3:-}
  shift $(($# >= 3 ? 3 : $#))
  local args=(-sS -o "$BODY_FILE" -w '%{http_code}' --max-time 60 -X "$method" "${AUTH_ARGS[@]}")
  if [[ -n $data ]]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$data")
  fi
  CURL_RC=0
  STATUS=$(curl "${args[@]}" "$@" "$BASE$path" 2>"$WORK/curl.err") || CURL_RC=$?
  ((CURL_RC == 0)) || STATUS=000
}

# expect NAME STATUS JS: the last response had STATUS and the JavaScript expression JS holds for it
# (check.mjs: `b` is the parsed body, `text` the raw body, plus the helpers of helpers.mjs). The
# checks are recorded under $WORK/checks and evaluated by one node process in `finish` (a node start
# per check would cost seconds); the script goes on after a failure so that one run names every
# broken check.
mkdir -p "$WORK/checks"
record() {  # record NAME WANT STATUS JS [BODY_FILE]
  CHECKS=$((CHECKS + 1))
  local d
  d="$WORK/checks/$(printf '%04d' "$CHECKS")"
  mkdir "$d"
  printf '%s' "$1" >"$d/name"
  printf '%s' "$2" >"$d/want"
  printf '%s' "$3" >"$d/status"
  printf '%s' "$4" >"$d/js"
  if [[ -n ${5:-} ]]; then cp "$5" "$d/body" 2>/dev/null || : >"$d/body"; else : >"$d/body"; fi
  if ((CURL_RC)); then cat "$WORK/curl.err" >"$d/curl_err" 2>/dev/null || true; fi
}
expect() {
  record "$1" "$2" "$STATUS" "${3:-true}" "$BODY_FILE"
}

# check NAME COMMAND...: a non-HTTP check (recorded like expect).
check() {
  local name=$1 st=1
  shift
  "$@" && st=0
  CURL_RC=0
  record "$name" 0 "$st" true
}

# Evaluates the recorded checks (check.mjs) and exits 1 when any failed (or FAILURES was raised by a
# node part of the test).
finish() {
  local rc=0
  node "$HERE/check.mjs" "$WORK/checks" || rc=1
  if ((rc || FAILURES)); then
    echo "---- server log (tail):"
    tail -30 "${SERVER_LOG:-/dev/null}" 2>/dev/null || true
    exit 1
  fi
}

# ref NAME MODEL CMD [flags...] < JSONL: the CLI's answer for the inputs on stdin, stored as
# $WORK/ref/NAME.jsonl (check.mjs reads it with h.ref("NAME")). --max-batch-tokens 1 puts every input
# in a batch of its own: the reference is each input run alone.
ref() {
  local name=$1 model=$2 cmd=$3
  shift 3
  mkdir -p "$WORK/ref"
  case $cmd in embed | classify | fill-mask | encode) set -- --max-batch-tokens 1 "$@" ;; esac
  "$CLI" "$cmd" --model "$model" "$@" >"$WORK/ref/$name.jsonl" 2>"$WORK/ref/$name.err" ||
    die "reference '$CLI $cmd $*' failed: $(cat "$WORK/ref/$name.err")"
}

# jsonl_texts TEXT...: one {"text": ...} line per argument (for ref's stdin).
# json_str TEXT: TEXT as a JSON string (pure bash: the tests' texts have no control characters).
json_str() {
  local t=${1//\\/\\\\}
  t=${t//\"/\\\"}
  printf '"%s"' "$t"
}
jsonl_texts() {
  local t
  for t in "$@"; do printf '{"text": %s}\n' "$(json_str "$t")"; done
}
# jsonl_pair TEXT PAIR: one {"text", "text_pair"} line.
jsonl_pair() {
  printf '{"text": %s, "text_pair": %s}\n' "$(json_str "$1")" "$(json_str "$2")"
}
