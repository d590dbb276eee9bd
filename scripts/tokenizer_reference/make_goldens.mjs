// Regenerates the tokenizer parity goldens in tests/data/tokenizer/ with Hugging Face's Rust
// tokenizers (npm `tokenizers`, the official Node binding).
//
//   cd scripts/tokenizer_reference && npm ci && node make_goldens.mjs [--shared ../../../shared/data]
//
// Writes:
//   adversarial.jsonl          hand-written + generated hard inputs with full expected output
//                              (ids/offsets with and without special tokens, decode, truncation)
//   corpus/<set>.txt           one line per document: first 12 hex digits of
//                              sha256(canonical ids+offsets with special tokens) and token count
//   corpus_samples.jsonl       full ids + offsets of the first documents of each set
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Tokenizer, encodeBytes, canonical } from './common.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
let shared = path.resolve(repo, '..', 'shared', 'data');
for (let i = 2; i < process.argv.length; i++)
  if (process.argv[i] === '--shared') shared = path.resolve(process.argv[++i]);
const outDir = path.join(repo, 'tests', 'data', 'tokenizer');
fs.mkdirSync(path.join(outDir, 'corpus'), { recursive: true });

const tkPath = path.join(shared, 'modernbert-tokenizer', 'tokenizer.json');
const tk = Tokenizer.fromFile(tkPath);

// ----------------------------------------------------------------------------------------------
// Adversarial inputs. Deterministic: a fixed-seed PRNG drives the generated part.
let seed = 0x9e3779b9;
function rand() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

const cases = [];
const add = (text, extra = {}) => cases.push({ text, ...extra });

