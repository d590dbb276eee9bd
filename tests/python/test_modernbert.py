#!/usr/bin/env python3
"""The `modernbert` Python module against the CLI (#17 item 3).

Every task is compared with the matching `modernbert` command on the same tiny models (written by
`modernbert init` plus the test tokenizer and sentence-transformers files), within
|got - ref| <= 1e-5 + 1e-4 |ref|; then the sentence-transformers / Hugging Face shapes, every error
path, and that the GIL is released during compute.

Run by CTest (label "script") with PYTHONPATH=<build>/python, MB_CLI=<the CLI>, MB_SOURCE_DIR=<repo>;
by hand: PYTHONPATH=build/python /usr/bin/python3 tests/python/test_modernbert.py -v
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import numpy as np

import modernbert

SRC = os.environ.get("MB_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
CLI = os.environ.get("MB_CLI", os.path.join(SRC, "build", "modernbert"))
TOKENIZER = os.path.join(SRC, "tests", "data", "modernbert-tokenizer", "tokenizer.json")
TMP = None
M = {}  # model name -> directory

TEXTS = ["first text here", "a second, longer text with more words in it", "café naïve — ünïcödé ✓", "x"]


def cli(*args, stdin=None):
    """Runs the CLI; returns its stdout's JSON lines (fails the test with its output otherwise)."""
    r = subprocess.run([CLI, *args], input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"modernbert {' '.join(args)} failed ({r.returncode}): {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def jsonl(texts, pairs=None):
    rows = [{"text": t} if pairs is None else {"text": t, "text_pair": p} for t, p in zip(texts, pairs or texts)]
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f)


def write_safetensors(path, tensors):
    """A float32 safetensors file (the format: u64 header length, JSON header, raw data)."""
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make_model(name, heads, config=None):
    d = os.path.join(TMP, name)
    subprocess.run([CLI, "init", "--preset", "tiny", "--seed", "21", "--heads", heads, "--out", d],
                   check=True, capture_output=True)
    with open(TOKENIZER, "rb") as src, open(os.path.join(d, "tokenizer.json"), "wb") as dst:
        dst.write(src.read())
    if config:
        with open(os.path.join(d, "config.json")) as f:
            c = json.load(f)
        c.update(config)
        write_json(os.path.join(d, "config.json"), c)
    M[name] = d
    return d


def setUpModule():
    global TMP
    TMP = tempfile.mkdtemp(prefix="mb_python_")
    # A sentence-transformers embedding model: mean pooling, Normalize, nomic-style prompts.
    d = make_model("emb", "mlm", {"max_position_embeddings": 512})
    write_json(os.path.join(d, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    os.makedirs(os.path.join(d, "1_Pooling"))
    write_json(os.path.join(d, "1_Pooling", "config.json"), {"word_embedding_dimension": 64, "pooling_mode_mean_tokens": True})
    write_json(os.path.join(d, "config_sentence_transformers.json"),
               {"prompts": {"query": "search_query: ", "document": "search_document: "}, "default_prompt_name": None})
    # A ColBERT-style model: a Dense projection 64 -> 8 applied per token.
    d = make_model("colbert", "mlm")
    write_json(os.path.join(d, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "sentence_transformers.models.Dense"}])
    os.makedirs(os.path.join(d, "1_Dense"))
    write_json(os.path.join(d, "1_Dense", "config.json"),
               {"in_features": 64, "out_features": 8, "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity"})
    w = np.sin(0.1 * np.arange(8 * 64, dtype=np.float64)).reshape(8, 64)
    write_safetensors(os.path.join(d, "1_Dense", "model.safetensors"), {"linear.weight": w})
    make_model("cls", "cls:3", {"id2label": {"0": "neg", "1": "neu", "2": "pos"},
                                "label2id": {"neg": 0, "neu": 1, "pos": 2}})
    make_model("multi", "cls:3", {"problem_type": "multi_label_classification"})
    d = make_model("default_prompt", "mlm")  # a default prompt applies when no prompt is asked for
    write_json(os.path.join(d, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}])
    write_json(os.path.join(d, "config_sentence_transformers.json"),
               {"prompts": {"query": "search_query: ", "plain": ""}, "default_prompt_name": "query"})
    make_model("tok", "token:4")
    make_model("ce", "cls:1")


