#!/usr/bin/env bash
# serve.concurrency: 64 concurrent clients with mixed lengths and routes each get exactly their own
# result (concurrency.mjs), compared with `modernbert embed --normalize` / `classify` of each input alone.
# shellcheck source=tests/serve/lib.sh
source "$(dirname "$0")/lib.sh"

make_model "$WORK/m" mlm,cls:3
# 64 distinct texts of 3 to ~1500 tokens.
node -e '
  const words = ["alpha", "batching", "unpadded", "tokens", "encoder", "queue", "Zürich", "42"];
  const lens = [1, 2, 5, 12, 30, 70, 160, 350, 700];
  const t = Array.from({length: 64}, (_, i) =>
    `client ${i}: ` + Array.from({length: lens[(i * 5) % lens.length] + i}, (_, j) => words[(i + j) % words.length]).join(" "));
  console.log(JSON.stringify(t));' >"$WORK/texts.json"
node -e 'for (const t of JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))) console.log(JSON.stringify({text: t}))' \
  "$WORK/texts.json" >"$WORK/texts.jsonl"
ref e "$WORK/m" embed --normalize <"$WORK/texts.jsonl"
ref c "$WORK/m" classify <"$WORK/texts.jsonl"

# A budget of 8192 tokens (the model's length limit, the least allowed): the ~40000 tokens of a round
# need several batches.
start_server "$WORK/m" --max-batch-tokens 8192
BASE=$BASE BUDGET=8192 TEXTS="$WORK/texts.json" timeout 120 node "$HERE/concurrency.mjs" ||
  { echo "---- server log (tail):"; tail -20 "$SERVER_LOG"; exit 1; }
