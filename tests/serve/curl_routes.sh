#!/usr/bin/env bash
# serve.curl_routes: curl against every route of `modernbert serve`, checking the status, the
# response shape (TEI's and OpenAI's) and the values against the CLI (embed, encode, classify,
# fill-mask, tokenize, detokenize) run on the same inputs alone. Float rules: helpers.mjs.
# shellcheck source=tests/serve/lib.sh
source "$(dirname "$0")/lib.sh"

make_model "$WORK/m" mlm,cls:3  # embeddings, 3-label classifier, MLM
make_model "$WORK/r" cls:1      # a cross-encoder (1-label classifier): /rerank
# A sentence-transformers model (the layout of tests/test_serve_engine.cpp): mean pooling, a Dense
# module 64 -> 8 (also the ColBERT projection of /embed_all), Normalize, two prompts.
make_model "$WORK/st" mlm
mkdir -p "$WORK/st/1_Pooling" "$WORK/st/2_Dense"
cat >"$WORK/st/modules.json" <<'JSON'
[{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
 {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
 {"idx": 2, "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
 {"idx": 3, "path": "3_Normalize", "type": "sentence_transformers.models.Normalize"}]
JSON
echo '{"pooling_mode_mean_tokens": true}' >"$WORK/st/1_Pooling/config.json"
echo '{"in_features": 64, "out_features": 8, "bias": true, "activation_function": "torch.nn.modules.linear.Identity"}' \
  >"$WORK/st/2_Dense/config.json"
echo '{"prompts": {"query": "search_query: ", "doc": "search_document: "}, "default_prompt_name": null}' \
  >"$WORK/st/config_sentence_transformers.json"
node -e '  // 2_Dense/model.safetensors: linear.weight F32 [8, 64] = sin(0.1 i), linear.bias F32 [8] = 0.01 i
  const w = Float32Array.from({length: 512}, (_, i) => Math.sin(0.1 * i)), b = Float32Array.from({length: 8}, (_, i) => 0.01 * i);
  let h = JSON.stringify({"linear.weight": {dtype: "F32", shape: [8, 64], data_offsets: [0, 2048]},
                          "linear.bias": {dtype: "F32", shape: [8], data_offsets: [2048, 2080]}});
  h += " ".repeat((8 - (h.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  require("fs").writeFileSync(process.argv[1], Buffer.concat([len, Buffer.from(h), Buffer.from(w.buffer), Buffer.from(b.buffer)]));
' "$WORK/st/2_Dense/model.safetensors"

# ---- references (each input alone: lib.sh's ref runs the CLI with --max-batch-tokens 1)
Q="What is ModernBERT?"
D0="ModernBERT is a fast encoder for retrieval and classification."
D1="Paris is the capital of France."
D2="bananas"
LONG=$(printf 'hello %.0s' $(seq 1 9000))  # 9002 tokens: over the tiny model's 8192 positions
# Its left truncation, [CLS] + the last 8190 tokens + [SEP], is exactly the text " hello" x 8189 + " "
# (LONG's tokens: "hello", " hello" x 8999, " ").
LEFT="$(printf ' hello%.0s' $(seq 1 8189)) "
jsonl_texts "hello world" "The quick brown fox jumps over the lazy dog." | ref e2 "$WORK/m" embed --normalize
jsonl_texts "hello world" | ref e1raw "$WORK/m" embed
jsonl_texts "hello world" | ref e1dim "$WORK/m" embed --normalize --dim 16
jsonl_texts "hello world" "I like you." | "$CLI" encode --model "$WORK/m" --max-batch-tokens 1 \
  --outputs last_hidden_state,logits --output "$WORK/ref/encode.safetensors" >/dev/null 2>&1 || die "encode failed"
{
  jsonl_texts "I like you."
  jsonl_pair "I like you." "I hate pineapples"
} | ref c "$WORK/m" classify
for d in "$D0" "$D1" "$D2"; do
  jsonl_pair "$Q" "$d"
done | ref rr "$WORK/r" classify
jsonl_texts "hello world" "$LONG" "$LEFT" | ref rpool "$WORK/r" embed --normalize --truncate --pooling cls
jsonl_texts "hello world" | ref stq "$WORK/st" embed --prompt query
jsonl_texts "hello world" | ref std "$WORK/st" embed --prompt doc
jsonl_texts "hello world" | ref stcb "$WORK/st" embed --prompt query --colbert
jsonl_texts "search_query: hello world" | ref sttok "$WORK/st" tokenize
jsonl_texts "The capital of France is [MASK]." | ref fm "$WORK/m" fill-mask --top-k 3
jsonl_texts "hello world" "Tokenize me, please." | ref tok "$WORK/m" tokenize
head -1 "$WORK/ref/tok.jsonl" | "$CLI" detokenize --model "$WORK/m" >"$WORK/ref/dec.jsonl"
head -1 "$WORK/ref/tok.jsonl" | "$CLI" detokenize --model "$WORK/m" --skip-special >"$WORK/ref/dec_skip.jsonl"
IDS=$(head -1 "$WORK/ref/tok.jsonl" | sed -E 's/.*"input_ids": (\[[^]]*\]).*/\1/')
export WORK D0 D1 D2 IDS

# The cross-encoder's server also tries two flags: --pooling and --auto-truncate.
start_server "$WORK/r" --pooling cls --auto-truncate
BASE_R=$BASE
start_server "$WORK/m" --served-model-name tiny


# ---- GET routes
req GET /health
expect "GET /health" 200
req GET /info
expect "GET /info: TEI fields" 200 'b.max_input_length === 8192 && typeof b.model_id === "string" &&
  typeof b.max_batch_tokens === "number" && typeof b.version === "string"'
expect "GET /info: the routes this model serves" 200 '["/embed", "/embed_all", "/predict", "/rerank", "/fill-mask",
  "/tokenize", "/decode", "/v1/embeddings", "/v1/rerank", "/v1/models"].every(r => b.routes.includes(r))'
req GET /v1/models
expect "GET /v1/models" 200 'b.object === "list" && Array.isArray(b.data) && b.data.length === 1 &&
  b.data[0].id === "tiny" && b.data[0].object === "model"'

# ---- /embed
req POST /embed '{"inputs": "hello world"}'
expect "/embed one text: bitwise = embed --normalize" 200 'same(b, ref("e2").slice(0, 1).map(r => r.embedding))'
req POST /embed '{"inputs": ["hello world", "The quick brown fox jumps over the lazy dog."]}'
expect "/embed two texts, in order" 200 'close(b, ref("e2").map(r => r.embedding))'
req POST /embed '{"inputs": "hello world", "normalize": false}'
expect "/embed normalize false = embed" 200 'same(b, ref("e1raw").map(r => r.embedding))'
req POST /embed '{"inputs": "hello world", "dimensions": 16}'
expect "/embed dimensions 16 = embed --dim 16" 200 'same(b, ref("e1dim").map(r => r.embedding))'
req POST /embed "{\"inputs\": [$IDS]}"
expect "/embed token ids = the text" 200 'same(b, ref("e2").slice(0, 1).map(r => r.embedding))'
printf '{"inputs": "%s"}' "$LONG" >"$WORK/long.json"

# Plain `curl -d` (no Content-Type: curl says application/x-www-form-urlencoded), also over 8 kB.
STATUS=$(curl -sS -o "$BODY_FILE" -w '%{http_code}' --max-time 60 -d '{"inputs": "hello world"}' "$BASE/embed") || STATUS=000
expect "plain curl -d (form content type) is read as JSON" 200 'same(b, ref("e2").slice(0, 1).map(r => r.embedding))'
printf '{"inputs": "hello world", "pad": "%s"}' "$(head -c 20000 /dev/zero | tr '\0' p)" >"$WORK/form.json"
STATUS=$(curl -sS -o "$BODY_FILE" -w '%{http_code}' --max-time 60 -d "@$WORK/form.json" "$BASE/embed") || STATUS=000
expect "plain curl -d of a 20 kB body" 200 'same(b, ref("e2").slice(0, 1).map(r => r.embedding))'

# ---- /embed_all: final hidden states per token (no ColBERT projection in this model)
req POST /embed_all '{"inputs": "hello world"}'
expect "/embed_all = encode last_hidden_state" 200 '(() => {
  const t = safetensorsF32(process.env.WORK + "/ref/encode.safetensors", "last_hidden_state");
  const T = JSON.parse(process.env.IDS).length, H = t.shape[1];
  const want = [Array.from({length: T}, (_, i) => t.values.slice(i * H, (i + 1) * H))];
  return same(b, want);
})()'

# ---- /v1/embeddings (curl; the openai client has its own test)
req POST /v1/embeddings '{"input": "hello world", "model": "tiny", "encoding_format": "float"}'
expect "/v1/embeddings float" 200 'b.object === "list" && b.model === "tiny" && b.data.length === 1 &&
  b.data[0].object === "embedding" && b.data[0].index === 0 && same([b.data[0].embedding], ref("e2").slice(0, 1).map(r => r.embedding)) &&
  b.usage.prompt_tokens === JSON.parse(process.env.IDS).length &&
  b.usage.total_tokens === b.usage.prompt_tokens'
req POST /v1/embeddings '{"input": ["hello world", "The quick brown fox jumps over the lazy dog."], "encoding_format": "base64"}'
expect "/v1/embeddings base64, two texts" 200 'b.data.length === 2 && b.data[1].index === 1 &&
  close(b.data.map(d => b64f32(d.embedding)), ref("e2").map(r => r.embedding))'

# ---- /predict: softmax scores by label (raw_scores: the logits)
req POST /predict '{"inputs": "I like you."}'
expect "/predict one text = classify" 200 "Array.isArray(b) && b.length === 3 &&
  b.every((p, i) => i === 0 || b[i - 1].score >= p.score) &&
  same(b.map(p => p.score), b.map(p => ref('c')[0].scores[p.label]))"
req POST /predict '{"inputs": ["I like you.", "I hate pineapples"]}'
expect "/predict a pair = classify text_pair" 200 "b.length === 3 && same(b.map(p => p.score), b.map(p => ref('c')[1].scores[p.label]))"
req POST /predict '{"inputs": [["I like you."], ["I like you.", "I hate pineapples"]]}'
expect "/predict a batch (single + pair), in order" 200 "b.length === 2 && b.every(x => x.length === 3) &&
  close(b[0].map(p => p.score), b[0].map(p => ref('c')[0].scores[p.label])) &&
  close(b[1].map(p => p.score), b[1].map(p => ref('c')[1].scores[p.label]))"
req POST /predict '{"inputs": "I like you.", "raw_scores": true}'
expect "/predict raw_scores = encode logits" 200 "(() => {
  const lg = safetensorsF32(process.env.WORK + '/ref/encode.safetensors', 'logits').values.slice(3);
  return same(b.map(p => p.score), b.map(p => lg[Number(p.label.replace('LABEL_', ''))]));
})()"

# ---- /fill-mask
req POST /fill-mask '{"inputs": "The capital of France is [MASK].", "top_k": 3}'
expect "/fill-mask = fill-mask --top-k 3 (one list per [MASK])" 200 "(() => {
  const want = ref('fm')[0].masks;
  assert(Array.isArray(b) && b.length === want.length, 'one list per [MASK]');
  b.forEach((preds, i) => {
    const w = want[i].predictions;
    assert(preds.length === 3, 'top_k 3');
    for (const f of ['token', 'token_str', 'sequence'])
      assert(JSON.stringify(preds.map(p => p[f])) === JSON.stringify(w.map(p => p[f])), f);
    same(preds.map(p => p.score), w.map(p => p.score));
  });
  return true;
})()"
req POST /fill-mask '{"inputs": ["The capital of France is [MASK].", "[MASK] [MASK]"], "top_k": 1}'
expect "/fill-mask a list: per input, per [MASK]" 200 "b.length === 2 && b[0].length === 1 && b[1].length === 2 &&
  b[0][0][0].token === ref('fm')[0].masks[0].predictions[0].token"

