// Training forward / backward of the whole model over an unpadded batch: TrainModel runs the one
// forward (Encoder::forward in its saving mode, model/activation_store.h) and adds the head, the
// losses and the backward (llm.c style: kernels over plain arrays, no autograd).
//
// Gradients live in ONE float buffer with exactly the layout of Weights' parameter buffer
// (parameter_specs order; the gradient of parameter `name` is at grads + weights.offset(name)).
// Optimizer moments use the same layout. A tied decoder has no parameter of its own: its
// gradient lands in the token-embedding rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "modernbert/model.h"
#include "modernbert/weights.h"

namespace modernbert {

enum class TaskType {
  kMlm,                     // per-token labels, tied/untied decoder, only labelled rows predicted
  kSequenceClassification,  // one int label per sequence (-100 ignored), cross-entropy
  kTokenClassification,     // per-token labels, classifier on every labelled row, cross-entropy
  kRegression,              // num_labels floats per sequence, MSE (mean over all elements)
  kMultiLabel,              // num_labels floats in {0,1} per sequence, BCE-with-logits (mean)
};
const char* to_string(TaskType t);
TaskType parse_task(const std::string& s);  // "mlm" | "classification" | "token-classification" | "regression" | "multilabel"

// One unpadded batch with its labels.
struct TrainBatch {
  Batch batch;
  std::vector<int32_t> token_labels;  // [T] for kMlm / kTokenClassification; -100 = ignored
  std::vector<int32_t> class_labels;  // [B] for kSequenceClassification; -100 = ignored
  std::vector<float> targets;         // [B * num_labels] for kRegression / kMultiLabel
};

struct LossResult {
  double loss = 0;       // sum of per-item losses / denominator
  double loss_sum = 0;   // sum of per-item losses (CE: nll per counted label; MSE/BCE: per element)
  int64_t count = 0;     // counted labels (CE) or elements (MSE / BCE)
  int64_t correct = 0;   // CE only: argmax == label among counted
};

// Training forward + backward over a Weights object (contiguous; kept by reference). Not
// re-entrant (owns the activation buffers, sized by the largest batch seen).
class TrainModel {
 public:
  explicit TrainModel(const Weights& weights);
  ~TrainModel();
  TrainModel(TrainModel&&) noexcept;
  TrainModel& operator=(TrainModel&&) noexcept;

  // Loss = (Σ per-item losses) / denominator, where denominator = the batch's own count when
  // `denominator` <= 0 (so the plain mean, as the PyTorch reference), or the given value (gradient
  // accumulation: pass the count of the whole global batch so micro-batches sum to its mean).
  // With zero counted items the loss is NaN (as HF) and no gradient is added.
  // forward_backward ADDS d(loss)/d(params) into `grads` (num_params floats, Weights layout).
  LossResult forward_backward(const TrainBatch& b, TaskType task, float* grads, double denominator = 0);
  LossResult forward_loss(const TrainBatch& b, TaskType task, double denominator = 0);

  // Attention-output dropout (spec §6.9: p = 0.1 in ModernBERT pre-training): every forward after
  // this call drops each element of each layer's attention output projection with probability p
  // and scales the rest by 1/(1-p); the mask is a pure function of (seed, layer, element), so
  // forward, backward and a repeated forward agree. p = 0 (the default) turns it off (evaluation).
  void set_attention_output_dropout(double p, uint64_t seed);

  // last_hidden_state of the most recent forward (first T*H floats: [T, H], after final_norm).
  const std::vector<float>& last_hidden() const;

  // Encoder only, for losses computed outside (contrastive / ColBERT fine-tuning): forward saving
  // activations, returning last_hidden_state [T, H]; then backward from d loss / d hidden [T, H]
  // (same batch, no other forward in between), ADDING the encoder's parameter gradients.
  const float* forward_hidden(const Batch& batch);
  void backward_hidden(const Batch& batch, const float* dhidden, float* grads);

  // Number of items a batch's loss counts (labels != -100, or B * num_labels for MSE/BCE).
  static int64_t count_items(const TrainBatch& b, TaskType task, int64_t num_labels);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sum over the buffer of g², in a fixed order (chunked double partial sums), for grad-norm logs.
double grad_norm_sq(const float* g, size_t n);

}  // namespace modernbert
