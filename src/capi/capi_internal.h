// The C API's internals (modernbert.h): the definitions of its opaque types and the exception
// boundary. Layer: capi (src/capi/), on top of tasks (modernbert::Model).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "modernbert.h"
#include "modernbert/batching.h"
#include "modernbert/error.h"
#include "modernbert/inference.h"

struct mb_model {
  explicit mb_model(modernbert::Model&& m);
  modernbert::Model model;
  // A copy of model.info() and the C views of it (pointers into `src`; mb_model is never moved).
  modernbert::ModelInfo src;
  std::vector<const char*> label_names, prompt_names, prompt_texts;
  mb_model_info info{};
};

struct mb_encoding {
  modernbert::Encoding enc;
  std::vector<size_t> offsets;  // [n][2] flattened
};

struct mb_embeddings {
  modernbert::Matrix m;
};

struct mb_token_embeddings {
  modernbert::TokenVectors t;
};

struct mb_classifications {
  size_t n = 0, num_labels = 0;
  std::vector<float> logits, scores;        // [n * num_labels]
  std::vector<int64_t> labels;              // [n]
  std::vector<std::vector<int64_t>> multi;  // [n][*]
};

struct mb_token_labels {
  std::vector<std::vector<modernbert::TokenLabel>> src;
  std::vector<std::vector<mb_token_label>> views;  // strings point into src
};

struct mb_fill_mask_result {
  std::vector<std::vector<modernbert::MaskResult>> src;
  std::vector<std::vector<std::vector<mb_mask_prediction>>> preds;  // [text][mask][k], into src
  std::vector<std::vector<mb_mask>> masks;                          // [text][mask], into preds
};

struct mb_rerank_result {
  std::vector<mb_rerank_hit> hits;
};

namespace modernbert::capi {

// Records the failure of the calling thread's last call (message, input index) and returns `s`.
mb_status fail(mb_status s, const std::string& message, int64_t index = -1);

// Runs `body` (returns mb_status), turning every exception into a status and a message prefixed
// with `fn`: InputError / SequenceInputError by their kind (with the input's index), other
// BatchItemErrors MB_ERR_INPUT, std::bad_alloc MB_ERR_OUT_OF_MEMORY, any other modernbert::Error
// `plain` (MB_ERR_LOAD while loading, MB_ERR_INVALID_ARGUMENT for a request), anything else
// MB_ERR_INTERNAL.
mb_status status_of_current_exception(const char* fn, mb_status plain) noexcept;
template <class F>
mb_status guarded(const char* fn, mb_status plain, F&& body) noexcept {
  try {
    return body();
  } catch (...) {
    return status_of_current_exception(fn, plain);
  }
}

// texts[0..n) as strings; MB_ERR_INVALID_ARGUMENT for a NULL array (n > 0) or a NULL text.
mb_status to_strings(const char* fn, const char* what, const char* const* texts, size_t n,
                     std::vector<std::string>* out);

// MB_ERR_UNSUPPORTED unless the model has a tokenizer (and `need` when `need_what` is not null).
mb_status require(const char* fn, const mb_model* m, bool need, const char* need_what);

}  // namespace modernbert::capi
