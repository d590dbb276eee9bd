#!/usr/bin/python3
"""Correctness guard of run_cpu_bench.sh: two last_hidden_states of the same tokens, max-abs or cosine.

    compare_hidden.py A B [--tol 1e-3] [--min-cosine C]

A and B are each either `modernbert bench --dump-hidden` output (.safetensors: last_hidden_state
F32 [T, H], cu_seqlens I64 [B+1]) or `ort_bench.mjs --dump-hidden` output (.bin: real tokens only,
f32 [T, H], raw little-endian; its H is taken from the other file, or --hidden when both are .bin).
Default: exits 1 (printing the worst token) when max |A - B| > tol or anything is not finite.
With --min-cosine (reduced precision: int8 / bf16 against f32) the per-token cosine similarity is
reported (mean, min) and the check is min >= C instead of the max-abs bound.
Needs numpy only.
"""
import argparse
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(data[b:e], dtype=dt).reshape(v["shape"])
    return out


def load(path, hidden):
    """(hidden [T, H] float, cu_seqlens or None)."""
    if path.endswith(".safetensors"):
        t = read_safetensors(path)
        return t["last_hidden_state"], t["cu_seqlens"]
    x = np.fromfile(path, dtype="<f4")
    if not hidden or x.size % hidden:
        sys.exit("%s: %d floats, not a whole number of rows of H=%s" % (path, x.size, hidden))
    return x.reshape(-1, hidden), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("ort")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--min-cosine", type=float, default=None)
    ap.add_argument("--hidden", type=int, default=0, help="H, when both files are .bin")
    a = ap.parse_args()
    H = a.hidden
    for p in (a.ours, a.ort):
        if p.endswith(".safetensors"):
            H = read_safetensors(p)["last_hidden_state"].shape[1]
    ours, cu = load(a.ours, H)
    ort, cu2 = load(a.ort, H)
    cu = cu if cu is not None else cu2
    if ort.shape != ours.shape:
        sys.exit("size mismatch: %s %s, %s %s" % (a.ours, ours.shape, a.ort, ort.shape))
    if not (np.isfinite(ours).all() and np.isfinite(ort).all()):
        sys.exit("non-finite values in the hidden states")
    d = np.abs(ours.astype(np.float64) - ort)
    worst = np.unravel_index(np.argmax(d), d.shape)
    seq = int(np.searchsorted(cu, worst[0], side="right") - 1) if cu is not None else None
    res = {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "tokens": int(ours.shape[0]),
           "sequences": int(len(cu) - 1) if cu is not None else None, "hidden_abs_max": float(np.abs(ort).max()),
           "tol": a.tol, "worst": {"token": int(worst[0]), "sequence": seq, "channel": int(worst[1])}}
    if a.min_cosine is not None:
        x, y = ours.astype(np.float64), ort.astype(np.float64)
        cos = (x * y).sum(1) / np.maximum(np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1), 1e-300)
        res.update(cosine_mean=float(cos.mean()), cosine_min=float(cos.min()), min_cosine=a.min_cosine)
        del res["tol"]
    print(json.dumps(res))
    if a.min_cosine is not None:
        if not cos.min() >= a.min_cosine:
            sys.exit("correctness guard FAILED: minimum per-token cosine %.6f < %g" % (cos.min(), a.min_cosine))
    elif not d.max() <= a.tol:
        sys.exit("correctness guard FAILED: max-abs %g > %g" % (d.max(), a.tol))


if __name__ == "__main__":
    main()
