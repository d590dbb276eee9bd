#!/usr/bin/python3
"""Write the CPU benchmark workloads as JSONL ({"input_ids": [...]} per line), fixed seeds.

    make_workloads.py OUT_DIR [--vocab-size 50368]

  a.jsonl  64 sequences x 128 tokens                       (short, uniform: classification/search)
  b.jsonl  32 sequences, lengths uniform in [16, 512]      (ragged: where padding hurts)
  c.jsonl  1 sequence of 8192 tokens                       (long context)
  d.jsonl  8 sequences x 1024 tokens                       (medium, uniform)

Every sequence is [CLS]=50281, random ids, [SEP]=50282. The random ids are drawn from the ordinary
ordinary BPE part of the ModernBERT vocabulary, [2, 50254): the added tokens are 0 |||IP_ADDRESS|||,
1 <|padding|>, 50254-50276 whitespace runs, 50277-50278 PII placeholders, 50279 <|endoftext|>,
50280-50284 [UNK] [CLS] [SEP] [PAD] [MASK] and 50285-50367 [unusedN] (spec §5). No torch or numpy needed: Python's own Mersenne Twister, one seed
per workload, so the files are byte-identical across machines.
"""
import argparse
import json
import os
import random

CLS, SEP = 50281, 50282
ORDINARY = (2, 50254)  # ids [2, 50254) are ordinary BPE tokens

WORKLOADS = {
    # name: (seed, list of lengths or a generator)
    "a": (101, lambda r: [128] * 64),
    "b": (102, lambda r: [r.randint(16, 512) for _ in range(32)]),
    "c": (103, lambda r: [8192]),
    "d": (104, lambda r: [1024] * 8),
}


def sequence(r, n):
    return [CLS] + [r.randrange(*ORDINARY) for _ in range(n - 2)] + [SEP]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, (seed, lengths) in WORKLOADS.items():
        r = random.Random(seed)
        lens = lengths(r)
        path = os.path.join(args.out_dir, name + ".jsonl")
        with open(path + ".tmp", "w") as f:
            for n in lens:
                f.write(json.dumps({"input_ids": sequence(r, n)}, separators=(",", ":")) + "\n")
        os.replace(path + ".tmp", path)
        print("%s: %d sequences, %d tokens (lengths %d..%d)" % (path, len(lens), sum(lens), min(lens), max(lens)))


if __name__ == "__main__":
    main()
