// Element conversions of the reduced-precision ops (lowp.h): bf16 rounding, bf16 / f16 widening,
// per-row int8 quantization and the int8 epilogue. AVX2 / F16C / FMA (the portable build's
// x86-64-v3 baseline), scalar tails doing the same float operations, so the results are identical
// to the scalar formulas (and to ref) bit for bit. The conversions of X (bf16 rounding, int8
// quantization) also have AVX-512 versions, chosen at run time (target attributes + cpuid, so they
// are built in the portable binary too).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/lowp.h"
#include "kernels/cpu/simd.h"

namespace modernbert::kernels::cpu::lowp {

namespace {

inline uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// The scalar and 8-lane roundings are simd::bf16_round1 / bf16_round8 (shared with attention_bf16).
void round_bf16_avx2(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), simd::bf16_round8(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) y[i] = simd::bf16_round1(x[i]);
}

// AVX-512 twins of round_bf16 and quantize_row_i8 (the per-call conversions of X): the same
// integer / float operations on 16 lanes, masked tails, so the bits equal the AVX2 and scalar ones.
// (The zero-masked forms with a full mask stand for the plain intrinsics, whose undefined pass-through
// operand trips GCC 12's -Wmaybe-uninitialized inside target("avx512...") functions.)
constexpr __mmask16 kAll = 0xffff;
MB_AVX512 void round_bf16_avx512(const float* x, uint16_t* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i b = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
    const __m512i mag = _mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(mag, _mm512_set1_epi32(0x7f800000));
    const __m512i hi = _mm512_maskz_srli_epi32(kAll, b, 16);
    const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    __m512i r =
        _mm512_maskz_srli_epi32(kAll, _mm512_add_epi32(_mm512_add_epi32(b, _mm512_set1_epi32(0x7fff)), lsb), 16);
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
    _mm512_mask_cvtepi32_storeu_epi16(y + i, m, r);
  }
}

// With AVX512-BF16: vcvtneps2bf16, one instruction per 16 lanes (4-5x fewer than the integer
// rounding above, which the activation stream's producers pay on every output). The same RNE and
// quiet NaN, except that fp32 denormals become +-0: the bf16 dot products that read these values
// (vdpbf16ps, AMX) treat denormal inputs as zero anyway, so no product changes.
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void round_bf16_avx512bf16(const float* x, uint16_t* y,
                                                                                           int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i)));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(y + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
  }
}

MB_AVX512 void quantize_row_i8_avx512(const float* x, int64_t K, int8_t* q, float* scale) {
  __m512i vmax = _mm512_setzero_si512();
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (K - k)) - 1);
    const __m512i b = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + k));
    vmax = _mm512_maskz_max_epu32(kAll, vmax, _mm512_and_si512(b, _mm512_set1_epi32(0x7fffffff)));
  }
  alignas(64) uint32_t lanes[16];
  _mm512_store_si512(lanes, vmax);
  uint32_t mx = 0;
  for (uint32_t l : lanes) mx = l > mx ? l : mx;
  if (mx >= 0x7f800000u || mx == 0) {
    *scale = mx == 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
    std::memset(q, 0, static_cast<size_t>(K));
    return;
  }
  float a;
  std::memcpy(&a, &mx, 4);
  *scale = a / 127.0f;
  const float inv = 127.0f / a;
  if (!std::isfinite(inv)) {  // a < 127 / FLT_MAX: the formula in double (as quantize_row_i8)
    for (int64_t k = 0; k < K; ++k) q[k] = static_cast<int8_t>(std::nearbyint(static_cast<double>(x[k]) * 127.0 / a));
    return;
  }
  const __m512 vinv = _mm512_set1_ps(inv);
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (K - k)) - 1);
    const __m512i v = _mm512_maskz_cvtps_epi32(kAll, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), vinv));
    _mm512_mask_cvtsepi32_storeu_epi8(q + k, m, v);
  }
}

bool use_avx512_bf16() {
  static const bool b = __builtin_cpu_supports("avx512bf16");
  return b && avx512_usable();
}

}  // namespace

