// serve.concurrency: 64 clients at once (fetch, one connection each), mixed lengths and routes, each
// must get exactly its own result: the CLI's answer for its input alone, within the batch-neighbour
// tolerance of helpers.mjs (the scheduler packs them into shared batches). Round 1: fresh
// connections; round 2: the kept-alive ones, inputs dealt to other clients (both also check from
// /metrics that they were batched, within --max-batch-tokens); round 3: every 8th client sends a
// bad request and must get its own error while the others get their own results.
// Env: BASE, WORK, BUDGET, TEXTS (JSON list; reference e = embed --normalize, c = classify, in that order).
import fs from "node:fs";
import {ref, close, maxdiff} from "./helpers.mjs";

const {BASE} = process.env;
const BUDGET = Number(process.env.BUDGET);  // the server's --max-batch-tokens (a power of two: a bucket bound)
const texts = JSON.parse(fs.readFileSync(process.env.TEXTS, "utf8"));
const emb = ref("e").map((r) => r.embedding);
const cls = ref("c").map((r) => r.scores);
const N = texts.length;

async function post(path, body) {
  const res = await fetch(BASE + path, {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(90_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

// Client k sends input i by route k % 3: /embed, /v1/embeddings, /predict.
async function client(k, i) {
  switch (k % 3) {
    case 0: {
      const b = await post("/embed", {inputs: texts[i]});
      close(b, [emb[i]]);
      return maxdiff(b, [emb[i]]);
    }
    case 1: {
      const b = await post("/v1/embeddings", {input: texts[i], encoding_format: "float"});
      if (b.data.length !== 1 || b.data[0].index !== 0) throw new Error("data");
      close([b.data[0].embedding], [emb[i]]);
      return maxdiff([b.data[0].embedding], [emb[i]]);
    }
    default: {
      const b = await post("/predict", {inputs: texts[i]});
      const want = b.map((p) => cls[i][p.label]);
      close(b.map((p) => p.score), want);
      return maxdiff(b.map((p) => p.score), want);
    }
  }
}

async function batchCounts() {
  const m = await (await fetch(BASE + "/metrics", {signal: AbortSignal.timeout(10_000)})).text();
  const num = (re) => Number((m.match(re) || [, "NaN"])[1]);
  return {batches: num(/^te_batch_inference_success(?:\{[^}]*\})? (\S+)$/m),
          seqs: num(/^te_batch_next_size_sum(?:\{[^}]*\})? (\S+)$/m),
          tokenBatches: num(/^te_batch_next_tokens_count (\S+)$/m),
          withinBudget: num(new RegExp(`^te_batch_next_tokens_bucket\\{le="${BUDGET}"\\} (\\S+)$`, "m"))};
}
const before = await batchCounts();
let failures = 0, worst = 0;
for (const [round, deal] of [[1, (k) => k], [2, (k) => (k * 37 + 11) % N]]) {
  const t0 = performance.now();
  const out = await Promise.allSettled(Array.from({length: N}, (_, k) => client(k, deal(k))));
  const bad = out.map((r, k) => [r, k]).filter(([r]) => r.status === "rejected");
  for (const [r, k] of bad) console.log(`not ok - round ${round} client ${k} (input ${deal(k)}): ${r.reason.message}`);
  failures += bad.length;
  for (const r of out) if (r.status === "fulfilled") worst = Math.max(worst, r.value);
  console.log(`${bad.length ? "not ok" : "ok"} - round ${round}: ${N - bad.length}/${N} concurrent clients got their own ` +
              `result (${(performance.now() - t0).toFixed(0)} ms)`);
}
console.log(`# max |server - CLI alone| over all answers: ${worst}`);

// The clients were batched together: fewer forward batches than sequences.
const after = await batchCounts();

// Round 3: every 8th client sends a bad request among the good ones; each bad one gets its own error,
// every good one its own result.
const BAD = [
  ["/embed", "{\"inputs\": ", 400],
  ["/embed", JSON.stringify({inputs: [[50281, 50368, 50282]]}), 422],
  ["/v1/embeddings", JSON.stringify({input: "hello ".repeat(9000)}), 422],
  ["/embed", JSON.stringify({inputs: ""}), 400],
  ["/predict", JSON.stringify({inputs: ["a", "b", "c"]}), 422],
  ["/embed", JSON.stringify({inputs: "x", dimensions: 100000}), 422],
];
{
  const out = await Promise.allSettled(Array.from({length: N}, async (_, k) => {
    if (k % 8 !== 7) return client(k, (k * 13 + 5) % N);
    const [path, body, want] = BAD[(k >> 3) % BAD.length];
    const res = await fetch(BASE + path, {method: "POST", headers: {"Content-Type": "application/json"}, body,
                                          signal: AbortSignal.timeout(90_000)});
    const text = await res.text();
    if (res.status !== want) throw new Error(`bad request to ${path}: HTTP ${res.status}, expected ${want}: ${text.slice(0, 200)}`);
    const b = JSON.parse(text);
    if (path.startsWith("/v1") ? typeof b.error?.message !== "string" : typeof b.error !== "string")
      throw new Error(`error body ${text.slice(0, 200)}`);
    return 0;
  }));
  const bad = out.map((r, k) => [r, k]).filter(([r]) => r.status === "rejected");
  for (const [r, k] of bad) console.log(`not ok - round 3 client ${k}: ${r.reason.message}`);
  failures += bad.length;
  console.log(`${bad.length ? "not ok" : "ok"} - round 3: ${N / 8} bad requests among ${N - N / 8} good ones: ` +
              `${N - bad.length}/${N} got their own answer`);
}
const seqs = after.seqs - before.seqs, batches = after.batches - before.batches;
if (seqs === 2 * N && batches < seqs) {
  console.log(`ok - dynamic batching: ${seqs} sequences in ${batches} forward batches`);
} else {
  ++failures;
  console.log(`not ok - dynamic batching: ${seqs} sequences (expected ${2 * N}) in ${batches} batches (/metrics)`);
}
const nb = after.tokenBatches - before.tokenBatches, inb = after.withinBudget - before.withinBudget;
if (nb === batches && inb === nb) {
  console.log(`ok - every one of the ${nb} batches held <= ${BUDGET} tokens (--max-batch-tokens)`);
} else {
  ++failures;
  console.log(`not ok - --max-batch-tokens ${BUDGET}: ${inb} of ${nb} batches within the budget (/metrics)`);
}
process.exit(failures ? 1 : 0);
