"""Independent PyTorch reference implementation of ModernBERT (spec: /work/shared/docs/modernbert-spec.md §1-4).

This is the *padded* formulation with explicit masks (the C++ engine uses the unpadded/varlen one, spec §4.8):
inputs are `input_ids [B, n]` plus `attention_mask [B, n]` (1 = real token, 0 = padding); every sequence's
positions are 0..n-1 (right padding); attention masks padding keys, and in sliding ("local") layers also
keys with |i - j| > local_attention // 2.  Padded query rows carry finite garbage and must be ignored.

The model is a set of plain functions over a dict of tensors keyed by Hugging Face names (always with the
`model.` prefix for the backbone, see `canonical_name`), so autograd works through everything: call
`params = {k: v.requires_grad_() ...}` and backprop the loss returned by `forward(...)`.

Numerics (spec §4.7): computations run in `dtype` (float32 or float64).  RoPE angles are always formed as HF
does: float32 inv_freq = 1 / theta ** (arange(0, d, 2) / d) and float32 products p * inv_freq; cos/sin are taken
in float32 (dtype=float32) or of the float32 angle widened to float64 (dtype=float64).  Softmax runs in the
compute dtype (>= float32).  Masked scores are set to the dtype's most negative finite value (as HF), so fully
masked padded query rows stay finite.

Conventions that are choices where the spec leaves room (the C++ side must match them):
  * The layer type (global / sliding) is taken from `layer_types` when the config has it, else from
    `i % global_attn_every_n_layers == 0`; the same per-layer type decides both RoPE theta and the window
    (HF decides the window with the modulo rule even when layer_types is present; spec §1.2 recommends
    using layer_types consistently).
  * RoPE theta: `rope_parameters` (per layer type) wins over the legacy `global_rope_theta` /
    `local_rope_theta` keys; defaults 160000 / 10000.
  * `cls` pooling takes row 0 (HF ModernBertForSequenceClassification; assumes right padding).
  * The prediction head (`head.dense` -> act -> `head.norm`) uses `classifier_activation`, for MLM too (HF).
"""

import collections
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

# --------------------------------------------------------------------------------------------------------
# Activations (HF ACT2CLS names, spec §4 / [HF-ACT])


