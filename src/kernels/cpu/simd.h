// AVX2/FMA helpers shared by the fast kernels (internal header).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <iterator>

namespace modernbert::kernels::simd {

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

inline float hmax(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_max_ps(lo, hi);
  lo = _mm_max_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_max_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

// Lanes [0, n) set (n in 0..8): mask for partial loads/stores of a row tail.
inline __m256i tail_mask(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}

// bf16 bits of a float, round to nearest even, NaN kept a quiet NaN (bit 6 set): the rounding of
// lowp::round_bf16 and ref::bf16_from_float.
inline uint16_t bf16_round1(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// Eight floats to bf16 as bf16_round1 does, packed in order into 16 bytes.
inline __m128i bf16_round8(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
  const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
  r = _mm256_srli_epi32(r, 16);
  return _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
}

// In-register transpose of an 8x8 float block: r[i][j] <- r[j][i].
inline void transpose8(__m256* r) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// exp(x), Cephes-style: x = k ln2 + r, |r| <= ln2/2, degree-5 polynomial for e^r, scale by 2^k.
// Max relative error ~2 ulp on [-87, 88]. Inputs are clamped to [-88.38, 88.38]; the bottom of
// that range gives 0 (2^-127 is formed as a zero exponent field), so exp(-inf) = 0. NaN -> finite.
inline __m256 exp(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
  x = _mm256_min_ps(x, hi);
  x = _mm256_max_ps(x, lo);
  __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
  fx = _mm256_floor_ps(fx);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
  __m256i k = _mm256_cvttps_epi32(fx);
  k = _mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(k));
}

// x P(x^2) / Q(x^2), erf's rational on [-4, 4] (Eigen's generic_fast_erf_float), coefficients
// highest power first: shared by the double evaluation below and the float ones (erf_f32 here,
// erf_f32x16 in activations.cpp).
inline constexpr double kErfP[] = {-2.72614225801306e-10, 2.77068142495902e-08,  -2.10102402082508e-06,
                                   -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                   -1.60960333262415e-02};
inline constexpr double kErfQ[] = {-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                                   -7.37332916720468e-03, -1.42647390514189e-02};

inline __m256d erf_rational_pd(__m256d x) {
  const __m256d x2 = _mm256_mul_pd(x, x);
  __m256d p = _mm256_set1_pd(kErfP[0]), q = _mm256_set1_pd(kErfQ[0]);
  for (size_t i = 1; i < std::size(kErfP); ++i) p = _mm256_fmadd_pd(p, x2, _mm256_set1_pd(kErfP[i]));
  for (size_t i = 1; i < std::size(kErfQ); ++i) q = _mm256_fmadd_pd(q, x2, _mm256_set1_pd(kErfQ[i]));
  return _mm256_div_pd(_mm256_mul_pd(p, x), q);
}

// erf(x): odd/even rational minimax approximation on [-4, 4] (coefficients as in Eigen's
// generic_fast_erf_float); beyond |x| = 4, erf(x) rounds to +-1 in float. The approximation
// error is 6.5e-8 (checked in double). Evaluated in float, the cancellation in p and q near
// |x| ~ 4 costs up to 3.3e-7, so the rational is evaluated in double (4 lanes x 2): max error
// vs std::erf ~1e-7 (approximation + one final float rounding), for fp32 outputs. It costs ~2x
// the float version, which outputs rounded to 16 bits use (erf_f32, below).
inline __m256 erf(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(4.0f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-4.0f));
  const __m128 lo = _mm256_cvtpd_ps(erf_rational_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x))));
  const __m128 hi = _mm256_cvtpd_ps(erf_rational_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))));
  return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

// erf(x) with the same rational evaluated in float: |error| <= 4e-7 against std::erf (the
// cancellation near |x| ~ 4; checked over [-6, 6] by test_kernels_lowp), for callers whose output
// is rounded to 16 bits (a bf16 step at 1 is 2^-8, f16's 2^-11), at about a third of erf()'s cost.
// Only exact operations (mul, fma, div) after the clamp: erf_f32x16 in activations.cpp, the
// AVX-512 twin, gives the same bits.
inline __m256 erf_f32(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(4.0f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-4.0f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(static_cast<float>(kErfP[0])), q = _mm256_set1_ps(static_cast<float>(kErfQ[0]));
  for (size_t i = 1; i < std::size(kErfP); ++i)
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(static_cast<float>(kErfP[i])));
  for (size_t i = 1; i < std::size(kErfQ); ++i)
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(static_cast<float>(kErfQ[i])));
  return _mm256_div_ps(_mm256_mul_ps(p, x), q);
}

// tanh(x) = sign(x) * (1 - 2 / (exp(2|x|) + 1)); absolute error ~1e-7 (enough for GELU-tanh).
inline __m256 tanh(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  const __m256 e = exp(_mm256_add_ps(ax, ax));
  const __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                                 _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  return _mm256_or_ps(t, sign);
}

}  // namespace modernbert::kernels::simd
