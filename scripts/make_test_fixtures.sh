#!/usr/bin/env bash
# Re-creates the committed test fixtures under tests/data/ from the full data set (the shared
# data folder described in tests/data/README.md): the real ModernBERT tokenizer files verbatim,
# and small deterministic subsets of the corpus and downstream sets (no randomness: first N lines,
# first N of each label, fixed strides), so the suite runs on a fresh clone without that folder.
#   scripts/make_test_fixtures.sh [SHARED_DATA_DIR]     (default: $MB_SHARED_DATA or ../shared/data)
# Running it twice gives byte-identical files; `git status` after a run shows whether the
# committed fixtures still match their source.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:-${MB_SHARED_DATA:-../shared/data}}"
if [[ ! -f "$src/modernbert-tokenizer/tokenizer.json" ]]; then
  echo "make_test_fixtures: $src does not hold modernbert-tokenizer/tokenizer.json (pass the data folder)" >&2
  exit 1
fi
/usr/bin/env python3 - "$src" tests/data <<'EOF'
import json, os, shutil, sys

src, out = sys.argv[1], sys.argv[2]

def lines(path):
    with open(os.path.join(src, path), encoding="utf-8") as f:
        return [l for l in f.read().split("\n") if l]

def write(path, rows):
    p = os.path.join(out, path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(r + "\n")

def copy(path):
    p = os.path.join(out, path)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    shutil.copyfile(os.path.join(src, path), p)

# 1. The tokenizer files and test vectors, verbatim.
for f in ["tokenizer.json", "config_modernbert-base_seqcls-finetune.json",
          "testcases/cases.jsonl", "testcases/expected_with_special.jsonl",
          "testcases/expected_no_special.jsonl"]:
    copy("modernbert-tokenizer/" + f)

# 2. Corpus: the first 100 held-out documents (what tests/data/tokenizer/trained_small was trained
#    on, so retraining must reproduce it byte for byte) and the first 20 training documents
#    (texts the fresh-training parity test encodes, unseen by that training).
write("corpus/heldout.jsonl", lines("corpus/heldout.jsonl")[:100])
write("corpus/train.jsonl", lines("corpus/train.jsonl")[:20])

# 3. rt_polarity: the files list positives first; keep the first N of each label, in file order.
for split, n in [("train", 1000), ("dev", 100), ("test", 100)]:
    rows = lines(f"downstream/rt_polarity/{split}.jsonl")
    keep, seen = [], {}
    for r in rows:
        lab = json.loads(r)["label"]
        if seen.get(lab, 0) < n:
            seen[lab] = seen.get(lab, 0) + 1
            keep.append(r)
    write(f"downstream/rt_polarity/{split}.jsonl", keep)

# 4. manpages_retrieval: the first documents of each split (file order), and the queries of each
#    split whose positives are all among them (so closed-scope evaluation has no skipped query).
per_split = {"train": 40, "dev": 20, "test": 40}
docs = lines("downstream/manpages_retrieval/corpus.jsonl")
keep, seen, ids = [], {}, set()
for r in docs:
    d = json.loads(r)
    if seen.get(d["split"], 0) < per_split[d["split"]]:
        seen[d["split"]] = seen.get(d["split"], 0) + 1
        keep.append(r)
        ids.add(d["id"])
write("downstream/manpages_retrieval/corpus.jsonl", keep)
for split in ["train", "dev", "test"]:
    qs = [q for q in lines(f"downstream/manpages_retrieval/queries_{split}.jsonl")
          if all(p in ids for p in json.loads(q)["positive_ids"])]
    write(f"downstream/manpages_retrieval/queries_{split}.jsonl", qs)

# 5. Tokenizer parity sample: from each of the 19 sets of tests/data/tokenizer/corpus/index.json
#    (whose per-document goldens cover every document), the first 8 documents, 12 spread evenly
#    over the file, and every document tests/data/tokenizer/corpus_samples.jsonl spells out,
#    each with its index in the full file.
index = json.load(open(os.path.join(out, "tokenizer/corpus/index.json")))
wanted = {}
for s in map(json.loads, open(os.path.join(out, "tokenizer/corpus_samples.jsonl"))):
    wanted.setdefault(s["set"], set()).add(s["index"])
rows = []
for s in index:
    texts = lines(s["file"])
    n = len(texts)
    pick = set(range(min(8, n))) | {k * n // 12 for k in range(12)} | wanted.get(s["name"], set())
    for i in sorted(pick):
        rows.append(json.dumps({"set": s["name"], "index": i,
                                "text": json.loads(texts[i])[s["field"]]}, ensure_ascii=False))
write("tokenizer/parity_sample.jsonl", rows)
EOF
echo "fixtures written under tests/data/ from $src"
du -sh tests/data/modernbert-tokenizer tests/data/corpus tests/data/downstream tests/data/tokenizer/parity_sample.jsonl
