// The AVX512-BF16 kernels of attention_bf16 (the driver, the packed layouts and the emulated twins
// are in attention_bf16.cpp / attention_bf16.h). Every function that uses AVX-512 carries the
// target attribute, so this file is right in the portable (x86-64-v3) build too; the driver calls
// these only after a cpuid check (attention_bf16_native_supported()).
//
// Micro-kernels: C[MR x 16 N] (N <= 4 zmm columns, MR <= 6 rows: <= 24 accumulators) with one
// vdpbf16ps per (row, column) and bf16 pair: per pair, N 64-byte B loads, MR dword broadcasts of A
// and MR N dot products (two multiply-adds each, 32 MACs per instruction).
//   qk: A = Q rows (channel pairs), B = 16-key K panels  -> S [MR, 16 N] for N panels
//   pv: A = P rows (key pairs),     B = V rows of pairs  -> O [MR, 16 N] for 16 N channels
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused merge operand, which
// -Wmaybe-uninitialized (and -Wuninitialized) report once inlined (GCC bug 105593, fixed in 13): silenced for the
// header's own lines only (diagnostic pragmas apply by source location).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstring>
#include <limits>

#include "kernels/cpu/attention_bf16.h"

#define MB_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

namespace modernbert::kernels::cpu::bf16attn {

namespace {

constexpr int kMr = 6;

inline uint32_t load_pair(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

template <int MR, int N>
MB_BF16_TARGET void qk_kernel(const uint16_t* Q, int64_t ldq, const uint16_t* K, int64_t pstride, int64_t d2, float* S,
                              int64_t lds) {
  __m512 acc[MR][N];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int p = 0; p < N; ++p) acc[r][p] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t cp = 0; cp < d2; ++cp) {
    __m512bh b[N];
#pragma GCC unroll 4
    for (int p = 0; p < N; ++p) b[p] = (__m512bh)_mm512_loadu_si512(K + p * pstride + cp * 32);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(load_pair(Q + r * ldq + 2 * cp)));
#pragma GCC unroll 4
      for (int p = 0; p < N; ++p) acc[r][p] = _mm512_dpbf16_ps(acc[r][p], a, b[p]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int p = 0; p < N; ++p) _mm512_storeu_ps(S + r * lds + p * 16, acc[r][p]);
}

template <int MR, int N>
MB_BF16_TARGET void pv_kernel(const uint16_t* P, int64_t ldp, const uint16_t* V, int64_t ldv, int64_t npairs, float* O,
                              int64_t ldo) {
  __m512 acc[MR][N];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < N; ++c) acc[r][c] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t u = 0; u < npairs; ++u) {
    __m512bh b[N];
#pragma GCC unroll 4
    for (int c = 0; c < N; ++c) b[c] = (__m512bh)_mm512_loadu_si512(V + u * ldv + c * 32);
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(load_pair(P + r * ldp + 2 * u)));
#pragma GCC unroll 4
      for (int c = 0; c < N; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], a, b[c]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < N; ++c) _mm512_storeu_ps(O + r * ldo + c * 16, acc[r][c]);
}

using QkFn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t);
using PvFn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t);

#define MB_ROW(K, MR) \
  { K<MR, 1>, K<MR, 2>, K<MR, 3>, K<MR, 4> }
constexpr QkFn kQk[kMr][4] = {MB_ROW(qk_kernel, 1), MB_ROW(qk_kernel, 2), MB_ROW(qk_kernel, 3),
                              MB_ROW(qk_kernel, 4), MB_ROW(qk_kernel, 5), MB_ROW(qk_kernel, 6)};
constexpr PvFn kPv[kMr][4] = {MB_ROW(pv_kernel, 1), MB_ROW(pv_kernel, 2), MB_ROW(pv_kernel, 3),
                              MB_ROW(pv_kernel, 4), MB_ROW(pv_kernel, 5), MB_ROW(pv_kernel, 6)};
#undef MB_ROW

void qk_native(int mr, const uint16_t* Q, int64_t ldq, const uint16_t* K, int64_t npanels, int64_t d2, float* S,
               int64_t lds) {
  const int64_t pstride = d2 * 32;
  for (int64_t p0 = 0; p0 < npanels; p0 += 4) {
    const int64_t np = std::min<int64_t>(4, npanels - p0);
    kQk[mr - 1][np - 1](Q, ldq, K + p0 * pstride, pstride, d2, S + p0 * 16, lds);
  }
}

void pv_native(int mr, const uint16_t* P, int64_t ldp, const uint16_t* V, int64_t npairs, int64_t dv, float* O,
               int64_t ldo) {
  for (int64_t c0 = 0; c0 < dv; c0 += 64) {
    const int64_t nc = std::min<int64_t>(4, (dv - c0) / 16);
    kPv[mr - 1][nc - 1](P, ldp, V + 2 * c0, 2 * dv, npairs, O + c0, ldo);
  }
}

