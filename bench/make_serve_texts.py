#!/usr/bin/python3
"""Write the serving benchmark's request texts (mixed lengths, real English), fixed seed.

    make_serve_texts.py --modernbert build/modernbert --model DIR --out OUT_DIR [--count 64]
                        [--min-tokens 16] [--max-tokens 512] [--seed 202]

Texts are word-aligned slices of the committed corpus fixture (tests/data/corpus/heldout.jsonl),
one per request, with a target length drawn uniformly in [--min-tokens, --max-tokens] tokens
(special tokens included) — the serving analogue of workload b in docs/benchmarks.md. Each slice is
grown word by word until the model's tokenizer (`modernbert tokenize`, the same tokenizer the
server uses) gives the target length, so the recorded counts are exact.

  OUT_DIR/texts.jsonl   {"text": ..., "tokens": N} per line: the load generator's request bodies and
                        `modernbert bench`'s input (it reads "text" and ignores "tokens")
  OUT_DIR/short.jsonl   one short text, same format (the added-latency measurement)
"""
import argparse
import json
import os
import random
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHORT = "What is the capital of France?"


def count_tokens(mb, model, texts):
    """Token counts (with [CLS]/[SEP]) of each text, by the model's own tokenizer."""
    inp = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    out = subprocess.run([mb, "tokenize", "--model", model, "--threads", "1"], input=inp.encode(),
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return [len(json.loads(l)["input_ids"]) for l in out.splitlines() if l.strip()]


def slice_to(mb, model, words, start, target):
    """The shortest word slice from `start` with >= target tokens (binary search on the word count)."""
    lo, hi = 1, min(len(words) - start, target)  # a word is at least one token
    while lo < hi:
        mid = (lo + hi) // 2
        n = count_tokens(mb, model, [" ".join(words[start:start + mid])])[0]
        if n >= target:
            hi = mid
        else:
            lo = mid + 1
    return " ".join(words[start:start + lo])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modernbert", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--min-tokens", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=512)
    ap.add_argument("--seed", type=int, default=202)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    docs = [json.loads(l)["text"] for l in open(os.path.join(ROOT, "tests/data/corpus/heldout.jsonl"))]
    docs = [d.split() for d in docs if len(d.split()) >= args.max_tokens]
    r = random.Random(args.seed)
    texts = []
    for i in range(args.count):
        words = docs[i % len(docs)]
        target = r.randint(args.min_tokens, args.max_tokens)
        start = r.randrange(0, len(words) - target)
        texts.append(slice_to(args.modernbert, args.model, words, start, target))
    counts = count_tokens(args.modernbert, args.model, texts)
    with open(os.path.join(args.out, "texts.jsonl"), "w") as f:
        for t, n in zip(texts, counts):
            f.write(json.dumps({"text": t, "tokens": n}) + "\n")
    n_short = count_tokens(args.modernbert, args.model, [SHORT])[0]
    with open(os.path.join(args.out, "short.jsonl"), "w") as f:
        f.write(json.dumps({"text": SHORT, "tokens": n_short}) + "\n")
    print(json.dumps({"texts": len(texts), "tokens": sum(counts), "min": min(counts), "max": max(counts),
                      "mean": sum(counts) / len(counts), "short_tokens": n_short}))


if __name__ == "__main__":
    main()