def gelu_erf(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def relu(x):
    return torch.clamp(x, min=0.0)


def silu(x):
    return x * torch.sigmoid(x)


ACTIVATIONS = {
    "gelu": gelu_erf,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_new": gelu_tanh,
    "relu": relu,
    "silu": silu,
    "swish": silu,
}

# --------------------------------------------------------------------------------------------------------
# Config

HEAD_NONE, HEAD_MLM, HEAD_SEQ, HEAD_TOKEN = "none", "mlm", "seq_cls", "token_cls"
ARCHITECTURES = {
    "ModernBertModel": HEAD_NONE,
    "ModernBertForMaskedLM": HEAD_MLM,
    "ModernBertForSequenceClassification": HEAD_SEQ,
    "ModernBertForTokenClassification": HEAD_TOKEN,
}
HEAD_TO_ARCH = {v: k for k, v in ARCHITECTURES.items()}


class ConfigError(ValueError):
    pass


class Config:
    """The config.json fields the forward pass needs, normalized (legacy and v5 spellings, spec §2)."""

    def __init__(self, d):
        self.raw = dict(d)
        g = d.get
        self.vocab_size = int(g("vocab_size", 50368))
        self.hidden_size = int(g("hidden_size", 768))
        self.intermediate_size = int(g("intermediate_size", 1152))
        self.num_hidden_layers = int(g("num_hidden_layers", 22))
        self.num_attention_heads = int(g("num_attention_heads", 12))
        self.local_attention = int(g("local_attention", 128))
        self.global_attn_every_n_layers = int(g("global_attn_every_n_layers", 3))
        self.max_position_embeddings = int(g("max_position_embeddings", 8192))
        self.norm_eps = float(g("norm_eps", g("layer_norm_eps", 1e-5)))
        self.norm_bias = bool(g("norm_bias", False))
        self.attention_bias = bool(g("attention_bias", False))
        self.mlp_bias = bool(g("mlp_bias", False))
        self.classifier_bias = bool(g("classifier_bias", False))
        self.decoder_bias = bool(g("decoder_bias", True))
        self.tie_word_embeddings = bool(g("tie_word_embeddings", True))
        self.hidden_activation = g("hidden_activation", "gelu")
        self.classifier_activation = g("classifier_activation", "gelu")
        for key in ("hidden_activation", "classifier_activation"):
            if getattr(self, key) not in ACTIVATIONS:
                raise ConfigError("%s: unsupported activation %r" % (key, getattr(self, key)))
        self.classifier_pooling = g("classifier_pooling", "cls")
        if self.classifier_pooling not in ("cls", "mean"):
            raise ConfigError("classifier_pooling: %r (expected cls or mean)" % self.classifier_pooling)
        self.pad_token_id = g("pad_token_id", 50283)
        self.initializer_range = float(g("initializer_range", 0.02))
        cutoff = g("initializer_cutoff_factor", 2.0)
        self.initializer_cutoff_factor = 3.0 if cutoff is None else float(cutoff)  # HF: null -> 3
        self.problem_type = g("problem_type")
        self.architectures = list(g("architectures") or [])
        id2label = g("id2label")
        self.num_labels = len(id2label) if id2label else g("num_labels")

        L = self.num_hidden_layers
        if g("layer_types") is not None:
            self.layer_types = list(g("layer_types"))
            if len(self.layer_types) != L:
                raise ConfigError("layer_types has %d entries for %d layers" % (len(self.layer_types), L))
            for t in self.layer_types:
                if t not in ("full_attention", "sliding_attention"):
                    raise ConfigError("layer_types: unknown entry %r" % t)
        else:
            n = self.global_attn_every_n_layers
            if n < 1:
                raise ConfigError("global_attn_every_n_layers must be >= 1")
            self.layer_types = ["full_attention" if i % n == 0 else "sliding_attention" for i in range(L)]

        theta = {"full_attention": float(g("global_rope_theta", 160000.0)),
                 "sliding_attention": float(g("local_rope_theta", 10000.0))}
        rp = g("rope_parameters")
        if isinstance(rp, dict):
            if "full_attention" in rp or "sliding_attention" in rp:
                for t in theta:
                    if t in rp and rp[t].get("rope_theta") is not None:
                        theta[t] = float(rp[t]["rope_theta"])
            elif rp.get("rope_theta") is not None:  # a single, flat rope_parameters dict
                theta = {t: float(rp["rope_theta"]) for t in theta}
            for sub in ([rp] if "rope_type" in rp else [v for v in rp.values() if isinstance(v, dict)]):
                if sub.get("rope_type", "default") != "default":
                    raise ConfigError("rope_parameters: only rope_type 'default' is supported")
        self.rope_theta_by_type = theta

        if self.hidden_size % self.num_attention_heads:
            raise ConfigError("hidden_size %d not divisible by num_attention_heads %d"
                              % (self.hidden_size, self.num_attention_heads))
        if self.head_dim % 2:
            raise ConfigError("head_dim must be even for RoPE")

    @classmethod
    def from_file(cls, path):
        with open(path) as f:
            return cls(json.load(f))

    @property
    def head_dim(self):
        return self.hidden_size // self.num_attention_heads

    def is_global(self, i):
        return self.layer_types[i] == "full_attention"

    def rope_theta(self, i):
        return self.rope_theta_by_type[self.layer_types[i]]

    def half_window(self, i):
        """None for global layers, else local_attention // 2 (keys with |i-j| <= this are visible)."""
        return None if self.is_global(i) else self.local_attention // 2


# --------------------------------------------------------------------------------------------------------
# Tensor names and shapes (spec §3)


def expected_shapes(cfg, head=HEAD_NONE, num_labels=None):
    """OrderedDict canonical HF name -> shape for a config and head kind (decoder.weight only when untied)."""
    H, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    s = collections.OrderedDict()

    def norm(prefix):
        s[prefix + ".weight"] = [H]
        if cfg.norm_bias:
            s[prefix + ".bias"] = [H]

    def linear(prefix, out_f, in_f, bias):
        s[prefix + ".weight"] = [out_f, in_f]
        if bias:
            s[prefix + ".bias"] = [out_f]

    s["model.embeddings.tok_embeddings.weight"] = [V, H]
    norm("model.embeddings.norm")
    for i in range(cfg.num_hidden_layers):
        p = "model.layers.%d." % i
        if i > 0:
            norm(p + "attn_norm")
        linear(p + "attn.Wqkv", 3 * H, H, cfg.attention_bias)
        linear(p + "attn.Wo", H, H, cfg.attention_bias)
        norm(p + "mlp_norm")
        linear(p + "mlp.Wi", 2 * I, H, cfg.mlp_bias)
        linear(p + "mlp.Wo", H, I, cfg.mlp_bias)
    norm("model.final_norm")
    if head != HEAD_NONE:
        linear("head.dense", H, H, cfg.classifier_bias)
        norm("head.norm")
    if head == HEAD_MLM:
        if not cfg.tie_word_embeddings:
            s["decoder.weight"] = [V, H]
        if cfg.decoder_bias:
            s["decoder.bias"] = [V]
    elif head in (HEAD_SEQ, HEAD_TOKEN):
        if num_labels is None:
            raise ConfigError("num_labels needed for a classification head")
        s["classifier.weight"] = [num_labels, H]
        s["classifier.bias"] = [num_labels]  # the classifier Linear always has a bias (spec §3)
    return s


def is_norm_weight(name):
    """LayerNorm weights: embeddings.norm, attn_norm, mlp_norm, final_norm, head.norm."""
    return name.endswith(".weight") and name.rsplit(".", 2)[-2].endswith("norm")


def init_rule(cfg, name):
    """Spec §6.6 research-code "full_megatron" init for a canonical tensor name -> (rule, sigma).

    rule "zero" (every bias) / "one" (LayerNorm weights) have sigma None; the others are truncated normals
    N(0, sigma^2) cut at ±initializer_cutoff_factor·sigma:
      in        sigma = initializer_range              attn.Wqkv, mlp.Wi, head.dense
      out       sigma = initializer_range / sqrt(2L)   attn.Wo, mlp.Wo (every layer alike)
      emb       sigma = initializer_range              tok_embeddings
      final_out sigma = hidden_size ** -0.5            untied decoder.weight, classifier.weight
    (HF's own _init_weights differs: head.dense and decoder use "out" there.)"""
    r = cfg.initializer_range
    if name.endswith(".bias"):
        return "zero", None
    if is_norm_weight(name):
        return "one", None
    if name.endswith(("attn.Wqkv.weight", "mlp.Wi.weight")) or name == "head.dense.weight":
        return "in", r
    if name.endswith(("attn.Wo.weight", "mlp.Wo.weight")):
        return "out", r / math.sqrt(2.0 * cfg.num_hidden_layers)
    if name == "model.embeddings.tok_embeddings.weight":
        return "emb", r
    if name in ("decoder.weight", "classifier.weight"):
        return "final_out", cfg.hidden_size ** -0.5
    raise ValueError("no init rule for tensor %s" % name)


BACKBONE_ROOTS = ("embeddings.", "layers.", "final_norm.")


def canonical_name(name):
    """Add the `model.` prefix to bare backbone names (checkpoints saved from ModernBertModel)."""
    return "model." + name if name.startswith(BACKBONE_ROOTS) else name


def file_name(canonical, prefixed):
    return canonical if prefixed or not canonical.startswith("model.") else canonical[len("model."):]


def detect_head(cfg, names):
    """Head kind from config.architectures, else from the tensor names present."""
    for a in cfg.architectures:
        if a in ARCHITECTURES:
            return ARCHITECTURES[a]
    if cfg.architectures:
        raise ConfigError("unsupported architectures %r" % cfg.architectures)
    names = set(names)
    if "classifier.weight" in names:
        return HEAD_SEQ
    if "head.dense.weight" in names or "decoder.bias" in names or "decoder.weight" in names:
        return HEAD_MLM
    return HEAD_NONE


# --------------------------------------------------------------------------------------------------------
# Checkpoint loading


class Checkpoint:
    """A loaded HF-layout directory: cfg, tensors (canonical names, file dtype), head kind, num_labels."""

    def __init__(self, cfg, tensors, head, num_labels, prefixed, file_dtypes, files):
        self.cfg, self.tensors, self.head, self.num_labels = cfg, tensors, head, num_labels
        self.prefixed, self.file_dtypes, self.files = prefixed, file_dtypes, files

    def params(self, dtype=torch.float32, requires_grad=False):
        """Fresh dict canonical name -> tensor in compute dtype (leaf tensors; grads land in .grad)."""
        out = collections.OrderedDict()
        for k, v in self.tensors.items():
            if k == "decoder.weight" and self.cfg.tie_word_embeddings:
                continue  # tied: the decoder uses the token embeddings
            out[k] = v.to(dtype, copy=True).requires_grad_(requires_grad)
        return out


def read_tensors(model_dir):
    """(OrderedDict name -> tensor as stored, name -> file dtype, list of files) for a checkpoint dir."""
    single = os.path.join(model_dir, "model.safetensors")
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(single):
        files = [single]
    elif os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        files = []
        for fn in weight_map.values():
            if fn not in files:
                files.append(fn)
        files = [os.path.join(model_dir, fn) for fn in files]
    else:
        raise FileNotFoundError("%s: neither model.safetensors nor model.safetensors.index.json" % model_dir)
    tensors, dtypes = collections.OrderedDict(), collections.OrderedDict()
    for path in files:
        t, _ = safetensors_io.load(path)
        dt = safetensors_io.dtypes_of(path)
        for k, v in t.items():
            if k in tensors:
                raise ValueError("%s: tensor %r appears in more than one shard" % (path, k))
            tensors[k], dtypes[k] = v, dt[k]
    if os.path.exists(index) and not os.path.exists(single):
        missing = set(weight_map) ^ set(tensors)
        if missing:
            raise ValueError("%s: weight_map and shards disagree on %s" % (index, sorted(missing)))
    return tensors, dtypes, files


def check_names(cfg, tensors, head, num_labels):
    """List of error strings: missing / unexpected / wrong-shape tensors (canonical names)."""
    want = expected_shapes(cfg, head, num_labels)
    errors = []
    for k, shape in want.items():
        if k not in tensors:
            errors.append("missing tensor %s %s" % (k, shape))
        elif list(tensors[k].shape) != shape:
            errors.append("tensor %s has shape %s, expected %s" % (k, list(tensors[k].shape), shape))
    for k in tensors:
        if k not in want and not (k == "decoder.weight" and head == HEAD_MLM):  # tied copy tolerated
            errors.append("unexpected tensor %s" % k)
    if head == HEAD_MLM and cfg.tie_word_embeddings and "decoder.weight" in tensors:
        if list(tensors["decoder.weight"].shape) != [cfg.vocab_size, cfg.hidden_size]:
            errors.append("tensor decoder.weight has shape %s" % list(tensors["decoder.weight"].shape))
    return errors


def load_checkpoint(model_dir, strict=True):
    cfg = Config.from_file(os.path.join(model_dir, "config.json"))
    raw, dtypes, files = read_tensors(model_dir)
    prefixed = any(k.startswith("model.") for k in raw)
    tensors = collections.OrderedDict((canonical_name(k), v) for k, v in raw.items())
    file_dtypes = collections.OrderedDict((canonical_name(k), v) for k, v in dtypes.items())
    head = detect_head(cfg, tensors)
    num_labels = None
    if head in (HEAD_SEQ, HEAD_TOKEN):
        if "classifier.weight" not in tensors:
            raise ValueError("%s: %s head but no classifier.weight" % (model_dir, head))
        num_labels = int(tensors["classifier.weight"].shape[0])
        if cfg.num_labels is not None and int(cfg.num_labels) != num_labels:
            raise ValueError("%s: config has %s labels but classifier.weight has %d rows"
                             % (model_dir, cfg.num_labels, num_labels))
    if strict:
        errors = check_names(cfg, tensors, head, num_labels)
        if errors:
            raise ValueError("%s: %s" % (model_dir, "; ".join(errors)))
    return Checkpoint(cfg, tensors, head, num_labels, prefixed, file_dtypes, files)


# --------------------------------------------------------------------------------------------------------
# Building blocks


def linear(x, weight, bias=None):
    y = torch.matmul(x, weight.t())
    return y if bias is None else y + bias


def layer_norm(x, weight, bias, eps):
    """LayerNorm over the last dim, biased variance (spec §4)."""
    mu = x.mean(dim=-1, keepdim=True)
    var = ((x - mu) ** 2).mean(dim=-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + eps) * weight
    return y if bias is None else y + bias


def rope_inv_freq(head_dim, theta):
    """float32 inv_freq[j] = 1 / theta ** (2j / d), j = 0 .. d/2-1, computed exactly as HF does."""
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim))