bool avx512_usable() {
  static const bool b =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return b && !force_portable();
}

const char* convert_isa() { return avx512_usable() ? "avx512" : "avx2"; }

float* row_buffer(int64_t n) {
  thread_local std::vector<float> row;
  if (row.size() < static_cast<size_t>(n)) row.resize(static_cast<size_t>(n));
  return row.data();
}
const char* round_bf16_isa() { return use_avx512_bf16() ? "avx512_bf16" : convert_isa(); }

void round_bf16(const float* x, uint16_t* y, int64_t n) {
  if (use_avx512_bf16()) return round_bf16_avx512bf16(x, y, n);
  if (avx512_usable()) return round_bf16_avx512(x, y, n);
  round_bf16_avx2(x, y, n);
}

void round_f16(const float* x, uint16_t* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

void widen_bf16(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i)));
    _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
  }
  for (; i < n; ++i) {
    const uint32_t b = static_cast<uint32_t>(x[i]) << 16;
    std::memcpy(y + i, &b, 4);
  }
}

void widen_f16(const uint16_t* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = _cvtsh_ss(x[i]);
}

void widen_16(Precision t, const uint16_t* x, float* y, int64_t n) {
  if (t == Precision::kBF16)
    widen_bf16(x, y, n);
  else
    widen_f16(x, y, n);
}

namespace {

// widen_pack for one type: per panel, full 8 x 8 blocks (8 channels x 8 k) widened and transposed
// in registers, eight panel rows at a time; the edges (K % 8, N % 8) one value at a time, then the
// zero padding.
template <bool kF16>
void widen_pack_t(const uint16_t* W, int64_t N, int64_t K, float* P, int64_t b0, int64_t b1) {
  const int64_t Kp = (K + kPackK - 1) / kPackK * kPackK, K8 = K / 8 * 8;
  for (int64_t b = b0; b < b1; ++b) {
    float* panel = P + b * Kp * kPackN;
    // The panel's channels n0 .. n0 + 63; the first `full` of them in whole blocks of 8.
    const int64_t n0 = b * kPackN, full = std::clamp<int64_t>((N - n0) / 8 * 8, 0, kPackN);
    // Eight panel rows (k .. k + 7, 2 KiB) at a time, written whole before the next eight: full
    // cache lines, and the 64 source rows' lines stay in L1 from one k-block to the next (going
    // down the panel a column block at a time instead ran at half the speed).
    for (int64_t k = 0; k < K8; k += 8)
      for (int64_t j0 = 0; j0 < full; j0 += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = widen8<kF16>(W + (n0 + j0 + i) * K + k);
        simd::transpose8(r);
        for (int i = 0; i < 8; ++i) _mm256_storeu_ps(panel + (k + i) * kPackN + j0, r[i]);
      }
    // The rest one value at a time: channels past the full blocks (zero past N), then the K tail
    // of every channel, then the zero rows up to Kp.
    for (int64_t k = 0; k < K8; ++k)
      for (int64_t j = full; j < kPackN; ++j)
        panel[k * kPackN + j] = n0 + j < N ? widen1<kF16>(W[(n0 + j) * K + k]) : 0.0f;
    for (int64_t k = K8; k < K; ++k)
      for (int64_t j = 0; j < kPackN; ++j)
        panel[k * kPackN + j] = n0 + j < N ? widen1<kF16>(W[(n0 + j) * K + k]) : 0.0f;
    std::memset(panel + K * kPackN, 0, static_cast<size_t>((Kp - K) * kPackN) * sizeof(float));
  }
}

}  // namespace

void widen_pack(Precision t, const uint16_t* W, int64_t N, int64_t K, float* P, int64_t b0, int64_t b1) {
  if (t == Precision::kF16)
    widen_pack_t<true>(W, N, K, P, b0, b1);
  else
    widen_pack_t<false>(W, N, K, P, b0, b1);
}

void round_16(Precision t, const float* x, uint16_t* y, int64_t n) {
  if (t == Precision::kBF16)
    round_bf16(x, y, n);
  else
    round_f16(x, y, n);
}

