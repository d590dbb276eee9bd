// Residual add dst += src and the plain copy dst = src (kernels/backend.h), parallel over fixed
// chunks.
#include <immintrin.h>

#include <cstring>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"

namespace modernbert::kernels::cpu {

void residual_add(float* dst, const float* src, int64_t n) {
  parallel_for(n, 1 << 15, [&](int64_t b, int64_t e, int) {
    int64_t i = b;
    for (; i + 8 <= e; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
    for (; i < e; ++i) dst[i] += src[i];
  });
}

void copy(const float* src, float* dst, int64_t n) {
  parallel_for(n, 1 << 16, [&](int64_t b, int64_t e, int) {
    std::memcpy(dst + b, src + b, static_cast<size_t>(e - b) * sizeof(float));
  });
}

}  // namespace modernbert::kernels::cpu