def rope_cos_sin(positions, head_dim, theta, dtype):
    """cos, sin of shape [len(positions), head_dim]: the d/2 angles repeated twice (cat(freqs, freqs))."""
    inv_freq = rope_inv_freq(head_dim, theta)
    ang = positions.to(torch.float32)[:, None] * inv_freq[None, :]  # float32 products, as HF
    emb = torch.cat([ang, ang], dim=-1)
    if dtype == torch.float64:
        emb = emb.to(torch.float64)  # cos/sin of the float32 angle, evaluated in double
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x):
    """GPT-NeoX rotate-half: [x1, x2] -> [-x2, x1] with halves of size d/2."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x, cos, sin):
    """x [..., n, d]; cos/sin [n, d]. Dims j and j + d/2 rotate together by angle p * inv_freq[j]."""
    return x * cos + rotate_half(x) * sin


def attention_allowed(attention_mask, half_window):
    """Boolean [B, 1, n, n]: query i may see key j (key is real, and |i-j| <= half_window if local)."""
    B, n = attention_mask.shape
    allowed = attention_mask.bool()[:, None, None, :].expand(B, 1, n, n)
    if half_window is not None:
        pos = torch.arange(n)
        within = (pos[:, None] - pos[None, :]).abs() <= half_window
        allowed = allowed & within[None, None, :, :]
    return allowed


_SCORES_LIMIT = 1 << 26  # elements of one [B, heads, n, n] score tensor before attention goes head by head


def sdpa(q, k, v, allowed):
    """softmax(q k^T / sqrt(d) with disallowed scores at the dtype minimum) v, softmax in the compute dtype."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v)


