// Sequence pooling [T, H] -> [B, H] over cu_seqlens (CLS, mean or max) and its backward. Contracts in
// kernels/backend.h. The mean sums each channel in double in token order, so long sequences do
// not lose precision and the result never depends on threads.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "modernbert/error.h"

namespace modernbert::kernels::cpu {

void pool(PoolMode mode, const float* hidden, const int64_t* cu, int64_t B, int64_t H, float* out) {
  for (int64_t b = 0; b < B; ++b)
    if (cu[b + 1] <= cu[b]) throw Error("pool: sequence " + std::to_string(b) + " is empty");
  parallel_for(B, 1, [&](int64_t b0, int64_t b1, int) {
    thread_local std::vector<double> acc;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = cu[b], e = cu[b + 1];
      float* dst = out + b * H;
      if (mode == PoolMode::kCls) {
        std::memcpy(dst, hidden + s * H, static_cast<size_t>(H) * sizeof(float));
        continue;
      }
      if (mode == PoolMode::kMax) {
        std::fill_n(dst, H, -std::numeric_limits<float>::infinity());
        for (int64_t t = s; t < e; ++t) {
          const float* row = hidden + t * H;
          for (int64_t c = 0; c < H; ++c) dst[c] = std::max(dst[c], row[c]);
        }
        continue;
      }
      acc.assign(static_cast<size_t>(H), 0.0);
      for (int64_t t = s; t < e; ++t) {
        const float* row = hidden + t * H;
        for (int64_t c = 0; c < H; ++c) acc[static_cast<size_t>(c)] += row[c];
      }
      for (int64_t c = 0; c < H; ++c)
        dst[c] = static_cast<float>(acc[static_cast<size_t>(c)] / static_cast<double>(e - s));
    }
  });
}

void pool_backward(PoolMode mode, const float* dpooled, const int64_t* cu, int64_t B, int64_t H, float* dhidden) {
  if (mode == PoolMode::kMax) throw Error("pool_backward: max pooling has no backward (inference only)");
  // Sequences own disjoint token rows: parallel over sequences, no two threads touch one row.
  parallel_for(B, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = cu[b], e = cu[b + 1];
      const float* g = dpooled + b * H;
      if (mode == PoolMode::kCls) {
        float* dst = dhidden + s * H;
        for (int64_t c = 0; c < H; ++c) dst[c] += g[c];
        continue;
      }
      if (e <= s) continue;
      const float inv = 1.0f / static_cast<float>(e - s);
      for (int64_t t = s; t < e; ++t) {
        float* dst = dhidden + t * H;
        for (int64_t c = 0; c < H; ++c) dst[c] += g[c] * inv;
      }
    }
  });
}

}  // namespace modernbert::kernels::cpu
