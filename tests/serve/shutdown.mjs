// serve.shutdown (node part): N requests in flight; prints one JSON line per request when all are
// settled: {k, status, ok} where ok says the vectors are the CLI's (close: they share batches).
// Env: BASE, WORK, N, TEXTS (a JSON file: 4 N texts). The shell part sends SIGTERM while these run.
import fs from "node:fs";
import {ref, close} from "./helpers.mjs";

const {BASE} = process.env;
const N = Number(process.env.N);
const want = ref("texts").map((r) => r.embedding);
const texts = JSON.parse(fs.readFileSync(process.env.TEXTS, "utf8"));
const out = await Promise.allSettled(Array.from({length: N}, async (_, k) => {
  const res = await fetch(BASE + "/embed", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({inputs: texts.slice(4 * k, 4 * k + 4)}), signal: AbortSignal.timeout(60_000),
  });
  const body = await res.text();
  if (res.status !== 200) return {k, status: res.status, ok: false, body: body.slice(0, 200)};
  close(JSON.parse(body), want.slice(4 * k, 4 * k + 4));
  return {k, status: 200, ok: true};
}));
for (const [k, r] of out.entries())
  console.log(JSON.stringify(r.status === "fulfilled" ? r.value : {k, status: 0, ok: false, error: r.reason.message}));
