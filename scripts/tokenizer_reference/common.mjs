// Shared helpers for the Hugging Face tokenizers reference scripts.
import { Tokenizer } from 'tokenizers';

export { Tokenizer };

// The Node binding reports offsets in code points of the JS string; our C++ tokenizer (and HF's
// Rust core) use UTF-8 bytes. Returns a function mapping a code-point index to a byte offset.
export function cpToByteMapper(text) {
  const cps = Array.from(text);
  const bytes = new Uint32Array(cps.length + 1);
  let b = 0;
  for (let i = 0; i < cps.length; i++) {
    bytes[i] = b;
    const c = cps[i].codePointAt(0);
    b += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
  }
  bytes[cps.length] = b;
  return (i) => bytes[i];
}

export async function encodeBytes(tk, text, pair, addSpecialTokens) {
  const e = await tk.encode(text, pair ?? null, { addSpecialTokens });
  const ids = e.getIds();
  const offs = e.getOffsets();
  const seq = pair != null ? e.getSequenceIds() : null;
  const m1 = cpToByteMapper(text);
  const m2 = pair != null ? cpToByteMapper(pair) : null;
  const offsets = offs.map(([s, t], i) => {
    // Special tokens (sequence id null) have [0, 0]; second-sequence offsets are relative to
    // the pair text.
    const m = seq && seq[i] === 1 ? m2 : m1;
    return [m(s), m(t)];
  });
  return { ids, offsets };
}

// Canonical string of an encoding, hashed for the compact corpus goldens.
export function canonical(ids, offsets) {
  let s = '';
  for (let i = 0; i < ids.length; i++) s += `${ids[i]}:${offsets[i][0]}:${offsets[i][1]};`;
  return s;
}
