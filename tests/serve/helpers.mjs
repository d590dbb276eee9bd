// Helpers shared by the serve tests' node scripts: float comparison against the CLI's references,
// base64 float32 decoding, error-body shapes, and a bounded fetch.
//
// Float contract (issue #14 item 3; src/serve/engine.h, tests/test_serve_engine.cpp): a request that
// rides alone in a batch is computed exactly as `modernbert embed|classify|fill-mask
// --max-batch-tokens 1` computes the same input alone, so those are compared bitwise as float32
// (`same`). A sequence that shares a batch with others (a list input, concurrent clients) goes
// through GEMMs whose row count M differs, and the BLAS libraries pick kernels and blockings by M:
// the last bits move (engine test: max 4.8e-7 on hidden states; measured here: up to 1.2e-7 on
// unit-norm embeddings). Those are compared with |got - ref| <= ATOL + RTOL * |ref| (`close`), the
// engine's bound, far below the distance between the vectors of two different inputs (~1e-1).
import fs from "node:fs";
import path from "node:path";

export const ATOL = 1e-5;
export const RTOL = 1e-5;

const WORK = process.env.WORK || ".";

// The CLI reference NAME ($WORK/ref/NAME.jsonl), one parsed object per line.
export function ref(name) {
  const text = fs.readFileSync(path.join(WORK, "ref", name + ".jsonl"), "utf8");
  return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

function flat(x, out = []) {
  if (Array.isArray(x) || ArrayBuffer.isView(x)) {
    for (const v of x) flat(v, out);
  } else {
    out.push(x);
  }
  return out;
}

function shapeOf(x) {
  const s = [];
  while (Array.isArray(x) || ArrayBuffer.isView(x)) {
    s.push(x.length);
    x = x[0];
  }
  return s.join("x");
}

// Throws (with the first differing index) unless got and want have the same nested shape and every
// element is within ATOL + RTOL * |want|.
export function close(got, want, atol = ATOL, rtol = RTOL) {
  const g = flat(got), w = flat(want);
  if (shapeOf(got) !== shapeOf(want) || g.length !== w.length)
    throw new Error(`shape ${shapeOf(got)} (${g.length} values), expected ${shapeOf(want)} (${w.length})`);
  let worst = 0;
  for (let i = 0; i < g.length; ++i) {
    if (typeof g[i] !== "number" || !Number.isFinite(g[i])) throw new Error(`value ${i} is ${g[i]}`);
    const d = Math.abs(g[i] - w[i]);
    if (!(d <= atol + rtol * Math.abs(w[i]))) throw new Error(`value ${i}: got ${g[i]}, expected ${w[i]} (|diff| ${d})`);
    worst = Math.max(worst, d);
  }
  return true;
}

// Bitwise as float32: the server's and the CLI's numbers, each parsed from JSON (or base64), round
// to the same float32.
export function same(got, want) {
  const g = flat(got), w = flat(want);
  if (shapeOf(got) !== shapeOf(want) || g.length !== w.length)
    throw new Error(`shape ${shapeOf(got)} (${g.length} values), expected ${shapeOf(want)} (${w.length})`);
  for (let i = 0; i < g.length; ++i)
    if (Math.fround(g[i]) !== Math.fround(w[i]))
      throw new Error(`value ${i}: got ${g[i]}, expected exactly ${w[i]} (|diff| ${Math.abs(g[i] - w[i])})`);
  return true;
}

export function maxdiff(got, want) {
  const g = flat(got), w = flat(want);
  let m = 0;
  for (let i = 0; i < Math.min(g.length, w.length); ++i) m = Math.max(m, Math.abs(g[i] - w[i]));
  return m;
}

// OpenAI's encoding_format "base64": little-endian float32 bytes.
export function b64f32(s) {
  if (typeof s !== "string") throw new Error(`base64 embedding is ${typeof s}, expected a string`);
  const buf = Buffer.from(s, "base64");
  if (buf.length % 4) throw new Error(`base64 embedding has ${buf.length} bytes, not a multiple of 4`);
  return Array.from(new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)));
}

export function norm(v) {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

export function sigmoid(x) {
  return 1 / (1 + Math.exp(-x));
}

// TEI's error body {"error": "...", "error_type": "..."}.
export function teiError(b, type) {
  if (!b || typeof b.error !== "string" || !b.error.length || typeof b.error_type !== "string")
    throw new Error(`not a TEI error body {error, error_type}: ${JSON.stringify(b)}`);
  if (type !== undefined && b.error_type !== type) throw new Error(`error_type ${b.error_type}, expected ${type}`);
  return true;
}

// OpenAI's error body {"error": {"message", "type", "code"}}.
export function openaiError(b, type) {
  const e = b && b.error;
  if (!e || typeof e !== "object" || typeof e.message !== "string" || !e.message.length ||
      typeof e.type !== "string" || !("code" in e))
    throw new Error(`not an OpenAI error body {error: {message, type, code}}: ${JSON.stringify(b)}`);
  if (type !== undefined && e.type !== type) throw new Error(`error.type ${e.type}, expected ${type}`);
  return true;
}

// A safetensors file's F32 tensor NAME as a flat array (the CLI's `encode` output).
export function safetensorsF32(file, name) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const t = header[name];
  if (!t || t.dtype !== "F32") throw new Error(`${file}: no F32 tensor ${name}`);
  const [a, b] = t.data_offsets;
  const data = buf.subarray(8 + n + a, 8 + n + b);
  return {shape: t.shape, values: Array.from(new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.length)))};
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
  return true;
}
