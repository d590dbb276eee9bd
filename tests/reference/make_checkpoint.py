#!/usr/bin/python3
"""Write a random ModernBERT checkpoint directory in HF layout (config.json + model.safetensors).

    make_checkpoint.py --out DIR [--preset tiny|base|large] [--config FILE.json] [--set KEY=JSON ...]
                       [--head none|mlm|cls:N|token:N] [--dtype F32|F16|BF16] [--seed S]
                       [--weights random|megatron] [--no-prefix] [--config-style legacy|v5] [--shards N]
                       [--problem-type regression|single_label_classification|multi_label_classification]

Config: a preset (default tiny), then keys of --config FILE.json, then --set overrides (values parsed as JSON,
falling back to a plain string), e.g. `--set num_hidden_layers=1 --set 'layer_types=["sliding_attention"]'`.

Weights (--weights random, the default) are chosen so that every component visibly matters in the outputs:
  * token embeddings (and an untied decoder.weight): N(0, 1/H)  -> std 1/sqrt(H); the embedding LayerNorm
    rescales the input anyway, and tied MLM logits come out with std ~1 rather than ~sqrt(H);
  * every other matrix W [out, in] (Wqkv, attn.Wo, mlp.Wi, mlp.Wo, head.dense, classifier): N(0, 1/in), i.e.
    std 1/sqrt(fan_in) ("gain 1"): q.k/sqrt(d) scores have std ~1 so softmax, masks and RoPE all matter,
    and GELU inputs are ~N(0,1) so the erf/tanh forms differ measurably;
  * LayerNorm weights: U(0.8, 1.2);
  * biases that exist (norm_bias, attention_bias, mlp_bias, classifier_bias, decoder_bias, classifier.bias):
    N(0, 0.2^2).
--weights megatron writes the spec §6.6 research-code init instead (truncated normal at ±cutoff·σ, σ_in =
initializer_range for Wqkv/Wi/head.dense and tok_embeddings, σ_out = initializer_range/sqrt(2L) for attn.Wo and
mlp.Wo, σ = H^-0.5 for an untied decoder and the classifier; biases 0; LayerNorm weights 1) — a positive
control for check_checkpoint.py --init-rules.

Determinism: each tensor is drawn from its own numpy PCG64 stream seeded by (seed, crc32(canonical name)),
so the same seed gives the same backbone whatever the head, prefix, dtype or sharding. Values are drawn in
float64, rounded to float32, then to the storage dtype.
"""

import argparse
import collections
import json
import math
import os
import sys
import tempfile
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modernbert_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

# Released config (spec §2.1), base values.
_BASE = collections.OrderedDict([
    ("architectures", ["ModernBertForMaskedLM"]),
    ("attention_bias", False),
    ("attention_dropout", 0.0),
    ("bos_token_id", 50281),
    ("classifier_activation", "gelu"),
    ("classifier_bias", False),
    ("classifier_dropout", 0.0),
    ("classifier_pooling", "mean"),
    ("cls_token_id", 50281),
    ("decoder_bias", True),
    ("deterministic_flash_attn", False),
    ("embedding_dropout", 0.0),
    ("eos_token_id", 50282),
    ("global_attn_every_n_layers", 3),
    ("global_rope_theta", 160000.0),
    ("gradient_checkpointing", False),
    ("hidden_activation", "gelu"),
    ("hidden_size", 768),
    ("initializer_cutoff_factor", 2.0),
    ("initializer_range", 0.02),
    ("intermediate_size", 1152),
    ("layer_norm_eps", 1e-05),
    ("local_attention", 128),
    ("local_rope_theta", 10000.0),
    ("max_position_embeddings", 8192),
    ("mlp_bias", False),
    ("mlp_dropout", 0.0),
    ("model_type", "modernbert"),
    ("norm_bias", False),
    ("norm_eps", 1e-05),
    ("num_attention_heads", 12),
    ("num_hidden_layers", 22),
    ("pad_token_id", 50283),
    ("position_embedding_type", "absolute"),
    ("sep_token_id", 50282),
    ("tie_word_embeddings", True),
    ("torch_dtype", "float32"),
    ("transformers_version", "4.48.0"),
    ("vocab_size", 50368),
])

