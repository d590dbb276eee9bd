#!/usr/bin/python3
"""PyTorch 1.13 eager peer of bench/bench_train: one MLM training step (forward, sparse-prediction
loss over the labelled positions, backward, torch.optim.AdamW step) with the reference model
(tests/reference/modernbert_ref.py) on the batch bench_train wrote (rows of one document each, so
the padded formulation computes the same attention; the mask is all ones). torch.set_num_threads.
Prints one JSON line with the keys of bench_train.

    torch_train_bench.py --model DIR --batch B.jsonl [--threads 2] [--warmup 1] [--repeat 3]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
import modernbert_ref as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows = [json.loads(line) for line in open(a.batch) if line.strip()]
    ids = torch.tensor([r["input_ids"] for r in rows], dtype=torch.long)
    labels = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
    mask = torch.ones_like(ids)
    ck = ref.load_checkpoint(a.model)
    p = ck.params(torch.float32, requires_grad=True)
    opt = torch.optim.AdamW(list(p.values()), lr=1e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=1e-5)
    keep = labels != -100
    times, first = [], None
    for s in range(a.warmup + a.repeat):
        t0 = time.perf_counter()
        h = ref.encoder(p, ck.cfg, ids, mask)
        logits = ref.mlm_logits(p, ck.cfg, h[keep])
        loss = F.cross_entropy(logits, labels[keep])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if first is None:
            first = loss.item()
        if s >= a.warmup:
            times.append(dt)
        print("torch_train_bench: step %d loss %.4f %.2f s" % (s + 1, loss.item(), dt), file=sys.stderr)
    med = statistics.median(times)
    tokens = ids.numel()
    print(json.dumps({"system": "torch", "tokens": tokens, "rows": ids.shape[0], "seq_len": ids.shape[1],
                      "seconds_median": med, "seconds_min": min(times), "tokens_per_s": tokens / med, "loss": first,
                      "optimizer": "adamw (torch.optim)",
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
