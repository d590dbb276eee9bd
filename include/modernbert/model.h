// The ModernBERT encoder forward pass (spec §4) on unpadded batches, and its heads.
//
//   Batch{ids[T], cu_seqlens[B+1]} --Encoder::forward--> last_hidden_state [T, H] (after final_norm)
//   hidden --mlm_logits(rows)--> [R, V]       (sparse prediction: only the requested rows)
//   hidden --pool--> [B, H]                   (cls = first token of each sequence | mean)
//   hidden --classify--> [B, num_labels]      (pool -> head (dense, act, LN) -> classifier)
//   hidden --classify_tokens--> [T, num_labels]
//
// All sequences are concatenated with no padding; positions restart at 0 in every sequence and
// attention never crosses a sequence boundary. Memory is linear in the token count: the
// activations live in one arena, sized on the largest batch seen and reused.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "modernbert/config.h"
#include "modernbert/weights.h"

namespace modernbert {

namespace kernels {
struct RopeTable;
}
struct ActivationStore;   // src/model/activation_store.h: what the training backward reads
struct HeadActivations;

// An unpadded batch: sequence b is ids[cu_seqlens[b] .. cu_seqlens[b+1]).
struct Batch {
  std::vector<int32_t> ids;
  std::vector<int64_t> cu_seqlens{0};

  int64_t num_tokens() const { return static_cast<int64_t>(ids.size()); }
  int64_t num_seqs() const { return static_cast<int64_t>(cu_seqlens.size()) - 1; }
  int64_t seq_len(int64_t b) const { return cu_seqlens.at(b + 1) - cu_seqlens.at(b); }
  int64_t max_seqlen() const;
  // Appends one sequence.
  void add(const int32_t* seq, int64_t n);
  void add(const std::vector<int32_t>& seq) { add(seq.data(), static_cast<int64_t>(seq.size())); }
  static Batch from_sequences(const std::vector<std::vector<int32_t>>& seqs);
  // Throws modernbert::Error unless cu_seqlens is [0, ..., T] strictly increasing (no empty
  // sequences) and every id is in [0, vocab_size).
  void validate(int64_t vocab_size) const;
};

class Encoder {
 public:
  // Keeps `weights` by reference (it must outlive the encoder); reads config and views from it.
  explicit Encoder(const Weights& weights);
  // From raw views (tests, external buffers); the pointed-to data must outlive the encoder.
  Encoder(const ModelConfig& cfg, const WeightViews& views);

  const ModelConfig& config() const { return cfg_; }
  const WeightViews& views() const { return w_; }

  // last_hidden_state [T, H] into `out` (resized to T*H). Not re-entrant: uses the encoder's
  // arena (use one Encoder per concurrent caller; the weights can be shared).
  // The one forward pass of inference and training: with `save` (training) it also keeps in the
  // store what the backward needs and applies the store's attention-output dropout; the
  // arithmetic is the same, so without dropout `out` is bitwise the inference result.
  void forward(const Batch& batch, std::vector<float>& out, ActivationStore* save = nullptr);
  std::vector<float> forward(const Batch& batch);

  // ---- heads (const; hidden is [T, H] from forward) ----
  // z = LN(act(W_dense x + b); head_norm), x and z [R, H]; the transform shared by the MLM and
  // classification heads (act = classifier_activation). z may alias x unless `save` is given;
  // `save` (training) keeps the dense output and the LayerNorm statistics for the backward.
  void head_transform(const float* x, int64_t R, float* z, HeadActivations* save = nullptr) const;
  // MLM logits [rows.size(), V] at the given token rows (indices in [0, T)).
  std::vector<float> mlm_logits(const float* hidden, int64_t T, const std::vector<int64_t>& rows) const;
  // Pooled sequence vectors [B, H] (no head): first token (kCls) or mean over the sequence's
  // tokens (kMean). Default: config().classifier_pooling.
  std::vector<float> pool(const Batch& batch, const float* hidden,
                          std::optional<Pooling> pooling = std::nullopt) const;
  // Sequence classification logits [B, num_labels]: classifier(head_transform(pool(h))).
  std::vector<float> classify(const Batch& batch, const float* hidden,
                              std::optional<Pooling> pooling = std::nullopt) const;
  // Token classification logits [T, num_labels]: classifier(head_transform(h_t)).
  std::vector<float> classify_tokens(const float* hidden, int64_t T) const;
  // Rows of classifier.weight (0 when the weights carry no classifier).
  int64_t num_labels() const { return num_labels_; }

  // Floats currently held by the activation arena (for tests of linear memory).
  size_t arena_floats() const;
  // The RoPE table for `theta` covering positions [0, max_len) (grown by doubling, kept; the
  // reference stays valid until a later call grows the same theta's table).
  const kernels::RopeTable& rope_table(double theta, int64_t max_len);

  ~Encoder();
  Encoder(Encoder&&) noexcept;
  Encoder& operator=(Encoder&&) noexcept;

 private:
  struct State;  // arena + RoPE tables (encoder.cpp)
  void check_weights() const;

  ModelConfig cfg_;
  WeightViews w_;
  int64_t num_labels_ = 0;
  std::unique_ptr<State> st_;
};

}  // namespace modernbert
