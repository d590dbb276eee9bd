// ONNX Runtime (CPU, onnxruntime-node) peer of `modernbert bench`: the padded model exported by
// export_onnx.py, run as users deploy it — each batch right-padded to its longest sequence with an
// attention mask. Batches are the same sequences as ours: packed greedily, in input order, by the
// real-token budget --max-batch-tokens (or a fixed --batch-size). Prints the same JSON keys.
//
//   node ort_bench.mjs --onnx F.onnx --input W.jsonl [--threads 2] [--warmup 1] [--repeat 5]
//                      [--max-batch-tokens 16384 | --batch-size N] [--pad-id 50283]
//                      [--dump-hidden F.bin]   (first pass, real tokens only, f32 [T, H] raw LE)
import fs from 'node:fs';
import process from 'node:process';
import ort from 'onnxruntime-node';

function parseArgs(argv) {
  const o = { threads: 2, warmup: 1, repeat: 5, 'max-batch-tokens': 16384, 'batch-size': 0, 'pad-id': 50283 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const k = a.slice(2);
    if (!(k in o) && !['onnx', 'input', 'dump-hidden'].includes(k)) throw new Error(`unknown flag ${a}`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  if (!o.onnx || !o.input) throw new Error('need --onnx FILE and --input FILE');
  return o;
}

function readWorkload(path) {
  return fs.readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l, i) => {
    const ids = JSON.parse(l).input_ids;
    if (!Array.isArray(ids) || ids.length === 0) throw new Error(`${path}:${i + 1}: no input_ids`);
    return ids;
  });
}

function makeBatches(seqs, budget, batchSize) {
  const out = [];
  let cur = [], tok = 0;
  for (const s of seqs) {
    const full = batchSize > 0 ? cur.length >= batchSize : tok + s.length > budget;
    if (cur.length > 0 && full) { out.push(cur); cur = []; tok = 0; }
    cur.push(s); tok += s.length;
  }
  if (cur.length) out.push(cur);
  return out;
}

function padBatch(seqs, padId) {
  const B = seqs.length, n = Math.max(...seqs.map((s) => s.length));
  const ids = new BigInt64Array(B * n).fill(BigInt(padId));
  const mask = new BigInt64Array(B * n);
  seqs.forEach((s, b) => s.forEach((id, j) => { ids[b * n + j] = BigInt(id); mask[b * n + j] = 1n; }));
  return { feeds: { input_ids: new ort.Tensor('int64', ids, [B, n]), attention_mask: new ort.Tensor('int64', mask, [B, n]) }, B, n };
}

const args = parseArgs(process.argv.slice(2));
const seqs = readWorkload(args.input);
const batches = makeBatches(seqs, args['max-batch-tokens'], args['batch-size']).map((b) => ({ seqs: b, ...padBatch(b, args['pad-id']) }));
const session = await ort.InferenceSession.create(args.onnx, {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
  intraOpNumThreads: args.threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
});

async function pass(dump) {
  const parts = [];
  for (const b of batches) {
    const r = await session.run(b.feeds);
    const t = r.last_hidden_state;
    if (dump) {
      const H = t.dims[2];
      b.seqs.forEach((s, i) => parts.push(t.data.subarray(i * b.n * H, (i * b.n + s.length) * H).slice()));
    }
    t.dispose?.();
  }
  return parts;
}

if (args['dump-hidden']) {
  const parts = await pass(true);
  const fd = fs.openSync(args['dump-hidden'], 'w');
  for (const p of parts) fs.writeSync(fd, new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
  fs.closeSync(fd);
}
for (let i = 0; i < args.warmup; i++) await pass(false);
const times = [];
for (let i = 0; i < args.repeat; i++) {
  const t0 = process.hrtime.bigint();
  await pass(false);
  times.push(Number(process.hrtime.bigint() - t0) * 1e-9);
}
const sorted = [...times].sort((x, y) => x - y);
const k = sorted.length;
const median = k % 2 ? sorted[(k - 1) / 2] : 0.5 * (sorted[k / 2 - 1] + sorted[k / 2]);
const tokens = seqs.reduce((s, x) => s + x.length, 0);
const padded = batches.reduce((s, b) => s + b.B * b.n, 0);
console.log(JSON.stringify({
  system: 'onnxruntime', version: ort.env.versions?.common, tokens, sequences: seqs.length, batches: batches.length,
  padded_tokens: padded, threads: args.threads, repeat: args.repeat, warmup: args.warmup,
  seconds_median: median, seconds_min: sorted[0], seconds_all: times, tokens_per_s: tokens / median,
  peak_rss_mib: process.resourceUsage().maxRSS / 1024,
}));
