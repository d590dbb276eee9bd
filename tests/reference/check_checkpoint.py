#!/usr/bin/python3
"""Validate a ModernBERT checkpoint dir and print per-tensor statistics as JSON.

    check_checkpoint.py DIR [--init-rules] [--z Z] [--output FILE.json]

Loads config.json + model.safetensors (or the sharded index), checks that the tensor names and shapes are
exactly those the config and the head (config.architectures, else inferred from the names) require
(spec §3; bare ModernBertModel names without `model.` accepted), and prints

    {"model_dir": ..., "head": "mlm", "num_labels": null, "prefixed": true, "errors": [...],
     "tensors": [{"name", "dtype", "shape", "numel", "nonfinite", "mean", "std", "min", "max", "sha256"}, ...],
     "init_rules": [...]}                                   (last key only with --init-rules)

`name` is the name as stored in the file; tensors are listed in file order; statistics are computed in
float64 on the stored, finite values (std is the population std, ddof=0; null when no finite value;
NaN/inf are counted in `nonfinite` and reported as errors); `sha256` is the hex SHA-256 of the tensor's
values as little-endian float32 bytes, row-major (F16/BF16 widen exactly to F32).

--init-rules checks every tensor against the spec §6.6 research-code "full_megatron" init
(modernbert_ref.init_rule): biases exactly 0, LayerNorm weights exactly 1, matrices a truncated normal
N(0, σ²) cut at ±c·σ (c = initializer_cutoff_factor): σ_in = initializer_range (Wqkv, Wi, head.dense),
σ_out = initializer_range/sqrt(2L) (attn.Wo, mlp.Wo), σ_emb = initializer_range (tok_embeddings),
σ_final_out = H^-0.5 (untied decoder.weight, classifier.weight). Tests per matrix with n values, all with
tolerances from n at Z standard errors (--z, default 6):
    bound   max|x| <= c·σ (plus storage rounding)
    mean    |mean| <= Z · σ_t / sqrt(n)              σ_t = std of the truncated normal
    std     |std/σ_t - 1| <= Z · sqrt((κ - 1) / (4n)) κ = kurtosis of the truncated normal
    core    fraction of |x| <= σ within Z binomial standard errors of its expected value (+ rounding)
    tail    max|x| >= (c - δ)·σ, δ the smallest of 0.01c, 0.02c, ... for which n·P(|x| > (c-δ)σ) >= 40
            (skipped when no δ <= c/2 qualifies)
Exit status: 0 when everything passes; 1 with one stderr line per failure naming the tensor; 2 on a load
error (unreadable file, bad config).
"""

import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modernbert_ref as ref  # noqa: E402

# Relative rounding allowance of the storage dtype (half an ulp at the value, rounded up).
_REL_ROUNDING = {"F32": 2.0 ** -23, "F16": 2.0 ** -10, "BF16": 2.0 ** -7, "F64": 2.0 ** -52}


def as_f32_numpy(t):
    return t.detach().to(torch.float32).contiguous().numpy()


def tensor_stats(name, dtype, t):
    x32 = as_f32_numpy(t)
    x = x32.astype(np.float64).reshape(-1)
    finite = x[np.isfinite(x)]
    n = finite.size
    return {
        "name": name,
        "dtype": dtype,
        "shape": list(t.shape),
        "numel": int(x.size),
        "nonfinite": int(x.size - n),  # NaN/inf count; the statistics below cover the finite values only
        "mean": float(finite.mean()) if n else None,
        "std": float(finite.std()) if n else None,
        "min": float(finite.min()) if n else None,
        "max": float(finite.max()) if n else None,
        "sha256": hashlib.sha256(x32.astype("<f4").tobytes(order="C")).hexdigest(),
    }


