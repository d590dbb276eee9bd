// Heads on top of last_hidden_state (spec §4.4–4.6). All operate on gathered rows, so the MLM
// head costs O(R·V·H) for R requested rows (sparse prediction), never O(T·V·H).
//
//   head_transform: z[R, H] = LN(act(x · W_dense^T + b_dense); head_norm)     act = classifier_activation
//   mlm_logits:     [R, V]  = z · decoder_w^T + decoder_b                     (decoder_w tied to E)
//   pool:           [B, H]  = h[cu[b]] (cls) | mean over tokens of b (mean)
//   classify:       [B, L]  = head_transform(pool) · W_cls^T + b_cls
//   classify_tokens:[T, L]  = head_transform(h) · W_cls^T + b_cls
#include <algorithm>
#include <cstring>
#include <string>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/profile.h"
#include "model/activation_store.h"
#include "model/kernel_act.h"
#include "modernbert/error.h"
#include "modernbert/model.h"

namespace modernbert {

namespace k = kernels;

namespace {}  // namespace

void Encoder::head_transform(const float* x, int64_t R, float* z, HeadActivations* save) const {
  if (!w_.head_dense_w || !w_.head_norm_w) throw Error("head: weights have no head.dense / head.norm");
  const int64_t H = cfg_.hidden_size;
  if (save && z == x) throw Error("head: a saving head transform cannot run in place");
  // The dense output goes straight into z unless z aliases x (the gemm cannot run in place); then
  // into a per-thread scratch that is kept (no allocation per call once it has grown). Training
  // keeps it in the store instead (the activation backward reads it).
  float* y = z;
  if (save) {
    save->z1.resize(static_cast<size_t>(R * H));
    save->mean.resize(static_cast<size_t>(R));
    save->rstd.resize(static_cast<size_t>(R));
    y = save->z1.data();
  } else if (z == x) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < static_cast<size_t>(R * H)) scratch.resize(static_cast<size_t>(R * H));
    y = scratch.data();
  }
  k::prof::Scope s("heads");
  k::linear(x, w_.head_dense_w, w_.head_dense_b, y, R, H, H);
  k::act_layernorm(to_kernel_act(cfg_.classifier_activation), y, w_.head_norm_w, w_.head_norm_b, z, R, H,
                   static_cast<float>(cfg_.norm_eps), save ? save->mean.data() : nullptr,
                   save ? save->rstd.data() : nullptr);
}

std::vector<float> Encoder::mlm_logits(const float* hidden, int64_t T, const std::vector<int64_t>& rows) const {
  if (!w_.decoder_w) throw Error("mlm head: weights have no decoder (load with the mlm head)");
  const int64_t H = cfg_.hidden_size, V = cfg_.vocab_size, R = static_cast<int64_t>(rows.size());
  std::vector<int32_t> rows32(rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const int64_t t = rows[r];
    if (t < 0 || t >= T) throw Error("mlm head: row " + std::to_string(t) + " outside [0, " + std::to_string(T) + ")");
    rows32[r] = static_cast<int32_t>(t);
  }
  std::vector<float> z(static_cast<size_t>(R * H));
  k::embedding(rows32.data(), hidden, z.data(), R, H);  // row gather: z[r] = hidden[rows[r]]
  head_transform(z.data(), R, z.data());
  std::vector<float> logits(static_cast<size_t>(R * V));
  k::linear(z.data(), w_.decoder_w, w_.decoder_b, logits.data(), R, V, H);
  return logits;
}

std::vector<float> Encoder::pool(const Batch& batch, const float* hidden, std::optional<Pooling> pooling) const {
  const Pooling pl = pooling.value_or(cfg_.classifier_pooling);
  const int64_t H = cfg_.hidden_size, B = batch.num_seqs();
  std::vector<float> out(static_cast<size_t>(B * H));
  for (int64_t b = 0; b < B; ++b)
    if (batch.seq_len(b) <= 0) throw Error("pool: sequence " + std::to_string(b) + " is empty");
  k::pool(pl == Pooling::kCls ? k::PoolMode::kCls : k::PoolMode::kMean, hidden, batch.cu_seqlens.data(), B, H,
          out.data());
  return out;
}

std::vector<float> Encoder::classify(const Batch& batch, const float* hidden, std::optional<Pooling> pooling) const {
  if (!w_.classifier_w) throw Error("classify: weights have no classifier");
  if (num_labels_ <= 0) throw Error("classify: the classifier has no labels (classifier.weight has 0 rows)");
  const int64_t H = cfg_.hidden_size, B = batch.num_seqs();
  std::vector<float> z = pool(batch, hidden, pooling);
  head_transform(z.data(), B, z.data());
  std::vector<float> logits(static_cast<size_t>(B * num_labels_));
  k::linear(z.data(), w_.classifier_w, w_.classifier_b, logits.data(), B, num_labels_, H);
  return logits;
}

std::vector<float> Encoder::classify_tokens(const float* hidden, int64_t T) const {
  if (!w_.classifier_w) throw Error("classify_tokens: weights have no classifier");
  if (num_labels_ <= 0) throw Error("classify_tokens: the classifier has no labels (classifier.weight has 0 rows)");
  const int64_t H = cfg_.hidden_size;
  std::vector<float> z(static_cast<size_t>(T * H));
  head_transform(hidden, T, z.data());
  std::vector<float> logits(static_cast<size_t>(T * num_labels_));
  k::linear(z.data(), w_.classifier_w, w_.classifier_b, logits.data(), T, num_labels_, H);
  return logits;
}

}  // namespace modernbert
