// Training: forward with saved activations, backward, losses (llm.c style: forward and backward
// side by side over plain arrays), and the pre-training recipe of spec §6 (masking, packing,
// StableAdamW, schedules, batch-size warm-up, tiling, checkpoints/resume).
//
// Gradients live in ONE float buffer with exactly the layout of Weights' parameter buffer
// (parameter_specs order; the gradient of parameter `name` is at grads + weights.offset(name)).
// Optimizer moments use the same layout. A tied decoder has no parameter of its own: its
// gradient lands in the token-embedding rows.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "modernbert/config.h"
#include "modernbert/model.h"
#include "modernbert/train_options.h"
#include "modernbert/weights.h"

namespace modernbert {

// ==== Part 1: model training forward / backward ==================================================

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

// ---- Contrastive losses for retrieval fine-tuning (in-batch negatives) ----
// Query i's positive is document target[i]; exclude[i * Bd + j] != 0 removes document j from query
// i's softmax (another positive of the same query, so it is not a false negative). The loss is the
// mean over queries of −log softmax_j(s_ij / temperature)[target_i].
//
// Single vector (InfoNCE, sentence-transformers' MultipleNegativesRankingLoss with scale = 1/τ):
//   s_ij = cos(q_i, d_j), q [Bq, D], d [Bd, D] raw (unnormalised) vectors.
// Gradients w.r.t. the raw vectors are WRITTEN to dq [Bq, D] / dd [Bd, D] (either may be null).
double info_nce_loss(const float* q, int64_t Bq, const float* d, int64_t Bd, int64_t D,
                     const std::vector<int64_t>& target, const std::vector<uint8_t>& exclude, double temperature,
                     float* dq, float* dd);
// Multi-vector (ColBERT MaxSim): query i has token vectors q[q_off[i] .. q_off[i+1]), document j
// d[d_off[j] .. d_off[j+1]) (rows of D floats, raw); each is L2-normalised, and
//   s_ij = Σ_{t ∈ q_i} max_{k ∈ d_j} <q̂_t, d̂_k>.
// Gradients w.r.t. the raw token vectors are WRITTEN to dq [Tq, D] / dd [Td, D] (nullable); the
// max routes the gradient to the first maximising document token (ties: lowest index).
double maxsim_contrastive_loss(const float* q, const std::vector<int64_t>& q_off, const float* d,
                               const std::vector<int64_t>& d_off, int64_t D, const std::vector<int64_t>& target,
                               const std::vector<uint8_t>& exclude, double temperature, float* dq, float* dd);

// The whole retrieval loss of one fine-tuning step from the encoder output: `batch` holds Bq
// queries then Bd = num_seqs − Bq documents, hidden = last_hidden_state [T, H].
//   embedding: mean (or CLS) pooling per sequence -> info_nce_loss
//   colbert:   P = hidden · projᵀ [T, proj_dim] (no bias) -> maxsim_contrastive_loss
// Writes d loss / d hidden [T, H] and (colbert) d loss / d proj [proj_dim, H].
struct RetrievalLoss {
  bool colbert = false;
  bool cls_pooling = false;  // embedding: CLS instead of mean pooling
  double temperature = 0.05;
  const float* proj = nullptr;  // colbert: [proj_dim, H]
  int64_t proj_dim = 0;
};
double retrieval_batch_loss(const float* hidden, const Batch& batch, int64_t H, int64_t Bq,
                            const std::vector<int64_t>& target, const std::vector<uint8_t>& exclude,
                            const RetrievalLoss& spec, float* dhidden, float* dproj);

// ==== Part 2: the pre-training recipe (spec §6) =================================================

// ---- StableAdamW / AdamW (spec §6.4) ----
struct OptimizerConfig {
  OptimizerType type = OptimizerType::kStableAdamW;  // "stableadamw" | "adamw" in configs
  double lr = 8e-4;                  // peak LR = η_max (StableAdamW's max_lr, decouple_lr=True)
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-6;
  double weight_decay = 1e-5;        // λ; never applied to norms and biases (ParamSpec::weight_decay)
};

// Moments m, v in the Weights layout. step() applies one update to every parameter tensor:
// StableAdamW (t = step count after increment):
//   β̂ = (β^t − β)/(β^t − 1);  m ← β̂1 m + (1−β̂1) g;  v ← β̂2 v + (1−β̂2) g²
//   RMS = sqrt(mean(g² / max(v, ε²)));  η' = η_t / max(1, RMS)            (per tensor)
//   θ ← θ (1 − (η'/η_max) λ)  (decayed tensors only);  θ ← θ − η' m / (sqrt(v) + ε)
// AdamW (PyTorch): m, v plain EMAs; θ ← θ (1 − η_t λ); θ ← θ − η_t m̂ / (sqrt(v̂) + ε).
class Optimizer {
 public:
  Optimizer(const std::vector<ParamSpec>& specs, const OptimizerConfig& cfg);
  void step(float* params, const float* grads, double lr_t);
  int64_t step_count() const { return t_; }
  void set_step_count(int64_t t) { t_ = t; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const OptimizerConfig& config() const { return cfg_; }
  // Per-tensor update RMS of the last StableAdamW step (spec order), for logs and tests.
  const std::vector<double>& last_rms() const { return rms_; }

 private:
  std::vector<ParamSpec> specs_;
  std::vector<size_t> offsets_;
  OptimizerConfig cfg_;
  std::vector<float> m_, v_;
  std::vector<double> rms_;
  int64_t t_ = 0;
};

// ---- LR schedule (spec §6.5), time in tokens ----
struct ScheduleConfig {
  double warmup_tokens = 3e9;     // linear ramp from alpha_i to 1
  double decay_tokens = 0;        // length of the final decay (0 = never decays: P1 "constant after warm-up")
  double total_tokens = 0;        // T_max (decay ends here)
  DecayShape decay_shape = DecayShape::kOneMinusSqrt;  // "1-sqrt" | "linear" in configs
  double alpha_i = 0.0;           // initial warm-up fraction (Composer: 1e-10 ~ 0)
  double alpha_f = 0.001;         // final fraction after the decay
};
// Multiplier of the peak LR at `tokens` seen.
double lr_multiplier(const ScheduleConfig& s, double tokens);

// ---- Batch-size warm-up (spec §6.3), in micro-batches per step ----
struct BatchWarmup {
  int64_t min_batches = 1, max_batches = 1;
  double warmup_tokens = 0;  // per device (W); 0 = always max
  // b while tokens < ceil(W·(min+…+b)/S) with S = Σ_{b=min}^{max-1} b; max afterwards.
  int64_t batches_at(double tokens) const;
};

// ---- MLM masking (spec §6.1) ----
struct MaskingConfig {
  double probability = 0.3;
  int32_t mask_token_id = 50284;
  // Ids never masked (the reference excludes only padding; we never store padding).
  std::vector<int32_t> excluded_ids;
};
// Masks ids in place and writes labels (original id at masked positions, -100 elsewhere), with one
// uniform r per position: r < 0.8p → [MASK]; < 0.9p → random id in [0, max id of the row after
// [MASK] substitution]; < p → unchanged. Deterministic from (seed, stream): the same row serial
// always gets the same mask, independent of threads, restarts or what came before.
void mlm_mask(std::vector<int32_t>& ids, std::vector<int32_t>& labels, const MaskingConfig& cfg, uint64_t seed,
              uint64_t stream);

// ---- Greedy best-fit sequence packing (spec §6.3) ----
struct PackedRow {
  std::vector<int32_t> ids;             // concatenated sequences (no padding stored)
  std::vector<int64_t> cu_seqlens{0};   // row-local boundaries
  int64_t capacity = 0;                 // row length; capacity - ids.size() = padding not stored
};

// Deterministic, restartable document source: documents in a per-epoch shuffled order.
class DocumentStream {
 public:
  DocumentStream(std::vector<std::vector<int32_t>> docs, uint64_t seed, bool shuffle = true);
  const std::vector<int32_t>& next();
  int64_t epoch() const { return epoch_; }
  int64_t cursor() const { return cursor_; }
  void seek(int64_t epoch, int64_t cursor);
  size_t size() const { return docs_.size(); }

