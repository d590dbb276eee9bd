// The training loop (see training_loop.h).
#include "modernbert/training_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>

#include "core/hash.h"
#include "modernbert/error.h"
#include "train/progress.h"

namespace modernbert::train {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

nlohmann::json finite_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }

Progress::Options progress_options(const LoopConfig& c, bool root) {
  Progress::Options o;
  o.enabled = c.progress && root;
  o.label = c.label;
  if (c.epochs > 0) {
    o.style = Progress::Style::kEpochs;
    o.total_steps = c.steps_per_epoch * c.epochs;
  } else {
    o.style = Progress::Style::kTokens;
    o.total_steps = c.max_steps;
    o.total_tokens = c.max_tokens;
    o.plain_every = c.log_every;
  }
  return o;
}

class Loop {
 public:
  Loop(const LoopConfig& c, TrainingTask& task, const std::vector<ParamGroup>& groups, const LoopState& start)
      : c_(c),
        task_(task),
        groups_(groups),
        comm_(c.comm ? *c.comm : single_process()),
        progress_(progress_options(c, comm_.is_root())) {
    if (!c.log) throw Error(c.label + ": the training loop needs a log stream");
    if (groups.empty()) throw Error(c.label + ": the training loop needs a parameter group");
    for (const ParamGroup& g : groups)
      if (!g.shard.empty() && (g.shard.size() != static_cast<size_t>(comm_.size()) + 1 || g.shard.front() != 0 ||
                               g.shard.back() != g.size || !std::is_sorted(g.shard.begin(), g.shard.end())))
        throw Error(c.label + ": a sharded parameter group needs " + std::to_string(comm_.size() + 1) +
                    " increasing offsets from 0 to its size");
    log_ = comm_.is_root() ? c.log : &null_log_;
    res_.state = start;
    tokens_at_start_ = start.tokens;
    last_saved_ = start.step;
    for (const ParamGroup& g : groups) sharded_ = sharded_ || !g.shard.empty();
    if (c.eval_each_epoch) tracker_.emplace(res_, *log_, c.patience, c.metric_name);
  }

  LoopResult run() {
    LoopState& s = res_.state;
    if (comm_.size() > 1) check_in_step();  // every rank starts from the same parameters
    if (c_.epochs > 0) {
      for (int64_t epoch = 1; epoch <= c_.epochs && !done(); ++epoch) {
        s.epoch = epoch;
        task_.begin_epoch(epoch);
        double epoch_loss = 0;
        int64_t epoch_steps = 0;
        for (int64_t slot = 0; slot < c_.steps_per_epoch && !done(); ++slot) {
          double loss = 0;
          if (!step(slot, &loss)) continue;
          epoch_loss += loss;
          ++epoch_steps;
        }
        if (tracker_ && !end_epoch(epoch, epoch_loss / static_cast<double>(std::max<int64_t>(1, epoch_steps)))) break;
      }
    } else {
      double loss = 0;
      while (!done()) step(s.step, &loss);
    }
    if (c_.save_at_end && (last_saved_ != s.step || !task_.has_checkpoint())) task_.save(s);
    progress_.end_line();
    if (tracker_) tracker_->finish(s.step);
    return std::move(res_);
  }

 private:
  bool done() const {
    const LoopState& s = res_.state;
    return (c_.max_steps > 0 && s.step >= c_.max_steps) || (c_.max_tokens > 0 && s.tokens >= c_.max_tokens);
  }

  // One step of slot `slot`; false when the task skips the slot.
  bool step(int64_t slot, double* loss_out);
  // The gradients of the planned step into the groups' buffers (summed over ranks); returns the
  // summed loss. `comm_seconds`: the time of the cross-rank sums.
  double gradients(const StepPlan& plan, int64_t* correct, double* comm_seconds);
  // Data-parallel: every rank's parameter checksum equals rank 0's (else an Error).
  void check_in_step() const;
  double grad_norm() const;
  std::string skip_reason(double loss, double gnorm) const;
  // The optimizers' update (ZeRO-1 groups: this rank's shard, then the all-gather, timed into
  // *gather_seconds).
  void update(double loss, double gnorm, double lr, double* gather_seconds);
  void record(const StepPlan& plan, const StepReport& r, double dt, double elapsed);
  // Epoch-end evaluation; false when patience ran out.
  bool end_epoch(int64_t epoch, double train_loss);

