#!/usr/bin/python3
"""Correctness guard of run_cpu_bench.sh: our last_hidden_state vs ONNX Runtime's, max-abs.

    compare_hidden.py OURS.safetensors ORT.bin [--tol 1e-3]

OURS: `modernbert bench --dump-hidden` (last_hidden_state F32 [T, H], cu_seqlens I64 [B+1]).
ORT:  `ort_bench.mjs --dump-hidden` (real tokens only, f32 [T, H], raw little-endian).
Exits 1 (printing the worst token) when max |ours - ort| > tol or anything is not finite.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ours")
    ap.add_argument("ort")
    ap.add_argument("--tol", type=float, default=1e-3)
    a = ap.parse_args()
    t = read_safetensors(a.ours)
    ours, cu = t["last_hidden_state"], t["cu_seqlens"]
    ort = np.fromfile(a.ort, dtype="<f4")
    if ort.size != ours.size:
        sys.exit("size mismatch: ours %s (%d floats), ort %d floats" % (ours.shape, ours.size, ort.size))
    ort = ort.reshape(ours.shape)
    if not (np.isfinite(ours).all() and np.isfinite(ort).all()):
        sys.exit("non-finite values in the hidden states")
    d = np.abs(ours.astype(np.float64) - ort)
    worst = np.unravel_index(np.argmax(d), d.shape)
    seq = int(np.searchsorted(cu, worst[0], side="right") - 1)
    res = {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "tokens": int(ours.shape[0]),
           "sequences": int(len(cu) - 1), "hidden_abs_max": float(np.abs(ort).max()), "tol": a.tol,
           "worst": {"token": int(worst[0]), "sequence": seq, "channel": int(worst[1])}}
    print(json.dumps(res))
    if not d.max() <= a.tol:
        sys.exit("correctness guard FAILED: max-abs %g > %g" % (d.max(), a.tol))


if __name__ == "__main__":
    main()
