#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/backend.h"
#include "modernbert/error.h"
#include "modernbert/tasks.h"

namespace modernbert {

std::vector<std::vector<MaskPrediction>> fill_mask(const Encoder& enc, const float* hidden, int64_t T,
                                                   const std::vector<int64_t>& rows, int64_t top_k) {
  const int64_t V = enc.config().vocab_size;
  std::vector<float> logits = enc.mlm_logits(hidden, T, rows);
  std::vector<std::vector<MaskPrediction>> out;
  top_k = std::max<int64_t>(1, std::min(top_k, V));
  for (size_t r = 0; r < rows.size(); ++r) {
    const float* l = logits.data() + static_cast<int64_t>(r) * V;
    // Softmax in double for the probabilities of the winners only: p_i = exp(l_i - logsumexp).
    float mx = *std::max_element(l, l + V);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(l[v]) - mx);
    std::vector<int32_t> idx(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; ++v) idx[static_cast<size_t>(v)] = static_cast<int32_t>(v);
    std::partial_sort(idx.begin(), idx.begin() + top_k, idx.end(), [&](int32_t a, int32_t b) {
      return l[a] != l[b] ? l[a] > l[b] : a < b;
    });
    std::vector<MaskPrediction> preds;
    for (int64_t k = 0; k < top_k; ++k)
      preds.push_back({idx[static_cast<size_t>(k)], static_cast<float>(std::exp(double(l[idx[static_cast<size_t>(k)]]) - mx) / sum)});
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
// y[D] = W[D, H] x[H] + b
void dense(const SentenceTransformersInfo& d, const float* x, float* y) {
  for (int64_t o = 0; o < d.dense_out; ++o) {
    double acc = d.dense_bias.empty() ? 0.0 : d.dense_bias[static_cast<size_t>(o)];
    const float* w = d.dense_weight.data() + o * d.dense_in;
    for (int64_t i = 0; i < d.dense_in; ++i) acc += double(w[i]) * x[i];
    y[o] = static_cast<float>(acc);
  }
  const std::string& act = d.dense_activation;
  if (act.find("Tanh") != std::string::npos)
    for (int64_t o = 0; o < d.dense_out; ++o) y[o] = std::tanh(y[o]);
  else if (!act.empty() && act.find("Identity") == std::string::npos)
    throw Error("Dense module: unsupported activation '" + act + "' (Identity, Tanh)");
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
  std::vector<float> out(static_cast<size_t>(B * D)), pooled_all(static_cast<size_t>(B * H)),
      proj(static_cast<size_t>(D0));
  if (o.pooling == EmbedPooling::kMax) {
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = batch.cu_seqlens[static_cast<size_t>(b)], e = batch.cu_seqlens[static_cast<size_t>(b + 1)];
      for (int64_t c = 0; c < H; ++c) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t t = s; t < e; ++t) m = std::max(m, hidden[t * H + c]);
        pooled_all[static_cast<size_t>(b * H + c)] = m;
      }
    }
  } else {
    kernels::pool(o.pooling == EmbedPooling::kCls ? kernels::PoolMode::kCls : kernels::PoolMode::kMean, hidden,
                  batch.cu_seqlens.data(), B, H, pooled_all.data());
  }
  for (int64_t b = 0; b < B; ++b) {
    const float* pooled_b = pooled_all.data() + b * H;
    const float* v = pooled_b;
    if (use_dense) {
      dense(*o.dense, pooled_b, proj.data());
      v = proj.data();
    }
    float* dst = out.data() + b * D;
    std::memcpy(dst, v, sizeof(float) * static_cast<size_t>(D));  // Matryoshka: first D dims
    if (o.normalize) kernels::l2norm(dst, dst, nullptr, 1, D);
  }
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
  for (int64_t t = 0; t < T; ++t) {
    float* dst = out.data() + t * D;
    if (use_dense) dense(*d, hidden + t * H, dst);
    else
      std::memcpy(dst, hidden + t * H, sizeof(float) * static_cast<size_t>(H));
  }
  kernels::l2norm(out.data(), out.data(), nullptr, T, D);
  *out_dim = D;
  return out;
}

float maxsim(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim) {
  double total = 0;
  for (int64_t i = 0; i < nq; ++i) {
    float best = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < nd; ++j) {
      float s = 0;
      for (int64_t c = 0; c < dim; ++c) s += q[i * dim + c] * d[j * dim + c];
      best = std::max(best, s);
    }
    total += best;
  }
  return static_cast<float>(total);
}

std::vector<float> logits_to_scores(const float* logits, int64_t n, ProblemType p) {
  std::vector<float> s(logits, logits + n);
  if (p == ProblemType::kRegression) return s;
  if (p == ProblemType::kMultiLabel) {
    for (auto& x : s) x = static_cast<float>(1.0 / (1.0 + std::exp(-double(x))));
    return s;
  }
  float mx = *std::max_element(s.begin(), s.end());
  double sum = 0;
  for (auto& x : s) sum += std::exp(double(x) - mx);
  for (auto& x : s) x = static_cast<float>(std::exp(double(x) - mx) / sum);
  return s;
}

}  // namespace modernbert
