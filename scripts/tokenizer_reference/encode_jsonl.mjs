// Encodes a JSONL file ({"text", optional "text_pair"} per line) with Hugging Face tokenizers and
// writes what `modernbert tokenize` writes: {"input_ids": [...], "offsets": [[s, e], ...]} with
// UTF-8 byte offsets. Used by the train-tokenizer parity test at test time.
//   node encode_jsonl.mjs TOKENIZER.json INPUT.jsonl OUTPUT.jsonl [--no-special]
import fs from 'node:fs';
import { Tokenizer, encodeBytes } from './common.mjs';

const [tokPath, input, output, flag] = process.argv.slice(2);
const tk = Tokenizer.fromFile(tokPath);
const out = [];
for (const line of fs.readFileSync(input, 'utf8').split('\n')) {
  if (!line) continue;
  const j = JSON.parse(line);
  const { ids, offsets } = await encodeBytes(tk, j.text, j.text_pair ?? null, flag !== '--no-special');
  out.push(JSON.stringify({ input_ids: ids, offsets }));
}
fs.writeFileSync(output, out.join('\n') + (out.length ? '\n' : ''));