// Whitespace runs of every length 1..30 mixing space, tab, newline and CR, alone, between
// words, leading and trailing.
const wsChars = [' ', '\t', '\n', '\r'];
for (let n = 1; n <= 30; n++) {
  const spaces = ' '.repeat(n);
  let mixed = '';
  for (let k = 0; k < n; k++) mixed += pick(wsChars);
  let alt = '';
  for (let k = 0; k < n; k++) alt += wsChars[k % 4];
  for (const run of [spaces, mixed, alt, '\n'.repeat(n), '\t'.repeat(n), ' '.repeat(n - 1) + '\n']) {
    add(`word${run}next`);
    add(run);
    add(`${run}lead`);
    add(`trail${run}`);
  }
  add(`x${' '.repeat(n)}1${' '.repeat(n)}!`);
  add(`\r\n`.repeat(n) + 'end');
}
// Contractions in all cases.
for (const c of ["s", "t", "re", "ve", "m", "ll", "d"]) {
  const variants = new Set([c, c.toUpperCase(), c[0].toUpperCase() + c.slice(1), c[0] + c.slice(1).toUpperCase()]);
  for (const v of variants) {
    add(`it'${v} here`);
    add(`'${v}`);
    add(`don '${v} x'${v}'${v}`);
    add(`?'${v}`);
  }
}
add("I'm, you're, we've, they'll, she'd, it's, can't, Y'ALL'RE, O'Neil, rock'n'roll, 'quoted'");
add("’s curly apostrophe’s and ‘quotes’");
// Digit runs.
for (let n = 1; n <= 24; n++) add('7'.repeat(n) + ' ' + '1234567890'.repeat(3).slice(0, n));
add('3.14159 2.71828 1,000,000 1e-10 0x1F 0b1010 ¹²³ ½ ⅓ Ⅻ ٣٤ ४५ ௰');
// NFC and NFD accents, composition corner cases.
add('café naïve résumé Ångström façade Zürich');
add('cafe\u0301 nai\u0308ve re\u0301sume\u0301 A\u030Angstro\u0308m fac\u0327ade Zu\u0308rich');
add('\u212B \u2126 \u0344 \u0958 \u0F73 \u1E9B\u0323 \uFB01 \u00C5\u0301');
add('a\u0301\u0323 a\u0323\u0301 e\u0323\u0302 \u1EC7 o\u031B\u0303 q\u0307\u0323');
add('\u1100\u1161\u11A8 \u1100\u1161 \uAC00\u11A8 \u110B\u1173\u11AF');
add('\u0301 leading combining mark, space \u0301 then mark, [MASK]\u0301 after special');
add('x\u0300\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308\u0309\u030A\u030B\u030C\u030D');
// Scripts.
add('我想在apple工作，日本語のテキスト、한국어 텍스트。中文标点！');
add('العربية: مرحبا بالعالم ١٢٣ والكتابة من اليمين');
add('हिन्दी देवनागरी लिपि में लिखी जाती है। १२३');
add('ภาษาไทย ไม่มีช่องว่าง ระหว่างคำ Ελληνικά Русский עברית ქართული Հայերեն');
// Emoji.
add('👨\u200d👩\u200d👧\u200d👦 family, 👍🏽 skin, 🇫🇷🇯🇵🇺🇸 flags, 1\uFE0F\u20E3 keycap, 🏳\uFE0F\u200d🌈, 😶\u200d🌫\uFE0F');
add('🚀🚀🚀 ✅✅ 🦙 emoji🙂inside words🎉!');
// Zero-width, controls, special spaces.
add('zero\u200bwidth\u200cnon\u200djoiner\uFEFFbom');
add('ctl\u0000nul\u0001soh\u0007bel\u001bESC\u007fDEL\u0085NEL\u2028LS\u2029PS');
add('nbsp\u00a0ideographic\u3000ogham\u1680mongolian\u180Ethin\u2009hair\u200Anarrow\u202Fmath\u205F.');
add('\u00a0\u00a0 \u3000\u3000x \u2003\u2003 y');
add('\v\f vertical tab and form feed \v\f');
// Code.
add('def foo(x):\n    return x**2  # square\n\n\nclass A:\n\tdef __init__(self):\n\t\tpass\n');
add('#include <stdio.h>\nint main(void) {\n    printf("%d\\n", 42);\n    return 0;\n}\n');
add('fn main() { let v: Vec<u8> = vec![1, 2, 3]; println!("{:?}", v); }');
add('const f = async (a, b) => { await x?.y ?? z; return `${a}${b}`; };');
add('SELECT id, name FROM users WHERE age >= 18 AND name LIKE \'%o%\';');
add('<div class="a">Hello&nbsp;<b>world</b></div>\n<!-- comment -->');
add('for i in $(seq 1 10); do echo "$i" | sed -e \'s/1/x/g\' >> out.txt; done');
add('    if (x) {\n        y();\n    }\n                            deep();\n');
// URLs and e-mails.
add('https://example.com/path/to/file.html?q=1&b=two#frag http://127.0.0.1:8080/ ftp://x.y/z');
add('mailto:foo.bar+tag@example.org, <john.doe@sub.example.co.uk>; a_b-c@d.io');
// Special and added tokens inside text.
for (const t of ['[MASK]', '[CLS]', '[SEP]', '[PAD]', '[UNK]', '[unused3]', '[unused82]', '<|endoftext|>', '<|padding|>', '|||IP_ADDRESS|||', '|||EMAIL_ADDRESS|||']) {
  add(`a${t}b`);
  add(`a ${t} b`);
  add(`a  ${t}  b`);
  add(`${t}`);
  add(` ${t}`);
  add(`${t} `);
  add(`\t\n ${t}x`);
  add(`${t}${t}`);
  add(`x\u3000${t}`);
  add(`${t.slice(0, -1)} partial`);
}
add('[mask] [Mask] [MASK [MASK]] [[MASK]] [unused83] [unused] [CLS][SEP][PAD]');
// Long words and the empty string.
add('a'.repeat(10000));
add('ab'.repeat(5000));
{
  let w = '';
  for (let k = 0; k < 10000; k++) w += pick('abcdefghijklmnopqrstuvwxyz');
  add(w);
}
add('9'.repeat(10000));
add('!'.repeat(3000) + ' ' + '\u00e9'.repeat(2000));
add('');
add(' ');
add('\n');
// Random mixtures from a pool of hard characters.
const pool = [' ', ' ', ' ', '  ', '\t', '\n', '\r', 'a', 'Z', 'é', 'e\u0301', '\u0301', '1', '٣', "'s", "'", '"', '.', ',', '-', '_',
  '中', 'ア', '한', 'ع', 'क', '\u093f', '😀', '👍🏽', '\u200d', '\u200b', '\u00a0', '\u3000', '[MASK]', '[CLS]', ' [MASK]', '[unused1]',
  '<|endoftext|>', '\u0000', '\u007f', '𝔘', '\uFE0F', '🇫🇷', 'ǅ', 'ß', 'İ', 'ﬁ', '\u212B', '\u1100\u1161', 'http://x.y', '$', '€', '½'];