def attention(p, cfg, i, x, allowed, cos, sin):
    B, n, H = x.shape
    nh, d = cfg.num_attention_heads, cfg.head_dim
    pre = "model.layers.%d.attn." % i
    qkv = linear(x, p[pre + "Wqkv.weight"], p.get(pre + "Wqkv.bias"))  # [B, n, 3H]: Q | K | V
    qkv = qkv.view(B, n, 3, nh, d)
    q = qkv[:, :, 0].transpose(1, 2)  # [B, nh, n, d]
    k = qkv[:, :, 1].transpose(1, 2)
    v = qkv[:, :, 2].transpose(1, 2)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    if B * nh * n * n <= _SCORES_LIMIT:
        o = sdpa(q, k, v, allowed)  # [B, nh, n, d]
    else:  # long inputs: one head at a time, same math, bounded memory
        o = torch.cat([sdpa(q[:, h:h + 1], k[:, h:h + 1], v[:, h:h + 1], allowed) for h in range(nh)], dim=1)
    o = o.transpose(1, 2).reshape(B, n, H)  # heads concatenated in head order
    return linear(o, p[pre + "Wo.weight"], p.get(pre + "Wo.bias"))


def mlp(p, cfg, i, x):
    pre = "model.layers.%d.mlp." % i
    u = linear(x, p[pre + "Wi.weight"], p.get(pre + "Wi.bias"))  # [.., 2I]
    I = cfg.intermediate_size
    inp, gate = u[..., :I], u[..., I:]  # activation on the first half, linear gate on the second
    return linear(ACTIVATIONS[cfg.hidden_activation](inp) * gate, p[pre + "Wo.weight"], p.get(pre + "Wo.bias"))