def tearDownModule():
    subprocess.run(["rm", "-rf", TMP], check=False)


class Case(unittest.TestCase):
    def assertClose(self, got, ref, msg=None):
        got, ref = np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64)
        self.assertEqual(got.shape, ref.shape, msg)
        bad = np.abs(got - ref) > 1e-5 + 1e-4 * np.abs(ref)
        self.assertFalse(bad.any(), f"{msg}: max |got - ref| = {np.abs(got - ref).max()}")


def char_offsets(text, byte_offsets):
    """CLI byte offsets -> the character offsets the module reports for a str."""
    b = text.encode()
    return [(len(b[:s].decode()), len(b[:e].decode())) for s, e in byte_offsets]


class Encode(Case):
    @classmethod
    def setUpClass(cls):
        cls.m = modernbert.Model(M["emb"])

    def cli_embed(self, texts, *flags, model="emb"):
        return np.array([r["embedding"] for r in cli("embed", "--model", M[model], *flags, stdin=jsonl(texts))])

    def test_matches_cli(self):
        self.assertClose(self.m.encode(TEXTS), self.cli_embed(TEXTS), "default")
        self.assertClose(self.m.encode(TEXTS, prompt_name="query"), self.cli_embed(TEXTS, "--prompt", "query"), "prompt")
        self.assertClose(self.m.encode(TEXTS, prompt="search_document: "),
                         self.cli_embed(TEXTS, "--prefix", "search_document: "), "prompt string")
        self.assertClose(self.m.encode(TEXTS, truncate_dim=16), self.cli_embed(TEXTS, "--dim", "16"), "truncate_dim")
        self.assertClose(self.m.encode(TEXTS, pooling="cls", batch_size=1),
                         self.cli_embed(TEXTS, "--pooling", "cls"), "cls pooling, batch_size 1")
        d = modernbert.Model(M["default_prompt"])
        self.assertEqual(d.default_prompt_name, "query")
        self.assertClose(d.encode(TEXTS), self.cli_embed(TEXTS, model="default_prompt"), "default prompt")
        self.assertClose(d.encode(TEXTS), d.encode(["search_query: " + t for t in TEXTS], prompt_name="plain"),
                         "default prompt = its text prepended")
        # sentence-transformers: a literal prompt replaces the default prompt (not added after it).
        self.assertClose(d.encode(TEXTS, prompt="search_document: "),
                         d.encode(["search_document: " + t for t in TEXTS], prompt_name="plain"),
                         "prompt= replaces the default prompt")
        m = modernbert.Model(M["cls"])  # no Normalize module: normalize_embeddings is the CLI's --normalize
        self.assertClose(m.encode(TEXTS), self.cli_embed(TEXTS, model="cls"), "unnormalised")
        self.assertClose(m.encode(TEXTS, normalize_embeddings=True),
                         self.cli_embed(TEXTS, "--normalize", model="cls"), "normalize_embeddings")

    def test_shapes_like_sentence_transformers(self):
        one = self.m.encode("hello world")
        self.assertEqual((one.shape, one.dtype), ((64,), np.float32))
        many = self.m.encode(["hello world", "bye"])
        self.assertEqual((many.shape, many.dtype), ((2, 64), np.float32))
        self.assertClose(many[0], one, "str == first row of a list")
        self.assertClose(self.m.encode(("hello world", "bye")), many, "a tuple")
        self.assertEqual(self.m.encode([]).shape, (0, 64))
        self.assertEqual(self.m.get_sentence_embedding_dimension(), 64)
        self.assertClose(np.linalg.norm(many, axis=1), [1, 1], "Normalize module")
        rows = self.m.encode(["a", "b"], convert_to_numpy=False)
        self.assertIsInstance(rows, list)
        self.assertEqual([r.shape for r in rows], [(64,), (64,)])
        self.assertEqual(self.m.encode(["a", "b"], truncate_dim=8).shape, (2, 8))
        ub = self.m.encode(TEXTS, precision="ubinary")
        self.assertEqual((ub.shape, ub.dtype), ((4, 8), np.uint8))
        np.testing.assert_array_equal(ub, np.packbits(self.m.encode(TEXTS) > 0, axis=-1))
        self.assertEqual(self.m.encode(TEXTS, precision="int8").dtype, np.int8)
        try:
            import torch
        except ImportError:
            return
        t = self.m.encode(["a"], convert_to_tensor=True)
        self.assertIsInstance(t, torch.Tensor)
        self.assertEqual(tuple(t.shape), (1, 64))

    def test_bytes_inputs(self):
        self.assertClose(self.m.encode([t.encode() for t in TEXTS]), self.m.encode(TEXTS), "bytes == str")

    def test_dtype(self):
        m = modernbert.Model(M["emb"], dtype="bf16")
        self.assertEqual(m.precision, "bf16")
        ref = self.cli_embed(TEXTS, "--dtype", "bf16")
        self.assertClose(m.encode(TEXTS), ref, "bf16 like the CLI's --dtype bf16")

    def test_token_embeddings(self):
        m = modernbert.Model(M["colbert"])
        ref = cli("embed", "--model", M["colbert"], "--colbert", stdin=jsonl(TEXTS))
        got = m.encode_tokens(TEXTS)
        self.assertEqual(len(got), len(TEXTS))
        for g, r in zip(got, ref):
            self.assertEqual(g.dtype, np.float32)
            self.assertClose(g, r["vectors"], "ColBERT vectors")
        for g, r in zip(m.encode(TEXTS, output_value="token_embeddings"), got):
            self.assertClose(g, r, "output_value='token_embeddings'")
        one = m.encode_tokens("hello world")
        self.assertEqual(one.shape, (4, 8))  # [CLS] hello world [SEP]
        self.assertEqual(m.encode_tokens("hello world", is_query=True).shape[1], 8)


