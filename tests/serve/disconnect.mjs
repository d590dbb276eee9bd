// serve.disconnect (node part): clients that go away must not hurt the server or anyone else.
//   1. fetch + AbortController drops a long batch after 300 ms: the server drops the work that was not
//      yet in a batch (fewer sequences run than were sent) and counts err="disconnected";
//   2. raw sockets that send half a request (headers cut, body cut) and close;
// then the server is healthy, its queue empty, and it answers correctly.
// Env: BASE, WORK. (Slow and stalled clients: slow_clients.mjs.)
import net from "node:net";
import {ref, same, close} from "./helpers.mjs";

const {BASE} = process.env;
const url = new URL(BASE);
const e1 = ref("e1").map((r) => r.embedding);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let failures = 0;
async function test(name, fn) {
  try {
    await fn();
    console.log(`ok - ${name}`);
  } catch (e) {
    ++failures;
    console.log(`not ok - ${name}: ${e.message}`);
  }
}

async function metrics() {
  const m = await (await fetch(BASE + "/metrics", {signal: AbortSignal.timeout(10_000)})).text();
  const num = (re) => Number((m.match(re) || [, "0"])[1]);
  return {
    seqs: num(/^te_batch_next_size_sum (\S+)$/m),
    queue: num(/^te_queue_size (\S+)$/m),
    gone: num(/^te_request_failure\{err="disconnected"\} (\S+)$/m),
  };
}
// Polls /metrics (every 50 ms, at most `ms`) until pred holds; returns the last reading.
async function waitMetrics(pred, ms) {
  let m;
  for (const t0 = Date.now(); Date.now() - t0 < ms; await sleep(50)) if (pred((m = await metrics()))) break;
  return m;
}
// One /embed of "hello world": bitwise the CLI's when it rides alone, else within the tolerance.
async function embedHello(alone = true) {
  const res = await fetch(BASE + "/embed", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({inputs: "hello world"}), signal: AbortSignal.timeout(30_000),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
  (alone ? same : close)(await res.json(), e1);
}

// 32 sequences of ~8000 tokens: 16 forward batches of the default 16384-token budget, seconds of work
// even on a fast machine.
const LONG = {inputs: Array.from({length: 32}, (_, i) => `sequence ${i} ` + "a ".repeat(8000))};

await test("client aborts a long batch after 300 ms: its queued work is dropped", async () => {
  const before = await metrics();
  const ac = new AbortController();
  const p = fetch(BASE + "/embed", {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(LONG), signal: ac.signal});
  await sleep(300);
  ac.abort();
  await p.then(() => { throw new Error("the request finished before the abort"); }, () => {});
  const after = await waitMetrics((m) => m.queue === 0 && m.gone > before.gone, 30_000);
  if (after.queue !== 0) throw new Error(`te_queue_size ${after.queue} 30 s after the abort`);
  if (after.gone !== before.gone + 1) throw new Error(`te_request_failure{err="disconnected"} ${before.gone} -> ${after.gone}`);
  const ran = after.seqs - before.seqs;
  if (ran >= 32) throw new Error(`all ${ran} sequences of the abandoned request were run`);
  console.log(`# aborted request: ${ran} of 32 sequences ran before the cancel`);
});

await test("an answer right after the abort is correct", () => embedHello());

function rawSocket(payload, {closeAfterMs = 50} = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(url.port), url.hostname, () => {
      s.write(payload);
      setTimeout(() => s.destroy(), closeAfterMs);
    });
    s.on("close", resolve);
    s.on("error", reject);
  });
}

await test("raw sockets: headers cut, body cut, garbage, a lone CR-LF, then close", async () => {
  const big = JSON.stringify(LONG);
  await Promise.all([
    rawSocket("POST /embed HTTP/1.1\r\nHost: x\r\nContent-Ty"),
    rawSocket(`POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n` +
              big.slice(0, big.length >> 1)),
    rawSocket("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all \r\n\r\n"),
    rawSocket("\r\n"),
    rawSocket(`POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}`),
    rawSocket(`POST /embed HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffff\r\n{"inputs"`),
  ]);
  await embedHello();
});

await test("afterwards: healthy, queue empty, correct answers", async () => {
  const h = await fetch(BASE + "/health", {signal: AbortSignal.timeout(10_000)});
  if (h.status !== 200) throw new Error(`/health ${h.status}`);
  const m = await waitMetrics((x) => x.queue === 0, 10_000);
  if (m.queue !== 0) throw new Error(`te_queue_size ${m.queue}`);
  await embedHello();
  await Promise.all(Array.from({length: 8}, () => embedHello(false)));
});

process.exit(failures ? 1 : 0);
