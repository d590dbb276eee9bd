// The C API (modernbert.h): the tasks (embed, embed_tokens, classify, classify_tokens, fill_mask,
// rerank) and their result objects. Each entry point checks its arguments, converts the texts and
// calls the same modernbert::Model method the C++ API offers; results are copied into (or moved
// into) library-owned objects whose C views point into the C++ results they hold.
#include <memory>
#include <string>
#include <vector>

#include "capi/capi_internal.h"

using namespace modernbert;
using capi::fail;
using capi::guarded;

namespace {

// The checks every task starts with: `out` cleared, model/out not NULL, texts valid, a tokenizer.
mb_status prologue(const char* fn, mb_model* model, void* out, const char* const* texts, size_t n,
                   std::vector<std::string>* strings) {
  if (model == nullptr || out == nullptr) {
    return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": " + (model == nullptr ? "model" : "out") + " is NULL");
  }
  if (mb_status s = capi::to_strings(fn, "texts", texts, n, strings); s != MB_OK) return s;
  return capi::require(fn, model, true, nullptr);
}

std::string str(const char* s) { return s != nullptr ? std::string(s) : std::string(); }

}  // namespace

extern "C" {

mb_embed_params mb_embed_params_default(void) { return mb_embed_params{}; }

mb_status mb_embed(mb_model* model, const char* const* texts, size_t n, const mb_embed_params* params,
                   mb_embeddings** out) {
  static constexpr const char* fn = "mb_embed";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_INVALID_ARGUMENT, [&] {
    std::vector<std::string> v;
    if (mb_status s = prologue(fn, model, out, texts, n, &v); s != MB_OK) return s;
    const mb_embed_params p = params != nullptr ? *params : mb_embed_params_default();
    EmbedParams ep;
    ep.prompt_name = str(p.prompt_name);
    ep.prefix = str(p.prefix);
    ep.normalize = p.normalize != 0;
    ep.dim = p.dim;
    ep.batch_size = p.batch_size;
    ep.use_default_prompt = p.no_default_prompt == 0;
    switch (p.pooling) {
      case MB_POOLING_DEFAULT:
        break;
      case MB_POOLING_CLS:
        ep.pooling = EmbedPooling::kCls;
        break;
      case MB_POOLING_MEAN:
        ep.pooling = EmbedPooling::kMean;
        break;
      case MB_POOLING_MAX:
        ep.pooling = EmbedPooling::kMax;
        break;
      default:
        return fail(MB_ERR_INVALID_ARGUMENT,
                    std::string(fn) + ": unknown pooling " + std::to_string(static_cast<int>(p.pooling)));
    }
    if (p.dim < 0) return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": dim must be >= 0 (0 = all)");
    if (p.batch_size < 0) return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": batch_size must be >= 0");
    auto r = std::make_unique<mb_embeddings>();
    if (n > 0) {
      r->m = model->model.embed(v, ep);
    } else {
      r->m.cols = p.dim > 0 ? p.dim : model->src.embedding_dim;
    }
    *out = r.release();
    return MB_OK;
  });
}

size_t mb_embeddings_rows(const mb_embeddings* e) { return e != nullptr ? static_cast<size_t>(e->m.rows) : 0; }
size_t mb_embeddings_cols(const mb_embeddings* e) { return e != nullptr ? static_cast<size_t>(e->m.cols) : 0; }
const float* mb_embeddings_data(const mb_embeddings* e) { return e != nullptr ? e->m.data.data() : nullptr; }
void mb_embeddings_free(mb_embeddings* e) { delete e; }

mb_status mb_embed_tokens(mb_model* model, const char* const* texts, size_t n, const mb_token_params* params,
                          mb_token_embeddings** out) {
  static constexpr const char* fn = "mb_embed_tokens";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_INVALID_ARGUMENT, [&] {
    std::vector<std::string> v;
    if (mb_status s = prologue(fn, model, out, texts, n, &v); s != MB_OK) return s;
    TokenParams tp;
    if (params != nullptr) {
      tp.is_query = params->is_query != 0;
      tp.prefix = str(params->prefix);
    }
    auto r = std::make_unique<mb_token_embeddings>();
    if (n > 0) {
      r->t = model->model.embed_tokens(v, tp);
    } else {
      r->t.vectors.cols = model->src.embedding_dim;
      r->t.offsets = {0};  // [count + 1] even for no texts
    }
    *out = r.release();
    return MB_OK;
  });
}

mb_status mb_hidden_states(mb_model* model, const char* const* texts, size_t n, mb_token_embeddings** out) {
  static constexpr const char* fn = "mb_hidden_states";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_INVALID_ARGUMENT, [&] {
    std::vector<std::string> v;
    if (mb_status s = prologue(fn, model, out, texts, n, &v); s != MB_OK) return s;
    auto r = std::make_unique<mb_token_embeddings>();
    if (n > 0) {
      r->t = model->model.hidden_states(v);
    } else {
      r->t.vectors.cols = model->src.hidden_size;
      r->t.offsets = {0};
    }
    *out = r.release();
    return MB_OK;
  });
}

