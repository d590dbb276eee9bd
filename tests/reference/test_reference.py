#!/usr/bin/python3
"""Self-tests of the Python reference. Run:  /usr/bin/python3 -m unittest tests/reference/test_reference.py
(or /usr/bin/python3 tests/reference/test_reference.py)."""

import collections
import contextlib
import io
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_checkpoint  # noqa: E402
import make_checkpoint as mk  # noqa: E402
import modernbert_ref as ref  # noqa: E402
import run_reference  # noqa: E402
import safetensors_io as st  # noqa: E402

torch.set_num_threads(1)
F64 = torch.float64


def tiny(head=ref.HEAD_MLM, num_labels=None, seed=0, style="legacy", **overrides):
    """(cfg, float64 params) of an in-memory random checkpoint."""
    d = mk.make_config("tiny", None, overrides, head, num_labels, style)
    cfg = ref.Config(d)
    tensors = mk.make_tensors(cfg, head, num_labels, seed)
    return cfg, collections.OrderedDict((k, v.to(F64)) for k, v in tensors.items())


def run(p, cfg, seqs, head, **kw):
    ids, mask = ref.pad_batch(seqs, 0)
    return ref.forward(p, cfg, ids, mask, head, **kw), mask


class ParamCounts(unittest.TestCase):
    """The name/shape table reproduces the spec's derived parameter counts (§1.1)."""

    def test_counts(self):
        for preset, enc, mlm in (("base", 149014272, 149655232), ("large", 394781696, 395881664)):
            cfg = ref.Config(mk.make_config(preset))
            count = lambda head: sum(int(np.prod(s)) for s in ref.expected_shapes(cfg, head).values())
            self.assertEqual(count(ref.HEAD_NONE), enc, preset)
            self.assertEqual(count(ref.HEAD_MLM), mlm, preset)
            names = ref.expected_shapes(cfg, ref.HEAD_MLM)
            self.assertNotIn("model.layers.0.attn_norm.weight", names)
            self.assertIn("model.layers.1.attn_norm.weight", names)
            self.assertNotIn("decoder.weight", names)


class PaddedVsAlone(unittest.TestCase):
    """A padded batch gives the same non-pad outputs as each sequence run alone."""

    seqs = [[1, 7, 9, 30, 31, 32, 33, 34, 35, 36, 37, 38, 2], [1, 5, 2], [1] + list(range(100, 120)) + [2], [1]]

    def check(self, head, num_labels=None, **overrides):
        cfg, p = tiny(head, num_labels, **overrides)
        outs = ref.default_outputs(head) + (["token_logits", "logits"] if num_labels else [])
        outs = sorted(set(outs))
        batch, mask = run(p, cfg, self.seqs, head, outputs=outs)
        for b, s in enumerate(self.seqs):
            alone, _ = run(p, cfg, [s], head, outputs=outs)
            n = len(s)
            for k in outs:
                if k in ("embeddings", "logits"):
                    got, want = batch[k][b], alone[k][0]
                else:
                    got, want = batch[k][b, :n], alone[k][0]
                self.assertLess((got - want).abs().max().item(), 1e-10, "%s row %d" % (k, b))

    def test_mlm(self):
        self.check(ref.HEAD_MLM)

    def test_mlm_all_biases(self):
        self.check(ref.HEAD_MLM, norm_bias=True, attention_bias=True, mlp_bias=True, classifier_bias=True,
                   hidden_activation="gelu_pytorch_tanh", classifier_activation="silu", tie_word_embeddings=False)

    def test_seq_mean_and_cls(self):
        self.check(ref.HEAD_SEQ, 3, classifier_pooling="mean")
        self.check(ref.HEAD_SEQ, 3, classifier_pooling="cls")

    def test_token(self):
        self.check(ref.HEAD_TOKEN, 5, norm_bias=True)

    def test_float32_close_to_float64(self):
        cfg, p = tiny()
        a, _ = run(p, cfg, self.seqs, ref.HEAD_MLM)
        p32 = {k: v.to(torch.float32) for k, v in p.items()}
        b, _ = run(p32, cfg, self.seqs, ref.HEAD_MLM)
        self.assertEqual(b["mlm_logits"].dtype, torch.float32)
        self.assertLess((a["mlm_logits"] - b["mlm_logits"].double()).abs().max().item(), 1e-4)

    def test_padding_rows_finite(self):
        # long padding tail: sliding-layer pad queries see no key at all and must stay finite
        cfg, p = tiny()
        out, _ = run(p, cfg, [[1, 2], list(range(1, 40))], ref.HEAD_MLM)
        self.assertTrue(torch.isfinite(out["last_hidden_state"]).all())


