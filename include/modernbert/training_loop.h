// The one training loop of pretraining and of both fine-tuning paths (heads; embedding/ColBERT).
// The loop owns the control flow of a step and of a run; a TrainingTask supplies what differs
// (the batches, the forward/backward, the evaluation, the checkpoint):
//
//   for each step (epoch mode: `epochs` passes of `steps_per_epoch` slots; stream mode: until a
//   limit):
//     plan = task.plan_step(...)                 micro-batches and tokens of the step (or skip the slot)
//     zero every group's gradients
//     task.forward_backward(micro k) for this rank's k   micro-batch 0 of the rank into group 0's
//                                                buffer, each later one into a zeroed scratch buffer
//                                                that is then added (so the sum is in micro order)
//     data-parallel (cfg.comm of N > 1 ranks): losses, counts and every group's gradients summed
//     over ranks in rank order (communicator.h)
//     grad norm (optional), skip guard (non-finite / loss spike vs. the loss EMA)
//     task.before_update(...)
//     clip (optional), every group's optimizer at lr = peak · lr_multiplier(schedule, tokens | steps)
//     (ZeRO-1 groups: each rank updates its shard, then the parameters are all-gathered)
//     JSONL record (append-only) + progress line; evaluation every N steps (merged into the record)
//     checkpoint every N steps
//   epoch mode: evaluate at each epoch end; the best epoch is saved; stop after `patience` epochs
//   without improvement ("eval" and "done" records).
//   end: a last checkpoint (save_at_end) unless the last step was saved.
//
// The order of every floating-point operation is fixed by the loop (losses summed in micro-batch
// order, one grad-norm reduction per group in group order, groups updated in order), so a task that
// replays the same batches gets bit-identical weights, and a resumed run continues bit-exactly.
//
// Data parallelism (#16): the step's micro-batches (StepPlan::micro_batches, a GLOBAL count) are
// split into contiguous shares, rank r taking rank_share(micro_batches, r, N) (communicator.h);
// every rank plans the whole step (the same deterministic data) and runs only its share. The
// gradient of micro-batch k is computed from zero and the sums run
//   one process:  ((g_0 + g_1) + g_2) + ...          (micro order)
//   N ranks:      (S_0 + S_1) + ...,  S_r = the rank's micro-batches summed in micro order
// so N ranks with ONE micro-batch each reproduce one process with N micro-batches BIT FOR BIT
// (more generally: whenever ranks 1..N-1 hold at most one micro-batch each, e.g. 3 on 2 ranks; a
// rank with none adds zeros, which can only turn a -0 into +0, invisible to the optimizer); with
// several on a later rank the sum is re-associated (float rounding differences only). Every rank
// then takes the same update (ZeRO-1: ParamGroup::shard); rank 0 alone writes the log and progress lines (cfg.log and
// cfg.progress are ignored elsewhere), and every sync_check_every steps all ranks compare a
// checksum of their parameters (an Error when they differ).
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "modernbert/communicator.h"
#include "modernbert/optimizer.h"
#include "modernbert/pretrain.h"
#include "modernbert/schedule.h"
#include "modernbert/train_model.h"