# ---- /tokenize, /decode
req POST /tokenize '{"inputs": ["hello world", "Tokenize me, please."]}'
expect "/tokenize = tokenize (ids, offsets, special)" 200 "b.length === 2 && b.every((toks, k) => {
  const w = ref('tok')[k];
  assert(toks.length === w.input_ids.length, 'length');
  toks.forEach((t, i) => {
    assert(t.id === w.input_ids[i], 'id ' + i);
    const special = i === 0 || i === toks.length - 1;
    assert(t.special === special && typeof t.text === 'string', 'special ' + i);
    if (special) assert(t.start === null && t.stop === null, 'a special token has no offsets (TEI)');
    else assert(t.start === w.offsets[i][0] && t.stop === w.offsets[i][1], 'byte offsets ' + i);
  });
  return true;
})"
req POST /decode "{\"ids\": $IDS, \"skip_special_tokens\": false}"
expect "/decode = detokenize" 200 "JSON.stringify(b) === JSON.stringify(ref('dec').map(r => r.text))"
req POST /decode "{\"ids\": [$IDS, $IDS]}"
expect "/decode a batch, skip_special_tokens by default" 200 "b.length === 2 && b[0] === ref('dec_skip')[0].text && b[1] === b[0]"

# ---- /metrics after the requests above
req GET /metrics
expect "GET /metrics: TEI's families, counting the requests" 200 'text.includes("# TYPE te_request_count counter") &&
  /te_request_count\{method="embed"\} [1-9]/.test(text) && /te_request_success/.test(text) &&
  /te_request_inference_duration_bucket/.test(text) && /te_batch_next_size_bucket/.test(text) &&
  /te_queue_size 0/.test(text)'