class LocalWindow(unittest.TestCase):
    """Sliding layers: query i sees key j iff |i - j| <= local_attention // 2 (spec §1.3)."""

    def changed(self, cfg, p, i, j, n=20):
        ids = [(7 * t + 3) % 500 + 10 for t in range(n)]
        other = list(ids)
        other[j] = 499 if ids[j] != 499 else 498
        a, _ = run(p, cfg, [ids], ref.HEAD_NONE)
        b, _ = run(p, cfg, [other], ref.HEAD_NONE)
        return not torch.equal(a["last_hidden_state"][0, i], b["last_hidden_state"][0, i])

    def test_one_sliding_layer(self):
        for la in (8, 9):  # half window 4 either way
            cfg, p = tiny(ref.HEAD_NONE, num_hidden_layers=1, layer_types=["sliding_attention"], local_attention=la)
            self.assertEqual(cfg.half_window(0), 4)
            i = 10
            for j in range(20):
                self.assertEqual(self.changed(cfg, p, i, j), abs(i - j) <= 4, "local_attention %d, key %d" % (la, j))

    def test_one_global_layer_sees_all(self):
        cfg, p = tiny(ref.HEAD_NONE, num_hidden_layers=1, local_attention=8)
        self.assertTrue(cfg.is_global(0))
        for j in (0, 5, 15, 19):
            self.assertTrue(self.changed(cfg, p, 10, j))

    def test_layer_types_and_theta(self):
        cfg = ref.Config(mk.make_config("base"))
        self.assertEqual([i for i in range(22) if cfg.is_global(i)], [0, 3, 6, 9, 12, 15, 18, 21])
        self.assertEqual((cfg.rope_theta(0), cfg.rope_theta(1), cfg.half_window(1)), (160000.0, 10000.0, 64))
        v5 = ref.Config(mk.make_config("base", style="v5"))
        self.assertEqual(v5.layer_types, cfg.layer_types)
        self.assertEqual(v5.rope_theta_by_type, cfg.rope_theta_by_type)
        self.assertNotIn("global_rope_theta", v5.raw)
        custom = ref.Config({"num_hidden_layers": 2, "layer_types": ["sliding_attention", "full_attention"],
                             "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 5.0},
                                                 "sliding_attention": {"rope_type": "default", "rope_theta": 7.0}}})
        self.assertEqual([custom.rope_theta(0), custom.rope_theta(1)], [7.0, 5.0])
        self.assertEqual(custom.half_window(0), 64)
        self.assertIsNone(custom.half_window(1))

    def test_v5_config_same_outputs(self):
        seqs = [list(range(1, 30)), [1, 2, 3]]
        cfg, p = tiny()
        cfg5, p5 = tiny(style="v5")
        a, _ = run(p, cfg, seqs, ref.HEAD_MLM)
        b, _ = run(p5, cfg5, seqs, ref.HEAD_MLM)
        self.assertTrue(torch.equal(a["mlm_logits"], b["mlm_logits"]))


