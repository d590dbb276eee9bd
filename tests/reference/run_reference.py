#!/usr/bin/python3
"""Run the padded PyTorch reference on JSONL inputs and write golden outputs as safetensors.

    run_reference.py --model DIR --input F.jsonl --output OUT.safetensors
                     [--outputs LIST] [--pooling cls|mean] [--normalize] [--dtype float32|float64]
                     [--batch-size N] [--grad] [--threads N]

Input: one JSON object per line, `{"input_ids": [...]}` (ids used exactly as given: no specials added, no
truncation). For --grad, every line also carries `labels` (per-token list, same length, -100 = ignored; MLM
or token classification) or `label` (sequence classification: int class, float for regression, or a list
of floats for multi-label).

Output tensors (T = total tokens, B = sequences, H = hidden, V = vocab), only those in --outputs
(comma-separated; default: input_ids, cu_seqlens, last_hidden_state, embeddings and the head's own logits):
    input_ids          I64 [T]      all sequences concatenated, unpadded
    cu_seqlens         I64 [B+1]    0, cumulative lengths
    last_hidden_state  F32 [T, H]   after final_norm, padding rows dropped
    mlm_logits         F32 [T, V]   MLM head (checkpoints with an MLM head)
    embeddings         F32 [B, H]   pooled final hidden states, no head; pooling = --pooling or the config's
                                    classifier_pooling (cls = first token, mean = mean over the sequence's
                                    tokens); L2-normalised (x / max(||x||, 1e-12)) only with --normalize
    logits             F32 [B, num_labels]  sequence classification (pooling always the config's)
    token_logits       F32 [T, num_labels]  classifier applied per token
With --grad (all sequences in one batch): also `loss` F32 [] (mean over counted labels, see modernbert_ref)
and `grad.<name>` F32 for every parameter, named as stored in the checkpoint (a tied decoder has no
parameter of its own: its gradient is part of grad.model.embeddings.tok_embeddings.weight).
Values are computed in --dtype (default float32; float64 for tight goldens) and stored as F32.
"""

import argparse
import collections
import itertools
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import modernbert_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

ORDER = ["input_ids", "cu_seqlens", "last_hidden_state", "mlm_logits", "embeddings", "logits", "token_logits"]


def read_jsonl(path):
    rows = []
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            ids = obj.get("input_ids")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
                raise ValueError("%s:%d: input_ids must be a non-empty list of ints" % (path, ln))
            if "labels" in obj and len(obj["labels"]) != len(ids):
                raise ValueError("%s:%d: labels has %d entries for %d ids" % (path, ln, len(obj["labels"]), len(ids)))
            rows.append(obj)
    if not rows:
        raise ValueError("%s: no sequences" % path)
    return rows


