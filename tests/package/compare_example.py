#!/usr/bin/env python3
"""Checks an example program's output against the CLI's embeddings (tests/package/test_install.sh).

    compare_example.py c|cpp CLI_EMBEDDINGS.jsonl EXAMPLE_OUTPUT.txt

CLI_EMBEDDINGS: `modernbert embed` of the example's texts, one {"embedding": [...]} per line.
  c:   texts a, b                          examples/c/embed.c prints "embeddings: 2 x D" and
                                           "cosine(text 0, text 1) = %.4f"
  cpp: texts a, b, query, doc 0, 1, 2      examples/cpp/embed_and_rerank.cpp prints
                                           "embeddings: 2 x D", "cosine: %.6f", then one
                                           "index<TAB>score<TAB>doc" per doc, best first: with a
                                           model without a classifier or projection, rerank is the
                                           cosine of sentence embeddings.
Exits 1 with what differs.
"""
import json
import math
import sys


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def main():
    kind, emb_path, out_path = sys.argv[1:4]
    with open(emb_path, encoding="utf-8") as f:
        emb = [json.loads(line)["embedding"] for line in f if line.strip()]
    with open(out_path, encoding="utf-8") as f:
        out = f.read().splitlines()
    problems = []

    def expect(cond, what):
        if not cond:
            problems.append(what)

    dim = len(emb[0])
    expect(out and out[0] == f"embeddings: 2 x {dim}", f"line 1 should be 'embeddings: 2 x {dim}'")
    want = cosine(emb[0], emb[1])
    if kind == "c":
        prefix = "cosine(text 0, text 1) = "
        got = [l[len(prefix):] for l in out if l.startswith(prefix)]
        expect(len(got) == 1 and abs(float(got[0]) - want) <= 1e-4, f"cosine should be {want:.4f}")
    else:
        expect(len(out) >= 2 and out[1].startswith("cosine: ") and abs(float(out[1][8:]) - want) <= 2e-5,
               f"line 2 should be 'cosine: {want:.6f}'")
        query, docs = emb[2], emb[3:]
        scores = [cosine(query, d) for d in docs]
        order = sorted(range(len(docs)), key=lambda i: (-scores[i], i))
        hits = [l.split("\t") for l in out[2:]]
        expect([int(h[0]) for h in hits] == order, f"rerank order should be {order} (scores {scores})")
        for h in hits:
            expect(abs(float(h[1]) - scores[int(h[0])]) <= 2e-5, f"doc {h[0]}: score should be {scores[int(h[0])]:.6f}")
    if problems:
        print("compare_example: " + "; ".join(problems) + "\noutput was:\n" + "\n".join(out), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
