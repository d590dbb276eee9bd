#!/usr/bin/env bash
# serve.openai_client: the official openai npm client (tests/serve/package.json) against
# `modernbert serve --api-key`, compared with `modernbert embed --normalize` (see openai_client.mjs).
# shellcheck source=tests/serve/lib.sh
source "$(dirname "$0")/lib.sh"
[[ -f $HERE/node_modules/openai/package.json ]] || die "run 'npm ci' in tests/serve (scripts/run_tests.sh does)"

make_model "$WORK/m" mlm,cls:3
# Token ids of "hello world" and of two texts, as the model's tokenizer gives them (special tokens in).
# ids_of one|all TEXT...: the token ids of the first text, or of every text.
ids_of() {
  local mode=$1
  shift
  jsonl_texts "$@" | "$CLI" tokenize --model "$WORK/m" | node -e '
    const l = require("fs").readFileSync(0, "utf8").trim().split("\n").map((x) => JSON.parse(x).input_ids);
    console.log(JSON.stringify(process.argv[1] === "one" ? l[0] : l));' "$mode"
}
IDS_SHORT=$(ids_of one "hello world")
IDS_LIST=$(ids_of all "Token ids are sent as they are." "ColBERT")
ids_jsonl() { node -e 'for (const x of JSON.parse(process.argv[1])) console.log(JSON.stringify({input_ids: x}))' "$1"; }

jsonl_texts "hello world" | ref one "$WORK/m" embed --normalize
jsonl_texts "The quick brown fox jumps over the lazy dog." "a" \
  "ModernBERT serves embeddings over HTTP, batched with other requests into one unpadded forward pass." |
  ref many "$WORK/m" embed --normalize
ids_jsonl "[$IDS_SHORT]" | ref ids_short "$WORK/m" embed --normalize
ids_jsonl "$IDS_LIST" | ref ids_list "$WORK/m" embed --normalize
jsonl_texts "hello world" | ref dim16 "$WORK/m" embed --normalize --dim 16

export API_KEY="sk-test-$RANDOM$RANDOM" MODEL="tiny-test-model" IDS_SHORT IDS_LIST
AUTH_ARGS=(-H "Authorization: Bearer $API_KEY")
start_server "$WORK/m" --api-key "$API_KEY" --served-model-name "$MODEL"
export BASE
timeout 90 node "$HERE/openai_client.mjs" || { echo "---- server log (tail):"; tail -20 "$SERVER_LOG"; exit 1; }