class Rope(unittest.TestCase):
    """Rotate-half RoPE == a 2-D rotation of each pair (j, j + d/2) by p * inv_freq[j]."""

    def test_inv_freq(self):
        for d, theta in ((64, 160000.0), (64, 10000.0), (16, 10000.0)):
            inv = ref.rope_inv_freq(d, theta)
            self.assertEqual(inv.dtype, torch.float32)
            exact = torch.tensor([1.0 / theta ** (2.0 * j / d) for j in range(d // 2)], dtype=F64)
            self.assertLess(((inv.double() - exact) / exact).abs().max().item(), 2.0 ** -22)

    def test_pairs_rotate(self):
        d, theta = 16, 10000.0
        g = torch.Generator().manual_seed(0)
        x = torch.randn(d, generator=g, dtype=F64)
        positions = torch.tensor([0, 1, 2, 7, 100, 4095, 8191])
        cos, sin = ref.rope_cos_sin(positions, d, theta, F64)
        y = ref.apply_rope(x.expand(len(positions), d), cos, sin)
        inv32 = ref.rope_inv_freq(d, theta).numpy()
        for r, p in enumerate(positions.tolist()):
            for j in range(d // 2):
                ang = float(np.float32(p) * inv32[j])  # the float32 product HF forms
                c, s = math.cos(ang), math.sin(ang)
                want = (c * x[j].item() - s * x[j + d // 2].item(), s * x[j].item() + c * x[j + d // 2].item())
                self.assertAlmostEqual(y[r, j].item(), want[0], delta=1e-12)
                self.assertAlmostEqual(y[r, j + d // 2].item(), want[1], delta=1e-12)
                # and the float32 angle is within float32 rounding of the exact one
                self.assertLess(abs(ang - p / theta ** (2.0 * j / d)), 4 * p * 2.0 ** -24 + 1e-300)

    def test_relative(self):
        d = 64
        g = torch.Generator().manual_seed(1)
        q, k = torch.randn(d, generator=g, dtype=F64), torch.randn(d, generator=g, dtype=F64)
        pos = torch.tensor([3, 10, 40, 47])
        cos, sin = ref.rope_cos_sin(pos, d, 160000.0, F64)
        rq = ref.apply_rope(q.expand(4, d), cos, sin)
        rk = ref.apply_rope(k.expand(4, d), cos, sin)
        self.assertAlmostEqual((rq[1] @ rk[0]).item(), (rq[3] @ rk[2]).item(), delta=1e-5)  # both i-j = 7
        self.assertGreater(abs((rq[1] @ rk[0]).item() - (q @ k).item()), 1e-3)


class Activations(unittest.TestCase):
    def test_gelu_erf_and_tanh(self):
        xs = torch.linspace(-6, 6, 241, dtype=F64)
        erf_form = torch.tensor([0.5 * x * (1 + math.erf(x / math.sqrt(2))) for x in xs.tolist()], dtype=F64)
        tanh_form = torch.tensor([0.5 * x * (1 + math.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
                                  for x in xs.tolist()], dtype=F64)
        self.assertLess((ref.ACTIVATIONS["gelu"](xs) - erf_form).abs().max().item(), 1e-14)
        self.assertLess((ref.ACTIVATIONS["gelu_pytorch_tanh"](xs) - tanh_form).abs().max().item(), 1e-14)
        self.assertLess((ref.ACTIVATIONS["gelu_new"](xs) - tanh_form).abs().max().item(), 1e-14)
        self.assertGreater((erf_form - tanh_form).abs().max().item(), 1e-4)  # the forms are distinguishable
        self.assertLess((ref.ACTIVATIONS["gelu"](xs) - F.gelu(xs)).abs().max().item(), 1e-14)
        self.assertLess((ref.ACTIVATIONS["silu"](xs) - xs * torch.sigmoid(xs)).abs().max().item(), 1e-15)
        self.assertTrue(torch.equal(ref.ACTIVATIONS["relu"](xs), torch.relu(xs)))

    def test_geglu_activation_on_first_half(self):
        cfg, p = tiny(ref.HEAD_NONE, num_hidden_layers=1, hidden_activation="relu")
        I = cfg.intermediate_size
        x = torch.randn(3, cfg.hidden_size, dtype=F64)
        Wi = p["model.layers.0.mlp.Wi.weight"].clone()
        # input half forced negative -> relu zero -> output zero whatever the gate
        Wi[:I] = 0.0
        p2 = dict(p)
        p2["model.layers.0.mlp.Wi.weight"] = Wi
        self.assertEqual(ref.mlp(p2, cfg, 0, x).abs().max().item(), 0.0)
        Wi = p["model.layers.0.mlp.Wi.weight"].clone()
        Wi[I:] = 0.0  # zero gate -> zero
        p2["model.layers.0.mlp.Wi.weight"] = Wi
        self.assertEqual(ref.mlp(p2, cfg, 0, x).abs().max().item(), 0.0)
        u = x @ p["model.layers.0.mlp.Wi.weight"].t()
        want = (torch.relu(u[:, :I]) * u[:, I:]) @ p["model.layers.0.mlp.Wo.weight"].t()
        self.assertLess((ref.mlp(p, cfg, 0, x) - want).abs().max().item(), 1e-12)


class Decoder(unittest.TestCase):
    seqs = [[1, 20, 21, 22, 2], [1, 30, 2]]
    labels = [[-100, 20, -100, 400, -100], [-100, 31, -100]]

    def loss_and_grads(self, cfg, p):
        p = {k: v.clone().requires_grad_() for k, v in p.items()}
        ids, mask = ref.pad_batch(self.seqs, 0)
        lab, _ = ref.pad_batch(self.labels, -100)
        out = ref.forward(p, cfg, ids, mask, ref.HEAD_MLM, labels=lab)
        out["loss"].backward()
        return out, p

    def test_tied_vs_untied(self):
        cfg_t, p_t = tiny()
        self.assertNotIn("decoder.weight", p_t)
        cfg_u, _ = tiny(tie_word_embeddings=False)
        p_u = dict(p_t)
        p_u["decoder.weight"] = p_t["model.embeddings.tok_embeddings.weight"].clone()
        out_t, g_t = self.loss_and_grads(cfg_t, p_t)
        out_u, g_u = self.loss_and_grads(cfg_u, p_u)
        self.assertLess((out_t["mlm_logits"] - out_u["mlm_logits"]).abs().max().item(), 1e-12)
        # tied gradient = embedding-lookup gradient + decoder gradient
        E = "model.embeddings.tok_embeddings.weight"
        self.assertLess((g_t[E].grad - g_u[E].grad - g_u["decoder.weight"].grad).abs().max().item(), 1e-12)
        self.assertGreater(g_u["decoder.weight"].grad.abs().max().item(), 0)
        # a different decoder matrix changes the logits but not the hidden states
        p_u["decoder.weight"] = p_u["decoder.weight"] + 0.1
        out_u2, _ = self.loss_and_grads(cfg_u, p_u)
        self.assertTrue(torch.equal(out_u2["last_hidden_state"], out_t["last_hidden_state"]))
        self.assertGreater((out_u2["mlm_logits"] - out_t["mlm_logits"]).abs().max().item(), 1e-3)

    def test_mlm_logits_formula(self):
        cfg, p = tiny(decoder_bias=True)
        out, _ = run(p, cfg, self.seqs, ref.HEAD_MLM)
        h = out["last_hidden_state"]
        z = F.layer_norm(F.gelu(h @ p["head.dense.weight"].t()), (cfg.hidden_size,), p["head.norm.weight"], None, 1e-5)
        want = z @ p["model.embeddings.tok_embeddings.weight"].t() + p["decoder.bias"]
        self.assertLess((out["mlm_logits"] - want).abs().max().item(), 1e-10)
        cfg_nb, p_nb = tiny(decoder_bias=False)
        self.assertNotIn("decoder.bias", p_nb)
        run(p_nb, cfg_nb, self.seqs, ref.HEAD_MLM)


class Losses(unittest.TestCase):
    def test_mlm_loss_and_finite_differences(self):
        cfg, p = tiny(norm_bias=True, attention_bias=True)
        ids, mask = ref.pad_batch(Decoder.seqs, 0)
        lab, _ = ref.pad_batch(Decoder.labels, -100)
        pg = {k: v.clone().requires_grad_() for k, v in p.items()}
        out = ref.forward(pg, cfg, ids, mask, ref.HEAD_MLM, labels=lab)
        logits = out["mlm_logits"]
        want = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), lab.reshape(-1), ignore_index=-100)
        self.assertLess(abs(out["loss"].item() - want.item()), 1e-12)
        out["loss"].backward()
        g = torch.Generator().manual_seed(3)
        for name in ("model.layers.1.attn.Wqkv.weight", "model.layers.2.mlp.Wo.weight", "model.layers.3.attn_norm.bias",
                     "model.embeddings.tok_embeddings.weight", "head.dense.weight", "decoder.bias"):
            t = p[name]
            flat = int(torch.randint(t.numel(), (1,), generator=g))
            if name.startswith("model.embeddings.tok"):
                flat = 21 * cfg.hidden_size + 5  # a row used by the input and the decoder
            eps = 1e-6
            vals = []
            for sgn in (1, -1):
                q = dict(p)
                q[name] = t.clone().view(-1)
                q[name][flat] += sgn * eps
                q[name] = q[name].view(t.shape)
                vals.append(ref.forward(q, cfg, ids, mask, ref.HEAD_MLM, labels=lab)["loss"].item())
            fd = (vals[0] - vals[1]) / (2 * eps)
            ag = pg[name].grad.view(-1)[flat].item()
            self.assertAlmostEqual(ag, fd, delta=1e-6 + 1e-5 * abs(fd), msg=name)

    def test_sequence_losses(self):
        seqs = [[1, 5, 6, 2], [1, 9, 2], [1, 3, 4, 5, 6, 7, 2]]
        ids, mask = ref.pad_batch(seqs, 0)
        cfg, p = tiny(ref.HEAD_SEQ, 3)
        out = ref.forward(p, cfg, ids, mask, ref.HEAD_SEQ, labels=torch.tensor([0, 2, 1]))
        self.assertAlmostEqual(out["loss"].item(), F.cross_entropy(out["logits"], torch.tensor([0, 2, 1])).item(), delta=1e-12)
        multi = torch.tensor([[1.0, 0, 1], [0, 0, 1], [0, 1, 0]], dtype=F64)
        out = ref.forward(p, cfg, ids, mask, ref.HEAD_SEQ, labels=multi)
        self.assertAlmostEqual(out["loss"].item(), F.binary_cross_entropy_with_logits(out["logits"], multi).item(), delta=1e-12)
        cfg1, p1 = tiny(ref.HEAD_SEQ, 1)
        target = torch.tensor([0.5, -1.0, 2.0], dtype=F64)
        out = ref.forward(p1, cfg1, ids, mask, ref.HEAD_SEQ, labels=target)
        self.assertAlmostEqual(out["loss"].item(), F.mse_loss(out["logits"][:, 0], target).item(), delta=1e-12)
        # pooling: mean over real tokens only
        h = out["last_hidden_state"]
        self.assertLess((ref.pool(h, mask, "mean")[1] - h[1, :3].mean(0)).abs().max().item(), 1e-14)

    def test_token_loss(self):
        cfg, p = tiny(ref.HEAD_TOKEN, 4)
        ids, mask = ref.pad_batch([[1, 5, 6, 2], [1, 9, 2]], 0)
        lab = torch.tensor([[-100, 1, 3, -100], [-100, 0, -100, -100]])
        out = ref.forward(p, cfg, ids, mask, ref.HEAD_TOKEN, labels=lab)
        want = F.cross_entropy(out["token_logits"].reshape(-1, 4), lab.reshape(-1), ignore_index=-100)
        self.assertAlmostEqual(out["loss"].item(), want.item(), delta=1e-12)


class Safetensors(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_round_trip_each_dtype(self):
        g = torch.Generator().manual_seed(0)
        tensors = collections.OrderedDict()
        for name in st.DTYPE_NAMES:
            dt = st.torch_dtype(name)
            if dt.is_floating_point:
                t = torch.randn(3, 5, generator=g, dtype=torch.float64).to(dt)
            elif dt == torch.bool:
                t = torch.rand(3, 5, generator=g) > 0.5
            else:
                info = torch.iinfo(dt)
                t = torch.randint(info.min, info.max, (3, 5), generator=g, dtype=torch.int64).to(dt)
                t[0, 0], t[0, 1] = info.min, info.max
            tensors["z_" + name] = t  # names not in sorted order on purpose
        tensors["a_scalar"] = torch.tensor(2.5)
        tensors["m_empty"] = torch.zeros(0, 4, dtype=torch.float16)
        tensors["b_transposed"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
        path = os.path.join(self.dir, "x.safetensors")
        st.save(tensors, path, {"note": "hi"})
        back, meta = st.load(path)
        self.assertEqual(meta, {"note": "hi"})
        self.assertEqual(list(back), list(tensors))  # given order kept
        for k, v in tensors.items():
            self.assertEqual(back[k].dtype, v.dtype, k)
            self.assertEqual(back[k].shape, v.shape, k)
            self.assertTrue(torch.equal(back[k], v.contiguous()), k)
        self.assertEqual(st.dtypes_of(path)["z_BF16"], "BF16")
        npy, _ = st.load_numpy(path)
        self.assertTrue(np.array_equal(npy["z_BF16"], tensors["z_BF16"].float().numpy()))
        with open(path, "rb") as f:
            raw = f.read()
        (n,) = struct.unpack("<Q", raw[:8])
        self.assertEqual((8 + n) % 8, 0)
        header = json.loads(raw[8:8 + n], object_pairs_hook=collections.OrderedDict)
        self.assertEqual(list(header)[0], "__metadata__")
        self.assertEqual(header["z_F16"]["dtype"], "F16")
        bf = tensors["z_BF16"].view(torch.int16).numpy().astype("<i2").tobytes()
        b0, b1 = header["z_BF16"]["data_offsets"]
        self.assertEqual(raw[8 + n + b0:8 + n + b1], bf)
        self.assertEqual([f for f in os.listdir(self.dir) if f.startswith(".tmp")], [])

    def test_rejects_bad_files(self):
        path = os.path.join(self.dir, "x.safetensors")
        st.save({"a": torch.ones(4)}, path)
        with open(path, "rb") as f:
            raw = f.read()
        bad = os.path.join(self.dir, "bad.safetensors")
        for blob in (raw[:-1], raw[:5], struct.pack("<Q", 10 ** 12) + raw[8:], raw + b"\0"):
            with open(bad, "wb") as f:
                f.write(blob)
            with self.assertRaises(st.SafetensorsError):
                st.load(bad)


class Cli(unittest.TestCase):
    """make_checkpoint -> run_reference / check_checkpoint, in-process."""

    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def call(self, fn, args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = fn(args)
        return rc, out.getvalue(), err.getvalue()

    def test_end_to_end(self):
        ck = os.path.join(self.dir, "ck")
        self.call(mk.main, ["--out", ck, "--head", "mlm", "--dtype", "BF16", "--no-prefix", "--shards", "2", "--seed", "5",
                 "--set", "classifier_pooling=\"cls\""])
        self.assertFalse(os.path.exists(os.path.join(ck, "model.safetensors")))
        with open(os.path.join(ck, "model.safetensors.index.json")) as f:
            names = json.load(f)["weight_map"]
        self.assertIn("embeddings.tok_embeddings.weight", names)
        seqs = [[1, 5, 6, 7, 8, 9, 10, 11, 12, 2], [1, 40, 2], list(range(1, 30))]
        labels = [[-100] * len(s) for s in seqs]
        labels[0][3], labels[2][20] = 7, 9
        inp = os.path.join(self.dir, "in.jsonl")
        with open(inp, "w") as f:
            for s, l in zip(seqs, labels):
                f.write(json.dumps({"input_ids": s, "labels": l}) + "\n")
        out = os.path.join(self.dir, "out.safetensors")
        run_reference.main(["--model", ck, "--input", inp, "--output", out, "--dtype", "float64",
                            "--pooling", "mean", "--normalize", "--batch-size", "2"])
        t, meta = st.load(out)
        self.assertEqual(list(t), ["input_ids", "cu_seqlens", "last_hidden_state", "mlm_logits", "embeddings"])
        T = sum(map(len, seqs))
        self.assertEqual(t["cu_seqlens"].tolist(), [0, 10, 13, T])
        self.assertEqual(t["input_ids"].tolist(), [i for s in seqs for i in s])
        self.assertEqual(t["last_hidden_state"].dtype, torch.float32)
        self.assertEqual(list(t["mlm_logits"].shape), [T, 512])
        self.assertLess((t["embeddings"].double().norm(dim=-1) - 1).abs().max().item(), 1e-6)
        # same as the library on the sequence alone
        loaded = ref.load_checkpoint(ck)
        self.assertFalse(loaded.prefixed)
        p = loaded.params(F64)
        alone, _ = run(p, loaded.cfg, [seqs[1]], ref.HEAD_MLM, pooling="mean")
        self.assertLess((t["last_hidden_state"][10:13].double() - alone["last_hidden_state"][0]).abs().max().item(), 1e-6)
        e = alone["embeddings"][0] / alone["embeddings"][0].norm()
        self.assertLess((t["embeddings"][1].double() - e).abs().max().item(), 1e-6)
        # grad mode
        gout = os.path.join(self.dir, "grad.safetensors")
        run_reference.main(["--model", ck, "--input", inp, "--output", gout, "--grad", "--dtype", "float64",
                            "--outputs", "mlm_logits"])
        g, _ = st.load(gout)
        self.assertEqual(list(g["loss"].shape), [])
        self.assertIn("grad.embeddings.tok_embeddings.weight", g)
        self.assertNotIn("grad.decoder.weight", g)
        pg = loaded.params(F64, requires_grad=True)
        ids, mask = ref.pad_batch(seqs, 0)
        lab, _ = ref.pad_batch(labels, -100)
        loss = ref.forward(pg, loaded.cfg, ids, mask, ref.HEAD_MLM, labels=lab)["loss"]
        loss.backward()
        self.assertAlmostEqual(g["loss"].item(), loss.item(), delta=1e-6)
        self.assertLess((g["grad.layers.2.mlp.Wi.weight"].double() - pg["model.layers.2.mlp.Wi.weight"].grad).abs().max().item(), 1e-6)
        # check_checkpoint: valid names, stats, sha of F32 bytes
        rc, text, _ = self.call(check_checkpoint.main, [ck])
        self.assertEqual(rc, 0)
        rep = json.loads(text)
        self.assertEqual(rep["head"], "mlm")
        row = [r for r in rep["tensors"] if r["name"] == "layers.1.attn_norm.weight"][0]
        self.assertEqual(row["dtype"], "BF16")
        self.assertEqual(row["shape"], [64])
        self.assertTrue(0.79 <= row["min"] <= row["max"] <= 1.21)  # U(0.8, 1.2) rounded to BF16
        rc, _, err = self.call(check_checkpoint.main, [ck, "--init-rules"])
        self.assertEqual(rc, 1)
        self.assertIn("embeddings.tok_embeddings.weight", err)

    def test_init_rules(self):
        ck = os.path.join(self.dir, "meg")
        self.call(mk.main, ["--out", ck, "--head", "cls:3", "--weights", "megatron", "--set", "tie_word_embeddings=false",
                 "--set", "num_hidden_layers=6"])
        rc, text, err = self.call(check_checkpoint.main, [ck, "--init-rules"])
        self.assertEqual(rc, 0, err)
        rules = {r["name"]: (r["rule"], r["sigma"]) for r in json.loads(text)["init_rules"]}
        self.assertEqual(rules["model.layers.4.mlp.Wo.weight"], ("out", 0.02 / math.sqrt(12)))
        self.assertEqual(rules["head.dense.weight"], ("in", 0.02))
        self.assertEqual(rules["classifier.weight"], ("final_out", 64 ** -0.5))
        self.assertEqual(rules["classifier.bias"][0], "zero")
        # break one tensor: HF-style sigma_out for head.dense -> reported by name
        tensors, meta = st.load(os.path.join(ck, "model.safetensors"))
        tensors["head.dense.weight"] = tensors["head.dense.weight"] * (1 / math.sqrt(12))
        st.save(tensors, os.path.join(ck, "model.safetensors"), meta)
        rc, _, err = self.call(check_checkpoint.main, [ck, "--init-rules"])
        self.assertEqual(rc, 1)
        self.assertIn("head.dense.weight", err)
        self.assertNotIn("mlp.Wo", err)
        # a missing tensor is a name error
        del tensors["model.layers.2.mlp_norm.weight"]
        st.save(tensors, os.path.join(ck, "model.safetensors"), meta)
        rc, text, err = self.call(check_checkpoint.main, [ck])
        self.assertEqual(rc, 1)
        self.assertIn("missing tensor model.layers.2.mlp_norm.weight", err)

    def test_scripts_run_standalone(self):
        import subprocess
        here = os.path.dirname(os.path.abspath(__file__))
        ck = os.path.join(self.dir, "sub")
        subprocess.run([sys.executable, os.path.join(here, "make_checkpoint.py"), "--out", ck, "--head", "token:2",
                        "--set", "num_hidden_layers=2"], check=True, cwd="/", stdout=subprocess.DEVNULL)
        r = subprocess.run([sys.executable, os.path.join(here, "check_checkpoint.py"), ck], cwd="/",
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["head"], "token_cls")

    def test_seq_and_token_outputs(self):
        for head, want in (("cls:2", ["logits"]), ("token:3", ["token_logits"])):
            ck = os.path.join(self.dir, head.replace(":", ""))
            self.call(mk.main, ["--out", ck, "--head", head, "--config-style", "v5", "--dtype", "F16"])
            inp = os.path.join(self.dir, "in.jsonl")
            with open(inp, "w") as f:
                f.write('{"input_ids": [1, 2, 3]}\n{"input_ids": [1, 4, 5, 6, 7]}\n')
            out = os.path.join(self.dir, "o.safetensors")
            run_reference.main(["--model", ck, "--input", inp, "--output", out])
            t, meta = st.load(out)
            self.assertEqual(list(t)[-1], want[0])
            n = int(head.split(":")[1])
            self.assertEqual(list(t[want[0]].shape), [2, n] if want[0] == "logits" else [8, n])


if __name__ == "__main__":
    unittest.main()