def norm(p, cfg, prefix, x):
    return layer_norm(x, p[prefix + ".weight"], p.get(prefix + ".bias"), cfg.norm_eps)


# --------------------------------------------------------------------------------------------------------
# Model


def encoder(p, cfg, input_ids, attention_mask):
    """last_hidden_state [B, n, H] after final_norm (padded rows are finite but meaningless)."""
    B, n = input_ids.shape
    dtype = p["model.embeddings.tok_embeddings.weight"].dtype
    x = p["model.embeddings.tok_embeddings.weight"][input_ids]
    x = norm(p, cfg, "model.embeddings.norm", x)
    positions = torch.arange(n)
    rope = {}
    for i in range(cfg.num_hidden_layers):
        theta = cfg.rope_theta(i)
        if theta not in rope:
            rope[theta] = rope_cos_sin(positions, cfg.head_dim, theta, dtype)
        cos, sin = rope[theta]
        allowed = attention_allowed(attention_mask, cfg.half_window(i))
        a = x if i == 0 else norm(p, cfg, "model.layers.%d.attn_norm" % i, x)  # layer 0: Identity
        x = x + attention(p, cfg, i, a, allowed, cos, sin)
        x = x + mlp(p, cfg, i, norm(p, cfg, "model.layers.%d.mlp_norm" % i, x))
    return norm(p, cfg, "model.final_norm", x)


