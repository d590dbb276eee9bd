// Conversions of the `modernbert` Python module (see convert.h).
#include "convert.h"

#include <cstring>
#include <utility>

#include "modernbert/config.h"
#include "modernbert/precision.h"

namespace modernbert::py_binding {

Texts to_texts(py::handle obj, const char* what) {
  Texts t;
  auto add = [&](py::handle item, size_t index) {
    if (PyUnicode_Check(item.ptr())) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(item.ptr(), &n);  // UnicodeEncodeError on lone surrogates
      if (!s) throw py::error_already_set();
      t.items.emplace_back(s, static_cast<size_t>(n));
      t.is_bytes.push_back(false);
    } else if (PyBytes_Check(item.ptr())) {
      t.items.emplace_back(PyBytes_AS_STRING(item.ptr()), static_cast<size_t>(PyBytes_GET_SIZE(item.ptr())));
      t.is_bytes.push_back(true);
    } else if (t.single) {
      throw py::type_error(std::string(what) + " must be a str, bytes or a list of them, not " +
                           std::string(py::str(py::type::handle_of(item).attr("__name__"))));
    } else {
      throw py::type_error(std::string(what) + "[" + std::to_string(index) + "] must be str or bytes, not " +
                           std::string(py::str(py::type::handle_of(item).attr("__name__"))));
    }
  };
  if (PyUnicode_Check(obj.ptr()) || PyBytes_Check(obj.ptr())) {
    t.single = true;
    add(obj, 0);
    return t;
  }
  if (!py::isinstance<py::iterable>(obj) || py::isinstance<py::dict>(obj)) {
    t.single = true;  // for the message
    add(obj, 0);
  }
  size_t i = 0;
  for (py::handle item : py::reinterpret_borrow<py::iterable>(obj)) add(item, i++);
  return t;
}

OffsetMap::OffsetMap(const std::string& utf8, bool keep_bytes) {
  if (keep_bytes) return;
  chars_before_.resize(utf8.size() + 1);
  size_t n = 0;
  for (size_t i = 0; i < utf8.size(); ++i) {
    chars_before_[i] = n;
    if ((static_cast<unsigned char>(utf8[i]) & 0xC0) != 0x80) ++n;  // a lead byte starts a code point
  }
  chars_before_[utf8.size()] = n;
}

size_t OffsetMap::operator()(size_t byte_offset) const {
  if (chars_before_.empty()) return byte_offset;
  return chars_before_[std::min(byte_offset, chars_before_.size() - 1)];
}

py::array_t<float> to_numpy(Matrix&& m) {
  auto* owned = new std::vector<float>(std::move(m.data));
  py::capsule base(owned, [](void* p) { delete static_cast<std::vector<float>*>(p); });
  return py::array_t<float>({m.rows, m.cols}, owned->data(), base);
}

py::array_t<float> rows_to_numpy(const float* data, int64_t n, int64_t cols) {
  py::array_t<float> a({n, cols});
  if (n * cols > 0) std::memcpy(a.mutable_data(), data, sizeof(float) * static_cast<size_t>(n * cols));
  return a;
}

py::array_t<float> vector_to_numpy(const std::vector<float>& v) {
  return rows_to_numpy(v.data(), 1, static_cast<int64_t>(v.size())).attr("reshape")(-1);
}

namespace {

std::string label_name(const ModelInfo& info, int64_t i) {
  if (i >= 0 && static_cast<size_t>(i) < info.labels.size()) return info.labels[static_cast<size_t>(i)];
  return "LABEL_" + std::to_string(i);
}

const char* pooling_name(EmbedPooling p) {
  return p == EmbedPooling::kCls ? "cls" : p == EmbedPooling::kMean ? "mean" : "max";
}

}  // namespace

py::dict classification_to_dict(const Classification& c, const ModelInfo& info) {
  py::dict d;
  if (info.problem_type == ProblemType::kRegression) {
    if (c.scores.size() == 1)
      d["value"] = c.scores[0];
    else
      d["value"] = py::cast(c.scores);
  } else {
    py::dict scores;
    for (size_t i = 0; i < c.scores.size(); ++i)
      scores[py::str(label_name(info, static_cast<int64_t>(i)))] = c.scores[i];
    if (info.problem_type == ProblemType::kMultiLabel) {
      py::list labels;
      for (int64_t i : c.labels) labels.append(label_name(info, i));
      d["labels"] = labels;
    } else {
      d["label"] = label_name(info, c.label);
      d["score"] = c.label >= 0 ? c.scores.at(static_cast<size_t>(c.label)) : 0.0f;
    }
    d["scores"] = scores;
  }
  d["logits"] = py::cast(c.logits);
  return d;
}

py::list token_labels_to_list(const std::vector<TokenLabel>& labels, const ModelInfo& info, const OffsetMap& om) {
  py::list out;
  for (const TokenLabel& t : labels) {
    py::dict d;
    d["index"] = t.index;
    d["id"] = t.id;
    d["token"] = py::str(PyUnicode_DecodeUTF8(t.token.data(), static_cast<Py_ssize_t>(t.token.size()), "replace"));
    d["start"] = om(t.start);
    d["end"] = om(t.end);
    d["label"] = label_name(info, t.label);
    d["score"] = t.score;
    out.append(d);
  }
  return out;
}

namespace {
// Decoded token strings can hold U+FFFD from a split multi-byte character; never invalid UTF-8,
// but decode leniently all the same.
py::str lenient_str(const std::string& s) {
  PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
  if (!o) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(o);
}
}  // namespace

