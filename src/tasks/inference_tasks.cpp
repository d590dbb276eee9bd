#include <algorithm>
#include <cstring>

#include "kernels/backend.h"
#include "modernbert/error.h"
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

}  // namespace modernbert