size_t mb_token_embeddings_count(const mb_token_embeddings* t) {
  return t != nullptr && !t->t.offsets.empty() ? t->t.offsets.size() - 1 : 0;
}
size_t mb_token_embeddings_rows(const mb_token_embeddings* t) {
  return t != nullptr ? static_cast<size_t>(t->t.vectors.rows) : 0;
}
size_t mb_token_embeddings_cols(const mb_token_embeddings* t) {
  return t != nullptr ? static_cast<size_t>(t->t.vectors.cols) : 0;
}
const float* mb_token_embeddings_data(const mb_token_embeddings* t) {
  return t != nullptr ? t->t.vectors.data.data() : nullptr;
}
const int64_t* mb_token_embeddings_offsets(const mb_token_embeddings* t) {
  return t != nullptr ? t->t.offsets.data() : nullptr;
}
void mb_token_embeddings_free(mb_token_embeddings* t) { delete t; }

mb_status mb_classify(mb_model* model, const char* const* texts, const char* const* pairs, size_t n,
                      mb_classifications** out) {
  static constexpr const char* fn = "mb_classify";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_INVALID_ARGUMENT, [&] {
    std::vector<std::string> v, w;
    if (mb_status s = prologue(fn, model, out, texts, n, &v); s != MB_OK) return s;
    if (pairs != nullptr) {
      if (mb_status s = capi::to_strings(fn, "pairs", pairs, n, &w); s != MB_OK) return s;
    }
    if (mb_status s = capi::require(fn, model, model->src.has_classifier, "sequence-classification head"); s != MB_OK) {
      return s;
    }
    auto r = std::make_unique<mb_classifications>();
    r->n = n;
    r->num_labels = static_cast<size_t>(model->src.num_labels);
    // n == 0 with pairs: an empty pair list would mean "no pairs"; the result is empty either way.
    const std::vector<Classification> c = n == 0 ? std::vector<Classification>{} : model->model.classify(v, w);
    if (c.size() != n) return fail(MB_ERR_INTERNAL, std::string(fn) + ": internal error: result count");
    for (const Classification& x : c) {
      if (x.logits.size() != r->num_labels || x.scores.size() != r->num_labels) {
        return fail(MB_ERR_INTERNAL, std::string(fn) + ": internal error: " + std::to_string(x.logits.size()) +
                                         " logits for " + std::to_string(r->num_labels) + " labels");
      }
      r->logits.insert(r->logits.end(), x.logits.begin(), x.logits.end());
      r->scores.insert(r->scores.end(), x.scores.begin(), x.scores.end());
      r->labels.push_back(x.label);
      r->multi.push_back(x.labels);
    }
    *out = r.release();
    return MB_OK;
  });
}

size_t mb_classifications_count(const mb_classifications* c) { return c != nullptr ? c->n : 0; }
size_t mb_classifications_num_labels(const mb_classifications* c) { return c != nullptr ? c->num_labels : 0; }
const float* mb_classifications_logits(const mb_classifications* c) {
  return c != nullptr ? c->logits.data() : nullptr;
}
const float* mb_classifications_scores(const mb_classifications* c) {
  return c != nullptr ? c->scores.data() : nullptr;
}
const int64_t* mb_classifications_labels(const mb_classifications* c) {
  return c != nullptr ? c->labels.data() : nullptr;
}
const int64_t* mb_classifications_multi_labels(const mb_classifications* c, size_t i, size_t* count) {
  if (count != nullptr) *count = 0;
  if (c == nullptr || i >= c->n) return nullptr;
  if (count != nullptr) *count = c->multi[i].size();
  return c->multi[i].data();
}
void mb_classifications_free(mb_classifications* c) { delete c; }

mb_status mb_classify_tokens(mb_model* model, const char* const* texts, size_t n, mb_token_labels** out) {
  static constexpr const char* fn = "mb_classify_tokens";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_INVALID_ARGUMENT, [&] {
    std::vector<std::string> v;
    if (mb_status s = prologue(fn, model, out, texts, n, &v); s != MB_OK) return s;
    if (mb_status s = capi::require(fn, model, model->src.has_token_classifier, "token-classification head");
        s != MB_OK) {
      return s;
    }
    auto r = std::make_unique<mb_token_labels>();
    if (n > 0) r->src = model->model.classify_tokens(v);
    if (r->src.size() != n) return fail(MB_ERR_INTERNAL, std::string(fn) + ": internal error: result count");
    r->views.resize(n);
    for (size_t i = 0; i < n; ++i) {
      for (const TokenLabel& t : r->src[i]) {
        r->views[i].push_back(mb_token_label{t.index, t.id, t.token.c_str(), t.start, t.end, t.label, t.score});
      }
    }
    *out = r.release();
    return MB_OK;
  });
}

