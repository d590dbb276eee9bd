// Megatron-style initialisation (spec §6.6, research code "full_megatron"): truncated normal with
// mean 0, std sigma by rule, cut at +-initializer_cutoff_factor*sigma; LayerNorm weights 1, biases 0.
//
// Determinism: each tensor draws from its own stream seeded by (seed, tensor name), so values do
// not depend on the order or the number of threads, and the same seed gives the same bytes.
#include <cmath>
#include <cstring>

#include "core/hash.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "modernbert/error.h"
#include "modernbert/model_dir.h"

namespace modernbert {

namespace {

// The tensor's stream: FNV-1a of its name from (offset ^ seed), then one splitmix64 step.
uint64_t hash_name(const std::string& name, uint64_t seed) { return splitmix64_of(fnv1a64(name, kFnv64Offset ^ seed)); }

}  // namespace

double init_std(const ModelConfig& cfg, InitRule rule) {
  switch (rule) {
    case InitRule::kIn:
    case InitRule::kEmb: return cfg.initializer_range;
    case InitRule::kOut: return cfg.initializer_range / std::sqrt(2.0 * static_cast<double>(cfg.num_hidden_layers));
    case InitRule::kFinalOut: return 1.0 / std::sqrt(static_cast<double>(cfg.hidden_size));
    case InitRule::kOnes:
    case InitRule::kZeros: return 0.0;
  }
  return 0.0;
}

void init_weights(Weights& w, uint64_t seed) {
  w.make_contiguous();
  const ModelConfig& cfg = w.config();
  const auto& specs = w.specs();
  std::vector<float*> ptrs;
  for (const auto& s : specs) ptrs.push_back(w.mutable_param(s.name));
  // One tensor per task on the shared pool: each tensor's values depend only on (seed, name).
  parallel_for(static_cast<int64_t>(specs.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const ParamSpec& s = specs[static_cast<size_t>(i)];
      float* p = ptrs[static_cast<size_t>(i)];
      if (s.init == InitRule::kOnes) {
        for (int64_t k = 0; k < s.numel(); ++k) p[k] = 1.0f;
      } else if (s.init == InitRule::kZeros) {
        std::memset(p, 0, sizeof(float) * static_cast<size_t>(s.numel()));
      } else {
        fill_truncated_normal(p, s.numel(), init_std(cfg, s.init), cfg.initializer_cutoff_factor, hash_name(s.name, seed));
      }
    }
  });
}

}  // namespace modernbert
