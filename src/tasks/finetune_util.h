// Helpers shared by the fine-tuning paths (finetune.cpp: heads; finetune_retrieval.cpp: embedding
// and ColBERT): a portable deterministic generator, shuffles, head init, optimizer and LR schedule.
// (The per-epoch bookkeeping is the training loop's: modernbert/training_loop.h.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "modernbert/finetune.h"
#include "modernbert/optimizer.h"
#include "modernbert/schedule.h"

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
  if (o.schedule == FinetuneSchedule::kLinear) {
    sc.decay_tokens = std::max(1.0, total - sc.warmup_tokens);
    sc.decay_shape = DecayShape::kLinear;
  } else {
    sc.decay_tokens = std::max(1.0, 0.2 * total);
    sc.decay_shape = DecayShape::kOneMinusSqrt;
  }
  return sc;
}

}  // namespace modernbert::finetune_util
