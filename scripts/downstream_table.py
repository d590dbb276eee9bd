#!/usr/bin/python3
"""Markdown table of scripts/downstream_results.sh's reports (DIR/<set>_test.json, <set>_finetune.json).

    downstream_table.py DIR
"""
import json
import os
import sys

CLS = [("spam", "spam_assassin"), ("rt", "rt_polarity"), ("wordnet", "wordnet_supersense")]
RET = [("manpages", "manpages_retrieval", "embedding"), ("code", "python_code_retrieval", "embedding"),
       ("manpages_colbert", "manpages_retrieval", "ColBERT"), ("code_colbert", "python_code_retrieval", "ColBERT")]


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def pct(x):
    return "–" if x is None else "%.2f" % (100.0 * x)


def main():
    d = sys.argv[1]
    print("| set | model | n (test) | accuracy | macro-F1 | MCC | pos-F1 | hard-ham acc. | best dev epoch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, ds in CLS:
        r, f = load(os.path.join(d, name + "_test.json")), load(os.path.join(d, name + "_finetune.json"))
        if not r:
            continue
        hard = r.get("groups", {}).get("hard-ham", {}).get("accuracy")
        pos = r.get("positive_f1")
        print("| %s | ModernBERT (ours, fine-tuned) | %d | %s | %s | %.2f | %s | %s | %s |" % (
            ds, r["n"], pct(r["accuracy"]), pct(r["macro_f1"]), 100 * r["mcc"],
            pct(pos) + (" (%s)" % r["positive_label"] if pos is not None else ""), pct(hard),
            f["best_epoch"] if f else "?"))
    print()
    print("| set | model | scope | queries | nDCG@10 | MRR@10 | R@1 | R@10 | R@100 | best dev epoch |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, ds, kind in RET:
        r, f = load(os.path.join(d, name + "_test.json")), load(os.path.join(d, name + "_finetune.json"))
        if not r:
            continue
        for scope, m in sorted(r["scopes"].items()):
            print("| %s | ModernBERT (ours, %s) | %s | %d | %s | %s | %s | %s | %s | %s |" % (
                ds, kind, scope, m["evaluated"], pct(m["ndcg@10"]), pct(m["mrr@10"]), pct(m["recall@1"]),
                pct(m["recall@10"]), pct(m["recall@100"]), f["best_epoch"] if f else "?"))


if __name__ == "__main__":
    main()