class Tasks(Case):
    def test_classify(self):
        m = modernbert.Model(M["cls"])
        self.assertEqual(m.labels, ["neg", "neu", "pos"])
        ref = cli("classify", "--model", M["cls"], stdin=jsonl(TEXTS))
        got = m.classify(TEXTS)
        self.assertEqual(len(got), len(TEXTS))
        for g, r in zip(got, ref):
            self.assertEqual(g["label"], r["label"])
            self.assertClose(g["score"], r["score"], "score")
            self.assertEqual(list(g["scores"]), ["neg", "neu", "pos"])
            self.assertClose(list(g["scores"].values()), [r["scores"][k] for k in g["scores"]], "scores")
            e = np.exp(np.array(g["logits"]) - max(g["logits"]))
            self.assertClose(list(g["scores"].values()), e / e.sum(), "softmax of the logits")
        one = m.classify(TEXTS[0])  # a str: one dict
        self.assertEqual(one["label"], got[0]["label"])
        self.assertClose(one["logits"], got[0]["logits"], "str vs list")
        pairs = ["the other side", "b", "c", "d"]
        ref = cli("classify", "--model", M["cls"], stdin=jsonl(TEXTS, pairs))
        for g, r in zip(m.classify(TEXTS, pairs=pairs), ref):
            self.assertClose(g["score"], r["score"], "pair")
        for g, r in zip(m.classify(list(zip(TEXTS, pairs))), ref):
            self.assertClose(g["score"], r["score"], "pair tuples")
        for g, r in zip(m.classify([[t, p] for t, p in zip(TEXTS, pairs)]), ref):
            self.assertClose(g["score"], r["score"], "pair lists")
        ce = modernbert.Model(M["ce"])  # one label, no problem_type: regression, {"value"}
        for g, r in zip(ce.classify(TEXTS), cli("classify", "--model", M["ce"], stdin=jsonl(TEXTS))):
            self.assertEqual(sorted(g), ["logits", "value"])
            self.assertClose(g["value"], r["value"], "regression value")

    def test_classify_multi_label(self):
        m = modernbert.Model(M["multi"])
        for g, r in zip(m.classify(TEXTS), cli("classify", "--model", M["multi"], stdin=jsonl(TEXTS))):
            self.assertEqual(g["labels"], r["labels"])
            self.assertClose([g["scores"][k] for k in r["scores"]], list(r["scores"].values()), "sigmoid")

    def test_classify_tokens(self):
        m = modernbert.Model(M["tok"])
        ref = cli("classify", "--model", M["tok"], "--tokens", stdin=jsonl(TEXTS))
        got = m.classify_tokens(TEXTS)
        for text, g, r in zip(TEXTS, got, ref):
            r = r["tokens"]
            self.assertEqual([t["label"] for t in g], [t["label"] for t in r])
            self.assertEqual([t["id"] for t in g], [t["id"] for t in r])
            self.assertEqual([t["token"] for t in g], [t["token"] for t in r])
            self.assertClose([t["score"] for t in g], [t["score"] for t in r], "token scores")
            self.assertEqual([(t["start"], t["end"]) for t in g], char_offsets(text, [(t["start"], t["end"]) for t in r]))
        one = m.classify_tokens(TEXTS[2])  # a str: one list (its own batch: scores equal within tolerance)
        self.assertEqual([(t["token"], t["start"], t["end"]) for t in one], [(t["token"], t["start"], t["end"]) for t in got[2]])
        self.assertClose([t["score"] for t in one], [t["score"] for t in got[2]], "str vs list")

    def test_fill_mask(self):
        m = modernbert.Model(M["emb"])
        texts = ["The capital of France is [MASK].", "[MASK] and [MASK] are friends."]
        ref = cli("fill-mask", "--model", M["emb"], "--top-k", "3", stdin=jsonl(texts))
        got = m.fill_mask(texts, top_k=3)
        self.assertIsInstance(got[0][0], dict)  # one mask: a list of predictions
        self.assertIsInstance(got[1][0], list)  # two masks: a list per mask
        for g_masks, r in zip([[got[0]], got[1]], ref):
            self.assertEqual(len(g_masks), len(r["masks"]))
            for g, rm in zip(g_masks, r["masks"]):
                rp = rm["predictions"]
                self.assertEqual([p["token"] for p in g], [p["token"] for p in rp])
                self.assertEqual([p["token_str"] for p in g], [p["token_str"] for p in rp])
                self.assertEqual([p["sequence"] for p in g], [p["sequence"] for p in rp])
                self.assertClose([p["score"] for p in g], [p["score"] for p in rp], "fill-mask scores")
                self.assertEqual(sorted(g[0]), ["score", "sequence", "token", "token_str"])
        one = m.fill_mask(texts[0], top_k=3)
        self.assertEqual([p["token"] for p in one], [p["token"] for p in got[0]])
        self.assertClose([p["score"] for p in one], [p["score"] for p in got[0]], "str vs list")
        self.assertEqual(len(m.fill_mask(texts[0])), 5)

    def test_tokenize(self):
        m = modernbert.Model(M["emb"])
        ref = cli("tokenize", "--model", M["emb"], stdin=jsonl(TEXTS))
        got = m.tokenize(TEXTS)
        for text, g, r in zip(TEXTS, got, ref):
            self.assertEqual(g["input_ids"], r["input_ids"])
            self.assertEqual(g["offsets"], char_offsets(text, r["offsets"]))
            self.assertEqual(len(g["tokens"]), len(g["input_ids"]))
        self.assertEqual(m.tokenize(TEXTS[0]), got[0])
        raw = m.tokenize(TEXTS[2].encode())  # bytes: byte offsets, as the CLI
        self.assertEqual([list(o) for o in raw["offsets"]], ref[2]["offsets"])
        ref_ns = cli("tokenize", "--model", M["emb"], "--no-special", stdin=jsonl(TEXTS[:1]))
        self.assertEqual(m.tokenize(TEXTS[0], add_special_tokens=False)["input_ids"], ref_ns[0]["input_ids"])

    def test_rerank(self):
        docs = ["paris is in france", "bananas are yellow", "the eiffel tower", "rope scaling"]
        q = "where is paris?"
        m = modernbert.Model(M["ce"])
        got = m.rerank(q, docs)
        # Independent of the rerank code: the sigmoid of each (query, doc) pair's one logit, best first.
        logits = [c["logits"][0] for c in m.classify([q] * len(docs), pairs=docs)]
        want = sorted(range(len(docs)), key=lambda i: -logits[i])
        self.assertEqual([h["corpus_id"] for h in got], want)
        self.assertClose([h["score"] for h in got], [1 / (1 + np.exp(-logits[i])) for i in want], "sigmoid")
        top = m.rerank(q, docs, top_n=2, return_documents=True)
        self.assertEqual([(h["corpus_id"], h["text"]) for h in top], [(i, docs[i]) for i in want[:2]])
        self.assertEqual(m.rank(q, docs, top_k=2), [{k: v for k, v in h.items() if k != "text"} for h in top])
        self.assertEqual(m.rerank(q, []), [])
        self.assertEqual(m.rerank(q, (d for d in docs), top_n=1, return_documents=True)[0]["text"], docs[want[0]])
        # ColBERT: MaxSim of the token vectors; embedding: cosine of the (prompted) sentence embeddings.
        c = modernbert.Model(M["colbert"])
        qv, dv = c.encode_tokens(q, is_query=True), c.encode_tokens(docs)
        maxsim = [float((qv @ d.T).max(axis=1).sum()) for d in dv]
        got = c.rerank(q, docs)
        self.assertEqual([h["corpus_id"] for h in got], sorted(range(len(docs)), key=lambda i: -maxsim[i]))
        self.assertClose([h["score"] for h in got], sorted(maxsim, reverse=True), "MaxSim")
        e = modernbert.Model(M["emb"])
        qe, de = e.encode(q, prompt_name="query"), e.encode(docs, prompt_name="document")
        cos = de @ qe
        got = e.rerank(q, docs, query_prompt_name="query", document_prompt_name="document")
        self.assertEqual([h["corpus_id"] for h in got], sorted(range(len(docs)), key=lambda i: -cos[i]))
        self.assertClose([h["score"] for h in got], sorted(cos, reverse=True), "cosine")
        # The CLI's rerank on each kind of model.
        for name, mode in (("ce", "cross-encoder"), ("colbert", "colbert"), ("emb", "embedding")):
            got = modernbert.Model(M[name]).rerank(q, docs, mode=mode)
            ref = cli("rerank", "--model", M[name], "--query", q, "--mode", mode, stdin=jsonl(docs))
            self.assertEqual([h["corpus_id"] for h in got], [r["index"] for r in ref], mode)
            self.assertClose([h["score"] for h in got], [r["score"] for r in ref], mode)

    def test_info_and_repr(self):
        m = modernbert.Model(M["emb"])
        i = m.info
        self.assertEqual((i["hidden_size"], i["num_layers"], i["embedding_dim"]), (64, 4, 64))
        self.assertEqual(i["prompts"], {"query": "search_query: ", "document": "search_document: "})
        self.assertEqual((i["pooling"], i["normalize"], i["precision"]), ("mean", True, "f32"))
        self.assertTrue(i["has_mlm"] and not i["has_classifier"])
        self.assertEqual((m.max_seq_length, m.default_prompt_name, m.path), (512, None, M["emb"]))
        self.assertIn("modernbert.Model('" + M["emb"], repr(m))
        self.assertEqual(modernbert.Model(M["tok"]).info["num_labels"], 4)
        import pathlib
        self.assertEqual(modernbert.Model(pathlib.Path(M["ce"])).info["problem_type"], "regression")