PRESETS = {
    "base": {},
    "large": {"hidden_size": 1024, "intermediate_size": 2624, "num_attention_heads": 16, "num_hidden_layers": 28},
    # Small enough for unit tests, with global (0, 3) and sliding (1, 2) layers and a window (|i-j| <= 4)
    # shorter than typical test sequences.
    "tiny": {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
             "num_hidden_layers": 4, "local_attention": 8, "max_position_embeddings": 512,
             "pad_token_id": 0, "bos_token_id": 1, "cls_token_id": 1, "eos_token_id": 2, "sep_token_id": 2},
}

STORAGE_DTYPES = ("F32", "F16", "BF16")


def parse_value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_head(spec):
    """'none' | 'mlm' | 'cls:N' | 'token:N' -> (head kind, num_labels)."""
    if spec in ("none", "mlm"):
        return (ref.HEAD_NONE if spec == "none" else ref.HEAD_MLM), None
    kind, _, n = spec.partition(":")
    if kind in ("cls", "token") and n.isdigit() and int(n) >= 1:
        return (ref.HEAD_SEQ if kind == "cls" else ref.HEAD_TOKEN), int(n)
    raise ValueError("--head must be none, mlm, cls:N or token:N (got %r)" % spec)


def make_config(preset="tiny", config=None, overrides=None, head=ref.HEAD_MLM, num_labels=None,
                style="legacy", problem_type=None):
    """config.json dict: released keys (§2.1) + preset + config + overrides, with architectures/labels set."""
    if preset not in PRESETS:
        raise ValueError("unknown preset %r (have %s)" % (preset, ", ".join(sorted(PRESETS))))
    d = collections.OrderedDict(_BASE)
    d.update(PRESETS[preset])
    d.update(config or {})
    d.update(overrides or {})
    d["architectures"] = [ref.HEAD_TO_ARCH[head]]
    for k in ("id2label", "label2id", "num_labels"):
        d.pop(k, None)
    if num_labels is not None:
        d["id2label"] = collections.OrderedDict((str(i), "LABEL_%d" % i) for i in range(num_labels))
        d["label2id"] = collections.OrderedDict(("LABEL_%d" % i, i) for i in range(num_labels))
    if problem_type:
        d["problem_type"] = problem_type
    if style == "v5":
        cfg = ref.Config(d)  # resolve legacy keys first
        d.pop("global_rope_theta", None)
        d.pop("local_rope_theta", None)
        d["layer_types"] = list(cfg.layer_types)
        d["rope_parameters"] = collections.OrderedDict(
            (t, {"rope_type": "default", "rope_theta": cfg.rope_theta_by_type[t]})
            for t in ("full_attention", "sliding_attention"))
    elif style != "legacy":
        raise ValueError("config style must be legacy or v5")
    ref.Config(d)  # validate
    return d


def _rng(seed, name):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(name.encode())])))


def truncated_normal(rng, shape, sigma, cutoff):
    """N(0, sigma^2) truncated to [-cutoff*sigma, cutoff*sigma] by rejection."""
    n = int(np.prod(shape)) if shape else 1
    out = np.empty(n)
    filled = 0
    while filled < n:
        draw = rng.standard_normal(max(2 * (n - filled), 16))
        draw = draw[np.abs(draw) <= cutoff]
        take = min(len(draw), n - filled)
        out[filled:filled + take] = draw[:take]
        filled += take
    return (out * sigma).reshape(shape)


