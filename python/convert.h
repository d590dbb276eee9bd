// Python <-> C++ conversions of the `modernbert` module (python/modernbert_module.cpp): texts in,
// NumPy arrays and dicts out, and the exception types. Every function here runs with the GIL held.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "modernbert/inference.h"

namespace modernbert::py_binding {

namespace py = pybind11;

// The texts of one call. A str item is its UTF-8 encoding and reports character (code point)
// offsets; a bytes item is taken as UTF-8 bytes (validated by the library: invalid UTF-8 is an
// InputError unless the Model was made with lossy_utf8=True) and reports byte offsets. `single`:
// the argument was one str / bytes rather than a sequence of them.
struct Texts {
  std::vector<std::string> items;
  std::vector<bool> is_bytes;
  bool single = false;
  size_t size() const { return items.size(); }
};
// `obj`: str | bytes | an iterable of str / bytes. TypeError naming `what` (and the item's index)
// otherwise; a str with lone surrogates raises Python's UnicodeEncodeError (a ValueError).
Texts to_texts(py::handle obj, const char* what);

// Offsets as the caller indexes its input: code points for a str, bytes for bytes.
class OffsetMap {
 public:
  OffsetMap(const std::string& utf8, bool keep_bytes);
  size_t operator()(size_t byte_offset) const;

 private:
  std::vector<size_t> chars_before_;  // [bytes + 1] code points before each byte offset; empty = identity
};

// A float32 [rows, cols] array that owns the matrix's storage (no copy).
py::array_t<float> to_numpy(Matrix&& m);
// Row r .. r+n of a [*, cols] float block as a new [n, cols] array.
py::array_t<float> rows_to_numpy(const float* data, int64_t n, int64_t cols);
py::array_t<float> vector_to_numpy(const std::vector<float>& v);

// Result dicts, mirroring the CLI's JSON lines (tests/python/test_modernbert.py compares them).
py::dict classification_to_dict(const Classification& c, const ModelInfo& info);
py::list token_labels_to_list(const std::vector<TokenLabel>& labels, const ModelInfo& info, const OffsetMap& om);
// Hugging Face pipeline("fill-mask"): one mask -> [ {score, token, token_str, sequence} ... ], several
// masks -> a list of those lists.
py::list mask_results_to_list(const std::vector<MaskResult>& masks);
py::dict encoding_to_dict(const Encoding& e, const Tokenizer* tok, const OffsetMap& om);
py::dict info_to_dict(const ModelInfo& info);

// modernbert.ModernBertError (RuntimeError) and modernbert.InputError (ModernBertError, ValueError)
// with .index, .kind and .detail; registers the C++ -> Python translation of modernbert::Error.
void register_exceptions(py::module_& m);

}  // namespace modernbert::py_binding