namespace modernbert::train {

// The counters a run carries from step to step (pretraining saves and restores them).
struct LoopState {
  int64_t step = 0;     // steps taken (skipped ones included)
  double tokens = 0;    // training tokens seen (Σ StepPlan::tokens)
  int64_t epoch = 0;    // epoch mode: the current epoch (1-based); 0 in stream mode
  double ema = 0;       // EMA of the loss over steps not skipped: first loss, then 0.9·ema + 0.1·loss
  int64_t ema_n = 0;    // losses in the EMA
  int64_t skipped = 0;  // steps whose update was skipped
};

// One optimizer with its parameters and gradients (`size` floats each, in the optimizer's layout).
struct ParamGroup {
  Optimizer* optimizer = nullptr;
  float* params = nullptr;
  float* grads = nullptr;
  size_t size = 0;
  // Data-parallel ZeRO stage 1 (#16): comm.size() + 1 element offsets; rank r's optimizer owns
  // [shard[r], shard[r+1]) of the layout (Optimizer over a tensor range) and updates only those
  // parameters, which are then all-gathered (Communicator::allgather with these bounds). The
  // gradient is still all-reduced whole, so norm, clipping and skipping are unchanged and the
  // weights equal the unsharded run's bit for bit. Empty: every rank updates every parameter.
  std::vector<size_t> shard = {};
};

// What a step will do, from TrainingTask::plan_step.
struct StepPlan {
  bool skip = false;          // the slot yields no step (no update, no record, not counted)
  int64_t micro_batches = 0;  // forward/backward passes; 0: the step has no loss (NaN) and zero gradients
  int64_t tokens = 0;         // tokens the step consumes (the tokens counter and the rate)
};

// One micro-batch's contribution: losses are summed over the step's micro-batches, so a task that
// accumulates passes the global denominator to each (TrainModel::forward_backward's `denominator`).
struct MicroResult {
  double loss = 0;
  int64_t correct = 0;  // e.g. MLM: argmax == label among the counted labels
};

// What the loop computed for a step (for the task's fields of the step record).
struct StepReport {
  double loss = 0;  // Σ micro-batch losses; NaN without micro-batches
  int64_t correct = 0;
  double lr = 0;
  double grad_norm = std::numeric_limits<double>::quiet_NaN();  // when computed
  int64_t tokens = 0;                                           // StepPlan::tokens
  double comm_seconds = 0;    // data-parallel: the step's gradient all-reduce (wall time on this rank)
  double gather_seconds = 0;  // ZeRO-1: the parameter all-gather after the update (wall time on this rank)
  std::string skipped;        // why the update was skipped; "" = applied
};

// An evaluation. Every-N-steps evaluations merge `metrics` into that step's record; epoch-end ones
// log it as the "dev" of an "eval" record and select the best epoch by `score` (higher is better).
struct EvalResult {
  nlohmann::json metrics = nlohmann::json::object();
  double score = -std::numeric_limits<double>::infinity();
  std::string message;  // progress line (epoch end: " (best, saved)" is appended when it improved)
};

// What differs between runs. Calls come in loop order; `s` is the state before the step
// (plan_step .. before_update) or after it (add_step_fields, evaluate, save).
class TrainingTask {
 public:
  virtual ~TrainingTask() = default;
  virtual void begin_epoch(int64_t epoch) {}
  // Prepares step s.step + 1; `slot` is its index in the epoch (epoch mode) or s.step (stream mode).
  virtual StepPlan plan_step(const LoopState& s, int64_t slot) = 0;
  // Forward + backward of micro-batch `micro` (global index, 0 <= micro < plan.micro_batches) of the
  // planned step: ADDS the gradients of group 0 into `grads` (other groups' gradients go to their
  // own buffers, zeroed by the loop before the step). Data-parallel, a rank is called for its share
  // of the micro-batches only, and losses must be scaled by the GLOBAL step's denominator.
  virtual MicroResult forward_backward(const LoopState& s, int64_t micro, float* grads) = 0;
  // After the gradients and the skip decision, before any update (fault-injection points).
  virtual void before_update(const LoopState& s) {}
  // The task's fields of the step's JSONL record (the loop writes step, loss, lr, tokens_per_s, and
  // grad_norm / skipped / in epoch mode type + epoch).
  virtual void add_step_fields(const LoopState& s, const StepReport& r, nlohmann::json& record) {}
  virtual EvalResult evaluate(const LoopState& s) { return {}; }
  // A checkpoint (stream mode: periodic and final) or the best model so far (epoch mode).
  virtual void save(const LoopState& s) {}
  // Whether a checkpoint of the run exists: the final save also happens when none does.
  virtual bool has_checkpoint() const { return true; }
};

struct LoopConfig {
  std::string label = "train";  // prefix of progress lines and messages ("pretrain", "finetune")
  // LR of a step: peak_lr · lr_multiplier(schedule, t), t = the tokens (kTokens) or steps (kSteps)
  // before it.
  enum class Clock { kTokens, kSteps };
  double peak_lr = 0;
  ScheduleConfig schedule;
  Clock clock = Clock::kSteps;
  // Length: epoch mode when epochs > 0, else stream mode; both stop at max_steps / max_tokens (> 0).
  int64_t epochs = 0, steps_per_epoch = 0;
  int64_t max_steps = 0;
  double max_tokens = 0;
  // Gradient: the global L2 norm is computed when logged, clipped to or guarded; clip when > 0.
  bool log_grad_norm = false;
  double grad_clip = 0;
  // Skip guard: no update for a step whose loss or grad norm is not finite (skip_non_finite), or
  // (spike_factor > 0) whose loss exceeds spike_factor × EMA once the EMA holds spike_warmup_steps.
  bool skip_non_finite = false;
  double spike_factor = 0;
  int64_t spike_warmup_steps = 20;
  // Evaluation every eval_every steps (0 = never) and/or at each epoch end (best epoch, patience:
  // stop after `patience` epochs without improvement, 0 = never; metric_name keys the "done" record).
  int64_t eval_every = 0;
  bool eval_each_epoch = false;
  int64_t patience = 0;
  std::string metric_name;
  // Checkpoints every save_every steps (0 = never), and at the end when save_at_end.
  int64_t save_every = 0;
  bool save_at_end = false;
  // Output: the JSONL sink (required) and the progress lines (log_every: stream mode's plain lines).
  std::ostream* log = nullptr;
  bool progress = true;
  int64_t log_every = 0;
  // Data parallelism: the ranks of the job (null = this process alone); parameter checksums are
  // compared across ranks before the first step and every sync_check_every steps (0 = start only).
  Communicator* comm = nullptr;
  int64_t sync_check_every = 100;
};

struct LoopResult {
  LoopState state;  // after the last step
  double last_loss = 0;
  int64_t epochs_run = 0, best_epoch = 0;
  double best_score = 0;                             // the best epoch's score
  nlohmann::json history = nlohmann::json::array();  // the "eval" records
};

// ZeRO stage 1 (#16) of one parameter layout: the ranks' tensor ranges (split_tensors: tensors are
// never split) and their element offsets, both ranks + 1 long; empty for stage 0 or one rank
// (every rank then holds all the optimizer state). `elements` is ParamGroup::shard.
struct ZeroShards {
  std::vector<size_t> tensors, elements;
  bool empty() const { return tensors.empty(); }
  // This rank's tensor range for Optimizer(specs, cfg, first, last); [0, num_tensors) unsharded.
  size_t first_tensor(int rank) const { return empty() ? 0 : tensors[static_cast<size_t>(rank)]; }
  size_t last_tensor(int rank, size_t num_tensors) const {
    return empty() ? num_tensors : tensors[static_cast<size_t>(rank) + 1];
  }
};
// stage must be 0 or 1 (an Error naming `label`'s --zero otherwise).
ZeroShards zero_shards(const std::vector<ParamSpec>& specs, int64_t stage, int ranks, const std::string& label);

// The optimizer memory (the two AdamW moments, fp32) of the whole layout and of the largest rank's
// shard: {"zero_stage", "optimizer_state_bytes", "optimizer_state_bytes_per_rank"}. Rank 0 also
// prints "<label>: optimizer state per rank: X MiB of Y MiB (--zero S; largest of N shards, tensors
// per rank: ...)" on stderr when there are several ranks or stage > 0.
nlohmann::json report_optimizer_memory(const std::string& label, const ZeroShards& z, size_t num_params, int64_t stage,
                                       const Communicator& comm);

// Runs steps from `start` (a resumed run's counters) until a limit or early stop.
LoopResult run_training_loop(const LoopConfig& cfg, TrainingTask& task, const std::vector<ParamGroup>& groups,
                             const LoopState& start = {});

// Best-epoch selection and the epoch records (the loop's epoch mode; public for its tests).
class EpochTracker {
 public:
  EpochTracker(LoopResult& res, std::ostream& log, int64_t patience, std::string metric_name);
  // Logs {"type": "eval", epoch, step, train_loss, dev, improved}, appends it to res.history and
  // updates the best epoch; the first epoch always counts as an improvement, a tie does not.
  bool end_epoch(int64_t epoch, int64_t step, double score, const nlohmann::json& dev, double train_loss);
  bool patience_exhausted() const { return patience_ > 0 && since_best_ >= patience_; }
  // Logs {"type": "done", steps, epochs, best_epoch, <metric_name>: best score, seconds}.
  void finish(int64_t steps);

 private:
  LoopResult& res_;
  std::ostream& log_;
  int64_t patience_;
  std::string metric_name_;
  double best_ = -std::numeric_limits<double>::infinity();
  int64_t since_best_ = 0;
  double start_;  // seconds on the steady clock
};

}  // namespace modernbert::train