py::list mask_results_to_list(const std::vector<MaskResult>& masks) {
  py::list per_mask;
  for (const MaskResult& m : masks) {
    py::list preds;
    for (const MaskFill& f : m.predictions) {
      py::dict d;
      d["score"] = f.score;
      d["token"] = f.token;
      d["token_str"] = lenient_str(f.token_str);
      d["sequence"] = lenient_str(f.sequence);
      preds.append(d);
    }
    per_mask.append(preds);
  }
  if (masks.size() == 1) return per_mask[0].cast<py::list>();
  return per_mask;
}

py::dict encoding_to_dict(const Encoding& e, const Tokenizer* tok, const OffsetMap& om) {
  py::dict d;
  d["input_ids"] = py::cast(e.ids);
  py::list offsets, tokens;
  for (const auto& [s, t] : e.offsets) offsets.append(py::make_tuple(om(s), om(t)));
  for (int32_t id : e.ids) {
    auto name = tok ? tok->id_to_token(id) : std::nullopt;
    tokens.append(name ? py::object(lenient_str(*name)) : py::object(py::none()));
  }
  d["offsets"] = offsets;
  d["tokens"] = tokens;
  d["special_tokens_mask"] = py::cast(std::vector<int>(e.special_tokens_mask.begin(), e.special_tokens_mask.end()));
  d["token_type_ids"] = py::cast(std::vector<int64_t>(e.type_ids.begin(), e.type_ids.end()));
  d["attention_mask"] = py::cast(std::vector<int>(e.ids.size(), 1));
  return d;
}

py::dict info_to_dict(const ModelInfo& info) {
  py::dict d;
  d["path"] = info.dir;
  d["hidden_size"] = info.hidden_size;
  d["num_layers"] = info.num_layers;
  d["vocab_size"] = info.vocab_size;
  d["max_length"] = info.max_length;
  d["stored_dtype"] = info.stored_dtype;
  d["precision"] = precision_name(info.precision);
  d["has_tokenizer"] = info.has_tokenizer;
  d["has_mlm"] = info.has_mlm;
  d["has_classifier"] = info.has_classifier;
  d["has_token_classifier"] = info.has_token_classifier;
  d["has_colbert"] = info.has_colbert;
  d["num_labels"] = info.num_labels;
  d["problem_type"] = to_string(info.problem_type);
  d["labels"] = py::cast(info.labels);
  d["pooling"] = pooling_name(info.pooling);
  d["normalize"] = info.normalize;
  d["embedding_dim"] = info.embedding_dim;
  d["prompts"] = py::cast(info.prompts);
  d["default_prompt_name"] =
      info.default_prompt_name.empty() ? py::object(py::none()) : py::str(info.default_prompt_name);
  d["query_prefix"] = info.query_prefix;
  d["document_prefix"] = info.document_prefix;
  return d;
}

namespace {

const char* issue_name(InputIssue k) {
  switch (k) {
    case InputIssue::kEmpty:
      return "empty";
    case InputIssue::kTooLong:
      return "too_long";
    case InputIssue::kTokenizer:
      return "tokenizer";
    case InputIssue::kIdOutOfRange:
      return "id_out_of_range";
    case InputIssue::kNoMask:
      return "no_mask";
    case InputIssue::kInvalid:
      return "invalid";
  }
  return "invalid";
}

// The library's messages name its C++ options; say the Python ones.
std::string pythonic(std::string msg) {
  for (const auto& [cxx, python] :
       {std::pair<std::string, std::string>{"enable truncation", "pass truncate=True to Model"},
        {"use lossy mode", "pass lossy_utf8=True to Model"}})
    if (auto at = msg.find(cxx); at != std::string::npos) msg.replace(at, cxx.size(), python);
  return msg;
}

// Raises `type(message)` with extra attributes set on the instance.
void raise_with(PyObject* type, const char* message, std::initializer_list<std::pair<const char*, py::object>> attrs) {
  py::object e = py::reinterpret_borrow<py::object>(type)(message);
  for (const auto& [k, v] : attrs) e.attr(k) = v;
  PyErr_SetObject(type, e.ptr());
}

}  // namespace

void register_exceptions(py::module_& m) {
  static PyObject* base = PyErr_NewExceptionWithDoc(
      "modernbert.ModernBertError",
      "An error reported by modernbert.cpp (bad model directory, unknown prompt, missing head, ...); "
      "the message says what and where.",
      PyExc_RuntimeError, nullptr);
  py::tuple bases = py::make_tuple(py::handle(base), py::handle(PyExc_ValueError));
  static PyObject* input = PyErr_NewExceptionWithDoc(
      "modernbert.InputError",
      "One input of a call was refused (empty, too long without truncate=True, invalid UTF-8, no [MASK], ...). "
      ".index: its position in the call's inputs; .kind: 'empty' | 'too_long' | 'tokenizer' | "
      "'id_out_of_range' | 'no_mask' | 'invalid'; .detail: the message without the 'text K: ' prefix.",
      bases.ptr(), nullptr);
  if (!base || !input) throw py::error_already_set();
  m.add_object("ModernBertError", py::handle(base));
  m.add_object("InputError", py::handle(input));
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const InputError& e) {
      raise_with(input, pythonic(e.what()).c_str(),
                 {{"index", py::int_(e.index())},
                  {"kind", py::str(issue_name(e.kind))},
                  {"detail", py::str(pythonic(e.detail()))}});
    } catch (const BatchItemError& e) {
      raise_with(input, e.what(),
                 {{"index", py::int_(e.index())}, {"kind", py::str("invalid")}, {"detail", py::str(e.detail())}});
    } catch (const Error& e) {
      PyErr_SetString(base, e.what());
    }
  });
}

}  // namespace modernbert::py_binding
