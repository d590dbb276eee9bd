// Small-M linear over 16-bit weights (lowp.h): Y[m, n] = X[m, :] · float(W[n, :]) (+ bias[n]) for
// M <= kGemvMaxRows, converting W in registers (AVX2 / F16C) instead of widening panels for the
// sgemm. At M = 1 the widening path reads 2 bytes, writes and re-reads 4 per weight: 0.6x the fp32
// gemm's speed; this reads the 2 bytes once: 1.2-1.4x the fp32 gemm (single thread, Zen 5, N x K in
// {2304, 768} x {768, 1152}). At M = 3-4 both paths measured ~0.7x fp32 (this one no slower).
// fp32 FMA accumulation in 8 lanes, summed at the end.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/lowp.h"
#include "kernels/cpu/simd.h"

namespace modernbert::kernels::cpu::lowp {

namespace {

// R rows of X against weight rows [n0, n1), J weight rows x R rows (R * J <= 8 accumulators) per
// step, so W is read once per R rows.
template <bool kF16, int R, int J>
void rows_block(const float* X, int64_t ldx, const uint16_t* W, const float* bias, float* Y, int64_t ldy, int64_t n0,
                int64_t n1, int64_t K) {
  const int64_t k8 = K / 8 * 8;
  auto finish = [&](const __m256& acc, int r, int64_t n) {
    float s = simd::hsum(acc);
    for (int64_t k = k8; k < K; ++k) s += X[r * ldx + k] * widen1<kF16>(W[n * K + k]);
    Y[r * ldy + n] = bias ? s + bias[n] : s;
  };
  int64_t n = n0;
  for (; n + J <= n1; n += J) {
    __m256 acc[R][J];
    for (auto& a : acc)
      for (auto& v : a) v = _mm256_setzero_ps();
    for (int64_t k = 0; k < k8; k += 8) {
      __m256 w[J];
      for (int j = 0; j < J; ++j) w[j] = widen8<kF16>(W + (n + j) * K + k);
      for (int r = 0; r < R; ++r) {
        const __m256 x = _mm256_loadu_ps(X + r * ldx + k);
        for (int j = 0; j < J; ++j) acc[r][j] = _mm256_fmadd_ps(x, w[j], acc[r][j]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < J; ++j) finish(acc[r][j], r, n + j);
  }
  for (; n < n1; ++n) {
    __m256 acc[R];
    for (auto& v : acc) v = _mm256_setzero_ps();
    for (int64_t k = 0; k < k8; k += 8) {
      const __m256 w = widen8<kF16>(W + n * K + k);
      for (int r = 0; r < R; ++r) acc[r] = _mm256_fmadd_ps(_mm256_loadu_ps(X + r * ldx + k), w, acc[r]);
    }
    for (int r = 0; r < R; ++r) finish(acc[r], r, n);
  }
}

template <bool kF16>
void gemv(const float* X, int64_t ldx, const uint16_t* W, const float* bias, float* Y, int64_t ldy, int64_t M,
          int64_t n0, int64_t n1, int64_t K) {
  for (int64_t m = 0; m < M; m += 4) {
    const float* x = X + m * ldx;
    float* y = Y + m * ldy;
    switch (std::min<int64_t>(4, M - m)) {
      case 1:
        rows_block<kF16, 1, 4>(x, ldx, W, bias, y, ldy, n0, n1, K);
        break;
      case 2:
        rows_block<kF16, 2, 4>(x, ldx, W, bias, y, ldy, n0, n1, K);
        break;
      case 3:
        rows_block<kF16, 3, 2>(x, ldx, W, bias, y, ldy, n0, n1, K);
        break;
      default:
        rows_block<kF16, 4, 2>(x, ldx, W, bias, y, ldy, n0, n1, K);
        break;
    }
  }
}

}  // namespace

void gemv_widened(const float* X, int64_t ldx, bool f16, const uint16_t* W, const float* bias, float* Y, int64_t ldy,
                  int64_t M, int64_t n0, int64_t n1, int64_t K) {
  if (f16)
    gemv<true>(X, ldx, W, bias, Y, ldy, M, n0, n1, K);
  else
    gemv<false>(X, ldx, W, bias, Y, ldy, M, n0, n1, K);
}

}  // namespace modernbert::kernels::cpu::lowp
