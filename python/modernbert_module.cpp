// The `modernbert` Python module (#17): modernbert::Model (modernbert/inference.h) with the calling
// conventions of sentence-transformers (encode, rank) and the Hugging Face pipelines (fill-mask,
// classification).
//
// Every call copies its Python inputs into C++ strings, then releases the GIL for the whole
// computation (loading included): other Python threads run meanwhile. Calls on one Model are
// serialised by the Model's own mutex; a Model is freed by close() / `with` / garbage collection,
// never while a call on it is running (each call holds a shared_ptr to it).
#include <pybind11/eval.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>

#include "convert.h"
#include "modernbert/inference.h"
#include "modernbert/precision.h"

namespace py = pybind11;
using namespace pybind11::literals;

namespace modernbert::py_binding {
namespace {

// ST's quantize_embeddings (sentence_transformers/quantization.py), in NumPy, for precision= of
// encode(): int8 / uint8 with ranges calibrated on the embeddings themselves, (u)binary packed bits.
const char* kQuantize = R"(
def _quantize(emb, precision):
    import numpy as np
    if precision in ("int8", "uint8"):
        starts = emb.min(axis=0)
        steps = (emb.max(axis=0) - starts) / 255
        q = (emb - starts) / steps
        return q.astype(np.uint8) if precision == "uint8" else (q - 128).astype(np.int8)
    bits = np.packbits(emb > 0, axis=-1)
    return bits if precision == "ubinary" else (bits.astype(np.int16) - 128).astype(np.int8)
)";

class PyModel {
 public:
  PyModel(py::object path, std::optional<std::string> dtype, int threads, int64_t max_batch_tokens, bool truncate,
          bool lossy_utf8) {
    py::object p = py::module_::import("os").attr("fspath")(path);
    std::string dir = py::isinstance<py::bytes>(p) ? std::string(p.cast<py::bytes>()) : p.cast<std::string>();
    ModelOptions o;
    if (dtype) {
      Precision prec;
      if (!parse_precision(*dtype, &prec))
        throw py::value_error("dtype must be one of 'f32', 'bf16', 'f16', 'int8' (or None), not '" + *dtype + "'");
      o.precision = prec;
    }
    if (threads < 0) throw py::value_error("threads must be >= 0 (0 = all cores)");
    if (max_batch_tokens < 1) throw py::value_error("max_batch_tokens must be >= 1");
    o.threads = threads;
    o.max_batch_tokens = max_batch_tokens;
    o.truncate = truncate;
    o.lossy_utf8 = lossy_utf8;
    py::gil_scoped_release nogil;
    model_ = std::make_shared<Model>(dir, o);
  }

  std::shared_ptr<Model> get() const {
    if (!model_) throw Error("this modernbert.Model is closed");
    return model_;
  }
  void close() { model_.reset(); }
  const ModelInfo& info() const { return get()->info(); }

  py::object encode(py::object sentences, std::optional<std::string> prompt_name, std::optional<std::string> prompt,
                    int64_t batch_size, py::object /*show_progress_bar*/, const std::string& output_value,
                    const std::string& precision, bool convert_to_numpy, bool convert_to_tensor,
                    std::optional<std::string> device, bool normalize_embeddings, std::optional<int64_t> truncate_dim,
                    std::optional<std::string> pooling, bool is_query) {
    if (batch_size < 1) throw py::value_error("batch_size must be >= 1");
    if (device && *device != "cpu")
      throw py::value_error("device: modernbert.cpp runs on the CPU only ('cpu' or None)");
    if (truncate_dim && *truncate_dim < 1) throw py::value_error("truncate_dim must be >= 1 (or None)");
    if (output_value == "token_embeddings") return encode_tokens(sentences, is_query, prompt);
    if (output_value != "sentence_embedding")
      throw py::value_error("output_value must be 'sentence_embedding' or 'token_embeddings', not '" + output_value +
                            "'");
    if (precision != "float32" && precision != "int8" && precision != "uint8" && precision != "binary" &&
        precision != "ubinary")
      throw py::value_error("precision must be 'float32', 'int8', 'uint8', 'binary' or 'ubinary', not '" + precision +
                            "'");
    Texts t = to_texts(sentences, "sentences");
    EmbedParams p;
    // sentence-transformers: `prompt` wins over `prompt_name`; neither = the model's default prompt.
    if (prompt) {
      p.prefix = *prompt;
      p.use_default_prompt = false;
    } else if (prompt_name) {
      p.prompt_name = *prompt_name;
    }
    p.normalize = normalize_embeddings;
    p.dim = truncate_dim.value_or(0);
    if (pooling) p.pooling = parse_pooling(*pooling);
    p.batch_size = batch_size;
    auto m = get();
    Matrix e;
    if (t.size() == 0) {  // [0, D], as sentence-transformers gives for []
      e.cols = p.dim > 0 ? std::min(p.dim, m->info().embedding_dim) : m->info().embedding_dim;
    } else {
      py::gil_scoped_release nogil;
      e = m->embed(t.items, p);
    }
    py::object arr = to_numpy(std::move(e));
    if (precision != "float32") arr = quantizer()(arr, precision);
    if (t.single) arr = arr[py::int_(0)];
    if (convert_to_tensor) return py::module_::import("torch").attr("from_numpy")(arr);
    if (!convert_to_numpy && !t.single) return py::list(arr);  // a list of 1-D arrays
    return arr;
  }

