// Helpers shared by the fine-tuning loops (finetune.cpp: heads; finetune_retrieval.cpp: embedding
// and ColBERT): a portable deterministic generator, shuffles, head init, the LR schedule and the
// per-epoch bookkeeping (eval record, best epoch, patience, the final "done" record).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "modernbert/finetune.h"
#include "modernbert/trainer.h"

namespace modernbert::finetune_util {

// The generator, truncated normal and shuffle are core/rng.h's (the same streams as before).
using modernbert::shuffled;
using modernbert::splitmix64;
using modernbert::trunc_normal;
using modernbert::uniform01;

// Optimizer settings of a fine-tuning run (β 0.9/0.98, ε 1e-6 as the ModernBERT recipe).
inline OptimizerConfig optimizer_config(const FinetuneOptions& o) {
  OptimizerConfig oc;
  oc.type = o.optimizer;
  oc.lr = o.lr;
  oc.beta1 = 0.9;
  oc.beta2 = 0.98;
  oc.eps = 1e-6;
  oc.weight_decay = o.weight_decay;
  return oc;
}

// Schedule over optimizer steps: warm-up of warmup_ratio·total, then linear decay to 0 or
// (wsd) stable and a 1-sqrt decay over the last 20%.
inline ScheduleConfig schedule_config(const FinetuneOptions& o, int64_t total_steps) {
  ScheduleConfig sc;
  const double total = static_cast<double>(total_steps);
  sc.warmup_tokens = std::max(1.0, std::round(o.warmup_ratio * total));
  sc.alpha_i = 0.0;
  sc.alpha_f = 0.0;
  sc.total_tokens = total;
  if (o.schedule == "linear") {
    sc.decay_tokens = std::max(1.0, total - sc.warmup_tokens);
    sc.decay_shape = "linear";
  } else {
    sc.decay_tokens = std::max(1.0, 0.2 * total);
    sc.decay_shape = "1-sqrt";
  }
  return sc;
}

// Early stopping on a dev metric (higher is better) plus the JSONL records of the epochs. After
// each epoch's dev evaluation: `improved = tracker.end_epoch(...)`; save the model when improved,
// stop when `patience_exhausted()`; `finish()` writes the closing record.
class EpochTracker {
 public:
  EpochTracker(FinetuneResult& res, std::ostream& log, int64_t patience)
      : res_(res), log_(log), patience_(patience), start_(std::chrono::steady_clock::now()) {}

  // Logs {"type": "eval", ...} for the epoch, appends it to res.history and updates the best
  // epoch; the first epoch always counts as an improvement. Returns whether it improved.
  bool end_epoch(int64_t epoch, double metric, const nlohmann::json& dev, double train_loss) {
    const bool improved = metric > best_ || res_.best_epoch == 0;
    nlohmann::json rec = {{"type", "eval"},           {"epoch", epoch}, {"step", res_.steps},
                          {"train_loss", train_loss}, {"dev", dev},     {"improved", improved}};
    log_ << rec.dump() << "\n";
    log_.flush();
    res_.history.push_back(rec);
    res_.epochs_run = epoch;
    if (improved) {
      best_ = metric;
      res_.best_epoch = epoch;
      res_.best_metric = metric;
      since_best_ = 0;
    } else {
      ++since_best_;
    }
    return improved;
  }
  bool patience_exhausted() const { return patience_ > 0 && since_best_ >= patience_; }
  void finish() {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    log_ << nlohmann::json{{"type", "done"},
                           {"steps", res_.steps},
                           {"epochs", res_.epochs_run},
                           {"best_epoch", res_.best_epoch},
                           {res_.metric_name, res_.best_metric},
                           {"seconds", secs}}
                .dump()
         << "\n";
  }

 private:
  FinetuneResult& res_;
  std::ostream& log_;
  int64_t patience_;
  double best_ = -std::numeric_limits<double>::infinity();
  int64_t since_best_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace modernbert::finetune_util