void quantize_row_i8(const float* x, int64_t K, int8_t* q, float* scale) {
  if (avx512_usable()) return quantize_row_i8_avx512(x, K, q, scale);
  // max |x| as the integer maximum of the magnitude bits: for non-negative floats the integer order
  // is the float order, and inf / NaN bit patterns sort above every finite value.
  __m256i vmax = _mm256_setzero_si256();
  const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
  int64_t k = 0;
  for (; k + 8 <= K; k += 8)
    vmax = _mm256_max_epi32(vmax, _mm256_and_si256(_mm256_castps_si256(_mm256_loadu_ps(x + k)), absmask));
  alignas(32) uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), vmax);
  uint32_t m = 0;
  for (uint32_t l : lanes) m = l > m ? l : m;
  for (; k < K; ++k) {
    const uint32_t b = bits_of(x[k]) & 0x7fffffffu;
    m = b > m ? b : m;
  }
  if (m >= 0x7f800000u || m == 0) {
    *scale = m == 0 ? 0.0f : std::numeric_limits<float>::quiet_NaN();
    std::memset(q, 0, static_cast<size_t>(K));
    return;
  }
  float a;
  std::memcpy(&a, &m, 4);
  *scale = a / 127.0f;
  const float inv = 127.0f / a;
  if (!std::isfinite(inv)) {  // a < 127 / FLT_MAX (subnormal rows): the same formula in double
    for (k = 0; k < K; ++k) q[k] = static_cast<int8_t>(std::nearbyint(static_cast<double>(x[k]) * 127.0 / a));
    return;
  }
  const __m256 vinv = _mm256_set1_ps(inv);
  // Products are within [-127, 127] (|x| <= a), so the saturating packs never saturate; cvtps
  // rounds with MXCSR's mode, round to nearest even as nearbyint under the default mode.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m256i v0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k), vinv));
    const __m256i v1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8), vinv));
    const __m256i v2 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 16), vinv));
    const __m256i v3 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 24), vinv));
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(v0, v1), _mm256_packs_epi32(v2, v3));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + k), _mm256_permutevar8x32_epi32(p, order));
  }
  for (; k < K; ++k) q[k] = static_cast<int8_t>(std::nearbyint(x[k] * inv));
}

void int8_epilogue(const int32_t* acc, const float* sx, const float* sw, const float* bias, float* y, int64_t M,
                   int64_t N, int64_t ldy) {
  for (int64_t m = 0; m < M; ++m) {
    const int32_t* a = acc + m * ldy;
    float* out = y + m * ldy;
    const float s = sx[m];
    if (!std::isfinite(s)) {
      for (int64_t n = 0; n < N; ++n) out[n] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    const __m256 vs = _mm256_set1_ps(s);
    int64_t n = 0;
    if (bias) {
      for (; n + 8 <= N; n += 8) {
        const __m256 v = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + n)));
        _mm256_storeu_ps(out + n,
                         _mm256_fmadd_ps(v, _mm256_mul_ps(vs, _mm256_loadu_ps(sw + n)), _mm256_loadu_ps(bias + n)));
      }
      for (; n < N; ++n) {
        int32_t v;                  // read before the store: a and out may be the same bytes (by memcpy: they are
        std::memcpy(&v, a + n, 4);  // then a float object, and an int32_t* read would break aliasing)
        out[n] = std::fma(static_cast<float>(v), s * sw[n], bias[n]);
      }
    } else {
      for (; n + 8 <= N; n += 8) {
        const __m256 v = _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + n)));
        _mm256_storeu_ps(out + n, _mm256_mul_ps(v, _mm256_mul_ps(vs, _mm256_loadu_ps(sw + n))));
      }
      for (; n < N; ++n) {
        int32_t v;
        std::memcpy(&v, a + n, 4);
        out[n] = static_cast<float>(v) * (s * sw[n]);
      }
    }
  }
}

}  // namespace modernbert::kernels::cpu::lowp
