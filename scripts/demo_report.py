#!/usr/bin/python3
"""Print the demo's results table from the JSON reports it wrote (scripts/demo.sh)."""
import json
import os
import sys


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def find(d, *keys):
    """First numeric value found under any of `keys`, searching nested dicts."""
    if isinstance(d, dict):
        for k in keys:
            if k in d and isinstance(d[k], (int, float)):
                return d[k]
        for v in d.values():
            r = find(v, *keys)
            if r is not None:
                return r
    if isinstance(d, list):
        for v in d:
            r = find(v, *keys)
            if r is not None:
                return r
    return None


def main():
    out = sys.argv[1]
    rows = []
    metrics = [m for m in (json.loads(l) for l in open(os.path.join(out, "pretrain", "metrics.jsonl")) if l.strip())
               if "event" not in m]
    evals = [m for m in metrics if "eval_loss" in m]
    if evals:
        rows.append(("pretraining", "held-out MLM loss (first -> last eval)", "%.3f -> %.3f" % (evals[0]["eval_loss"], evals[-1]["eval_loss"])))
        rows.append(("pretraining", "held-out MLM accuracy (last)", "%.3f" % evals[-1].get("eval_accuracy", float("nan"))))
    r = load(os.path.join(out, "eval_retrieval.json"))
    rf = load(os.path.join(out, "eval_retrieval_ft.json"))
    b = load(os.path.join(out, "baseline_retrieval.json"))
    for name, rep in (("ModernBERT (ours, zero-shot mean pooling)", r),
                      ("ModernBERT (ours, fine-tuned embedding, InfoNCE)", rf), ("BM25 baseline", b)):
        if rep:
            rows.append(("code retrieval", name + " nDCG@10 / MRR@10", "%.3f / %.3f" % (find(rep, "ndcg@10", "nDCG@10") or 0, find(rep, "mrr@10", "MRR@10") or 0)))
    s = load(os.path.join(out, "baseline_spam.json"))
    if s:
        for name, rep in sorted(s.get("baselines", {}).items()):
            t = rep.get("test", {})
            if "accuracy" in t:
                rows.append(("spam", "%s baseline test accuracy / macro-F1 / spam F1" % name,
                             "%.3f / %.3f / %.3f" % (t["accuracy"], t.get("macro_f1", 0), t.get("positive_f1", 0))))
    e = load(os.path.join(out, "eval_spam.json"))
    if e:
        rows.append(("spam", "ModernBERT (ours, fine-tuned) test accuracy / macro-F1 / spam F1",
                     "%.3f / %.3f / %.3f" % (find(e, "accuracy") or 0, find(e, "macro_f1") or 0, find(e, "positive_f1") or 0)))
    w = max(len(a) + len(b_) for a, b_, _ in rows) + 3
    print("\n%-*s %s" % (w, "results", "value"))
    print("-" * (w + 30))
    for a, b_, c in rows:
        print("%-*s %s" % (w, a + ": " + b_, c))
    print("\nplots: %s" % os.path.join(out, "pretrain_curves.png"))


if __name__ == "__main__":
    main()
