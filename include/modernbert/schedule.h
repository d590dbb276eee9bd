// Learning-rate schedule (warmup-stable-decay, spec §6.5) and batch-size warm-up (spec §6.3).
#pragma once

#include <cstdint>

#include "modernbert/train_options.h"

namespace modernbert {

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

}  // namespace modernbert