  const LoopConfig& c_;
  TrainingTask& task_;
  const std::vector<ParamGroup>& groups_;
  Communicator& comm_;
  std::ostream null_log_{nullptr};  // the log of ranks other than 0 (discards everything)
  std::ostream* log_ = nullptr;
  std::vector<float> scratch_;  // micro-batches after a rank's first: their group-0 gradient
  Progress progress_;
  LoopResult res_;
  std::optional<EpochTracker> tracker_;
  double tokens_at_start_ = 0;
  int64_t last_saved_ = 0;
  bool sharded_ = false;  // some group is ZeRO-1 sharded
  const std::chrono::steady_clock::time_point t_start_ = std::chrono::steady_clock::now();
};

double Loop::gradients(const StepPlan& plan, int64_t* correct, double* comm_seconds) {
  for (const ParamGroup& g : groups_) std::fill(g.grads, g.grads + g.size, 0.0f);
  double loss = 0;
  *correct = 0;
  const Share mine = rank_share(plan.micro_batches, comm_.rank(), comm_.size());
  const ParamGroup& g0 = groups_[0];
  for (int64_t k = mine.first; k < mine.last; ++k) {
    float* into = g0.grads;
    if (k > mine.first) {  // from zero, then added: the sum runs in micro-batch order (see header)
      scratch_.resize(g0.size);
      std::fill(scratch_.begin(), scratch_.end(), 0.0f);
      into = scratch_.data();
    }
    const MicroResult r = task_.forward_backward(res_.state, k, into);
    if (into != g0.grads)
      for (size_t i = 0; i < g0.size; ++i) g0.grads[i] += scratch_[i];
    loss += r.loss;
    *correct += r.correct;
  }
  *comm_seconds = 0;
  if (comm_.size() > 1) {
    const auto t0 = std::chrono::steady_clock::now();
    comm_.allreduce_sum(&loss, 1);
    comm_.allreduce_sum(correct, 1);
    for (const ParamGroup& g : groups_) comm_.allreduce_sum(g.grads, g.size);
    *comm_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return plan.micro_batches > 0 ? loss : std::nan("");
}

void Loop::check_in_step() const {
  uint64_t h = kFnv64Offset;
  for (const ParamGroup& g : groups_) {
    // FNV-style over 8-byte words (one multiply per word): ~1 s per GB on one core, paid once per
    // sync_check_every steps.
    const size_t bytes = g.size * sizeof(float);
    const auto* p = reinterpret_cast<const unsigned char*>(g.params);
    size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      h = (h ^ w) * kFnv64Prime;
    }
    h = fnv1a64(p + i, bytes - i, h);
  }
  const std::vector<std::string> all = comm_.allgather_bytes(std::string(reinterpret_cast<const char*>(&h), 8));
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw Error(c_.label + ": after step " + std::to_string(res_.state.step) + " the parameters of rank " +
                  std::to_string(r) +
                  " differ from rank 0's: the ranks are out of step (different data, binaries or flags per rank?)");
}

double Loop::grad_norm() const {
  double sq = 0;
  for (const ParamGroup& g : groups_) sq += grad_norm_sq(g.grads, g.size);
  return std::sqrt(sq);
}

std::string Loop::skip_reason(double loss, double gnorm) const {
  const LoopState& s = res_.state;
  if (c_.skip_non_finite && (!std::isfinite(loss) || !std::isfinite(gnorm))) return "non-finite loss or gradient";
  if (c_.spike_factor > 0 && s.ema_n >= c_.spike_warmup_steps && loss > c_.spike_factor * s.ema) return "loss spike";
  return "";
}

