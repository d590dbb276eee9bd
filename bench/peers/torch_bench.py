#!/usr/bin/python3
"""PyTorch 1.13 eager peer of `modernbert bench`: the reference model (tests/reference/modernbert_ref.py)
as is, padded per batch (right padding to the batch's longest sequence + attention mask), under
torch.inference_mode() with torch.set_num_threads(--threads). Batches are the same sequences as ours:
packed greedily, in input order, by the real-token budget --max-batch-tokens (or a fixed --batch-size).
Prints one JSON line with the same keys as `modernbert bench`.

    torch_bench.py --model DIR --input W.jsonl [--threads 2] [--warmup 1] [--repeat 5]
                   [--max-batch-tokens 16384 | --batch-size N]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
import modernbert_ref as ref  # noqa: E402


def make_batches(seqs, budget, batch_size):
    out, cur, tok = [], [], 0
    for s in seqs:
        full = len(cur) >= batch_size if batch_size > 0 else tok + len(s) > budget
        if cur and full:
            out.append(cur)
            cur, tok = [], 0
        cur.append(s)
        tok += len(s)
    if cur:
        out.append(cur)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--max-batch-tokens", type=int, default=16384)
    ap.add_argument("--batch-size", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with open(a.input) as f:
        seqs = [json.loads(line)["input_ids"] for line in f if line.strip()]
    ck = ref.load_checkpoint(a.model)
    p = ck.params(torch.float32)
    batches = [ref.pad_batch(b, ck.cfg.pad_token_id) for b in make_batches(seqs, a.max_batch_tokens, a.batch_size)]

    def run_pass():
        for ids, mask in batches:
            ref.encoder(p, ck.cfg, ids, mask)

    with torch.inference_mode():
        for _ in range(a.warmup):
            run_pass()
        times = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            run_pass()
            times.append(time.perf_counter() - t0)
    tokens = sum(len(s) for s in seqs)
    med = statistics.median(times)
    print(json.dumps({
        "system": "pytorch", "version": torch.__version__, "tokens": tokens, "sequences": len(seqs),
        "batches": len(batches), "padded_tokens": sum(int(ids.numel()) for ids, _ in batches),
        "threads": torch.get_num_threads(), "repeat": a.repeat, "warmup": a.warmup,
        "seconds_median": med, "seconds_min": min(times), "seconds_all": times, "tokens_per_s": tokens / med,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
