// Optimizer update loops of one tensor (StableAdamW / AdamW; the Optimizer class in train/ holds the
// state and the schedule and calls these per tensor) and the gradient norm. Contracts in
// kernels/backend.h. Every reduction is over fixed chunks of 2^14 elements added in chunk order, so
// results never depend on the thread count.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"

namespace modernbert::kernels::cpu {

namespace {

constexpr int64_t kChunk = 1 << 14;

// Moments over [i0, i1): m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g². With kRmsSum also returns
// Σ g² / max(v, ε²) (the StableAdamW RMS numerator; the ratio in float, the sum in double; AdamW
// skips it, 0 returned). AVX2, scalar tail.
template <bool kRmsSum>
double update_moments(const float* g, float* m, float* v, int64_t i0, int64_t i1, float b1, float b2, float eps2) {
  const __m256 vb1 = _mm256_set1_ps(b1), vb1c = _mm256_set1_ps(1.0f - b1), vb2 = _mm256_set1_ps(b2),
               vb2c = _mm256_set1_ps(1.0f - b2), veps2 = _mm256_set1_ps(eps2);
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m256 g8 = _mm256_loadu_ps(g + i), gg = _mm256_mul_ps(g8, g8);
    const __m256 m8 = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(vb1c, g8));
    const __m256 v8 = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(vb2c, gg));
    _mm256_storeu_ps(m + i, m8);
    _mm256_storeu_ps(v + i, v8);
    if constexpr (kRmsSum) {
      const __m256 r = _mm256_div_ps(gg, _mm256_max_ps(v8, veps2));
      acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(r)));
      acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(r, 1)));
    }
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; i < i1; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * (g[i] * g[i]);
    if constexpr (kRmsSum) s += static_cast<double>((g[i] * g[i]) / std::max(v[i], eps2));
  }
  return s;
}

// θ = θ · decay - lr · m / (sqrt(v) · vscale + ε) over [i0, i1).
void apply_update(float* th, const float* m, const float* v, int64_t i0, int64_t i1, float decay, float lr,
                  float vscale, float eps) {
  const __m256 vdecay = _mm256_set1_ps(decay), vlr = _mm256_set1_ps(lr), vvs = _mm256_set1_ps(vscale),
               veps = _mm256_set1_ps(eps);
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(_mm256_loadu_ps(v + i)), vvs), veps);
    const __m256 u = _mm256_div_ps(_mm256_mul_ps(vlr, _mm256_loadu_ps(m + i)), den);
    _mm256_storeu_ps(th + i, _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(th + i), vdecay), u));
  }
  for (; i < i1; ++i) th[i] = th[i] * decay - (lr * m[i]) / (std::sqrt(v[i]) * vscale + eps);
}

}  // namespace

double adam_moments_rms(const float* g, float* m, float* v, int64_t n, float b1, float b2, float eps2) {
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  thread_local std::vector<double> caller_part;  // the calling thread's; workers reach it by reference
  std::vector<double>& part = caller_part;
  part.assign(static_cast<size_t>(nchunks), 0.0);
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c)
      part[static_cast<size_t>(c)] =
          update_moments<true>(g, m, v, c * kChunk, std::min(n, (c + 1) * kChunk), b1, b2, eps2);
  });
  double s = 0;
  for (double x : part) s += x;
  return s;
}

void adam_apply(float* theta, const float* m, const float* v, int64_t n, float decay, float lr, float vscale,
                float eps) {
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1, int) {
    apply_update(theta, m, v, c0 * kChunk, std::min(n, c1 * kChunk), decay, lr, vscale, eps);
  });
}

void adamw_update(float* theta, const float* g, float* m, float* v, int64_t n, float b1, float b2, float decay,
                  float lr, float vscale, float eps) {
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1, int) {
    const int64_t i0 = c0 * kChunk, i1 = std::min(n, c1 * kChunk);
    update_moments<false>(g, m, v, i0, i1, b1, b2, 0.0f);
    apply_update(theta, m, v, i0, i1, decay, lr, vscale, eps);
  });
}

double grad_norm_sq(const float* g, size_t n) {
  const size_t chunk = static_cast<size_t>(kChunk);
  const size_t nchunks = (n + chunk - 1) / chunk;
  thread_local std::vector<double> caller_part;
  std::vector<double>& part = caller_part;
  part.assign(nchunks, 0.0);
  parallel_for(static_cast<int64_t>(nchunks), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t c = b; c < e; ++c) {
      double s = 0;
      const size_t i0 = static_cast<size_t>(c) * chunk, i1 = std::min(n, i0 + chunk);
      for (size_t i = i0; i < i1; ++i) s += static_cast<double>(g[i]) * g[i];
      part[static_cast<size_t>(c)] = s;
    }
  });
  double s = 0;
  for (double p : part) s += p;
  return s;
}

}  // namespace modernbert::kernels::cpu