  py::object encode_tokens(py::object texts, bool is_query, std::optional<std::string> prefix) {
    Texts t = to_texts(texts, "texts");
    TokenParams p;
    p.is_query = is_query;
    p.prefix = prefix.value_or("");
    auto m = get();
    TokenVectors v;
    {
      py::gil_scoped_release nogil;
      v = m->embed_tokens(t.items, p);
    }
    py::list out;
    for (size_t i = 0; i < t.size(); ++i) {
      const int64_t r0 = v.offsets[i], r1 = v.offsets[i + 1];
      out.append(rows_to_numpy(v.vectors.row(r0), r1 - r0, v.vectors.cols));
    }
    if (t.single) return out[0];
    return out;
  }

  py::object classify(py::object texts, py::object pairs) {
    Texts a, b;
    if (!pairs.is_none()) {
      a = to_texts(texts, "texts");
      b = to_texts(pairs, "pairs");
      if (a.single != b.single || a.size() != b.size())
        throw py::value_error("pairs must match texts: " + std::to_string(b.size()) + " pairs for " +
                              std::to_string(a.size()) + " texts");
    } else if (is_pair_list(texts)) {
      // CrossEncoder.predict style: a list of (text, text_pair) tuples or [text, text_pair] lists.
      size_t i = 0;
      for (py::handle item : texts) {
        if (!(py::isinstance<py::tuple>(item) || py::isinstance<py::list>(item)) || py::len(item) != 2)
          throw py::type_error("texts[" + std::to_string(i) + "]: expected a (text, text_pair) pair");
        Texts x = to_texts(item[py::int_(0)], "text"), y = to_texts(item[py::int_(1)], "text_pair");
        if (!x.single || !y.single) throw py::type_error("texts[" + std::to_string(i) + "]: expected two str");
        a.items.push_back(x.items[0]);
        b.items.push_back(y.items[0]);
        ++i;
      }
    } else {
      a = to_texts(texts, "texts");
    }
    auto m = get();
    std::vector<Classification> r;
    {
      py::gil_scoped_release nogil;
      r = m->classify(a.items, b.items);
    }
    py::list out;
    for (const auto& c : r) out.append(classification_to_dict(c, m->info()));
    if (a.single) return out[0];
    return out;
  }

  py::object classify_tokens(py::object texts) {
    Texts t = to_texts(texts, "texts");
    auto m = get();
    std::vector<std::vector<TokenLabel>> r;
    {
      py::gil_scoped_release nogil;
      r = m->classify_tokens(t.items);
    }
    py::list out;
    for (size_t i = 0; i < r.size(); ++i)
      out.append(token_labels_to_list(r[i], m->info(), OffsetMap(t.items[i], t.is_bytes[i])));
    if (t.single) return out[0];
    return out;
  }

  py::object fill_mask(py::object texts, int64_t top_k) {
    if (top_k < 1) throw py::value_error("top_k must be >= 1");
    Texts t = to_texts(texts, "texts");
    auto m = get();
    std::vector<std::vector<MaskResult>> r;
    {
      py::gil_scoped_release nogil;
      r = m->fill_mask(t.items, top_k);
    }
    py::list out;
    for (const auto& masks : r) out.append(mask_results_to_list(masks));
    if (t.single) return out[0];
    return out;
  }