def prediction_head(p, cfg, h):
    """head.dense -> classifier_activation -> head.norm (shared by MLM and classification heads)."""
    z = linear(h, p["head.dense.weight"], p.get("head.dense.bias"))
    return norm(p, cfg, "head.norm", ACTIVATIONS[cfg.classifier_activation](z))


def decoder_weight(p, cfg):
    return p["model.embeddings.tok_embeddings.weight"] if cfg.tie_word_embeddings else p["decoder.weight"]


def mlm_logits(p, cfg, h):
    return linear(prediction_head(p, cfg, h), decoder_weight(p, cfg), p.get("decoder.bias"))


def pool(h, attention_mask, pooling):
    """cls: row 0; mean: sum_t m_t h_t / sum_t m_t."""
    if pooling == "cls":
        return h[:, 0]
    if pooling == "mean":
        m = attention_mask.to(h.dtype).unsqueeze(-1)
        return (h * m).sum(dim=1) / m.sum(dim=1)
    raise ValueError("pooling must be cls or mean, got %r" % pooling)


def sequence_logits(p, cfg, h, attention_mask, pooling=None):
    pooled = pool(h, attention_mask, pooling or cfg.classifier_pooling)
    return linear(prediction_head(p, cfg, pooled), p["classifier.weight"], p["classifier.bias"])


def token_logits(p, cfg, h):
    return linear(prediction_head(p, cfg, h), p["classifier.weight"], p["classifier.bias"])


def masked_ce(logits, labels):
    """Mean cross-entropy over positions whose label != -100 (NaN if there are none, like HF)."""
    C = logits.shape[-1]
    logits, labels = logits.reshape(-1, C), labels.reshape(-1)
    keep = labels != -100
    logp = torch.log_softmax(logits[keep], dim=-1)
    nll = -logp.gather(1, labels[keep][:, None]).squeeze(1)
    return nll.sum() / keep.sum()


