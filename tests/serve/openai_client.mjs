// serve.openai_client: the official `openai` npm client's embeddings.create against `modernbert serve`
// gets the vectors of `modernbert embed --normalize` (strings and token ids; float, base64 and the
// client's default, which asks for base64 and decodes it). Env: WORK (references), BASE, API_KEY,
// MODEL (the served model name), IDS_SHORT / IDS_LIST (token ids as JSON, from `modernbert tokenize`).
import OpenAI from "openai";
import {ref, same, close, b64f32, norm, maxdiff} from "./helpers.mjs";

const {BASE, API_KEY, MODEL} = process.env;
const idsShort = JSON.parse(process.env.IDS_SHORT);
const idsList = JSON.parse(process.env.IDS_LIST);
const client = new OpenAI({baseURL: `${BASE}/v1`, apiKey: API_KEY, timeout: 60_000, maxRetries: 0});

let failures = 0, checks = 0;
async function test(name, fn) {
  ++checks;
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    ++failures;
    console.log(`not ok - ${name}: ${e.message}`);
  }
}
function eq(got, want, what) {
  if (got !== want) throw new Error(`${what}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
}
function vectors(res, n) {
  eq(res.object, "list", "object");
  eq(res.data.length, n, "data.length");
  res.data.forEach((d, i) => {
    eq(d.object, "embedding", `data[${i}].object`);
    eq(d.index, i, `data[${i}].index`);
  });
  return res.data.map((d) => d.embedding);
}
const emb = (name) => ref(name).map((r) => r.embedding);

const one = "hello world";
const many = ["The quick brown fox jumps over the lazy dog.", "a", "ModernBERT serves embeddings over HTTP, " +
  "batched with other requests into one unpadded forward pass."];

await test("string, float: bitwise equal to `modernbert embed --normalize`", async () => {
  const res = await client.embeddings.create({model: MODEL, input: one, encoding_format: "float"});
  const [v] = vectors(res, 1);
  same([v], emb("one"));
  eq(res.model, MODEL, "model");
  eq(res.usage.prompt_tokens, idsShort.length, "usage.prompt_tokens");
  eq(res.usage.total_tokens, idsShort.length, "usage.total_tokens");
  if (Math.abs(norm(v) - 1) > 1e-5) throw new Error(`norm ${norm(v)}, expected 1`);
});

await test("list of strings, float: each within tolerance of the input embedded alone, in order", async () => {
  const res = await client.embeddings.create({model: MODEL, input: many, encoding_format: "float"});
  const got = vectors(res, many.length);
  close(got, emb("many"));
  console.log(`# list of strings: max |server - CLI alone| = ${maxdiff(got, emb("many"))}`);
});

await test("string, base64: decodes to the same float32 as float", async () => {
  const res = await client.embeddings.create({model: MODEL, input: one, encoding_format: "base64"});
  const [s] = vectors(res, 1);
  if (typeof s !== "string") throw new Error(`embedding is ${typeof s}, expected a base64 string`);
  same([b64f32(s)], emb("one"));
});

await test("list of strings, base64", async () => {
  const res = await client.embeddings.create({model: MODEL, input: many, encoding_format: "base64"});
  close(vectors(res, many.length).map(b64f32), emb("many"));
});

await test("string, client default (the client asks for base64 and decodes it)", async () => {
  const res = await client.embeddings.create({model: MODEL, input: one});
  const [v] = vectors(res, 1);
  if (!Array.isArray(v)) throw new Error(`embedding is ${typeof v}, expected numbers`);
  same([v], emb("one"));
});

await test("token ids, float: bitwise equal to `modernbert embed` of {input_ids}", async () => {
  const res = await client.embeddings.create({model: MODEL, input: idsShort, encoding_format: "float"});
  same(vectors(res, 1), emb("ids_short"));
  eq(res.usage.prompt_tokens, idsShort.length, "usage.prompt_tokens");
});

await test("token ids equal the text they encode", async () => {
  const res = await client.embeddings.create({model: MODEL, input: idsShort, encoding_format: "float"});
  same(vectors(res, 1), emb("one"));
});

await test("list of token id lists, float and base64", async () => {
  const f = await client.embeddings.create({model: MODEL, input: idsList, encoding_format: "float"});
  close(vectors(f, idsList.length), emb("ids_list"));
  const b = await client.embeddings.create({model: MODEL, input: idsList, encoding_format: "base64"});
  close(vectors(b, idsList.length).map(b64f32), emb("ids_list"));
  eq(f.usage.prompt_tokens, idsList.reduce((s, x) => s + x.length, 0), "usage.prompt_tokens");
});

await test("dimensions 16: `modernbert embed --normalize --dim 16`", async () => {
  const res = await client.embeddings.create({model: MODEL, input: one, encoding_format: "float", dimensions: 16});
  same(vectors(res, 1), emb("dim16"));
});

await test("models.list names the served model", async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  if (!ids.includes(MODEL)) throw new Error(`models ${JSON.stringify(ids)} lack ${MODEL}`);
});

await test("wrong API key: the client raises AuthenticationError (401)", async () => {
  const bad = new OpenAI({baseURL: `${BASE}/v1`, apiKey: API_KEY + "x", timeout: 30_000, maxRetries: 0});
  try {
    await bad.embeddings.create({model: MODEL, input: one});
  } catch (e) {
    if (!(e instanceof OpenAI.AuthenticationError)) throw new Error(`${e.constructor.name} ${e.status}: ${e.message}`);
    return;
  }
  throw new Error("the request succeeded");
});

await test("token id out of range: the client raises UnprocessableEntityError (422) with the message", async () => {
  try {
    await client.embeddings.create({model: MODEL, input: [[50281, 1 << 30, 50282]], encoding_format: "float"});
  } catch (e) {
    if (!(e instanceof OpenAI.UnprocessableEntityError)) throw new Error(`${e.constructor.name} ${e.status}: ${e.message}`);
    if (!e.error || typeof e.error.message !== "string") throw new Error(`error body ${JSON.stringify(e.error)}`);
    return;
  }
  throw new Error("the request succeeded");
});

console.log(`# ${checks - failures}/${checks} openai client checks passed`);
process.exit(failures ? 1 : 0);
