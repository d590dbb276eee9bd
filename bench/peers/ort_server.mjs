// The serving peer of `modernbert serve`: a small Node HTTP server over ONNX Runtime (CPU,
// onnxruntime-node) on the model exported by export_onnx.py, tokenizing with Hugging Face
// `tokenizers` (npm), serving text-embeddings-inference's /embed shape. Built the way TEI's ONNX
// backend serves: requests are queued and one batcher packs them, FIFO, into batches by a budget of
// real tokens; each batch is right-padded to its longest sequence with an attention mask (the
// padded model), then mean-pooled over the real tokens and L2-normalised.
//
//   node ort_server.mjs --onnx F.onnx --tokenizer tokenizer.json [--host 127.0.0.1] [--port 0]
//                       [--threads 2] [--max-batch-tokens 16384] [--max-input-length 8192]
//                       [--pad-id 50283] [--pooling mean|cls]
//
// Routes: POST /embed {"inputs": string | [string], "normalize": true, "truncate": false} ->
// [[float, ...], ...]; GET /health (200 once the session is loaded and warmed up). Errors: 422
// {"error", "error_type"} (TEI's body), 413 over 2 MB. Prints {"listening": PORT} on stdout when
// ready; exits 0 on SIGTERM/SIGINT. Only what bench/serve_bench.sh needs: not a TEI replacement.
import http from 'node:http';
import process from 'node:process';
import ort from 'onnxruntime-node';
import { Tokenizer } from 'tokenizers';

function parseArgs(argv) {
  const o = { host: '127.0.0.1', port: 0, threads: 2, 'max-batch-tokens': 16384, 'max-input-length': 8192,
    'pad-id': 50283, pooling: 'mean' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const k = a.slice(2);
    if (!(k in o) && !['onnx', 'tokenizer'].includes(k)) throw new Error(`unknown flag ${a}`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  if (!o.onnx || !o.tokenizer) throw new Error('need --onnx FILE and --tokenizer FILE');
  if (!['mean', 'cls'].includes(o.pooling)) throw new Error('--pooling is mean or cls');
  return o;
}

const args = parseArgs(process.argv.slice(2));
const tk = Tokenizer.fromFile(args.tokenizer);
const session = await ort.InferenceSession.create(args.onnx, {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
  intraOpNumThreads: args.threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
});

class InputError extends Error {}

// ---- the batcher: queue of sequences {ids, normalize, resolve, reject}; one batch at a time ----
const queue = [];
let running = false;

function padBatch(seqs) {
  const B = seqs.length, n = Math.max(...seqs.map((s) => s.ids.length));
  const ids = new BigInt64Array(B * n).fill(BigInt(args['pad-id']));
  const mask = new BigInt64Array(B * n);
  seqs.forEach((s, b) => s.ids.forEach((id, j) => { ids[b * n + j] = BigInt(id); mask[b * n + j] = 1n; }));
  return { input_ids: new ort.Tensor('int64', ids, [B, n]), attention_mask: new ort.Tensor('int64', mask, [B, n]) };
}

function pool(data, b, n, H, len, normalize) {
  const v = new Float64Array(H);
  const rows = args.pooling === 'cls' ? 1 : len;
  for (let j = 0; j < rows; j++) {
    const off = (b * n + j) * H;
    for (let h = 0; h < H; h++) v[h] += data[off + h];
  }
  let norm = 0;
  for (let h = 0; h < H; h++) { v[h] /= rows; norm += v[h] * v[h]; }
  const scale = normalize && norm > 0 ? 1 / Math.sqrt(norm) : 1;
  return Array.from(v, (x) => Math.fround(x * scale));
}

async function drain() {
  if (running) return;
  running = true;
  try {
    while (queue.length > 0) {
      const batch = [];
      let tokens = 0;
      while (queue.length > 0 && (batch.length === 0 || tokens + queue[0].ids.length <= args['max-batch-tokens'])) {
        const s = queue.shift();
        batch.push(s);
        tokens += s.ids.length;
      }
      try {
        const feeds = padBatch(batch);
        const out = (await session.run(feeds)).last_hidden_state;
        const [, n, H] = out.dims;
        batch.forEach((s, b) => s.resolve(pool(out.data, b, n, H, s.ids.length, s.normalize)));
      } catch (e) {
        batch.forEach((s) => s.reject(e));
      }
    }
  } finally {
    running = false;
  }
}

function embedOne(ids, normalize) {
  return new Promise((resolve, reject) => {
    queue.push({ ids, normalize, resolve, reject });
    setImmediate(drain);
  });
}

async function tokenize(text, truncate) {
  if (typeof text !== 'string') throw new InputError('`inputs` must be a string or a list of strings');
  const ids = (await tk.encode(text, null, { addSpecialTokens: true })).getIds();
  if (ids.length > args['max-input-length']) {
    if (!truncate) throw new InputError(`input of ${ids.length} tokens is longer than ${args['max-input-length']}`);
    return [...ids.slice(0, args['max-input-length'] - 1), ids[ids.length - 1]];
  }
  return ids;
}

async function embed(body) {
  let req;
  try { req = JSON.parse(body); } catch (e) { throw new InputError(`malformed JSON: ${e.message}`); }
  if (req === null || typeof req !== 'object') throw new InputError('body must be a JSON object');
  const inputs = typeof req.inputs === 'string' ? [req.inputs] : req.inputs;
  if (!Array.isArray(inputs) || inputs.length === 0) throw new InputError('`inputs` must be a non-empty string or list');
  const normalize = req.normalize ?? true;
  const ids = await Promise.all(inputs.map((t) => tokenize(t, req.truncate === true)));
  return Promise.all(ids.map((s) => embedOne(s, normalize)));
}

function send(res, status, obj) {
  const s = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
  res.end(s);
}

let ready = false;
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/health') return ready ? res.end() : send(res, 503, { error: 'loading', error_type: 'Unhealthy' });
  if (req.method !== 'POST' || req.url !== '/embed') return send(res, 404, { error: 'not found', error_type: 'Validation' });
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > 2 << 20) { send(res, 413, { error: 'payload too large', error_type: 'Validation' }); req.destroy(); }
    else chunks.push(c);
  });
  req.on('end', () => {
    if (size > 2 << 20) return;
    embed(Buffer.concat(chunks).toString('utf8')).then(
      (vecs) => send(res, 200, vecs),
      (e) => send(res, e instanceof InputError ? 422 : 500,
        { error: e.message, error_type: e instanceof InputError ? 'Validation' : 'Backend' }));
  });
});
// ORT's run holds the event loop for the whole forward (tens of seconds for a 16k-token batch on two
// cores), so a request that arrived meanwhile is read only afterwards: Node's default header timeout
// (60 s) would answer it 408. Bench load only; no timeouts.
server.keepAliveTimeout = 600000;
server.headersTimeout = 3600000;
server.requestTimeout = 0;

// Warm up (first run allocates the session's arenas), then listen.
await embed(JSON.stringify({ inputs: 'warm up' }));
ready = true;
server.listen(args.port, args.host, () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
