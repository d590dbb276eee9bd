// serve.slow_clients (node part): slow and stalled clients must not tie up the server.
//   1. 20 clients dribbling their headers (one byte per 100 ms, 3 s) while 12 normal requests are
//      answered correctly;
//   2. a client that stalls mid-request is closed after --read-timeout;
//   3. slowloris: as many dribbling clients as the server has connection threads (--http-threads),
//      each sending one header byte per 300 ms for 20 s, must not keep a normal request waiting for
//      more than 10 s (the dribblers have to be cut off after about --read-timeout, as a header read
//      timeout does in TEI's hyper, instead of holding every thread for as long as they dribble).
// Env: BASE, WORK, READ_TIMEOUT (seconds), PART (basic: 1 and 2; slowloris: 3, with HTTP_THREADS).
import net from "node:net";
import {ref, same} from "./helpers.mjs";

const {BASE} = process.env;
const READ_TIMEOUT = Number(process.env.READ_TIMEOUT), HTTP_THREADS = Number(process.env.HTTP_THREADS);
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

async function embedHello(timeoutMs = 30_000) {
  const res = await fetch(BASE + "/embed", {
    method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({inputs: "hello world"}), signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
  same(await res.json(), e1);  // alone in its batch: bitwise the CLI's
}

// A connection that writes `text` one byte every `gapMs` for at most `forMs`; resolves with whether
// the server closed it and when.
function dribble(text, gapMs, forMs) {
  return new Promise((resolve) => {
    const s = net.connect(Number(url.port), url.hostname);
    const t0 = Date.now();
    let i = 0, timer, byServer = false;
    s.on("connect", () => {
      timer = setInterval(() => {
        if (Date.now() - t0 >= forMs) {
          clearInterval(timer);
          s.destroy();
        } else if (i < text.length) {
          s.write(text[i++]);
        }
      }, gapMs);
    });
    s.on("data", () => {});
    s.on("end", () => { byServer = true; });
    s.on("error", () => { byServer = true; });
    s.on("close", () => { clearInterval(timer); resolve({byServer, ms: Date.now() - t0}); });
  });
}
const HEAD = "POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Slow: " + "z".repeat(500);

if (process.env.PART === "basic") {
await test("20 slow clients dribbling headers: 12 normal requests meanwhile are answered correctly", async () => {
  const slow = Array.from({length: 20}, () => dribble(HEAD, 100, 3000));
  await sleep(300);
  for (let k = 0; k < 12; ++k) await embedHello();
  await Promise.all(slow);
});

await test(`a client stalling mid-request is closed by the server after --read-timeout ${READ_TIMEOUT} s`, async () => {
  const r = await new Promise((resolve) => {
    const s = net.connect(Number(url.port), url.hostname, () => s.write("POST /embed HTTP/1.1\r\nHost: x\r\nContent-"));
    const t0 = Date.now();
    let byServer = false;
    const guard = setTimeout(() => s.destroy(), (READ_TIMEOUT + 10) * 1000);
    s.on("data", () => {});
    s.on("end", () => { byServer = true; });
    s.on("error", () => { byServer = true; });
    s.on("close", () => { clearTimeout(guard); resolve({byServer, ms: Date.now() - t0}); });
  });
  if (!r.byServer) throw new Error(`the server kept the stalled connection open for ${r.ms} ms`);
  if (r.ms < READ_TIMEOUT * 1000 - 200) throw new Error(`closed after ${r.ms} ms, before the read timeout`);
});

}

if (process.env.PART === "slowloris") {
await test(`slowloris: ${HTTP_THREADS} dribbling clients (= --http-threads) do not hold off a normal request for 10 s`,
           async () => {
  const slow = Array.from({length: HTTP_THREADS}, () => dribble(HEAD, 300, 20_000));
  await sleep(1000);
  const t0 = Date.now();
  try {
    await embedHello(10_000);
  } catch (e) {
    throw new Error(`${e.name === "TimeoutError" ? "no answer" : e.message} after ${Date.now() - t0} ms while ` +
                    `${HTTP_THREADS} clients sent one header byte per 300 ms (each connection is only cut after ` +
                    `--read-timeout ${READ_TIMEOUT} s without any byte, so a dribbler holds its thread indefinitely)`);
  } finally {
    const ends = await Promise.all(slow);
    console.log(`# dribblers: ${ends.filter((e) => e.byServer).length} of ${HTTP_THREADS} cut off by the server, after ` +
                `${ends.map((e) => e.ms).sort((a, b) => a - b).join(", ")} ms`);
  }
});

}

process.exit(failures ? 1 : 0);
