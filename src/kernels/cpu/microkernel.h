// The register-blocked micro-kernel of the attention kernels (forward in kernels/cpu/attention.cpp,
// training backward in kernels/cpu/attention_backward.cpp), internal header.
//
// C[MR x 16] (+)= A[MR x K] · B[K x 16] with MR <= 6: A rows with stride lda (broadcast one float
// at a time), B one contiguous 16-wide panel (row k at B + 16 k), C rows with stride ldc. 12 ymm
// accumulators; per k two B loads, MR broadcasts and 2 MR FMAs (FMA-bound on Zen3).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace modernbert::kernels {

template <int MR, bool ACC>
inline void micro_kernel(const float* A, int64_t lda, const float* B, float* C, int64_t ldc, int64_t K) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
#pragma GCC unroll 4  // loop overhead was ~20% of attention's samples (K = 64 or a panel count x 16)
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(B + k * 16), b1 = _mm256_loadu_ps(B + k * 16 + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
      c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) {
    float* c = C + r * ldc;
    if (ACC) {
      c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(c));
      c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(c + 8));
    }
    _mm256_storeu_ps(c, c0[r]);
    _mm256_storeu_ps(c + 8, c1[r]);
  }
}

// C[mr, 16] (+)= A[mr, K] · B[K, 16] (B one contiguous 16-wide panel), mr in 1..6.
template <bool ACC>
inline void tile_kernel(int64_t mr, const float* A, int64_t lda, const float* B, float* C, int64_t ldc, int64_t K) {
  switch (mr) {
    case 6:
      micro_kernel<6, ACC>(A, lda, B, C, ldc, K);
      break;
    case 5:
      micro_kernel<5, ACC>(A, lda, B, C, ldc, K);
      break;
    case 4:
      micro_kernel<4, ACC>(A, lda, B, C, ldc, K);
      break;
    case 3:
      micro_kernel<3, ACC>(A, lda, B, C, ldc, K);
      break;
    case 2:
      micro_kernel<2, ACC>(A, lda, B, C, ldc, K);
      break;
    case 1:
      micro_kernel<1, ACC>(A, lda, B, C, ldc, K);
      break;
    default:
      break;
  }
}

}  // namespace modernbert::kernels
