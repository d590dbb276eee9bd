// HF's encoding of texts with the committed small trained tokenizer
// (tests/data/tokenizer/trained_small/tokenizer.json, made by
//   head -100 shared/data/corpus/heldout.jsonl > slice.jsonl
//   modernbert train-tokenizer --input slice.jsonl --vocab-size 1000 --out tests/data/tokenizer/trained_small)
// -> tests/data/tokenizer/trained_small/hf_expected.jsonl. Run after make_goldens.mjs.
//   node make_trained_golden.mjs [--shared DIR]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer, encodeBytes } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
let shared = path.resolve(repo, '..', 'shared', 'data');
for (let i = 2; i < process.argv.length; i++) if (process.argv[i] === '--shared') shared = path.resolve(process.argv[++i]);
const dir = path.join(repo, 'tests', 'data', 'tokenizer');
const tt = Tokenizer.fromFile(path.join(dir, 'trained_small', 'tokenizer.json'));
const texts = fs.readFileSync(path.join(dir, 'adversarial.jsonl'), 'utf8').split('\n').filter((l) => l)
  .map((l) => JSON.parse(l)).filter((c) => c.text_pair == null && c.max_length == null).map((c) => c.text).filter((t) => t.length <= 2000).slice(0, 400);
const docs = fs.readFileSync(path.join(shared, 'corpus', 'heldout.jsonl'), 'utf8').split('\n').filter((l) => l);
for (const l of docs.slice(100, 110)) texts.push(JSON.parse(l).text);
const out = [];
for (const text of texts) {
  const { ids, offsets } = await encodeBytes(tt, text, null, true);
  out.push(JSON.stringify({ text, ids, offsets, decoded: await tt.decode(ids, true) }));
}
fs.writeFileSync(path.join(dir, 'trained_small', 'hf_expected.jsonl'), out.join('\n') + '\n');
console.log(`trained_small/hf_expected.jsonl: ${out.length} texts`);