  py::list rerank(py::object query, py::object documents, std::optional<int64_t> top_n, const std::string& mode,
                  bool return_documents, std::optional<std::string> query_prompt_name,
                  std::optional<std::string> document_prompt_name) {
    Texts q = to_texts(query, "query");
    if (!q.single) throw py::type_error("query must be one str (or bytes)");
    py::list docs =
        PyUnicode_Check(documents.ptr()) || PyBytes_Check(documents.ptr()) || !py::isinstance<py::iterable>(documents)
            ? py::list()
            : py::list(documents);  // once: `documents` may be a generator
    Texts d = to_texts(docs.empty() ? documents : docs, "documents");
    if (d.single) throw py::type_error("documents must be a list of str, not one str");
    if (top_n && *top_n < 1) throw py::value_error("top_n must be >= 1 (or None for all)");
    RerankParams p;
    if (mode == "auto")
      p.mode = RerankMode::kAuto;
    else if (mode == "cross-encoder" || mode == "cross_encoder")
      p.mode = RerankMode::kCrossEncoder;
    else if (mode == "colbert")
      p.mode = RerankMode::kColBERT;
    else if (mode == "embedding")
      p.mode = RerankMode::kEmbedding;
    else
      throw py::value_error("mode must be 'auto', 'cross-encoder', 'colbert' or 'embedding', not '" + mode + "'");
    p.top_n = top_n.value_or(0);
    p.query_prompt_name = query_prompt_name.value_or("");
    p.document_prompt_name = document_prompt_name.value_or("");
    auto m = get();
    std::vector<RerankHit> hits;
    if (d.size() > 0) {
      py::gil_scoped_release nogil;
      hits = m->rerank(q.items[0], d.items, p);
    }
    py::list out;
    for (const RerankHit& h : hits) {
      py::dict e("corpus_id"_a = h.index, "score"_a = h.score);
      if (return_documents) e["text"] = docs[static_cast<size_t>(h.index)];
      out.append(e);
    }
    return out;
  }

  py::object tokenize(py::object texts, bool add_special_tokens) {
    Texts t = to_texts(texts, "texts");
    auto m = get();
    std::vector<Encoding> encs;
    {
      py::gil_scoped_release nogil;
      for (size_t i = 0; i < t.size(); ++i) {
        try {
          encs.push_back(m->tokenize(t.items[i], add_special_tokens));
        } catch (const BatchItemError& e) {  // Model::tokenize takes one text: its index is 0
          const auto* ie = dynamic_cast<const InputError*>(&e);
          throw InputError(ie ? ie->kind : InputIssue::kTokenizer, i, e.detail());
        }
      }
    }
    py::list out;
    for (size_t i = 0; i < encs.size(); ++i)
      out.append(encoding_to_dict(encs[i], m->tokenizer(), OffsetMap(t.items[i], t.is_bytes[i])));
    if (t.single) return out[0];
    return out;
  }

  std::string repr() const {
    if (!model_) return "modernbert.Model(<closed>)";
    const ModelInfo& i = model_->info();
    std::string heads;
    auto add = [&](bool on, const std::string& s) {
      if (on) heads += (heads.empty() ? "" : ", ") + s;
    };
    add(i.has_mlm, "mlm");
    add(i.has_classifier, "classifier(" + std::to_string(i.num_labels) + ")");
    add(i.has_token_classifier, "token-classifier(" + std::to_string(i.num_labels) + ")");
    add(i.has_colbert, "colbert");
    return "modernbert.Model('" + i.dir + "', precision='" + precision_name(i.precision) +
           "', hidden_size=" + std::to_string(i.hidden_size) + ", layers=" + std::to_string(i.num_layers) +
           ", embedding_dim=" + std::to_string(i.embedding_dim) + ", heads=[" + heads + "])";
  }

 private:
  // A non-empty list / tuple whose first item is a tuple or list: classify()'s text pairs.
  static bool is_pair_list(const py::object& texts) {
    if (!py::isinstance<py::list>(texts) && !py::isinstance<py::tuple>(texts)) return false;
    if (py::len(texts) == 0) return false;
    py::object first = texts[py::int_(0)];
    return py::isinstance<py::tuple>(first) || py::isinstance<py::list>(first);
  }
  static EmbedPooling parse_pooling(const std::string& s) {
    if (s != "cls" && s != "mean" && s != "max")
      throw py::value_error("pooling must be 'cls', 'mean' or 'max' (or None), not '" + s + "'");
    return parse_embed_pooling(s);
  }
  static py::object quantizer() {
    static py::object* f = nullptr;  // leaked: must outlive nothing, and never run after finalisation
    if (!f) {
      py::dict ns;
      py::exec(kQuantize, ns);
      f = new py::object(ns["_quantize"]);
    }
    return *f;
  }

  std::shared_ptr<Model> model_;
};

}  // namespace
}  // namespace modernbert::py_binding

using modernbert::py_binding::PyModel;

