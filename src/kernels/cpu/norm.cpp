// LayerNorm and the fused residual-add + LayerNorm of the pre-norm block.
// Rows are independent: parallel over rows; within a row two passes (mean, then centred
// variance) with 8-lane float accumulators — the centred second pass avoids the cancellation of
// E[x^2] - E[x]^2, and 8 partial sums keep the rounding error of a 768..1024-long sum ~1e-7.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"

namespace modernbert::kernels {

namespace {

// LN of one row x[0..C) into y (may alias x); the row's mean and 1/sqrt(var + eps) into *mean_out /
// *rstd_out when they are not null (what the backward needs).
inline void ln_row(const float* x, const float* gamma, const float* beta, float* y, int64_t C,
                   float eps, float* mean_out = nullptr, float* rstd_out = nullptr) {
  const int64_t C8 = C / 8 * 8;
  __m256 acc = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c < C8; c += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + c));
  float sum = simd::hsum(acc);
  for (; c < C; ++c) sum += x[c];
  const float mean = sum / static_cast<float>(C);
  const __m256 vmean = _mm256_set1_ps(mean);
  acc = _mm256_setzero_ps();
  for (c = 0; c < C8; c += 8) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + c), vmean);
    acc = _mm256_fmadd_ps(d, d, acc);
  }
  float sq = simd::hsum(acc);
  for (; c < C; ++c) sq += (x[c] - mean) * (x[c] - mean);
  const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(C) + eps);
  if (mean_out) *mean_out = mean;
  if (rstd_out) *rstd_out = rstd;
  const __m256 vr = _mm256_set1_ps(rstd);
  for (c = 0; c < C8; c += 8) {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vmean), vr);
    if (gamma) v = _mm256_mul_ps(v, _mm256_loadu_ps(gamma + c));
    if (beta) v = _mm256_add_ps(v, _mm256_loadu_ps(beta + c));
    _mm256_storeu_ps(y + c, v);
  }
  for (; c < C; ++c) {
    float v = (x[c] - mean) * rstd;
    if (gamma) v *= gamma[c];
    if (beta) v += beta[c];
    y[c] = v;
  }
}

// Rows per task: enough work (~32K elements) to amortise the scheduling.
int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(C, 1)); }

}  // namespace

void layernorm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
               int64_t C, float eps, float* mean, float* rstd) {
  parallel_for(rows, row_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r)
      ln_row(x + r * C, gamma, beta, y + r * C, C, eps, mean ? mean + r : nullptr, rstd ? rstd + r : nullptr);
  });
}

void add_layernorm(float* x, const float* r, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps, float* mean, float* rstd) {
  parallel_for(rows, row_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      float* xr = x + i * C;
      const float* rr = r + i * C;
      int64_t c = 0;
      for (; c + 8 <= C; c += 8)
        _mm256_storeu_ps(xr + c, _mm256_add_ps(_mm256_loadu_ps(xr + c), _mm256_loadu_ps(rr + c)));
      for (; c < C; ++c) xr[c] += rr[c];
      // r's row is fully read before y is written
      ln_row(xr, gamma, beta, y + i * C, C, eps, mean ? mean + i : nullptr, rstd ? rstd + i : nullptr);
    }
  });
}

void act_layernorm(Act act, const float* x, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps, float* mean, float* rstd) {
  parallel_for(rows, row_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      activation_serial(act, x + r * C, y + r * C, C);  // row still in L1 for the LN below
      ln_row(y + r * C, gamma, beta, y + r * C, C, eps, mean ? mean + r : nullptr, rstd ? rstd + r : nullptr);
    }
  });
}

namespace ref {
void act_layernorm(Act act, const float* x, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps) {
  ref::activation(act, x, y, rows * C);
  ref::layernorm(y, gamma, beta, y, rows, C, eps);
}
void layernorm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
               int64_t C, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += xr[c];
    mean /= static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= static_cast<double>(C);
    const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    for (int64_t c = 0; c < C; ++c) {
      double v = (xr[c] - mean) * rstd;
      if (gamma) v *= gamma[c];
      if (beta) v += beta[c];
      y[r * C + c] = static_cast<float>(v);
    }
  }
}
void add_layernorm(float* x, const float* r, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps) {
  for (int64_t i = 0; i < rows * C; ++i) x[i] += r[i];
  layernorm(x, gamma, beta, y, rows, C, eps);
}
}  // namespace ref

}  // namespace modernbert::kernels
