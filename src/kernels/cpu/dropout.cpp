// Dropout with a counter-based mask, and the residual add.
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"

namespace modernbert::kernels {

namespace {
// keep/(1-p) or 0 for element i of stream `stream`: a splitmix64-style hash of (seed, stream, i),
// so the forward and the backward regenerate the same mask without storing it, independent of
// threads.
inline float drop_scale(uint64_t seed, double p, int64_t stream, int64_t i) {
  uint64_t x = seed ^ (static_cast<uint64_t>(stream + 1) * 0xD1B54A32D192ED03ull) ^
               (static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull);
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  x ^= x >> 31;
  const double u = static_cast<double>(x >> 11) * (1.0 / 9007199254740992.0);
  return u < p ? 0.0f : static_cast<float>(1.0 / (1.0 - p));
}
}  // namespace

void dropout(const float* x, float* y, int64_t n, double p, uint64_t seed, int64_t stream) {
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) y[i] = x[i] * drop_scale(seed, p, stream, i);
  });
}

void add_inplace(float* dst, const float* src, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) dst[i] += src[i];
  });
}

namespace ref {
void dropout(const float* x, float* y, int64_t n, double p, uint64_t seed, int64_t stream) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * drop_scale(seed, p, stream, i);
}
}  // namespace ref

}  // namespace modernbert::kernels