size_t mb_token_labels_count(const mb_token_labels* t) { return t != nullptr ? t->views.size() : 0; }
const mb_token_label* mb_token_labels_get(const mb_token_labels* t, size_t i, size_t* count) {
  if (count != nullptr) *count = 0;
  if (t == nullptr || i >= t->views.size()) return nullptr;
  if (count != nullptr) *count = t->views[i].size();
  return t->views[i].data();
}
void mb_token_labels_free(mb_token_labels* t) { delete t; }

mb_status mb_fill_mask(mb_model* model, const char* const* texts, size_t n, int64_t top_k, mb_fill_mask_result** out) {
  static constexpr const char* fn = "mb_fill_mask";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_INVALID_ARGUMENT, [&] {
    std::vector<std::string> v;
    if (mb_status s = prologue(fn, model, out, texts, n, &v); s != MB_OK) return s;
    if (top_k < 1) return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": top_k must be >= 1");
    if (mb_status s = capi::require(fn, model, model->src.has_mlm, "masked-language-model head"); s != MB_OK) return s;
    auto r = std::make_unique<mb_fill_mask_result>();
    if (n > 0) r->src = model->model.fill_mask(v, top_k);
    if (r->src.size() != n) return fail(MB_ERR_INTERNAL, std::string(fn) + ": internal error: result count");
    // Build the prediction arrays first: the mb_mask views point into them.
    r->preds.resize(n);
    r->masks.resize(n);
    for (size_t i = 0; i < n; ++i) {
      r->preds[i].resize(r->src[i].size());
      for (size_t m = 0; m < r->src[i].size(); ++m) {
        for (const MaskFill& f : r->src[i][m].predictions) {
          r->preds[i][m].push_back(mb_mask_prediction{f.token, f.token_str.c_str(), f.score, f.sequence.c_str()});
        }
      }
      for (size_t m = 0; m < r->src[i].size(); ++m) {
        r->masks[i].push_back(mb_mask{r->src[i][m].position, r->preds[i][m].size(), r->preds[i][m].data()});
      }
    }
    *out = r.release();
    return MB_OK;
  });
}

size_t mb_fill_mask_count(const mb_fill_mask_result* r) { return r != nullptr ? r->masks.size() : 0; }
const mb_mask* mb_fill_mask_get(const mb_fill_mask_result* r, size_t i, size_t* count) {
  if (count != nullptr) *count = 0;
  if (r == nullptr || i >= r->masks.size()) return nullptr;
  if (count != nullptr) *count = r->masks[i].size();
  return r->masks[i].data();
}
void mb_fill_mask_free(mb_fill_mask_result* r) { delete r; }

mb_status mb_rerank(mb_model* model, const char* query, const char* const* texts, size_t n,
                    const mb_rerank_params* params, mb_rerank_result** out) {
  static constexpr const char* fn = "mb_rerank";
  if (out != nullptr) *out = nullptr;
  return guarded(fn, MB_ERR_INVALID_ARGUMENT, [&] {
    if (query == nullptr) return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": query is NULL");
    if (query[0] == '\0') return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": the query is empty");
    std::vector<std::string> v;
    if (mb_status s = prologue(fn, model, out, texts, n, &v); s != MB_OK) return s;
    RerankParams rp;
    if (params != nullptr) {
      switch (params->mode) {
        case MB_RERANK_AUTO:
          rp.mode = RerankMode::kAuto;
          break;
        case MB_RERANK_CROSS_ENCODER:
          rp.mode = RerankMode::kCrossEncoder;
          break;
        case MB_RERANK_COLBERT:
          rp.mode = RerankMode::kColBERT;
          break;
        case MB_RERANK_EMBEDDING:
          rp.mode = RerankMode::kEmbedding;
          break;
        default:
          return fail(MB_ERR_INVALID_ARGUMENT,
                      std::string(fn) + ": unknown mode " + std::to_string(static_cast<int>(params->mode)));
      }
      if (params->top_n < 0) return fail(MB_ERR_INVALID_ARGUMENT, std::string(fn) + ": top_n must be >= 0 (0 = all)");
      rp.query_prompt_name = str(params->query_prompt_name);
      rp.document_prompt_name = str(params->document_prompt_name);
      rp.top_n = params->top_n;
    }
    if (rp.mode == RerankMode::kCrossEncoder) {
      if (mb_status s = capi::require(fn, model, model->src.has_classifier, "classifier (cross-encoder mode)");
          s != MB_OK) {
        return s;
      }
    }
    auto r = std::make_unique<mb_rerank_result>();
    if (n > 0) {
      for (const RerankHit& h : model->model.rerank(query, v, rp)) r->hits.push_back(mb_rerank_hit{h.index, h.score});
    }
    *out = r.release();
    return MB_OK;
  });
}

size_t mb_rerank_count(const mb_rerank_result* r) { return r != nullptr ? r->hits.size() : 0; }
const mb_rerank_hit* mb_rerank_hits(const mb_rerank_result* r) { return r != nullptr ? r->hits.data() : nullptr; }
void mb_rerank_free(mb_rerank_result* r) { delete r; }

}  // extern "C"
