// Bounded HTTP load generator for the serving benchmarks (loopback only, Node's own http client,
// keep-alive). Every request is one text of TEXTS (JSONL {"text", "tokens"}), sent as TEI's /embed
// body {"inputs": text} (or OpenAI's {"input": text, "model": ...} with --api openai); a 200 whose
// body is a list of vectors (or OpenAI's data[]) counts as success, anything else as an error.
//
//   node serve_load.mjs --url http://127.0.0.1:PORT --texts texts.jsonl --mode MODE [flags]
//
// Modes (every mode is bounded by a request count and/or a duration):
//   closed  --connections C --rounds K: C clients start together; each sends K requests one after
//           the other (client i starts at text i; the texts cycle). Throughput = tokens of all
//           C*K requests / (first send -> last response): a fixed amount of work, like one pass of
//           `modernbert bench` (a time window would cut the big batches' bursts of responses).
//   open    --rate R --duration S [--warmup S]: requests sent at fixed intervals 1/R (texts in
//           order), whether or not earlier ones finished (at most --max-inflight in flight; beyond
//           that a send counts as "dropped"). Latency is measured from the scheduled send time
//           (no coordinated omission); requests scheduled in the first --warmup seconds are not counted.
//   seq     --requests N [--warmup-requests W]: one client, one request at a time (the short-
//           request latency: use a one-line TEXTS).
// Output: one JSON line (requests, ok, errors, statuses, tokens, seconds, requests_per_s,
// tokens_per_s, latency_ms {p50, p90, p99, max, mean}); --samples F writes every request's
// {sent_ms, latency_ms, status, tokens} as JSONL.
import fs from 'node:fs';
import http from 'node:http';
import process from 'node:process';

