// Times Hugging Face tokenizers (Rust core via the npm binding) on a JSONL corpus.
//   RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node bench_hf.mjs TOKENIZER.json CORPUS.jsonl MODE
// MODE: "encode"  — one encode() per document, awaited in turn (single thread of Rust work);
//       "batch"   — one encodeBatch() over all documents (Rayon threads = RAYON_NUM_THREADS).
// Prints "RESULT mode=... tokens=N seconds=S".
import fs from 'node:fs';
import { Tokenizer } from 'tokenizers';

const [tokPath, corpus, mode = 'encode'] = process.argv.slice(2);
const texts = fs.readFileSync(corpus, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l).text);
const tk = Tokenizer.fromFile(tokPath);
let tokens = 0;
const t0 = process.hrtime.bigint();
if (mode === 'encode') {
  for (const t of texts) tokens += (await tk.encode(t, null, { addSpecialTokens: true })).getLength();
} else if (mode === 'batch') {
  const encs = await tk.encodeBatch(texts, { addSpecialTokens: true });
  for (const e of encs) tokens += e.getLength();
} else {
  throw new Error(`unknown mode ${mode}`);
}
const secs = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(`RESULT mode=${mode} tokens=${tokens} seconds=${secs.toFixed(4)}`);
