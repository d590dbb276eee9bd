#include <algorithm>
#include <cstring>

#include "kernels/backend.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/inference.h"
#include "modernbert/tasks.h"

namespace modernbert {

std::vector<std::vector<MaskPrediction>> fill_mask(const Encoder& enc, const float* hidden, int64_t T,
                                                   const std::vector<int64_t>& rows, int64_t top_k) {
  const int64_t V = enc.config().vocab_size, R = static_cast<int64_t>(rows.size());
  std::vector<float> logits = enc.mlm_logits(hidden, T, rows);
  top_k = std::max<int64_t>(1, std::min(top_k, V));
  // The winners of each row and their softmax probabilities (in double over the vocabulary).
  std::vector<int64_t> idx(static_cast<size_t>(R * top_k));
  std::vector<float> prob(static_cast<size_t>(R * top_k));
  kernels::softmax_top_k(logits.data(), R, V, top_k, idx.data(), prob.data());
  std::vector<std::vector<MaskPrediction>> out;
  for (int64_t r = 0; r < R; ++r) {
    std::vector<MaskPrediction> preds;
    for (int64_t k = 0; k < top_k; ++k) {
      const size_t i = static_cast<size_t>(r * top_k + k);
      preds.push_back({static_cast<int32_t>(idx[i]), prob[i]});
    }
    out.push_back(std::move(preds));
  }
  return out;
}

EmbedPooling parse_embed_pooling(const std::string& s) {
  if (s == "cls" || s == "cls_token") return EmbedPooling::kCls;
  if (s == "mean" || s == "mean_tokens") return EmbedPooling::kMean;
  if (s == "max" || s == "max_tokens") return EmbedPooling::kMax;
  throw Error("unsupported pooling '" + s + "' (cls, mean, max)");
}

namespace {
// The sentence-transformers Dense module on n rows: y [n, D] = x [n, H] W[D, H]^T + b (dot products
// in double), then its activation (Identity or Tanh).
void dense(const SentenceTransformersInfo& d, const float* x, int64_t n, float* y) {
  const std::string& act = d.dense_activation;
  const bool tanh = act.find("Tanh") != std::string::npos;
  if (!tanh && !act.empty() && act.find("Identity") == std::string::npos)
    throw Error("Dense module: unsupported activation '" + act + "' (Identity, Tanh)");
  kernels::linear_f64(x, d.dense_weight.data(), d.dense_bias.empty() ? nullptr : d.dense_bias.data(), y, n, d.dense_out,
                      d.dense_in);
  if (tanh) kernels::tanh_array(y, y, n * d.dense_out);
}
}  // namespace

std::vector<float> sentence_embeddings(const Batch& batch, const float* hidden, int64_t H, const EmbedOptions& o,
                                       int64_t* out_dim) {
  const int64_t B = batch.num_seqs();
  const bool use_dense = o.dense && o.dense->dense_out > 0;
  if (use_dense && o.dense->dense_in != H)
    throw Error("Dense module expects " + std::to_string(o.dense->dense_in) + " inputs but hidden size is " + std::to_string(H));
  const int64_t D0 = use_dense ? o.dense->dense_out : H;
  if (o.dim < 0 || o.dim > D0) throw Error("--dim must be in 1.." + std::to_string(D0));
  const int64_t D = o.dim ? o.dim : D0;
  std::vector<float> out(static_cast<size_t>(B * D)), pooled(static_cast<size_t>(B * H));
  const kernels::PoolMode mode = o.pooling == EmbedPooling::kCls    ? kernels::PoolMode::kCls
                                 : o.pooling == EmbedPooling::kMean ? kernels::PoolMode::kMean
                                                                    : kernels::PoolMode::kMax;
  kernels::pool(mode, hidden, batch.cu_seqlens.data(), B, H, pooled.data());
  std::vector<float> proj;
  if (use_dense) {
    proj.resize(static_cast<size_t>(B * D0));
    dense(*o.dense, pooled.data(), B, proj.data());
  }
  const float* v = use_dense ? proj.data() : pooled.data();  // [B, D0]
  // Matryoshka: the first D dims of each row.
  for (int64_t b = 0; b < B; ++b) std::memcpy(out.data() + b * D, v + b * D0, sizeof(float) * static_cast<size_t>(D));
  if (o.normalize) kernels::l2norm(out.data(), out.data(), nullptr, B, D);
  *out_dim = D;
  return out;
}

std::vector<float> colbert_vectors(const float* hidden, int64_t T, int64_t H, const SentenceTransformersInfo* d,
                                   int64_t* out_dim) {
  const bool use_dense = d && d->dense_out > 0;
  if (use_dense && d->dense_in != H)
    throw Error("Dense module expects " + std::to_string(d->dense_in) + " inputs but hidden size is " + std::to_string(H));
  const int64_t D = use_dense ? d->dense_out : H;
  std::vector<float> out(static_cast<size_t>(T * D));
  if (use_dense)
    dense(*d, hidden, T, out.data());
  else
    std::memcpy(out.data(), hidden, sizeof(float) * static_cast<size_t>(T * H));
  kernels::l2norm(out.data(), out.data(), nullptr, T, D);
  *out_dim = D;
  return out;
}

float maxsim(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim) {
  return static_cast<float>(kernels::maxsim_scores(q, nq, d, nd, dim));
}

std::vector<float> logits_to_scores(const float* logits, int64_t n, ProblemType p) {
  std::vector<float> s(logits, logits + n);
  if (p == ProblemType::kRegression) return s;
  if (p == ProblemType::kMultiLabel)
    kernels::sigmoid_array(s.data(), s.data(), n);
  else
    kernels::softmax_f64(s.data(), s.data(), 1, n);
  return s;
}

// ---- knobs as the commands resolve them ----

EmbedPooling model_embed_pooling(const LoadedModel& m) {
  const SentenceTransformersInfo& st = m.sentence_transformers;
  if (st.present && !st.pooling_mode.empty()) return parse_embed_pooling(st.pooling_mode);
  return m.config.classifier_pooling == Pooling::kCls ? EmbedPooling::kCls : EmbedPooling::kMean;
}

std::string prompt_text(const SentenceTransformersInfo& st, const std::string* name) {
  if (name) {
    auto it = st.prompts.find(*name);
    if (it == st.prompts.end()) {
      std::string have;
      for (const auto& [k, v] : st.prompts) have += (have.empty() ? "" : ", ") + k;
      throw Error("prompt '" + *name + "': the model defines no such prompt (" +
                  (have.empty() ? "it has none" : "it has: " + have) + ")");
    }
    return it->second;
  }
  auto it = st.prompts.find(st.default_prompt_name);
  return st.default_prompt_name.empty() || it == st.prompts.end() ? "" : it->second;
}

bool tokenizer_cleans_up(const std::string& dir) {
  try {
    nlohmann::json j = nlohmann::json::parse(read_file(dir + "/tokenizer_config.json"));
    return j.value("clean_up_tokenization_spaces", false);
  } catch (const std::exception&) {
    return false;  // no (readable) tokenizer_config.json: the tokenizers library never cleans up
  }
}

std::string label_name(const ModelConfig& c, int64_t i) {
  auto it = c.id2label.find(i);
  return it == c.id2label.end() ? "LABEL_" + std::to_string(i) : it->second;
}

ProblemType resolve_problem_type(ProblemType configured, int64_t num_labels) {
  if (configured != ProblemType::kUnset) return configured;
  return num_labels == 1 ? ProblemType::kRegression : ProblemType::kSingleLabel;
}

Classification classification_from_logits(const float* logits, int64_t L, ProblemType p) {
  Classification c;
  c.logits.assign(logits, logits + L);
  c.scores = logits_to_scores(logits, L, p);
  if (p == ProblemType::kSingleLabel && L > 0)
    c.label = std::max_element(c.scores.begin(), c.scores.end()) - c.scores.begin();
  if (p == ProblemType::kMultiLabel)
    for (int64_t i = 0; i < L; ++i)
      if (c.scores[static_cast<size_t>(i)] > 0.5f) c.labels.push_back(i);
  return c;
}

float relevance_score(const float* logits, int64_t n) {
  if (n <= 0) return 0;
  if (n == 1) return logits_to_scores(logits, 1, ProblemType::kMultiLabel)[0];  // sigmoid
  return logits_to_scores(logits, n, ProblemType::kSingleLabel).back();
}

std::vector<TokenLabel> token_labels(const float* logits, int64_t L, const int32_t* ids, int64_t n, const Encoding* enc,
                                     const Tokenizer* tok) {
  std::vector<TokenLabel> out;
  for (int64_t k = 0; k < n; ++k) {
    const size_t ks = static_cast<size_t>(k);
    if (enc && enc->special_tokens_mask[ks]) continue;
    auto sc = logits_to_scores(logits + k * L, L, ProblemType::kSingleLabel);
    TokenLabel t;
    t.index = k;
    t.id = ids[k];
    t.label = std::max_element(sc.begin(), sc.end()) - sc.begin();
    t.score = sc[static_cast<size_t>(t.label)];
    if (tok) t.token = tok->decode(std::vector<int32_t>{t.id});
    if (enc) std::tie(t.start, t.end) = enc->offsets[ks];
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<std::vector<MaskResult>> fill_mask_batch(const Encoder& enc, const Tokenizer& tok, bool cleanup,
                                                     const Batch& b, const float* hidden, int32_t mask_id,
                                                     int64_t top_k) {
  auto decode = [&](const std::vector<int32_t>& ids, bool skip) {
    std::string t = tok.decode(ids, skip);
    return cleanup ? clean_up_tokenization(t) : t;
  };
  std::vector<int64_t> rows;  // the batch's [MASK] tokens
  for (int64_t t = 0; t < b.num_tokens(); ++t)
    if (b.ids[static_cast<size_t>(t)] == mask_id) rows.push_back(t);
  auto preds =
      rows.empty() ? std::vector<std::vector<MaskPrediction>>{} : fill_mask(enc, hidden, b.num_tokens(), rows, top_k);
  std::vector<std::vector<MaskResult>> out(static_cast<size_t>(b.num_seqs()));
  size_t r = 0;
  for (int64_t s = 0; s < b.num_seqs(); ++s) {
    const int64_t s0 = b.cu_seqlens[static_cast<size_t>(s)], s1 = b.cu_seqlens[static_cast<size_t>(s + 1)];
    const std::vector<int32_t> ids(b.ids.begin() + s0, b.ids.begin() + s1);
    for (; r < rows.size() && rows[r] < s1; ++r) {
      MaskResult m;
      m.position = rows[r] - s0;
      for (const auto& p : preds[r]) {
        std::vector<int32_t> filled = ids;
        filled[static_cast<size_t>(m.position)] = p.token;
        m.predictions.push_back({p.token, decode({p.token}, false), p.score, decode(filled, /*skip=*/true)});
      }
      out[static_cast<size_t>(s)].push_back(std::move(m));
    }
  }
  return out;
}

}  // namespace modernbert