def l2_normalize(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def collect_labels(rows, ck):
    """(labels tensor for the padded batch, kind) from the JSONL rows."""
    if all("labels" in r for r in rows):
        if ck.head not in (ref.HEAD_MLM, ref.HEAD_TOKEN):
            raise ValueError("per-token labels need an MLM or token-classification checkpoint (head is %s)" % ck.head)
        n = max(len(r["input_ids"]) for r in rows)
        lab = torch.full((len(rows), n), -100, dtype=torch.int64)
        for b, r in enumerate(rows):
            lab[b, :len(r["labels"])] = torch.tensor(r["labels"], dtype=torch.int64)
        return lab
    if all("label" in r for r in rows):
        if ck.head != ref.HEAD_SEQ:
            raise ValueError("sequence labels need a sequence-classification checkpoint (head is %s)" % ck.head)
        vals = [r["label"] for r in rows]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            return torch.tensor(vals, dtype=torch.int64)
        return torch.tensor(vals, dtype=torch.float64)
    raise ValueError("--grad needs `labels` (per token) or `label` on every input line")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint dir (config.json + model.safetensors[.index.json])")
    ap.add_argument("--input", required=True, help="JSONL with input_ids per line")
    ap.add_argument("--output", required=True, help="output .safetensors")
    ap.add_argument("--outputs", help="comma-separated subset of: " + ",".join(ORDER))
    ap.add_argument("--pooling", choices=["cls", "mean"], help="pooling for `embeddings` (default: config)")
    ap.add_argument("--normalize", action="store_true", help="L2-normalise `embeddings`")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--batch-size", type=int, default=0, help="sequences per padded batch (0 = all at once)")
    ap.add_argument("--grad", action="store_true", help="also write loss and grad.<name> (needs labels)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave default)")
    a = ap.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)

    ck = ref.load_checkpoint(a.model)
    cfg = ck.cfg
    dtype = torch.float64 if a.dtype == "float64" else torch.float32
    rows = read_jsonl(a.input)
    seqs = [r["input_ids"] for r in rows]
    for b, s in enumerate(seqs):
        if min(s) < 0 or max(s) >= cfg.vocab_size:
            raise ValueError("sequence %d: token id out of range [0, %d)" % (b, cfg.vocab_size))

    if a.outputs:
        want = [o.strip() for o in a.outputs.split(",") if o.strip()]
    else:
        want = ["input_ids", "cu_seqlens"] + ref.default_outputs(ck.head)
        if a.grad:
            want = ["input_ids", "cu_seqlens"]
    available = ["input_ids", "cu_seqlens"] + ref.available_outputs(ck.head)
    for o in want:
        if o not in ORDER:
            ap.error("unknown output %r (known: %s)" % (o, ",".join(ORDER)))
        if o not in available:
            ap.error("output %r is not available for this checkpoint (head %s)" % (o, ck.head))
    pooling = a.pooling or cfg.classifier_pooling
    pad_id = cfg.pad_token_id if isinstance(cfg.pad_token_id, int) and 0 <= cfg.pad_token_id < cfg.vocab_size else 0

    params = ck.params(dtype, requires_grad=a.grad)
    chunk = len(seqs) if (a.grad or a.batch_size <= 0) else a.batch_size
    parts = collections.defaultdict(list)
    loss = None
    for start in range(0, len(seqs), chunk):
        batch = seqs[start:start + chunk]
        ids, mask = ref.pad_batch(batch, pad_id)
        with torch.set_grad_enabled(a.grad):
            h = ref.encoder(params, cfg, ids, mask)
            valid = mask.bool()
            rows_h = h[valid]  # [T_chunk, H], sequences concatenated in order
            if "last_hidden_state" in want:
                parts["last_hidden_state"].append(rows_h)
            if "mlm_logits" in want:
                parts["mlm_logits"].append(ref.mlm_logits(params, cfg, rows_h))
            if "token_logits" in want:
                parts["token_logits"].append(ref.token_logits(params, cfg, rows_h))
            if "embeddings" in want:
                e = ref.pool(h, mask, pooling)
                parts["embeddings"].append(l2_normalize(e) if a.normalize else e)
            if "logits" in want:
                parts["logits"].append(ref.sequence_logits(params, cfg, h, mask))
            if a.grad:
                labels = collect_labels(rows, ck)
                if ck.head == ref.HEAD_MLM:
                    loss = ref.masked_ce(ref.mlm_logits(params, cfg, h), labels)
                elif ck.head == ref.HEAD_TOKEN:
                    loss = ref.masked_ce(ref.token_logits(params, cfg, h), labels)
                else:
                    loss = ref.sequence_loss(cfg, ref.sequence_logits(params, cfg, h, mask), labels)
                loss.backward()

    out = collections.OrderedDict()
    lengths = [len(s) for s in seqs]
    for name in ORDER:
        if name not in want:
            continue
        if name == "input_ids":
            out[name] = torch.tensor([i for s in seqs for i in s], dtype=torch.int64)
        elif name == "cu_seqlens":
            out[name] = torch.tensor([0] + list(itertools.accumulate(lengths)), dtype=torch.int64)
        else:
            out[name] = torch.cat(parts[name], dim=0).detach().to(torch.float32).contiguous()
    if a.grad:
        out["loss"] = loss.detach().to(torch.float32).reshape([])
        for k, p in params.items():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            out["grad." + ref.file_name(k, ck.prefixed)] = g.detach().to(torch.float32).contiguous()
    meta = {"generator": "tests/reference/run_reference.py", "dtype": a.dtype, "pooling": pooling,
            "normalize": str(bool(a.normalize)).lower(), "head": ck.head}
    safetensors_io.save(out, a.output, meta)


if __name__ == "__main__":
    main()