expect "GET /metrics: Prometheus histograms (cumulative buckets, +Inf = _count)" 200 '(() => {
  const buckets = {}, counts = {};
  for (const line of text.split("\n")) {
    let m = line.match(/^(\w+)_bucket\{(?:(.*),)?le="([^"]+)"\} (\S+)$/);
    if (m) (buckets[m[1] + "{" + (m[2] || "") + "}"] ||= []).push([m[3], Number(m[4])]);
    m = line.match(/^(\w+)_count(?:\{(.*)\})? (\S+)$/);
    if (m) counts[m[1] + "{" + (m[2] || "") + "}"] = Number(m[3]);
  }
  assert(Object.keys(buckets).length >= 8, "histograms: " + Object.keys(buckets));
  for (const [k, bs] of Object.entries(buckets)) {
    bs.forEach(([, v], i) => assert(i === 0 || v >= bs[i - 1][1], k + ": buckets decrease"));
    assert(bs[bs.length - 1][0] === "+Inf", k + ": no +Inf bucket");
    assert(counts[k] === bs[bs.length - 1][1], k + ": +Inf bucket " + bs[bs.length - 1][1] + " != _count " + counts[k]);
  }
  return true;
})()'

# ---- the cross-encoder: /rerank, /v1/rerank
BASE=$BASE_R
req GET /info
expect "GET /info of a cross-encoder names /rerank, not /fill-mask" 200 'b.routes.includes("/rerank") &&
  b.routes.includes("/v1/rerank") && !b.routes.includes("/fill-mask")'