def make_tensors(cfg, head, num_labels=None, seed=0, weights="random"):
    """OrderedDict canonical name -> float32 torch tensor, in expected_shapes order."""
    H = cfg.hidden_size
    out = collections.OrderedDict()
    for name, shape in ref.expected_shapes(cfg, head, num_labels).items():
        rng = _rng(seed, name)
        if weights == "random":
            if name.endswith(".bias"):
                v = 0.2 * rng.standard_normal(shape)
            elif ref.is_norm_weight(name):
                v = rng.uniform(0.8, 1.2, shape)
            elif name in ("model.embeddings.tok_embeddings.weight", "decoder.weight"):
                v = rng.standard_normal(shape) / math.sqrt(H)
            else:
                v = rng.standard_normal(shape) / math.sqrt(shape[1])
        elif weights == "megatron":
            rule, sigma = ref.init_rule(cfg, name)
            if rule == "zero":
                v = np.zeros(shape)
            elif rule == "one":
                v = np.ones(shape)
            else:
                v = truncated_normal(rng, shape, sigma, cfg.initializer_cutoff_factor)
        else:
            raise ValueError("weights must be random or megatron")
        out[name] = torch.from_numpy(np.asarray(v, dtype=np.float64).astype(np.float32))
    return out


def _atomic_write_text(path, text):
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_checkpoint(out_dir, config, tensors, dtype="F32", prefix=True, shards=1):
    """Write config.json and model.safetensors (or `shards` shard files + model.safetensors.index.json)."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError("dtype must be one of %s" % (STORAGE_DTYPES,))
    os.makedirs(out_dir, exist_ok=True)
    cfg_out = collections.OrderedDict(config)
    cfg_out["torch_dtype"] = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
    _atomic_write_text(os.path.join(out_dir, "config.json"), json.dumps(cfg_out, indent=2) + "\n")
    stored = collections.OrderedDict(
        (ref.file_name(k, prefix), safetensors_io.as_dtype(v, dtype)) for k, v in tensors.items())
    for stale in [f for f in os.listdir(out_dir) if f.startswith("model") and ".safetensors" in f]:
        os.unlink(os.path.join(out_dir, stale))
    meta = {"format": "pt"}
    if shards <= 1:
        safetensors_io.save(stored, os.path.join(out_dir, "model.safetensors"), meta)
        return
    names = list(stored)
    per = int(math.ceil(len(names) / float(shards)))
    weight_map, total = collections.OrderedDict(), 0
    for s in range(shards):
        fn = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        part = collections.OrderedDict((k, stored[k]) for k in names[s * per:(s + 1) * per])
        safetensors_io.save(part, os.path.join(out_dir, fn), meta)
        for k, v in part.items():
            weight_map[k] = fn
            total += v.numel() * v.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    _atomic_write_text(os.path.join(out_dir, "model.safetensors.index.json"), json.dumps(index, indent=2) + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--config", help="JSON file whose keys override the preset")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override one config key")
    ap.add_argument("--head", default="mlm", help="none | mlm | cls:N | token:N (default mlm)")
    ap.add_argument("--problem-type", choices=["regression", "single_label_classification", "multi_label_classification"])
    ap.add_argument("--dtype", default="F32", choices=STORAGE_DTYPES, help="storage dtype (default F32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", default="random", choices=["random", "megatron"])
    ap.add_argument("--no-prefix", action="store_true", help="store backbone names without 'model.'")
    ap.add_argument("--config-style", default="legacy", choices=["legacy", "v5"])
    ap.add_argument("--shards", type=int, default=1, help="write N shard files + index.json")
    a = ap.parse_args(argv)

    head, num_labels = parse_head(a.head)
    config = None
    if a.config:
        with open(a.config) as f:
            config = json.load(f, object_pairs_hook=collections.OrderedDict)
    overrides = collections.OrderedDict()
    for item in a.set:
        k, eq, v = item.partition("=")
        if not eq:
            ap.error("--set expects KEY=VALUE, got %r" % item)
        overrides[k] = parse_value(v)
    d = make_config(a.preset, config, overrides, head, num_labels, a.config_style, a.problem_type)
    cfg = ref.Config(d)
    tensors = make_tensors(cfg, head, num_labels, a.seed, a.weights)
    write_checkpoint(a.out, d, tensors, a.dtype, not a.no_prefix, a.shards)
    print("wrote %s: %d tensors, head %s, dtype %s" % (a.out, len(tensors), a.head, a.dtype))


if __name__ == "__main__":
    main()