// simd::exp (kernels/cpu/simd.h) on 16 lanes: the same operations in the same order, so the same
// bits (the reference evaluates this sequence in scalar).
MB_BF16_TARGET inline __m512 exp16(__m512 x) {
  x = _mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f));
  x = _mm512_max_ps(x, _mm512_set1_ps(-88.3762626647949f));
  __m512 fx = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));
  fx = _mm512_roundscale_ps(fx, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), x);
  __m512 y = _mm512_set1_ps(1.9875691500E-4f);
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073E-3f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894E-2f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459E-1f));
  y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201E-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
  __m512i k = _mm512_cvttps_epi32(fx);
  k = _mm512_slli_epi32(_mm512_add_epi32(k, _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(y, _mm512_castsi512_ps(k));
}

MB_BF16_TARGET inline float hmax16(__m512 v) { return _mm512_reduce_max_ps(v); }
MB_BF16_TARGET inline float hsum16(__m512 v) { return _mm512_reduce_add_ps(v); }

MB_BF16_TARGET inline void store16(uint16_t* p, __m256bh x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)x);
}

// Ops::convert on 16 lanes, rounding with vcvtneps2bf16; shapes that are not whole zmm go to the
// emulated twin (the same bits but for denormals, which vdpbf16ps flushes anyway).
MB_BF16_TARGET void convert_native(const float* src, const float* c, const float* s, int64_t d, float mul,
                                   uint16_t* dst, int64_t npad) {
  if (c ? (d / 2) % 16 != 0 : d % 16 != 0) return emulated_ops().convert(src, c, s, d, mul, dst, npad);
  const __m512 vmul = _mm512_set1_ps(mul);
  if (!c) {
    for (int64_t j = 0; j < d; j += 16)
      store16(dst + j, _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(src + j), vmul)));
  } else {
    const int64_t half = d / 2;
    for (int64_t j = 0; j < half; j += 16) {
      const __m512 x1 = _mm512_loadu_ps(src + j), x2 = _mm512_loadu_ps(src + half + j);
      const __m512 vc = _mm512_loadu_ps(c + j), vs = _mm512_loadu_ps(s + j);
      store16(dst + j, _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_fnmadd_ps(x2, vs, _mm512_mul_ps(x1, vc)), vmul)));
      store16(dst + half + j, _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_fmadd_ps(x1, vs, _mm512_mul_ps(x2, vc)), vmul)));
    }
  }
  std::fill(dst + d, dst + npad, uint16_t{0});
}

// Lanes c + [0, 16) that lie in [v0, v1).
inline uint16_t lane_mask(int64_t c, int64_t v0, int64_t v1) {
  if (c >= v0 && c + 16 <= v1) return 0xffff;  // most groups of a row
  const int64_t lo = std::clamp<int64_t>(v0 - c, 0, 16), hi = std::clamp<int64_t>(v1 - c, 0, 16);
  if (hi <= lo) return 0;
  const uint32_t upto_hi = hi == 16 ? 0xffffu : (1u << hi) - 1u;
  return static_cast<uint16_t>(upto_hi & ~((1u << lo) - 1u));
}

MB_BF16_TARGET float softmax_native(const float* S, int64_t L, int64_t v0, int64_t v1, uint16_t* P) {
  const int64_t a = v0 / 16 * 16, b = (v1 + 15) / 16 * 16;  // the 16-column groups holding valid keys
  std::fill(P, P + a, uint16_t{0});
  std::fill(P + b, P + L, uint16_t{0});
  __m512 vmax = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t c = a; c < b; c += 16)
    vmax = _mm512_mask_max_ps(vmax, lane_mask(c, v0, v1), vmax, _mm512_loadu_ps(S + c));
  const __m512 vm = _mm512_set1_ps(hmax16(vmax));
  __m512 vsum = _mm512_setzero_ps();
  auto p16 = [&](int64_t c) MB_BF16_TARGET {
    return _mm512_maskz_mov_ps(lane_mask(c, v0, v1), exp16(_mm512_sub_ps(_mm512_loadu_ps(S + c), vm)));
  };
  int64_t c = a;
  for (; c + 32 <= b; c += 32) {  // two groups per vcvtne2ps2bf16
    const __m512 p0 = p16(c), p1 = p16(c + 16);
    vsum = _mm512_add_ps(vsum, _mm512_add_ps(p0, p1));
    _mm512_storeu_si512(P + c, (__m512i)_mm512_cvtne2ps_pbh(p1, p0));
  }
  if (c < b) {
    const __m512 p0 = p16(c);
    vsum = _mm512_add_ps(vsum, p0);
    store16(P + c, _mm512_cvtneps_pbh(p0));
  }
  return hsum16(vsum);
}

}  // namespace

const Ops& native_ops() {
  static const Ops ops{convert_native, qk_native, softmax_native, pv_native};
  return ops;
}

}  // namespace modernbert::kernels::cpu::bf16attn