 private:
  void make_order();
  std::vector<std::vector<int32_t>> docs_;
  std::vector<int64_t> order_;
  uint64_t seed_;
  bool shuffle_;
  int64_t epoch_ = 0, cursor_ = 0;
};

class SequencePacker {
 public:
  // row_len tokens per row; buffer_size = FIFO capacity in sequences (reference: 5 × device batch).
  SequencePacker(int64_t row_len, int64_t buffer_size, std::function<std::vector<int32_t>()> source);
  // Packs n_rows rows: pop the next buffered sequence, put it in the fitting row with the least
  // room left (ties: lowest index), else set it aside; refill while the set-aside list leaves
  // room; set-aside sequences go back to the front of the buffer (deque.extendleft order).
  // Returns false (and keeps the buffer) if some row would stay empty.
  bool next(int64_t n_rows, std::vector<PackedRow>& rows);
  // Buffer contents (for checkpoints).
  std::vector<std::vector<int32_t>> buffer() const;
  void set_buffer(std::vector<std::vector<int32_t>> b);

 private:
  int64_t row_len_, capacity_;
  std::function<std::vector<int32_t>()> source_;
  std::vector<std::vector<int32_t>> buf_;  // front = index 0
};

// ---- Tiling a smaller model into a larger one (spec §6.7) ----
// New layer k ← source layer round_half_even(k · L_src / L_dst).
std::vector<int64_t> tiling_layer_map(int64_t src_layers, int64_t dst_layers);
// New[r, c] = B[(r − r0) mod R, (c − c0) mod C], r0 = (R'−R)//2, c0 = (C'−C)//2 (1-D alike).
void tile_tensor(const float* src, const std::vector<int64_t>& src_shape, float* dst,
                 const std::vector<int64_t>& dst_shape);
// Fills dst from src per §6.7: Wqkv tiled per Q/K/V block, Wi per half, norms 1-D, decoder bias
// copied; final_norm and classifier keep dst's current (fresh) values.
void tile_weights(const Weights& src, Weights& dst);

// ---- The pre-training run ----
enum class LongDocuments { kTruncate, kSplit };  // a document longer than seq_len: cut | split into rows
enum class InitScheme { kMegatron };             // fresh init rule (spec §6.6, "full_megatron")
const char* to_string(LongDocuments d);          // "truncate" | "split"
const char* to_string(InitScheme s);             // "megatron"

struct PretrainConfig {
  // Model.
  std::string model_config = "tiny";  // preset name or config.json path (fresh init)
  InitScheme init = InitScheme::kMegatron;  // fresh init rule (spec §6.6)
  std::string init_from;              // continue from these weights (context extension), fresh optimizer
  std::string tile_from;              // grow from a smaller model (spec §6.7)
  double global_rope_theta = 0, local_rope_theta = 0;  // > 0: override (context extension)
  // Data.
  std::vector<std::string> data;       // JSONL (text | input_ids) or .txt (one document per line)
  std::vector<std::string> eval_data;  // held out; empty: eval_documents taken from the data's head
  int64_t eval_documents = 0;
  std::string tokenizer;               // tokenizer.json (needed for text)
  LongDocuments long_documents = LongDocuments::kTruncate;  // truncate (reference) | split
  bool lossy_utf8 = false;                  // replace invalid UTF-8 in text data with U+FFFD instead of failing
  int64_t seq_len = 1024;
  int64_t micro_batch_size = 96;        // packed rows of seq_len per forward/backward
  int64_t global_batch_size = 4608;     // rows per optimizer step (after warm-up)
  double batch_warmup_tokens = 50e9;    // 0 disables batch-size warm-up
  int64_t packing_buffer = 0;           // 0 = 5 × global_batch_size
  double mlm_probability = 0.3, eval_mlm_probability = 0.15;
  int32_t mask_token_id = -1;           // -1: from the tokenizer's [MASK], else 50284
  // Optimisation.
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  double max_tokens = 1.719e12;
  int64_t max_steps = 0;                // > 0: stop after this many steps
  double grad_clip = 0;                 // > 0: clip the global grad norm
  double attention_output_dropout = 0.1;  // spec §6.9 (all phases); 0 = off
  double spike_factor = 0;              // > 0: skip a step whose loss > factor × EMA(loss)
  int64_t spike_warmup_steps = 20;
  uint64_t seed = 17;
  // Output.
  std::string output_dir;
  int64_t save_every = 1000, keep_last = 3, eval_every = 0, eval_rows = 64, log_every = 1;
  bool resume = false;
  // Not config-file fields (flags only): replace a run already in output_dir; resume although the
  // run's identity (data, seed, model, schedule, ...) differs from this invocation.
  bool overwrite = false;
  bool ignore_run_mismatch = false;
  int64_t threads = 0;       // compute threads (0 = all cores); --resume is bit-exact at the same count
  int64_t kill_at_step = 0;  // testing aid: SIGKILL itself in the middle of this step

  // Reads a training config (fields as above; option strings become enums here). Throws
  // modernbert::Error naming `source` and the field. to_json writes the strings back.
  static PretrainConfig from_json(const nlohmann::json& j, const std::string& source);
  nlohmann::json to_json() const;
};

struct PretrainResult {
  int64_t steps = 0;
  double tokens = 0;
  double last_loss = 0;
  int64_t skipped_steps = 0;
};

PretrainResult pretrain(const PretrainConfig& cfg);

}  // namespace modernbert