def _phi(z):
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _Phi(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def truncnorm_moments(c):
    """(E[x^2], E[x^4], P(|x| <= a) function) of a standard normal truncated to [-c, c]."""
    Z = 2.0 * _Phi(c) - 1.0
    m2 = 1.0 - 2.0 * c * _phi(c) / Z
    m4 = 3.0 - 2.0 * _phi(c) * (c ** 3 + 3.0 * c) / Z
    return m2, m4, (lambda a: (2.0 * _Phi(min(a, c)) - 1.0) / Z)


def check_truncated_normal(x, sigma, c, dtype, z):
    """List of (check, ok, detail) for values x (float64 1-D) against N(0, σ²) truncated at ±cσ."""
    n = x.size
    rel = _REL_ROUNDING.get(dtype, 2.0 ** -7)
    m2, m4, cdf_abs = truncnorm_moments(c)
    sigma_t = sigma * math.sqrt(m2)
    res = []
    amax = float(np.abs(x).max())
    bound = c * sigma * (1.0 + rel) + 1e-30
    res.append(("bound", amax <= bound, "max|x| %.6g, limit %.6g (%g sigma)" % (amax, bound, c)))
    if n < 16:
        return res
    mean = float(x.mean())
    tol = z * sigma_t / math.sqrt(n) + rel * sigma
    res.append(("mean", abs(mean) <= tol, "mean %.6g, tolerance %.3g" % (mean, tol)))
    std = float(x.std())
    kurt = m4 / (m2 * m2)
    tol = z * math.sqrt((kurt - 1.0) / (4.0 * n)) + rel
    res.append(("std", abs(std / sigma_t - 1.0) <= tol,
                "std %.6g, expected %.6g (sigma %.6g truncated at %g), rel tolerance %.3g" % (std, sigma_t, sigma, c, tol)))
    if c > 1.0:
        p = cdf_abs(1.0)
        frac = float((np.abs(x) <= sigma).mean())
        # + values that storage rounding can move across ±sigma (density at ±sigma times the rounding step)
        density = 2.0 * _phi(1.0) / (2.0 * _Phi(c) - 1.0)
        tol = z * math.sqrt(p * (1.0 - p) / n) + 1.0 / n + density * rel
        res.append(("core", abs(frac - p) <= tol, "fraction |x|<=sigma %.5f, expected %.5f ± %.5f" % (frac, p, tol)))
    for k in range(1, 51):
        delta = 0.01 * k * c
        q = 1.0 - cdf_abs(c - delta)
        if n * q >= 40.0:
            floor = (c - delta) * sigma * (1.0 - rel)
            res.append(("tail", amax >= floor, "max|x| %.6g, expected >= %.6g (%.3g sigma)" % (amax, floor, c - delta)))
            break
    return res


def check_init_rules(ck, z):
    cfg = ck.cfg
    c = cfg.initializer_cutoff_factor
    results, failures = [], []
    emb = ck.tensors.get("model.embeddings.tok_embeddings.weight")
    for name, t in ck.tensors.items():
        fname = ref.file_name(name, ck.prefixed)
        dtype = ck.file_dtypes[name]
        x = as_f32_numpy(t).astype(np.float64).reshape(-1)
        if name == "decoder.weight" and cfg.tie_word_embeddings:
            same = emb is not None and torch.equal(t.to(torch.float32), emb.to(torch.float32))
            checks = [("tied", same, "stored decoder.weight must equal tok_embeddings when tied")]
            rule, sigma = "tied", None
        else:
            rule, sigma = ref.init_rule(cfg, name)
            if rule == "zero":
                bad = int(np.count_nonzero(x != 0.0))
                checks = [("zero", bad == 0, "%d of %d values are not 0" % (bad, x.size))]
            elif rule == "one":
                bad = int(np.count_nonzero(x != 1.0))
                checks = [("one", bad == 0, "%d of %d values are not 1" % (bad, x.size))]
            else:
                checks = check_truncated_normal(x, sigma, c, dtype, z)
        ok = all(ok for _, ok, _ in checks)
        results.append({"name": fname, "rule": rule, "sigma": sigma, "ok": ok,
                        "checks": [{"check": k, "ok": o, "detail": d} for k, o, d in checks]})
        for k, o, d in checks:
            if not o:
                failures.append("init rule failed: %s: %s check (rule %s%s): %s"
                                % (fname, k, rule, "" if sigma is None else ", sigma %.6g" % sigma, d))
    return results, failures


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--init-rules", action="store_true", help="check the spec §6.6 init distribution per tensor")
    ap.add_argument("--z", type=float, default=6.0, help="standard errors allowed by the statistical checks")
    ap.add_argument("--output", help="write the JSON here instead of stdout")
    a = ap.parse_args(argv)

    try:
        ck = ref.load_checkpoint(a.model_dir, strict=False)
    except Exception as e:  # noqa: BLE001 - report any load failure as one line
        print("error: %s" % e, file=sys.stderr)
        return 2
    errors = ref.check_names(ck.cfg, ck.tensors, ck.head, ck.num_labels)
    stats = [tensor_stats(ref.file_name(k, ck.prefixed), ck.file_dtypes[k], v) for k, v in ck.tensors.items()]
    errors += ["tensor %s has %d non-finite values" % (s["name"], s["nonfinite"]) for s in stats if s["nonfinite"]]
    report = {
        "model_dir": a.model_dir,
        "head": ck.head,
        "num_labels": ck.num_labels,
        "prefixed": ck.prefixed,
        "errors": errors,
        "tensors": stats,
    }
    failures = list(errors)
    if a.init_rules:
        if errors:
            failures.append("init rules not checked: names/shapes invalid")
        else:
            report["init_rules"], rule_failures = check_init_rules(ck, a.z)
            failures += rule_failures
    text = json.dumps(report, indent=1)
    if a.output:
        with open(a.output, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    for msg in failures:
        print(msg, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
