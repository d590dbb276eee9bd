#!/usr/bin/python3
"""Export the PyTorch reference (through bench/peers/padded_model.py) to ONNX for ONNX Runtime.

    export_onnx.py --model DIR --out FILE.onnx [--opset 17]

Inputs input_ids, attention_mask (int64 [batch, sequence]); output last_hidden_state
(float32 [batch, sequence, H]); batch and sequence are dynamic axes. Before exporting, the wrapper
is checked against modernbert_ref.encoder on a ragged padded batch (max-abs <= 1e-4).
"""
import argparse
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from padded_model import PaddedModernBert, check_against_reference  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.time()
    m = PaddedModernBert(args.model).eval()
    r = random.Random(0)
    V = m.cfg.vocab_size
    seqs = [[r.randrange(V) for _ in range(n)] for n in (7, 300, 41)]
    diff = check_against_reference(m, seqs)
    print("wrapper vs reference: max-abs %.3g" % diff, file=sys.stderr)
    ids = torch.randint(0, V, (2, 16), dtype=torch.int64)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0
    tmp = args.out + ".tmp"
    with torch.no_grad():
        torch.onnx.export(
            m, (ids, mask), tmp, opset_version=args.opset, do_constant_folding=True,
            input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "last_hidden_state": {0: "batch", 1: "sequence"}})
    os.replace(tmp, args.out)
    print("wrote %s (%.0f MiB, %.1f s)" % (args.out, os.path.getsize(args.out) / 2**20, time.time() - t0), file=sys.stderr)


if __name__ == "__main__":
    main()
