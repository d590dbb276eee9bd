"""An nn.Module around the PyTorch reference (tests/reference/modernbert_ref.py) for ONNX export.

The reference is a set of functions over a dict of tensors with a little Python control flow on
shapes (the head-by-head fallback for long inputs, the per-theta RoPE cache); tracing would freeze
those choices. This wrapper reuses the reference's checkpoint loader, config, RoPE formulas
(rope_inv_freq, rotate_half) and activation table, and spells the same math in export-friendly ops:

  * LayerNorm via F.layer_norm (biased variance, same eps: identical math) so opset 17 emits one
    LayerNormalization node, as an HF/optimum export of nn.LayerNorm would. A checkpoint without
    norm biases gets an explicit zero bias: onnxruntime 1.30 segfaults while optimising (level
    "extended"/"all") a LayerNormalization node that has no bias input;
  * exact-erf GELU via F.gelu (same formula as the reference's gelu_erf; ORT fuses it to Gelu);
  * masks as in the reference: padding keys, and |i - j| > local_attention // 2 in sliding layers,
    set to the dtype's most negative finite value with a Where (never -inf, so padded query rows
    stay finite and cannot poison real rows through 0 * NaN);
  * every layer computes the full [B, heads, n, n] scores (the padded formulation users deploy).

Inputs input_ids / attention_mask int64 [B, n] (right padding); output last_hidden_state [B, n, H].
check_against_reference() compares it with modernbert_ref.encoder on a padded batch.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import modernbert_ref as ref  # noqa: E402

_ACT = {
    "gelu": lambda x: F.gelu(x),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


class PaddedModernBert(torch.nn.Module):
    def __init__(self, model_dir):
        super().__init__()
        ck = ref.load_checkpoint(model_dir)
        self.cfg = cfg = ck.cfg
        params = ck.params(torch.float32)
        # Backbone tensors only, as frozen parameters (they become ONNX initializers).
        self.names = {}
        for k, v in params.items():
            if k.startswith("model."):
                safe = k.replace(".", "__")
                self.register_parameter(safe, torch.nn.Parameter(v, requires_grad=False))
                self.names[k] = safe
        self.register_buffer("ln_zero_bias", torch.zeros(cfg.hidden_size), persistent=False)
        self.act = _ACT[cfg.hidden_activation]
        for theta in set(cfg.rope_theta(i) for i in range(cfg.num_hidden_layers)):
            self.register_buffer("inv_freq_%d" % int(theta), ref.rope_inv_freq(cfg.head_dim, theta), persistent=False)

    def p(self, name):
        return getattr(self, self.names[name]) if name in self.names else None

    def ln(self, prefix, x):
        H = self.cfg.hidden_size
        bias = self.p(prefix + ".bias")
        return F.layer_norm(x, (H,), self.p(prefix + ".weight"), self.ln_zero_bias if bias is None else bias,
                            self.cfg.norm_eps)

    def forward(self, input_ids, attention_mask):
        cfg = self.cfg
        H, I, nh, d = cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads, cfg.head_dim
        B, n = input_ids.shape[0], input_ids.shape[1]
        x = F.embedding(input_ids, self.p("model.embeddings.tok_embeddings.weight"))
        x = self.ln("model.embeddings.norm", x)
        pos = torch.arange(n, device=input_ids.device)
        key_ok = attention_mask.bool()[:, None, None, :]  # [B, 1, 1, n]
        band = ((pos[:, None] - pos[None, :]).abs() <= cfg.local_attention // 2)[None, None]  # [1, 1, n, n]
        allowed = {"global": key_ok, "local": key_ok & band}
        rope = {}
        neg = torch.finfo(torch.float32).min
        for i in range(cfg.num_hidden_layers):
            theta = cfg.rope_theta(i)
            if theta not in rope:
                ang = pos.to(torch.float32)[:, None] * getattr(self, "inv_freq_%d" % int(theta))[None, :]
                emb = torch.cat([ang, ang], dim=-1)
                rope[theta] = (emb.cos(), emb.sin())
            cos, sin = rope[theta]
            pre = "model.layers.%d." % i
            a = x if self.p(pre + "attn_norm.weight") is None else self.ln(pre + "attn_norm", x)
            qkv = ref.linear(a, self.p(pre + "attn.Wqkv.weight"), self.p(pre + "attn.Wqkv.bias"))
            qkv = qkv.view(B, n, 3, nh, d)
            q = qkv[:, :, 0].transpose(1, 2)
            k = qkv[:, :, 1].transpose(1, 2)
            v = qkv[:, :, 2].transpose(1, 2)
            q = q * cos + ref.rotate_half(q) * sin
            k = k * cos + ref.rotate_half(k) * sin
            scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d))
            ok = allowed["global" if cfg.is_global(i) else "local"]
            scores = torch.where(ok, scores, torch.full_like(scores[:1, :1, :1, :1], neg))
            o = torch.matmul(torch.softmax(scores, dim=-1), v)
            o = o.transpose(1, 2).reshape(B, n, H)
            x = x + ref.linear(o, self.p(pre + "attn.Wo.weight"), self.p(pre + "attn.Wo.bias"))
            m = self.ln(pre + "mlp_norm", x)
            u = ref.linear(m, self.p(pre + "mlp.Wi.weight"), self.p(pre + "mlp.Wi.bias"))
            g = self.act(u[..., :I]) * u[..., I:]
            x = x + ref.linear(g, self.p(pre + "mlp.Wo.weight"), self.p(pre + "mlp.Wo.bias"))
        return self.ln("model.final_norm", x)


def check_against_reference(module, sequences, tol=1e-4):
    """Max-abs difference on real tokens between this module and modernbert_ref.encoder."""
    ids, mask = ref.pad_batch(sequences, module.cfg.pad_token_id)
    with torch.inference_mode():
        a = module(ids, mask)
        p = {k: module.p(k) for k in module.names}
        b = ref.encoder(p, module.cfg, ids, mask)
    m = mask.bool()
    diff = (a[m] - b[m]).abs().max().item()
    if not diff <= tol:
        raise SystemExit("export wrapper differs from the reference by %g (> %g)" % (diff, tol))
    return diff