void Loop::update(double loss, double gnorm, double lr, double* gather_seconds) {
  if (c_.grad_clip > 0 && gnorm > c_.grad_clip) {
    const float f = static_cast<float>(c_.grad_clip / gnorm);
    for (const ParamGroup& g : groups_)
      for (size_t i = 0; i < g.size; ++i) g.grads[i] *= f;
  }
  *gather_seconds = 0;
  for (const ParamGroup& g : groups_) {
    g.optimizer->step(g.params, g.grads, lr);  // a sharded optimizer updates its tensors only
    if (!g.shard.empty() && comm_.size() > 1) {
      const auto t0 = std::chrono::steady_clock::now();
      comm_.allgather(g.params, g.shard);
      *gather_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  LoopState& s = res_.state;
  s.ema = s.ema_n == 0 ? loss : 0.9 * s.ema + 0.1 * loss;
  ++s.ema_n;
}

bool Loop::step(int64_t slot, double* loss_out) {
  LoopState& s = res_.state;
  const auto t0 = std::chrono::steady_clock::now();
  const StepPlan plan = task_.plan_step(s, slot);
  if (plan.skip) return false;
  StepReport r;
  r.tokens = plan.tokens;
  r.loss = gradients(plan, &r.correct, &r.comm_seconds);
  if (c_.log_grad_norm || c_.grad_clip > 0 || c_.skip_non_finite) r.grad_norm = grad_norm();
  const double t = c_.clock == LoopConfig::Clock::kTokens ? s.tokens : static_cast<double>(s.step);
  r.lr = c_.peak_lr * lr_multiplier(c_.schedule, t);
  r.skipped = skip_reason(r.loss, r.grad_norm);
  task_.before_update(s);
  if (r.skipped.empty()) {
    update(r.loss, r.grad_norm, r.lr, &r.gather_seconds);
  } else {
    ++s.skipped;
    char buf[160];
    std::snprintf(buf, sizeof buf, ": step %lld skipped (%s: loss %g, grad norm %g)",
                  static_cast<long long>(s.step + 1), r.skipped.c_str(), r.loss, r.grad_norm);
    progress_.message(c_.label + buf);
  }
  s.tokens += static_cast<double>(plan.tokens);
  ++s.step;
  res_.last_loss = r.loss;
  if (comm_.size() > 1 && c_.sync_check_every > 0 && s.step % c_.sync_check_every == 0) check_in_step();
  const auto t1 = std::chrono::steady_clock::now();
  record(plan, r, std::chrono::duration<double>(t1 - t0).count(), std::chrono::duration<double>(t1 - t_start_).count());
  if (c_.save_every > 0 && s.step % c_.save_every == 0) {
    task_.save(s);
    last_saved_ = s.step;
  }
  *loss_out = r.loss;
  return true;
}

void Loop::record(const StepPlan& plan, const StepReport& r, double dt, double elapsed) {
  const LoopState& s = res_.state;
  const double rate = static_cast<double>(plan.tokens) / std::max(dt, 1e-9);
  nlohmann::json rec = {{"step", s.step}, {"loss", finite_or_null(r.loss)}, {"lr", r.lr}, {"tokens_per_s", rate}};
  if (c_.epochs > 0) {
    rec["type"] = "step";
    rec["epoch"] = s.epoch;
  }
  if (c_.log_grad_norm) rec["grad_norm"] = finite_or_null(r.grad_norm);
  if (comm_.size() > 1) {
    rec["ranks"] = comm_.size();
    rec["allreduce_s"] = r.comm_seconds;
    if (sharded_) rec["allgather_s"] = r.gather_seconds;
  }
  if (!r.skipped.empty()) rec["skipped"] = r.skipped;
  task_.add_step_fields(s, r, rec);
  if (c_.eval_every > 0 && s.step % c_.eval_every == 0) {
    const EvalResult e = task_.evaluate(s);
    rec.update(e.metrics);
    progress_.message(e.message);
  }
  *log_ << rec.dump() << "\n";
  log_->flush();
  Progress::Point p;
  p.step = s.step;
  p.epoch = s.epoch;
  p.tokens = s.tokens;
  p.loss = r.loss;
  p.lr = r.lr;
  p.grad_norm = r.grad_norm;
  p.rate_step = rate;
  p.rate_mean = (s.tokens - tokens_at_start_) / std::max(elapsed, 1e-9);
  progress_.step(p);
}

bool Loop::end_epoch(int64_t epoch, double train_loss) {
  const LoopState& s = res_.state;
  const EvalResult e = task_.evaluate(s);
  const bool improved = tracker_->end_epoch(epoch, s.step, e.score, e.metrics, train_loss);
  progress_.message(e.message + (improved ? " (best, saved)" : ""));
  if (improved) {
    task_.save(s);
  } else if (tracker_->patience_exhausted()) {
    progress_.message(c_.label + ": no improvement for " + std::to_string(c_.patience) + " epochs, stopping");
    return false;
  }
  return true;
}

}  // namespace

LoopResult run_training_loop(const LoopConfig& cfg, TrainingTask& task, const std::vector<ParamGroup>& groups,
                             const LoopState& start) {
  return Loop(cfg, task, groups, start).run();
}

ZeroShards zero_shards(const std::vector<ParamSpec>& specs, int64_t stage, int ranks, const std::string& label) {
  if (stage != 0 && stage != 1) throw Error(label + ": --zero must be 0 or 1, got " + std::to_string(stage));
  ZeroShards z;
  if (stage == 1 && ranks > 1) {
    z.tensors = split_tensors(specs, ranks);
    z.elements = tensor_element_bounds(specs, z.tensors);
  }
  return z;
}

nlohmann::json report_optimizer_memory(const std::string& label, const ZeroShards& z, size_t num_params, int64_t stage,
                                       const Communicator& comm) {
  const double total = 2.0 * sizeof(float) * static_cast<double>(num_params);
  double largest = total;
  if (!z.empty()) {
    largest = 0;
    for (size_t q = 0; q + 1 < z.elements.size(); ++q)
      largest = std::max(largest, 2.0 * sizeof(float) * static_cast<double>(z.elements[q + 1] - z.elements[q]));
  }
  if (comm.is_root() && (comm.size() > 1 || stage > 0)) {
    std::fprintf(stderr, "%s: optimizer state per rank: %.1f MiB of %.1f MiB (--zero %lld", label.c_str(),
                 largest / 1048576.0, total / 1048576.0, static_cast<long long>(stage));
    if (!z.empty()) {
      std::fprintf(stderr, "; largest of %d shards, tensors per rank:", comm.size());
      for (size_t q = 0; q + 1 < z.tensors.size(); ++q) std::fprintf(stderr, " %zu", z.tensors[q + 1] - z.tensors[q]);
    }
    std::fprintf(stderr, ")\n");
  }
  return {{"zero_stage", stage}, {"optimizer_state_bytes", total}, {"optimizer_state_bytes_per_rank", largest}};
}

// ---- EpochTracker ----------------------------------------------------------------------------------

EpochTracker::EpochTracker(LoopResult& res, std::ostream& log, int64_t patience, std::string metric_name)
    : res_(res), log_(log), patience_(patience), metric_name_(std::move(metric_name)), start_(now_seconds()) {}

bool EpochTracker::end_epoch(int64_t epoch, int64_t step, double score, const nlohmann::json& dev, double train_loss) {
  const bool improved = score > best_ || res_.best_epoch == 0;
  const nlohmann::json rec = {{"type", "eval"},           {"epoch", epoch}, {"step", step},
                              {"train_loss", train_loss}, {"dev", dev},     {"improved", improved}};
  log_ << rec.dump() << "\n";
  log_.flush();
  res_.history.push_back(rec);
  res_.epochs_run = epoch;
  if (improved) {
    best_ = score;
    res_.best_epoch = epoch;
    res_.best_score = score;
    since_best_ = 0;
  } else {
    ++since_best_;
  }
  return improved;
}

void EpochTracker::finish(int64_t steps) {
  log_ << nlohmann::json{{"type", "done"},
                         {"steps", steps},
                         {"epochs", res_.epochs_run},
                         {"best_epoch", res_.best_epoch},
                         {metric_name_, res_.best_score},
                         {"seconds", now_seconds() - start_}}
              .dump()
       << "\n";
  log_.flush();
}

}  // namespace modernbert::train
