// Embedding gather (forward) and its deterministic scatter-add (backward). Contracts in
// kernels/backend.h.
#include <algorithm>
#include <cstring>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"

namespace modernbert::kernels::cpu {

void embedding(const int32_t* ids, const float* E, float* x, int64_t T, int64_t H) {
  parallel_for(T, 256, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t)
      std::memcpy(x + t * H, E + static_cast<int64_t>(ids[t]) * H, static_cast<size_t>(H) * sizeof(float));
  });
}

// Split over column chunks of 64, tokens in order within a chunk, so repeated ids accumulate
// deterministically (no two threads touch the same element).
void embedding_backward(const int32_t* ids, const float* dx, float* dE, int64_t T, int64_t H) {
  constexpr int64_t kChunk = 64;
  parallel_for((H + kChunk - 1) / kChunk, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t c0 = p * kChunk, c1 = std::min(H, c0 + kChunk);
      for (int64_t t = 0; t < T; ++t) {
        float* row = dE + static_cast<int64_t>(ids[t]) * H;
        const float* src = dx + t * H;
        for (int64_t c = c0; c < c1; ++c) row[c] += src[c];
      }
    }
  });
}

}  // namespace modernbert::kernels::cpu