def resolve_problem_type(cfg, num_labels, labels):
    if cfg.problem_type:
        return cfg.problem_type
    if num_labels == 1:
        return "regression"
    if labels.dtype in (torch.int64, torch.int32):
        return "single_label_classification"
    return "multi_label_classification"


def sequence_loss(cfg, logits, labels):
    """HF ModernBertForSequenceClassification loss by problem_type (MSE / CE / BCE-with-logits)."""
    num_labels = logits.shape[-1]
    pt = resolve_problem_type(cfg, num_labels, labels)
    if pt == "regression":
        target = labels.to(logits.dtype)
        if num_labels == 1:
            return ((logits.reshape(-1) - target.reshape(-1)) ** 2).mean()
        return ((logits - target) ** 2).mean()
    if pt == "single_label_classification":
        return masked_ce(logits, labels.long())
    if pt == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
    raise ConfigError("unknown problem_type %r" % pt)


def forward(p, cfg, input_ids, attention_mask, head, outputs=None, pooling=None, labels=None):
    """Run the model; returns a dict with `last_hidden_state` [B,n,H] and, as available for the head and
    requested in `outputs` (None = default_outputs(head)): `mlm_logits` [B,n,V], `embeddings` [B,H] (pooled final
    hidden state, no head), `logits` [B,num_labels], `token_logits` [B,n,num_labels]; plus `loss` when labels
    are given (MLM / token classification: per-token labels [B,n] with -100 ignored; sequence classification:
    labels [B] or [B, num_labels])."""
    available = available_outputs(head)
    want = set(default_outputs(head) if outputs is None else outputs)
    for o in want:
        if o not in available:
            raise ValueError("output %r not available for head %r" % (o, head))
    res = {}
    h = encoder(p, cfg, input_ids, attention_mask)
    res["last_hidden_state"] = h
    if "embeddings" in want:
        res["embeddings"] = pool(h, attention_mask, pooling or cfg.classifier_pooling)
    if "mlm_logits" in want or (labels is not None and head == HEAD_MLM):
        res["mlm_logits"] = mlm_logits(p, cfg, h)
    if "logits" in want or (labels is not None and head == HEAD_SEQ):
        res["logits"] = sequence_logits(p, cfg, h, attention_mask, pooling)
    if "token_logits" in want or (labels is not None and head == HEAD_TOKEN):
        res["token_logits"] = token_logits(p, cfg, h)
    if labels is not None:
        if head == HEAD_MLM:
            res["loss"] = masked_ce(res["mlm_logits"], labels)
        elif head == HEAD_TOKEN:
            res["loss"] = masked_ce(res["token_logits"], labels)
        elif head == HEAD_SEQ:
            res["loss"] = sequence_loss(cfg, res["logits"], labels)
        else:
            raise ValueError("no loss for a headless model")
    return res


def available_outputs(head):
    """Everything computable for a head (a classifier can be applied pooled or per token)."""
    outs = ["last_hidden_state", "embeddings"]
    if head == HEAD_MLM:
        outs.append("mlm_logits")
    if head in (HEAD_SEQ, HEAD_TOKEN):
        outs += ["logits", "token_logits"]
    return outs


def default_outputs(head):
    """The natural outputs of a head: the backbone ones plus the head's own logits."""
    extra = {HEAD_NONE: [], HEAD_MLM: ["mlm_logits"], HEAD_SEQ: ["logits"], HEAD_TOKEN: ["token_logits"]}
    return ["last_hidden_state", "embeddings"] + extra[head]


def pad_batch(sequences, pad_id=0):
    """Right-pad lists of ids -> (input_ids [B, n] int64, attention_mask [B, n] int64)."""
    n = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), n), int(pad_id), dtype=torch.int64)
    mask = torch.zeros((len(sequences), n), dtype=torch.int64)
    for b, s in enumerate(sequences):
        ids[b, :len(s)] = torch.tensor(s, dtype=torch.int64)
        mask[b, :len(s)] = 1
    return ids, mask
