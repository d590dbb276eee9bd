// Inverted dropout with a counter-based mask (kernels/backend.h): the keep decision of element i of
// layer l is a pure function of (seed, l, i) (core/rng.h counter_uniform), so the mask is
// regenerated in the backward instead of stored and never depends on threads.
#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"

namespace modernbert::kernels::cpu {

void dropout(const float* src, float* dst, int64_t n, double p, uint64_t seed, int64_t layer, bool accumulate) {
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
  const uint64_t a = static_cast<uint64_t>(layer + 1);
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      const float s = counter_uniform(seed, a, static_cast<uint64_t>(i)) < p ? 0.0f : keep_scale;
      const float y = src[i] * s;
      dst[i] = accumulate ? dst[i] + y : y;
    }
  });
}

}  // namespace modernbert::kernels::cpu
