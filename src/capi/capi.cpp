// The C API (modernbert.h): errors, version, loading, model info, tokenize. The tasks are in
// capi_tasks.cpp. Every entry point is noexcept: exceptions end at guarded() (capi_internal.h).
#include <cstring>
#include <exception>
#include <string_view>

#include "capi/capi_internal.h"
#include "modernbert/config.h"
#include "modernbert/precision.h"

#ifndef MB_PROJECT_VERSION
#error "MB_PROJECT_VERSION (the CMake project version) must be defined by the build"
#endif
// The header's version macros must follow the CMake project version (a release bumps both).
static_assert(std::string_view(MODERNBERT_VERSION_STRING) == MB_PROJECT_VERSION,
              "include/modernbert.h MODERNBERT_VERSION_* differ from project(VERSION) in CMakeLists.txt");

namespace modernbert::capi {
namespace {

thread_local std::string t_message;
thread_local int64_t t_index = -1;

mb_status status_of(InputIssue k) {
  switch (k) {
    case InputIssue::kTooLong:
      return MB_ERR_TOO_LONG;
    case InputIssue::kTokenizer:
      return MB_ERR_TOKENIZER;
    case InputIssue::kEmpty:
    case InputIssue::kIdOutOfRange:
    case InputIssue::kNoMask:
    case InputIssue::kInvalid:
      return MB_ERR_INPUT;
  }
  return MB_ERR_INPUT;
}

mb_status status_of(SequenceIssue k) {
  switch (k) {
    case SequenceIssue::kTooLong:
      return MB_ERR_TOO_LONG;
    case SequenceIssue::kTokenizer:
      return MB_ERR_TOKENIZER;
    case SequenceIssue::kIdOutOfRange:
    case SequenceIssue::kEmpty:
      return MB_ERR_INPUT;
  }
  return MB_ERR_INPUT;
}

}  // namespace

mb_status fail(mb_status s, const std::string& message, int64_t index) {
  // Assigning may itself run out of memory: then keep a fixed message rather than throw.
  try {
    t_message = message;
  } catch (...) {
    t_message.clear();
  }
  t_index = index;
  return s;
}

mb_status status_of_current_exception(const char* fn, mb_status plain) noexcept {
  const std::string p = std::string(fn) + ": ";
  try {
    throw;
  } catch (const InputError& e) {
    return fail(status_of(e.kind), p + e.what(), static_cast<int64_t>(e.index()));
  } catch (const SequenceInputError& e) {
    return fail(status_of(e.kind), p + e.what(), static_cast<int64_t>(e.index()));
  } catch (const BatchItemError& e) {
    return fail(MB_ERR_INPUT, p + e.what(), static_cast<int64_t>(e.index()));
  } catch (const std::bad_alloc&) {
    return fail(MB_ERR_OUT_OF_MEMORY, p + "out of memory");
  } catch (const Error& e) {
    return fail(plain, p + e.what());
  } catch (const std::exception& e) {
    return fail(MB_ERR_INTERNAL, p + "internal error: " + e.what());
  } catch (...) {
    return fail(MB_ERR_INTERNAL, p + "internal error: unknown exception");
  }
}

mb_status to_strings(const char* fn, const char* what, const char* const* texts, size_t n,
                     std::vector<std::string>* out) {
  if (n > 0 && texts == nullptr) {
    return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": " + what + " is NULL but n = " + std::to_string(n));
  }
  out->clear();
  out->reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (texts[i] == nullptr) {
      return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": " + what + "[" + std::to_string(i) + "] is NULL",
                  static_cast<int64_t>(i));
    }
    out->emplace_back(texts[i]);
  }
  return MB_OK;
}

mb_status require(const char* fn, const mb_model* m, bool need, const char* need_what) {
  if (!m->src.has_tokenizer) {
    return fail(MB_ERR_UNSUPPORTED, std::string(fn) + ": the model directory " + m->src.dir + " has no tokenizer.json");
  }
  if (need_what != nullptr && !need) {
    return fail(MB_ERR_UNSUPPORTED, std::string(fn) + ": the model " + m->src.dir + " has no " + need_what);
  }
  return MB_OK;
}

}  // namespace modernbert::capi

using namespace modernbert;
using capi::fail;
using capi::guarded;

mb_model::mb_model(Model&& m) : model(std::move(m)), src(model.info()) {
  for (const auto& l : src.labels) label_names.push_back(l.c_str());
  for (const auto& [name, text] : src.prompts) {  // std::map: sorted by name
    prompt_names.push_back(name.c_str());
    prompt_texts.push_back(text.c_str());
  }
  info.dir = src.dir.c_str();
  info.hidden_size = src.hidden_size;
  info.num_layers = src.num_layers;
  info.vocab_size = src.vocab_size;
  info.max_length = src.max_length;
  info.embedding_dim = src.embedding_dim;
  info.stored_dtype = src.stored_dtype.c_str();
  info.precision = precision_name(src.precision);
  info.has_tokenizer = src.has_tokenizer;
  info.has_mlm = src.has_mlm;
  info.has_classifier = src.has_classifier;
  info.has_token_classifier = src.has_token_classifier;
  info.has_colbert = src.has_colbert;
  info.num_labels = src.num_labels;
  info.problem_type = src.problem_type == ProblemType::kUnset ? "" : to_string(src.problem_type);
  info.label_names = label_names.data();
  info.pooling = src.pooling == EmbedPooling::kCls ? "cls" : src.pooling == EmbedPooling::kMax ? "max" : "mean";
  info.normalize = src.normalize;
  info.num_prompts = prompt_names.size();
  info.prompt_names = prompt_names.data();
  info.prompt_texts = prompt_texts.data();
  info.default_prompt_name = src.default_prompt_name.c_str();
  info.query_prefix = src.query_prefix.c_str();
  info.document_prefix = src.document_prefix.c_str();
}

