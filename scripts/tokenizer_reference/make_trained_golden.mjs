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

// Variants of the trained tokenizer exercising the other supported options, with HF's output:
//   prefix_trim: add_prefix_space, Sequence[ByteLevel(trim_offsets), TemplateProcessing],
//                "a b" string merges, Sequence[NFC] normalizer, [unused0] single_word+rstrip
//   noregex_trim: use_regex false, ByteLevel post-processor only (no special tokens),
//                 [unused1] lstrip+rstrip, truncation from the file
{
  const base = JSON.parse(fs.readFileSync(path.join(dir, 'trained_small', 'tokenizer.json'), 'utf8'));
  const variants = {};
  {
    const v = structuredClone(base);
    v.pre_tokenizer.add_prefix_space = true;
    v.post_processor = { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true }, base.post_processor] };
    v.model.merges = v.model.merges.map(([a, b]) => `${a} ${b}`);
    v.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFC' }] };
    for (const t of v.added_tokens) if (t.content === '[unused0]') Object.assign(t, { single_word: true, rstrip: true });
    variants.prefix_trim = v;
  }
  {
    const v = structuredClone(base);
    v.pre_tokenizer.use_regex = false;
    v.post_processor = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
    for (const t of v.added_tokens) if (t.content === '[unused1]') Object.assign(t, { lstrip: true, rstrip: true });
    v.truncation = { direction: 'Right', max_length: 40, strategy: 'LongestFirst', stride: 0 };
    variants.noregex_trim = v;
  }
  const extra = ['x [unused0] y', 'x[unused0]y', ' [unused0]', 'a\t[unused1]\tb', '[unused1]  [unused1]', 'no  prefix', ' lead', '  two lead',
    'trail  ', '\u3000[unused0]\u3000', 'é[unused0]é', '_[unused0]_', '-[unused0]-'];
  const short = texts.filter((t) => t.length <= 300).slice(0, 150).concat(extra);
  fs.mkdirSync(path.join(dir, 'variants'), { recursive: true });
  for (const [name, v] of Object.entries(variants)) {
    const file = path.join(dir, 'variants', `${name}.json`);
    fs.writeFileSync(file, JSON.stringify(v) + '\n');
    const vt = Tokenizer.fromFile(file);
    const lines = [];
    for (const text of short) {
      const a = await encodeBytes(vt, text, null, true);
      const p = await encodeBytes(vt, text, 'pair [unused0] second', true);
      lines.push(JSON.stringify({ text, ids: a.ids, offsets: a.offsets, pair_ids: p.ids, pair_offsets: p.offsets }));
    }
    fs.writeFileSync(path.join(dir, 'variants', `${name}_expected.jsonl`), lines.join('\n') + '\n');
    console.log(`variants/${name}: ${lines.length} texts`);
  }
}