class Stub(Case):
    def test_pyi_lists_the_module(self):
        """python/modernbert.pyi names every public member of Model and of the module, and nothing else."""
        import ast
        with open(os.path.join(SRC, "python", "modernbert.pyi")) as f:
            tree = ast.parse(f.read())
        cls = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
        stub = {n.name for n in cls["Model"].body if isinstance(n, ast.FunctionDef)}
        runtime = {k for k in dir(modernbert.Model) if not k.startswith("_")} | {"__init__", "__enter__", "__exit__"}
        self.assertEqual(stub, runtime)
        self.assertEqual({"Model", "ModernBertError", "InputError"}, set(cls))
        self.assertEqual({k for k in dir(modernbert) if not k.startswith("_")}, set(cls))


class Errors(Case):
    @classmethod
    def setUpClass(cls):
        cls.m = modernbert.Model(M["emb"])

    def test_library_errors(self):
        with self.assertRaises(modernbert.ModernBertError) as e:
            modernbert.Model(os.path.join(TMP, "nope"))
        self.assertIn("nope", str(e.exception))
        self.assertIsInstance(e.exception, RuntimeError)
        with self.assertRaisesRegex(modernbert.ModernBertError, "no such prompt"):
            self.m.encode(["a"], prompt_name="nope")
        with self.assertRaisesRegex(modernbert.ModernBertError, "head"):
            self.m.classify(["a"])
        with self.assertRaisesRegex(modernbert.ModernBertError, "head"):
            modernbert.Model(M["cls"]).fill_mask(["a [MASK]"])
        with self.assertRaisesRegex(modernbert.ModernBertError, "head"):
            self.m.classify_tokens(["a"])

    def test_input_errors(self):
        long_text = "word " * 600  # > 512 tokens
        with self.assertRaises(modernbert.InputError) as e:
            self.m.encode(["fine", long_text])
        self.assertEqual((e.exception.index, e.exception.kind), (1, "too_long"))
        self.assertIsInstance(e.exception, ValueError)
        self.assertIn("text 1", str(e.exception))
        self.assertIn("truncate=True", str(e.exception))  # the Python option, not the C++ one
        self.assertEqual(modernbert.Model(M["emb"], truncate=True).encode(["fine", long_text]).shape, (2, 64))
        with self.assertRaises(modernbert.InputError) as e:
            self.m.encode(["a", ""])
        self.assertEqual((e.exception.index, e.exception.kind), (1, "empty"))
        with self.assertRaises(modernbert.InputError) as e:
            self.m.tokenize(["fine", b"\xff"])
        self.assertEqual(e.exception.index, 1)
        with self.assertRaises(modernbert.InputError) as e:
            self.m.fill_mask(["a [MASK]", "no mask here"])
        self.assertEqual((e.exception.index, e.exception.kind), (1, "no_mask"))
        bad = b"ok \xff\xfe bytes"
        with self.assertRaises(modernbert.InputError) as e:
            self.m.encode(["a", "b", bad])
        self.assertEqual(e.exception.index, 2)
        self.assertIn("invalid UTF-8", str(e.exception))
        self.assertIn("lossy_utf8=True", str(e.exception))
        self.assertEqual(modernbert.Model(M["emb"], lossy_utf8=True).encode([bad]).shape, (1, 64))

    def test_python_argument_errors(self):
        m = self.m
        for call, exc in [(lambda: m.encode(["a"], batch_size=0), ValueError),
                          (lambda: m.encode(5), TypeError),
                          (lambda: m.encode(["a", 3]), TypeError),
                          (lambda: m.encode({"a": 1}), TypeError),
                          (lambda: m.encode(["a"], output_value="nope"), ValueError),
                          (lambda: m.encode(["a"], precision="float8"), ValueError),
                          (lambda: m.encode(["a"], pooling="sum"), ValueError),
                          (lambda: m.encode(["a"], truncate_dim=0), ValueError),
                          (lambda: m.encode(["a"], device="cuda"), ValueError),
                          (lambda: m.encode(["\ud800"]), UnicodeEncodeError),
                          (lambda: m.fill_mask("a [MASK]", top_k=0), ValueError),
                          (lambda: m.rerank("q", "one str"), TypeError),
                          (lambda: m.rerank(["q"], ["d"]), TypeError),
                          (lambda: m.rerank("q", ["d"], top_n=0), ValueError),
                          (lambda: m.rerank("q", ["d"], mode="bm25"), ValueError),
                          (lambda: m.classify(["a", "b"], pairs=["x"]), ValueError),
                          (lambda: modernbert.Model(M["emb"], dtype="f64"), ValueError),
                          (lambda: modernbert.Model(M["emb"], threads=-1), ValueError),
                          (lambda: modernbert.Model(M["emb"], max_batch_tokens=0), ValueError)]:
            with self.assertRaises(exc):
                call()
        with modernbert.Model(M["emb"]) as closed:
            pass
        with self.assertRaisesRegex(modernbert.ModernBertError, "closed"):
            closed.encode("a")
        self.assertIn("closed", repr(closed))