extern "C" {

const char* mb_status_name(int status) {
  switch (status) {
    case MB_OK:
      return "MB_OK";
    case MB_ERR_INVALID_ARGUMENT:
      return "MB_ERR_INVALID_ARGUMENT";
    case MB_ERR_LOAD:
      return "MB_ERR_LOAD";
    case MB_ERR_UNSUPPORTED:
      return "MB_ERR_UNSUPPORTED";
    case MB_ERR_INPUT:
      return "MB_ERR_INPUT";
    case MB_ERR_TOO_LONG:
      return "MB_ERR_TOO_LONG";
    case MB_ERR_TOKENIZER:
      return "MB_ERR_TOKENIZER";
    case MB_ERR_OUT_OF_MEMORY:
      return "MB_ERR_OUT_OF_MEMORY";
    case MB_ERR_INTERNAL:
      return "MB_ERR_INTERNAL";
  }
  return "MB_ERR_UNKNOWN";
}

const char* mb_last_error_message(void) { return capi::t_message.c_str(); }
int64_t mb_last_error_input_index(void) { return capi::t_index; }
const char* mb_version(void) { return MB_PROJECT_VERSION; }

mb_model_options mb_model_options_default(void) {
  mb_model_options o{};
  o.struct_size = sizeof(mb_model_options);
  o.max_batch_tokens = ModelOptions{}.max_batch_tokens;
  return o;
}

mb_status mb_model_load(const char* dir, const mb_model_options* opts, mb_model** out) {
  static constexpr const char* fn = "mb_model_load";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_LOAD, [&] {
    if (dir == nullptr || out == nullptr) {
      return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": " + (dir == nullptr ? "dir" : "out") + " is NULL");
    }
    const mb_model_options o = opts != nullptr ? *opts : mb_model_options_default();
    const std::string p = std::string(fn) + ": ";
    if (o.struct_size != sizeof(mb_model_options)) {
      return fail(MB_ERR_INVALID_ARGUMENT, p + "options.struct_size is " + std::to_string(o.struct_size) +
                                               ", expected " + std::to_string(sizeof(mb_model_options)) +
                                               " (start from mb_model_options_default())");
    }
    ModelOptions mo;
    if (o.dtype != nullptr && o.dtype[0] != '\0') {
      Precision prec{};
      if (!parse_precision(o.dtype, &prec)) {
        return fail(MB_ERR_INVALID_ARGUMENT, p + "unknown dtype '" + std::string(o.dtype) + "' (f32, bf16, f16, int8)");
      }
      mo.precision = prec;
    }
    if (o.threads < 0) return fail(MB_ERR_INVALID_ARGUMENT, p + "threads must be >= 0 (0 = all cores)");
    if (o.max_batch_tokens < 1) return fail(MB_ERR_INVALID_ARGUMENT, p + "max_batch_tokens must be >= 1");
    if (o.batch_size < 0) return fail(MB_ERR_INVALID_ARGUMENT, p + "batch_size must be >= 0 (0 = no limit)");
    mo.threads = o.threads;
    mo.max_batch_tokens = o.max_batch_tokens;
    mo.batch_size = o.batch_size;
    mo.truncate = o.truncate != 0;
    mo.lossy_utf8 = o.lossy_utf8 != 0;
    *out = new mb_model(Model(dir, mo));
    return MB_OK;
  });
}

void mb_model_free(mb_model* model) { delete model; }

mb_status mb_model_get_info(const mb_model* model, const mb_model_info** out) {
  if (out != nullptr) *out = nullptr;
  return guarded("mb_model_get_info", MB_ERR_INTERNAL, [&] {
    if (model == nullptr || out == nullptr) {
      return fail(MB_ERR_INVALID_ARGUMENT,
                  std::string("mb_model_get_info: ") + (model == nullptr ? "model" : "out") + " is NULL");
    }
    *out = &model->info;
    return MB_OK;
  });
}

mb_status mb_tokenize(mb_model* model, const char* text, int add_special_tokens, mb_encoding** out) {
  static constexpr const char* fn = "mb_tokenize";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_TOKENIZER, [&] {
    if (model == nullptr || text == nullptr || out == nullptr) {
      return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": " +
                                               (model == nullptr  ? "model"
                                                : text == nullptr ? "text"
                                                                  : "out") +
                                               " is NULL");
    }
    if (mb_status s = capi::require(fn, model, true, nullptr); s != MB_OK) return s;
    auto r = std::make_unique<mb_encoding>();
    r->enc = model->model.tokenize(text, add_special_tokens != 0);
    r->offsets.reserve(2 * r->enc.offsets.size());
    for (const auto& [b, e] : r->enc.offsets) {
      r->offsets.push_back(b);
      r->offsets.push_back(e);
    }
    *out = r.release();
    return MB_OK;
  });
}

size_t mb_encoding_size(const mb_encoding* e) { return e != nullptr ? e->enc.ids.size() : 0; }
const int32_t* mb_encoding_ids(const mb_encoding* e) { return e != nullptr ? e->enc.ids.data() : nullptr; }
const size_t* mb_encoding_offsets(const mb_encoding* e) { return e != nullptr ? e->offsets.data() : nullptr; }
const uint8_t* mb_encoding_special_mask(const mb_encoding* e) {
  return e != nullptr ? e->enc.special_tokens_mask.data() : nullptr;
}
void mb_encoding_free(mb_encoding* e) { delete e; }

}  // extern "C"