RR="{\"query\": $(json_str "$Q"), \"texts\": [$(json_str "$D0"), $(json_str "$D1"), $(json_str "$D2")]}"
req POST /rerank "$RR"
expect "/rerank: sigmoid of classify, sorted by score" 200 "b.length === 3 &&
  b.every((x, i) => i === 0 || b[i - 1].score >= x.score) &&
  JSON.stringify(b.map(x => x.index).sort()) === '[0,1,2]' &&
  close(b.map(x => x.score), b.map(x => sigmoid(ref('rr')[x.index].value)), 1e-6, 1e-5) && b.every(x => !('text' in x))"
req POST /rerank "${RR%\}}, \"raw_scores\": true, \"return_text\": true}"
expect "/rerank raw_scores, return_text" 200 "b.length === 3 &&
  close(b.map(x => x.score), b.map(x => ref('rr')[x.index].value)) &&
  b.every(x => x.text === [process.env.D0, process.env.D1, process.env.D2][x.index])"
req POST /embed '{"inputs": "hello world"}'
expect "--pooling cls: /embed = embed --pooling cls" 200 'same(b, ref("rpool").slice(0, 1).map(r => r.embedding))'
req POST /embed "@$WORK/long.json"
expect "--auto-truncate: a long input without \"truncate\" = embed --truncate" 200 'same(b, ref("rpool").slice(1, 2).map(r => r.embedding))'
printf '{"inputs": "%s", "truncate": true, "truncation_direction": "Left"}' "$LONG" >"$WORK/long_left.json"
req POST /embed "@$WORK/long_left.json"
expect "/embed truncation_direction Left keeps the end" 200 'same(b, ref("rpool").slice(2).map(r => r.embedding))'
printf '{"inputs": "%s", "truncate": false}' "$LONG" >"$WORK/long_nt.json"
req POST /embed "@$WORK/long_nt.json"
expect "--auto-truncate: \"truncate\": false still refuses it (422)" 422 'teiError(b, "validation")'
req GET /info
expect "/info shows auto_truncate" 200 'b.auto_truncate === true'
V1="{\"model\": \"tiny\", \"query\": $(json_str "$Q"), \"documents\": [$(json_str "$D0"), $(json_str "$D1"), $(json_str "$D2")], \"top_n\": 2}"
req POST /v1/rerank "$V1"
expect "/v1/rerank: results top_n 2, by relevance" 200 "Array.isArray(b.results) && b.results.length === 2 &&
  b.results[0].relevance_score >= b.results[1].relevance_score &&
  (() => { const all = ref('rr').map(r => r.value); const top = [...all].sort((x, y) => y - x);
    return close(b.results.map(x => x.relevance_score), b.results.map(x => sigmoid(all[x.index]))) &&
      close(b.results.map(x => sigmoid(all[x.index])), top.slice(0, 2).map(sigmoid)); })()"