for (let k = 0; k < 400; k++) {
  const n = 1 + Math.floor(rand() * 40);
  let s = '';
  for (let q = 0; q < n; q++) s += pick(pool);
  add(s);
}
// Pairs and truncation.
add('What is the capital of France?', { text_pair: 'Paris is the capital of France.' });
add('', { text_pair: 'only second' });
add('only first', { text_pair: '' });
add('émoji 😀 first', { text_pair: 'second [MASK] 👍🏽 with ünïcode' });
for (const ml of [3, 4, 5, 8, 13, 64]) {
  add('The quick brown fox jumps over the lazy dog near the river bank today', { max_length: ml });
  add('short one', { text_pair: 'a much longer second sequence that will need truncation first', max_length: ml });
  add('a much longer first sequence that will need truncation before the other', { text_pair: 'short', max_length: ml });
  add('both sequences are fairly long here', { text_pair: 'and this one is also fairly long', max_length: ml });
}

const tkTrunc = new Map();
async function run(c, special) {
  let t = tk;
  if (c.max_length != null) {
    if (!tkTrunc.has(c.max_length)) {
      const x = Tokenizer.fromFile(tkPath);
      x.setTruncation(c.max_length, { strategy: 'LongestFirst' });
      tkTrunc.set(c.max_length, x);
    }
    t = tkTrunc.get(c.max_length);
  }
  return encodeBytes(t, c.text, c.text_pair, special);
}

{
  const lines = [];
  for (const c of cases) {
    const w = await run(c, true);
    const n = await run(c, false);
    const rec = { ...c, ids: w.ids, offsets: w.offsets, ids_no_special: n.ids, offsets_no_special: n.offsets };
    rec.decoded = await tk.decode(w.ids, false);
    rec.decoded_skip_special = await tk.decode(w.ids, true);
    lines.push(JSON.stringify(rec));
  }
  fs.writeFileSync(path.join(outDir, 'adversarial.jsonl'), lines.join('\n') + '\n');
  console.log(`adversarial.jsonl: ${cases.length} cases`);
}

// ----------------------------------------------------------------------------------------------
// Corpus and downstream sets: compact per-document hashes.
const sets = [
  ['corpus_train', 'corpus/train.jsonl', 'text'],
  ['corpus_heldout', 'corpus/heldout.jsonl', 'text'],
];
for (const split of ['train', 'dev', 'test']) {
  for (const name of ['spam_assassin', 'rt_polarity', 'wordnet_supersense'])
    sets.push([`${name}_${split}`, `downstream/${name}/${split}.jsonl`, 'text']);
  for (const name of ['manpages_retrieval', 'python_code_retrieval'])
    sets.push([`${name}_queries_${split}`, `downstream/${name}/queries_${split}.jsonl`, 'query']);
}
for (const name of ['manpages_retrieval', 'python_code_retrieval'])
  sets.push([`${name}_corpus`, `downstream/${name}/corpus.jsonl`, 'text']);

const samples = [];
const index = [];
for (const [name, rel, field] of sets) {
  const file = path.join(shared, rel);
  const rl = readline.createInterface({ input: fs.createReadStream(file), crlfDelay: Infinity });
  const out = [];
  let k = 0, tokens = 0;
  for await (const line of rl) {
    if (!line) continue;
    const text = JSON.parse(line)[field];
    const { ids, offsets } = await encodeBytes(tk, text, null, true);
    const h = createHash('sha256').update(canonical(ids, offsets)).digest('hex').slice(0, 12);
    out.push(`${h} ${ids.length}`);
    if (k < 3) samples.push(JSON.stringify({ set: name, index: k, ids, offsets }));
    k++;
    tokens += ids.length;
  }
  fs.writeFileSync(path.join(outDir, 'corpus', `${name}.txt`), out.join('\n') + '\n');
  index.push({ name, file: rel, field, docs: k, tokens });
  console.log(`${name}: ${k} docs, ${tokens} tokens`);
}
fs.writeFileSync(path.join(outDir, 'corpus_samples.jsonl'), samples.join('\n') + '\n');
fs.writeFileSync(path.join(outDir, 'corpus', 'index.json'), JSON.stringify(index, null, 1) + '\n');