PYBIND11_MODULE(modernbert, m) {
  m.doc() = R"(modernbert.cpp from Python: a ModernBERT model directory (Hugging Face / sentence-transformers
layout) on the CPU, with sentence-transformers' encode() and rank() conventions.

    import modernbert
    model = modernbert.Model("nomic-ai/modernbert-embed-base", dtype="bf16")
    emb = model.encode(["what is rope?"], prompt_name="query")   # numpy float32 [1, 768]

Texts are str (offsets in results count characters) or bytes (UTF-8; offsets count bytes). Every
call releases the GIL while it computes. Errors: ModernBertError (a RuntimeError) with the library's
message; InputError (a ModernBertError and a ValueError) for one refused input, with .index, .kind,
.detail; ValueError / TypeError for bad arguments.)";
  m.attr("__version__") = "0.1.0";
  modernbert::py_binding::register_exceptions(m);

  py::class_<PyModel>(m, "Model", R"(A loaded model directory. Thread-safe: calls on one Model are serialised
(each uses every core); use one Model per thread for concurrent forwards.)")
      .def(py::init<py::object, std::optional<std::string>, int, int64_t, bool, bool>(), "path"_a,
           "dtype"_a = py::none(), "threads"_a = 0, "max_batch_tokens"_a = 16384, "truncate"_a = false,
           "lossy_utf8"_a = false,
           R"(Load the model directory `path` (str or os.PathLike): config.json, model.safetensors,
tokenizer.json and any sentence-transformers files (modules.json, 1_Pooling, 2_Dense, Normalize,
config_sentence_transformers.json).

dtype: None (f32, or a quantized checkpoint's own type) | 'f32' | 'bf16' | 'f16' | 'int8'.
threads: compute threads, 0 = all cores (process-wide setting).
max_batch_tokens: token budget of one forward.
truncate: cut texts longer than the model's max length instead of raising InputError.
lossy_utf8: invalid UTF-8 in bytes inputs becomes U+FFFD instead of an InputError.
Raises ModernBertError when the directory cannot be loaded.)")
      .def("encode", &PyModel::encode, "sentences"_a, "prompt_name"_a = py::none(), "prompt"_a = py::none(),
           "batch_size"_a = 32, "show_progress_bar"_a = py::none(), "output_value"_a = "sentence_embedding",
           "precision"_a = "float32", "convert_to_numpy"_a = true, "convert_to_tensor"_a = false,
           "device"_a = py::none(), "normalize_embeddings"_a = false, "truncate_dim"_a = py::none(),
           "pooling"_a = py::none(), "is_query"_a = false,
           R"(Sentence embeddings, as sentence-transformers' SentenceTransformer.encode.

sentences: a str (-> 1-D array [D]) or a list of str (-> float32 array [N, D]; [0, D] for []).
prompt_name: a prompt of config_sentence_transformers.json ("query", ...) prepended to every text;
  None = the model's default_prompt_name if it has one. An unknown name raises ModernBertError.
prompt: a literal prompt string, prepended to every text instead of prompt_name's and instead of
  the model's default prompt (as in sentence-transformers).
batch_size: at most this many texts per forward (>= 1).
output_value: 'sentence_embedding' | 'token_embeddings' (= encode_tokens(): a list of [len, D] arrays).
precision: 'float32' | 'int8' | 'uint8' | 'binary' | 'ubinary' (ST's quantize_embeddings; int8/uint8
  ranges calibrated on these embeddings).
convert_to_numpy: False returns a list of 1-D arrays; convert_to_tensor: a torch.Tensor (needs torch).
device: None or 'cpu'. show_progress_bar: accepted and ignored.
normalize_embeddings: L2-normalise (a model with a Normalize module always does).
truncate_dim: Matryoshka, keep the first truncate_dim dimensions (re-normalised when normalised).
pooling: None (the model's) | 'cls' | 'mean' | 'max'.
is_query: only with output_value='token_embeddings' (PyLate query treatment).)")
      .def("encode_tokens", &PyModel::encode_tokens, "texts"_a, "is_query"_a = false, "prefix"_a = py::none(),
           R"(Per-token vectors: ColBERT vectors (the model's Dense projection, L2-normalised) when the
model has one, else the final hidden states.

texts: a str (-> one float32 array [len, D]) or a list of str (-> a list of [len_i, D] arrays); len
counts every token, [CLS] and [SEP] included.
is_query: PyLate ColBERT models: the query treatment (query prefix, [MASK] expansion to query_length);
False = documents.
prefix: a string prepended to every text.)")
      .def("classify", &PyModel::classify, "texts"_a, "pairs"_a = py::none(),
           R"(Sequence classification (the model needs a sequence-classification head).

texts: a str (-> one dict) or a list of str (-> a list of dicts); a list of (text, text_pair)
tuples, or pairs= a list as long as texts, classifies text pairs (cross-encoders).
Each dict is the CLI's `modernbert classify` line plus the raw logits:
  single label: {"label": name, "score": p, "scores": {name: p, ...}, "logits": [...]} (softmax)
  multi label:  {"labels": [names with p > 0.5], "scores": {...}, "logits": [...]} (sigmoid)
  regression:   {"value": x (or [x, ...]), "logits": [...]})")
      .def("classify_tokens", &PyModel::classify_tokens, "texts"_a,
           R"(Token classification (needs a token-classification head): for each text the list of its
non-special tokens as {"index", "id", "token", "start", "end", "label", "score"} (softmax
probability of the argmax label; start/end index the input: characters of a str, bytes of bytes).
A str returns one list, a list of str a list of lists.)")
      .def("fill_mask", &PyModel::fill_mask, "texts"_a, "top_k"_a = 5,
           R"(Fill every [MASK], as Hugging Face pipeline("fill-mask"): for a text with one mask a list of
top_k {"score", "token", "token_str", "sequence"} dicts, best first; with several masks a list of
those lists. A str returns that; a list of str a list of them. A text without [MASK] raises
InputError (kind 'no_mask').)")
      .def("rerank", &PyModel::rerank, "query"_a, "documents"_a, "top_n"_a = py::none(), "mode"_a = "auto",
           "return_documents"_a = false, "query_prompt_name"_a = py::none(), "document_prompt_name"_a = py::none(),
           R"(Rank documents by relevance to query, as sentence-transformers' CrossEncoder.rank: a list of
{"corpus_id": index into documents, "score": float} (plus "text" with return_documents=True), best
first, ties in input order, top_n best only (None = all).

mode: 'auto' (a classifier head -> 'cross-encoder', else a projection -> 'colbert', else
'embedding') | 'cross-encoder' (sigmoid of the one logit) | 'colbert' (MaxSim of token vectors) |
'embedding' (cosine of sentence embeddings; query/document_prompt_name select their prompts).)")
      .def(
          "rank",
          [](PyModel& s, py::object q, py::object docs, std::optional<int64_t> top_k, bool return_documents,
             const std::string& mode) { return s.rerank(q, docs, top_k, mode, return_documents, {}, {}); },
          "query"_a, "documents"_a, "top_k"_a = py::none(), "return_documents"_a = false, "mode"_a = "auto",
          "rerank() with sentence-transformers' CrossEncoder.rank signature (top_k = rerank's top_n).")
      .def("tokenize", &PyModel::tokenize, "texts"_a, "add_special_tokens"_a = true,
           R"(Tokenize with the model's tokenizer.json: for a str one dict, for a list a list of dicts
{"input_ids": [int], "offsets": [(start, end)] (characters of a str, bytes of bytes; (0, 0) for
[CLS]/[SEP]), "tokens": [str], "special_tokens_mask", "token_type_ids", "attention_mask"}.)")
      .def("close", &PyModel::close, "Free the weights now; any later call raises ModernBertError.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyModel& self, py::args) { self.close(); })
      .def(
          "get_sentence_embedding_dimension", [](const PyModel& s) { return s.info().embedding_dim; },
          "The dimension D of encode()'s embeddings (sentence-transformers' name).")
      .def_property_readonly(
          "info", [](const PyModel& s) { return modernbert::py_binding::info_to_dict(s.info()); },
          "Everything about the model as a dict (sizes, dtype, heads, labels, prompts, pooling).")
      .def_property_readonly("path", [](const PyModel& s) { return s.info().dir; })
      .def_property_readonly("embedding_dim", [](const PyModel& s) { return s.info().embedding_dim; })
      .def_property_readonly("hidden_size", [](const PyModel& s) { return s.info().hidden_size; })
      .def_property_readonly(
          "max_seq_length", [](const PyModel& s) { return s.info().max_length; },
          "Longest input in tokens ([CLS]/[SEP] included); longer is an InputError unless truncate.")
      .def_property_readonly(
          "precision", [](const PyModel& s) { return std::string(modernbert::precision_name(s.info().precision)); })
      .def_property_readonly(
          "labels", [](const PyModel& s) { return s.info().labels; },
          "Classifier label names in id order ([] without a classifier).")
      .def_property_readonly("prompts", [](const PyModel& s) { return s.info().prompts; })
      .def_property_readonly("default_prompt_name",
                             [](const PyModel& s) -> std::optional<std::string> {
                               if (s.info().default_prompt_name.empty()) return std::nullopt;
                               return s.info().default_prompt_name;
                             })
      .def("__repr__", &PyModel::repr);
}