function parseArgs(argv) {
  const o = { mode: 'closed', api: 'tei', model: 'modernbert', connections: 64, rounds: 1, rate: 1, duration: 60,
    warmup: 0, requests: 100, 'warmup-requests': 10, 'max-inflight': 1024, timeout: 600, label: '' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const k = a.slice(2);
    if (!(k in o) && !['url', 'texts', 'samples', 'api-key'].includes(k)) throw new Error(`unknown flag ${a}`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    o[k] = typeof o[k] === 'number' ? Number(v) : v;
  }
  if (!o.url || !o.texts) throw new Error('need --url URL and --texts FILE');
  const u = new URL(o.url);
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new Error('loopback URLs only');
  if (!['closed', 'open', 'seq'].includes(o.mode)) throw new Error('--mode is closed, open or seq');
  return o;
}

const args = parseArgs(process.argv.slice(2));
const base = new URL(args.url);
const path = args.api === 'openai' ? '/v1/embeddings' : '/embed';
const texts = fs.readFileSync(args.texts, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
const bodies = texts.map((t) => Buffer.from(JSON.stringify(
  args.api === 'openai' ? { input: t.text, model: args.model } : { inputs: t.text })));
const agent = new http.Agent({ keepAlive: true, maxSockets: args.mode === 'closed' ? args.connections : args['max-inflight'] });
const now = () => Number(process.hrtime.bigint()) / 1e6;  // ms

// One request; resolves {status, ok} (never rejects: a transport error is status 0).
function post(i) {
  return new Promise((resolve) => {
    const headers = { 'content-type': 'application/json', 'content-length': bodies[i].length };
    if (args['api-key']) headers.authorization = `Bearer ${args['api-key']}`;
    const req = http.request({ host: base.hostname, port: base.port, path, method: 'POST', agent, headers,
      timeout: args.timeout * 1000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let ok = false;
        if (res.statusCode === 200) {
          try {
            const j = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            const vecs = args.api === 'openai' ? j.data?.map((d) => d.embedding) : j;
            ok = Array.isArray(vecs) && vecs.length === 1 && Array.isArray(vecs[0]) && vecs[0].length > 0;
          } catch { ok = false; }
        }
        resolve({ status: res.statusCode, ok });
      });
      res.on('error', () => resolve({ status: 0, ok: false }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, ok: false }));
    req.end(bodies[i]);
  });
}

const samples = [];  // {sent_ms, latency_ms, status, ok, tokens}
let t0 = 0;

async function closed() {
  t0 = now();
  await Promise.all(Array.from({ length: args.connections }, async (_, c) => {
    for (let k = 0; k < args.rounds; k++) {
      const i = (c + k * args.connections) % texts.length;
      const s = now();
      const r = await post(i);
      samples.push({ sent_ms: s - t0, latency_ms: now() - s, status: r.status, ok: r.ok, tokens: texts[i].tokens });
    }
  }));
}

async function open() {
  const interval = 1000 / args.rate, n = Math.round(args.duration * args.rate);
  const pending = [];
  let inflight = 0, dropped = 0;
  t0 = now();
  for (let k = 0; k < n; k++) {
    const due = t0 + k * interval;
    const wait = due - now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const i = k % texts.length;
    const counted = k * interval >= args.warmup * 1000;
    if (inflight >= args['max-inflight']) { if (counted) dropped++; continue; }
    inflight++;
    pending.push(post(i).then((r) => {
      inflight--;
      if (counted) samples.push({ sent_ms: due - t0, latency_ms: now() - due, status: r.status, ok: r.ok, tokens: texts[i].tokens });
    }));
  }
  await Promise.all(pending);
  return dropped;
}

async function seq() {
  for (let k = 0; k < args['warmup-requests']; k++) await post(k % texts.length);
  t0 = now();
  for (let k = 0; k < args.requests; k++) {
    const i = k % texts.length, s = now();
    const r = await post(i);
    samples.push({ sent_ms: s - t0, latency_ms: now() - s, status: r.status, ok: r.ok, tokens: texts[i].tokens });
  }
}

function pct(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const dropped = args.mode === 'closed' ? (await closed(), 0) : args.mode === 'open' ? await open() : (await seq(), 0);
const t1 = now();
agent.destroy();
const ok = samples.filter((s) => s.ok);
const lat = ok.map((s) => s.latency_ms).sort((a, b) => a - b);
const statuses = {};
for (const s of samples) statuses[s.status] = (statuses[s.status] ?? 0) + 1;
// Closed: the whole run is the work. Open: the counted window (warm-up excluded) to the last response.
const first = samples.length ? Math.min(...samples.map((s) => s.sent_ms)) : 0;
const last = samples.length ? Math.max(...samples.map((s) => s.sent_ms + s.latency_ms)) : 0;
const seconds = args.mode === 'seq' ? (t1 - t0) / 1000 : (last - first) / 1000;
const tokens = ok.reduce((a, s) => a + s.tokens, 0);
const round = (x) => (x === null ? null : Math.round(x * 1000) / 1000);
const out = {
  label: args.label, mode: args.mode, api: args.api, url: args.url,
  connections: args.mode === 'closed' ? args.connections : undefined, rounds: args.mode === 'closed' ? args.rounds : undefined,
  rate: args.mode === 'open' ? args.rate : undefined, duration: args.mode === 'open' ? args.duration : undefined,
  warmup: args.mode === 'open' ? args.warmup : undefined,
  requests: samples.length, ok: ok.length, errors: samples.length - ok.length, dropped, statuses, tokens,
  seconds: round(seconds), requests_per_s: round(ok.length / seconds), tokens_per_s: round(tokens / seconds),
  latency_ms: { p50: round(pct(lat, 50)), p90: round(pct(lat, 90)), p99: round(pct(lat, 99)), max: round(lat.at(-1) ?? null),
    mean: round(lat.reduce((a, x) => a + x, 0) / (lat.length || 1)) },
};
if (args.samples) fs.writeFileSync(args.samples, samples.map((s) => JSON.stringify(s)).join('\n') + '\n');
process.stdout.write(JSON.stringify(out) + '\n');
