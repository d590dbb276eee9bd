// Helpers shared by the fine-tuning paths (finetune.cpp: heads; finetune_retrieval.cpp: embedding
// and ColBERT): a portable deterministic generator, shuffles, head init, optimizer and LR schedule.
// (The per-epoch bookkeeping is the training loop's: modernbert/training_loop.h.)
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "modernbert/finetune.h"
#include "modernbert/trainer.h"

namespace modernbert::finetune_util {

inline uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline double uniform01(uint64_t& s) { return static_cast<double>(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }

// Truncated normal by rejection (Box-Muller), deterministic from the state.
inline double trunc_normal(uint64_t& s, double sd, double cutoff) {
  for (;;) {
    const double u1 = std::max(uniform01(s), 1e-300), u2 = uniform01(s);
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2) * sd;
    if (std::abs(z) <= cutoff) return z;
  }
}

// Fisher-Yates with our own generator: the same seed gives the same order on every platform.
inline std::vector<size_t> shuffled(size_t n, uint64_t seed) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  uint64_t s = seed;
  for (size_t i = n; i > 1; --i) std::swap(idx[i - 1], idx[splitmix64(s) % i]);
  return idx;
}

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