# ---- the sentence-transformers model, with --default-prompt-name query
start_server "$WORK/st" --default-prompt-name query
req GET /info
expect "/info of a sentence-transformers model" 200 'b.embedding_dim === 8 && b.has_colbert_projection === true &&
  b.normalize_by_default === true && b.prompts.query === "search_query: " && b.default_prompt_name === "query"'
req POST /embed '{"inputs": "hello world"}'
expect "/embed: default prompt, Dense, Normalize = embed --prompt query" 200 'same(b, ref("stq").map(r => r.embedding))'
req POST /embed '{"inputs": "hello world", "prompt_name": "doc"}'
expect "/embed prompt_name doc = embed --prompt doc" 200 'same(b, ref("std").map(r => r.embedding))'
req POST /v1/embeddings '{"input": "hello world"}'
expect "/v1/embeddings with the default prompt" 200 'same([b.data[0].embedding], ref("stq").map(r => r.embedding))'
req POST /embed_all '{"inputs": "hello world"}'
expect "/embed_all: ColBERT vectors = embed --colbert --prompt query" 200 'same(b, ref("stcb").map(r => r.vectors))'
req POST /tokenize '{"inputs": "hello world"}'
expect "/tokenize with the default prompt" 200 'JSON.stringify(b[0].map(t => t.id)) === JSON.stringify(ref("sttok")[0].input_ids)'

finish