class Gil(Case):
    def test_threads_run_during_compute(self):
        m = modernbert.Model(M["emb"])
        texts = ["some words to embed in a longer sentence " * 40] * 8
        while True:  # enough work for a measurable window (>= 0.5 s)
            start = time.perf_counter()
            m.encode(texts)
            if time.perf_counter() - start >= 0.5 or len(texts) > 4096:
                break
            texts = texts * 2
        ref = m.encode(texts)
        ticks, stop = [], threading.Event()

        def counter():
            while not stop.is_set():
                ticks.append(time.perf_counter())
                time.sleep(0.001)

        th = threading.Thread(target=counter)
        th.start()
        time.sleep(0.05)
        a = time.perf_counter()
        got = m.encode(texts)
        b = time.perf_counter()
        stop.set()
        th.join()
        inner = [t for t in ticks if a + 0.1 * (b - a) < t < b - 0.1 * (b - a)]
        # With the GIL held for the whole call the counter could not tick inside the window at all.
        # (A loaded machine may starve the counter of CPU for a while, never of the GIL: a few ticks.)
        self.assertGreaterEqual(len(inner), 3, f"{len(inner)} ticks in a {b - a:.3f} s encode")
        self.assertClose(got, ref, "same result with a thread running")

        # Two Python threads encoding at once (one Model, serialised inside; and one Model each).
        results = {}
        other = modernbert.Model(M["emb"])

        def work(key, model):
            results[key] = model.encode(TEXTS)

        ths = [threading.Thread(target=work, args=(k, mm)) for k, mm in (("a", m), ("b", m), ("c", other))]
        for t in ths:
            t.start()
        for t in ths:
            t.join(timeout=120)
        self.assertEqual(sorted(results), ["a", "b", "c"])
        for k in "abc":
            self.assertClose(results[k], m.encode(TEXTS), k)


class Example(Case):
    def test_quickstart(self):
        r = subprocess.run([sys.executable, os.path.join(SRC, "examples", "python", "quickstart.py"), M["emb"]],
                           capture_output=True, text=True, env=dict(os.environ))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("embeddings: (3, 64)", r.stdout)


if __name__ == "__main__":
    unittest.main()
