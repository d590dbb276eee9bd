// attention_bf16 of the cpu backend (#15): attention with both products in bf16 (contract in
// kernels/backend.h; packed layouts and the per-path kernel table in kernels/cpu/attention_bf16.h).
//
// Structure (compare attention.cpp, the fp32 kernel):
//   1. Q, K and V are repacked once per call into bf16 panels (Q rotated and scaled, K rotated,
//      all rounded to nearest even), one token-major pass over qkv, parallel over 16-token groups.
//   2. Work item = (sequence, head, query block), spread over the pool. Each item walks its block
//      one query tile of <= 6 rows at a time; the tile's keys are its band (|i - j| <= hw, or the
//      whole sequence), widened to 16-key panels starting at a global multiple of 16:
//        S[6, L]  = Q[6, d] · K^T[d, L]              (bf16 pairs, fp32 accumulation)
//        per row: m = max S (valid keys), p = exp(S - m), l = Σ p (fp32), P = bf16(p) (0 if invalid)
//        O[6, dv] = P[6, L] · V[L, dv]               (bf16 pairs, fp32 accumulation)
//        out = O / l
//      This is an exact two-pass softmax over a tile's whole band rather than fp32 attention's
//      online softmax: rounding P to bf16 after a rescale by a running max would make the result
//      depend on the key blocking, while here every p is rounded relative to the row's true max,
//      so the result is defined per row (and the reference reproduces it). S and P of a tile take
//      6 L floats + 6 L bf16 (L <= n + 30): 36 KB at n = 1024, in L1; K and V of a head stream
//      from L2. Local layers visit only their band: O(n (6 + 2 hw)) per head.
//   3. The products run on vdpbf16ps where the CPU has AVX512-BF16 (attention_bf16_avx512.cpp,
//      compiled for those extensions by function attribute and chosen at run time by cpuid), and
//      otherwise on an AVX2 emulation here that performs the same fp32 operations in the same order,
//      so both paths (and ref::attention_bf16) give the same bits up to the order of the row sum l.
#include "kernels/cpu/attention_bf16.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/lowp.h"
#include "kernels/cpu/simd.h"
#include "modernbert/error.h"

namespace modernbert::kernels::cpu {

namespace bf16attn {
namespace {

constexpr int kMr = 6;  // query rows per tile

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

using simd::bf16_round1;
using simd::bf16_round8;

// dst[0..d) = bf16(rot(src) * mul), zeros to npad (Ops::convert), 8 lanes at a time. The
// rotation is attention.cpp's load_head (x1 c - x2 s as fnmadd(x2, s, x1 c)), which the reference
// reproduces with std::fma.
void convert_emu(const float* src, const float* c, const float* s, int64_t d, float mul, uint16_t* dst, int64_t npad) {
  const __m256 vmul = _mm256_set1_ps(mul);
  auto store8 = [](uint16_t* p, __m256 x) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), bf16_round8(x)); };
  if (!c) {
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) store8(dst + j, _mm256_mul_ps(_mm256_loadu_ps(src + j), vmul));
    for (; j < d; ++j) dst[j] = bf16_round1(src[j] * mul);
  } else {
    const int64_t half = d / 2;
    int64_t j = 0;
    for (; j + 8 <= half; j += 8) {
      const __m256 x1 = _mm256_loadu_ps(src + j), x2 = _mm256_loadu_ps(src + half + j);
      const __m256 vc = _mm256_loadu_ps(c + j), vs = _mm256_loadu_ps(s + j);
      store8(dst + j, _mm256_mul_ps(_mm256_fnmadd_ps(x2, vs, _mm256_mul_ps(x1, vc)), vmul));
      store8(dst + half + j, _mm256_mul_ps(_mm256_fmadd_ps(x1, vs, _mm256_mul_ps(x2, vc)), vmul));
    }
    for (; j < half; ++j) {
      const float x1 = src[j], x2 = src[half + j];
      dst[j] = bf16_round1(std::fma(-x2, s[j], x1 * c[j]) * mul);
      dst[half + j] = bf16_round1(std::fma(x1, s[j], x2 * c[j]) * mul);
    }
  }
  std::fill(dst + d, dst + npad, uint16_t{0});
}

// ---- The emulated kernels (AVX2 + FMA): per pair, acc += odd product, then acc += even product,
// as vdpbf16ps does. A bf16 pair in a dword widens to fp32 as (even: dword << 16, odd: dword with
// the low half cleared).

inline __m256 even_f32(__m256i pairs) { return _mm256_castsi256_ps(_mm256_slli_epi32(pairs, 16)); }
inline __m256 odd_f32(__m256i pairs) {
  return _mm256_castsi256_ps(_mm256_and_si256(pairs, _mm256_set1_epi32(static_cast<int>(0xffff0000u))));
}
inline uint32_t load_pair(const uint16_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// S[MR, 16] = Q[MR, :] · one 16-key panel.
template <int MR>
void qk_panel_emu(const uint16_t* Q, int64_t ldq, const uint16_t* K, int64_t d2, float* S, int64_t lds) {
  __m256 a0[MR], a1[MR];
  for (int r = 0; r < MR; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  for (int64_t cp = 0; cp < d2; ++cp) {
    const __m256i k0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(K + cp * 32));
    const __m256i k1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(K + cp * 32 + 16));
    const __m256 k0o = odd_f32(k0), k0e = even_f32(k0), k1o = odd_f32(k1), k1e = even_f32(k1);
    for (int r = 0; r < MR; ++r) {
      const uint32_t q = load_pair(Q + r * ldq + 2 * cp);
      const __m256 qo = _mm256_set1_ps(bits_to_float(q & 0xffff0000u)), qe = _mm256_set1_ps(bits_to_float(q << 16));
      a0[r] = _mm256_fmadd_ps(qe, k0e, _mm256_fmadd_ps(qo, k0o, a0[r]));
      a1[r] = _mm256_fmadd_ps(qe, k1e, _mm256_fmadd_ps(qo, k1o, a1[r]));
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_ps(S + r * lds, a0[r]);
    _mm256_storeu_ps(S + r * lds + 8, a1[r]);
  }
}

// O[MR, 16] = P[MR, 2 npairs] · V[2 npairs, 16 channels] (V rows of pairs ldv bf16 apart).
template <int MR>
void pv_chunk_emu(const uint16_t* P, int64_t ldp, const uint16_t* V, int64_t ldv, int64_t npairs, float* O,
                  int64_t ldo) {
  __m256 a0[MR], a1[MR];
  for (int r = 0; r < MR; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
  for (int64_t u = 0; u < npairs; ++u) {
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(V + u * ldv));
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(V + u * ldv + 16));
    const __m256 v0o = odd_f32(v0), v0e = even_f32(v0), v1o = odd_f32(v1), v1e = even_f32(v1);
    for (int r = 0; r < MR; ++r) {
      const uint32_t p = load_pair(P + r * ldp + 2 * u);
      const __m256 po = _mm256_set1_ps(bits_to_float(p & 0xffff0000u)), pe = _mm256_set1_ps(bits_to_float(p << 16));
      a0[r] = _mm256_fmadd_ps(pe, v0e, _mm256_fmadd_ps(po, v0o, a0[r]));
      a1[r] = _mm256_fmadd_ps(pe, v1e, _mm256_fmadd_ps(po, v1o, a1[r]));
    }
  }
  for (int r = 0; r < MR; ++r) {
    _mm256_storeu_ps(O + r * ldo, a0[r]);
    _mm256_storeu_ps(O + r * ldo + 8, a1[r]);
  }
}

template <int MR>
void qk_emu_mr(const uint16_t* Q, int64_t ldq, const uint16_t* K, int64_t npanels, int64_t d2, float* S, int64_t lds) {
  for (int64_t p = 0; p < npanels; ++p) qk_panel_emu<MR>(Q, ldq, K + p * d2 * 32, d2, S + p * 16, lds);
}
template <int MR>
void pv_emu_mr(const uint16_t* P, int64_t ldp, const uint16_t* V, int64_t npairs, int64_t dv, float* O, int64_t ldo) {
  for (int64_t c = 0; c < dv; c += 16) pv_chunk_emu<MR>(P, ldp, V + 2 * c, 2 * dv, npairs, O + c, ldo);
}

void qk_emu(int mr, const uint16_t* Q, int64_t ldq, const uint16_t* K, int64_t npanels, int64_t d2, float* S,
            int64_t lds) {
  using Fn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t);
  static constexpr Fn kFns[kMr] = {qk_emu_mr<1>, qk_emu_mr<2>, qk_emu_mr<3>, qk_emu_mr<4>, qk_emu_mr<5>, qk_emu_mr<6>};
  kFns[mr - 1](Q, ldq, K, npanels, d2, S, lds);
}
void pv_emu(int mr, const uint16_t* P, int64_t ldp, const uint16_t* V, int64_t npairs, int64_t dv, float* O,
            int64_t ldo) {
  using Fn = void (*)(const uint16_t*, int64_t, const uint16_t*, int64_t, int64_t, float*, int64_t);
  static constexpr Fn kFns[kMr] = {pv_emu_mr<1>, pv_emu_mr<2>, pv_emu_mr<3>, pv_emu_mr<4>, pv_emu_mr<5>, pv_emu_mr<6>};
  kFns[mr - 1](P, ldp, V, npairs, dv, O, ldo);
}

float softmax_emu(const float* S, int64_t L, int64_t v0, int64_t v1, uint16_t* P) {
  const int64_t a = v0 / 8 * 8, b = (v1 + 7) / 8 * 8;  // the 8-column groups holding valid keys
  std::fill(P, P + a, uint16_t{0});
  std::fill(P + b, P + L, uint16_t{0});
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i vc0 = _mm256_set1_epi32(static_cast<int>(v0)), vc1 = _mm256_set1_epi32(static_cast<int>(v1));
  auto valid = [&](int64_t c) {
    const __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(c)));
    return _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(vc0, idx), _mm256_cmpgt_epi32(vc1, idx)));
  };
  __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t c = a; c < b; c += 8)
    vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(vmax, _mm256_loadu_ps(S + c), valid(c)));
  const __m256 vm = _mm256_set1_ps(simd::hmax(vmax));
  __m256 vsum = _mm256_setzero_ps();
  for (int64_t c = a; c < b; c += 8) {
    const __m256 p = _mm256_and_ps(simd::exp(_mm256_sub_ps(_mm256_loadu_ps(S + c), vm)), valid(c));
    vsum = _mm256_add_ps(vsum, p);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(P + c), bf16_round8(p));
  }
  return simd::hsum(vsum);
}

}  // namespace

const Ops& emulated_ops() {
  static const Ops ops{convert_emu, qk_emu, softmax_emu, pv_emu};
  return ops;
}

namespace {

// The packed operands of one call (layouts in attention_bf16.h).
struct Packed {
  const int64_t* cu;
  int64_t num_seqs, n_heads, d, T, Tp, H, d2, dq, dv;
  uint16_t *Q, *K, *V;
};

// Pack Q, K and V (step 1), parallel over 16-token groups. Each qkv row is read once, front to
// back (Q, K, V of every head: 9 KB sequential at base shape, which the hardware prefetcher
// follows; reading one head of 16 rows at a time is 48 interleaved streams). K rows are gathered
// per head into [16][d2] dwords and transposed 8x8 into the [d2][16] panels at the end of the group;
// V rows are interleaved by token pairs.
void pack(const float* qkv, const Packed& P, const RopeTable* rope, float scale, const Ops& ops) {
  const int64_t* cu = P.cu;
  const int64_t T = P.T, Tp = P.Tp, H = P.H, d = P.d, d2 = P.d2, dq = P.dq, dv = P.dv, half = d / 2, nh = P.n_heads;
  parallel_for(Tp / 16, 4, [&](int64_t gb, int64_t ge, int) {
    thread_local std::vector<uint32_t> kbuf;  // [heads][16][d2] bf16 pairs of the group's K rows
    thread_local std::vector<uint16_t> vbuf;  // [2][heads][dv] the rounded V rows of a token pair
    kbuf.resize(static_cast<size_t>(nh * 16 * d2));
    vbuf.resize(static_cast<size_t>(2 * nh * dv));
    int64_t sq = std::upper_bound(cu, cu + P.num_seqs + 1, std::min(gb * 16, T - 1)) - cu - 1;
    for (int64_t g = gb; g < ge; ++g) {
      const int64_t g0 = g * 16;
      for (int64_t r = 0; r < 16; ++r) {
        const int64_t t = g0 + r;
        uint16_t* vrows = vbuf.data() + (r & 1) * nh * dv;
        if (t < T) {
          while (t >= cu[sq + 1]) ++sq;
          const int64_t pos = t - cu[sq];
          const float* c = rope ? rope->cos.data() + pos * half : nullptr;
          const float* s = rope ? rope->sin.data() + pos * half : nullptr;
          const float* row = qkv + t * 3 * H;
          for (int64_t h = 0; h < nh; ++h) ops.convert(row + h * d, c, s, d, scale, P.Q + (h * Tp + t) * dq, dq);
          for (int64_t h = 0; h < nh; ++h)
            ops.convert(row + H + h * d, c, s, d, 1.0f, reinterpret_cast<uint16_t*>(kbuf.data() + (h * 16 + r) * d2),
                        dq);
          for (int64_t h = 0; h < nh; ++h)
            ops.convert(row + 2 * H + h * d, nullptr, nullptr, d, 1.0f, vrows + h * dv, dv);
        } else {
          for (int64_t h = 0; h < nh; ++h) std::fill_n(kbuf.data() + (h * 16 + r) * d2, d2, 0u);
          std::fill_n(vrows, nh * dv, uint16_t{0});
        }
        if (r & 1)  // interleave the V rows of tokens t - 1, t into [dv][2] per head
          for (int64_t h = 0; h < nh; ++h) {
            uint16_t* dst = P.V + h * Tp * dv + (t - 1) * dv;
            const uint16_t* ve = vbuf.data() + h * dv;
            const uint16_t* vo = vbuf.data() + (nh + h) * dv;
            for (int64_t c = 0; c < dv; c += 8) {
              const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ve + c));
              const __m128i o = _mm_loadu_si128(reinterpret_cast<const __m128i*>(vo + c));
              _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * c), _mm_unpacklo_epi16(e, o));
              _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * c + 8), _mm_unpackhi_epi16(e, o));
            }
          }
      }
      for (int64_t h = 0; h < nh; ++h) {
        const uint32_t* kh = kbuf.data() + h * 16 * d2;                                  // [16][d2]
        uint32_t* panel = reinterpret_cast<uint32_t*>(P.K + h * Tp * dq + g * d2 * 32);  // [d2][16]
        int64_t cp = 0;
        for (; cp + 8 <= d2; cp += 8)
          for (int64_t hf = 0; hf < 2; ++hf) {
            __m256 rows[8];
            for (int r = 0; r < 8; ++r)
              rows[r] = _mm256_loadu_ps(reinterpret_cast<const float*>(kh + (hf * 8 + r) * d2 + cp));
            simd::transpose8(rows);
            for (int r = 0; r < 8; ++r)
              _mm256_storeu_ps(reinterpret_cast<float*>(panel + (cp + r) * 16 + hf * 8), rows[r]);
          }
        for (; cp < d2; ++cp)
          for (int64_t r = 0; r < 16; ++r) panel[cp * 16 + r] = kh[r * d2 + cp];
      }
    }
  });
}

struct Scratch {
  std::vector<float> S, O;
  std::vector<uint16_t> P;
};

// Step 2: the tiles of every (sequence, head, query block). The result goes to out (fp32) or, when
// out is nullptr, to outb rounded to bf16 (the same quotients, then RNE).
void attend(const Packed& P, int64_t hw, float* out, uint16_t* outb, const Ops& ops) {
  const int64_t* cu = P.cu;
  const int64_t num_seqs = P.num_seqs, n_heads = P.n_heads, d = P.d, Tp = P.Tp, H = P.H, d2 = P.d2, dq = P.dq,
                dv = P.dv;
  const int64_t bq_max = hw < 0 ? 48 : 30;
  auto q_block = [&](int64_t n) {  // evened out over the sequence, rounded up to the tile
    const int64_t nb = (n + bq_max - 1) / bq_max;
    return ((n + nb - 1) / nb + kMr - 1) / kMr * kMr;
  };
  thread_local std::vector<int64_t> item_start;
  item_start.assign(static_cast<size_t>(num_seqs + 1), 0);
  int64_t max_n = 0;
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t n = cu[b + 1] - cu[b];
    max_n = std::max(max_n, n);
    const int64_t nqb = n == 0 ? 0 : (n + q_block(n) - 1) / q_block(n);
    item_start[static_cast<size_t>(b + 1)] = item_start[static_cast<size_t>(b)] + n_heads * nqb;
  }
  // Widest tile band: n keys from a start up to 15 below a multiple of 16, rounded up to 16.
  const int64_t lds = (max_n + 31) / 16 * 16;
  const int64_t* starts = item_start.data();
  parallel_for(item_start.back(), 1, [&](int64_t ib, int64_t ie, int) {
    thread_local Scratch sc;
    if (sc.S.size() < static_cast<size_t>(kMr * lds)) {
      sc.S.resize(static_cast<size_t>(kMr * lds));
      sc.P.resize(static_cast<size_t>(kMr * lds));
    }
    if (sc.O.size() < static_cast<size_t>(kMr * dv)) sc.O.resize(static_cast<size_t>(kMr * dv));
    float *S = sc.S.data(), *O = sc.O.data();
    uint16_t* Pb = sc.P.data();
    float l[kMr];
    for (int64_t item = ib; item < ie; ++item) {
      const int64_t b = std::upper_bound(starts, starts + num_seqs + 1, item) - starts - 1;
      const int64_t n = cu[b + 1] - cu[b], base = cu[b];
      const int64_t Bq = q_block(n), nqb = (n + Bq - 1) / Bq, local = item - starts[b];
      const int64_t h = local / nqb, q0 = (local % nqb) * Bq, bq = std::min(Bq, n - q0);
      for (int64_t i0 = q0; i0 < q0 + bq; i0 += kMr) {
        const int mr = static_cast<int>(std::min<int64_t>(kMr, q0 + bq - i0));
        // The tile's keys [tlo, thi), from the global multiple of 16 at or below tlo.
        const int64_t tlo = hw < 0 ? 0 : std::max<int64_t>(0, i0 - hw);
        const int64_t thi = hw < 0 ? n : std::min<int64_t>(n, i0 + mr + hw);
        const int64_t k0 = (base + tlo) / 16 * 16 - base;
        const int64_t npan = (thi - k0 + 15) / 16, L = npan * 16;
        ops.qk(mr, P.Q + (h * Tp + base + i0) * dq, dq, P.K + h * Tp * dq + (base + k0) / 16 * d2 * 32, npan, d2, S,
               lds);
        for (int r = 0; r < mr; ++r) {
          const int64_t qi = i0 + r;
          const int64_t lo = hw < 0 ? 0 : std::max<int64_t>(0, qi - hw);
          const int64_t hi = hw < 0 ? n : std::min<int64_t>(n, qi + hw + 1);
          l[r] = ops.softmax(S + r * lds, L, lo - k0, hi - k0, Pb + r * lds);
        }
        ops.pv(mr, Pb, lds, P.V + h * Tp * dv + (base + k0) * dv, L / 2, dv, O, dv);
        for (int r = 0; r < mr; ++r) {
          float* orow = O + r * dv;
          if (out) {
            float* dst = out + (base + i0 + r) * H + h * d;
            for (int64_t c = 0; c < d; ++c) dst[c] = orow[c] / l[r];
          } else {
            for (int64_t c = 0; c < d; ++c) orow[c] /= l[r];
            lowp::round_bf16(orow, outb + (base + i0 + r) * H + h * d, d);
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace bf16attn

namespace {
std::atomic<bool> g_force_emulated{false};
}

bool attention_bf16_native_supported() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  }();
  return ok;
}

void set_attention_bf16_force_emulated(bool force) { g_force_emulated.store(force); }

const char* attention_bf16_path() {
  return attention_bf16_native_supported() && !g_force_emulated.load() ? "avx512_bf16 (vdpbf16ps)"
                                                                       : "fp32 fma emulation";
}

namespace {
// bf16 elements of the packed Q, K and V (layout in attention_bf16.h): Tp = T rounded up to 16,
// plus one 16-token panel; Q and K with d rounded up to even, V with d rounded up to 16.
size_t workspace_bf16_elements(int64_t T, int64_t n_heads, int64_t d) {
  const int64_t dq = 2 * ((d + 1) / 2), dv = (d + 15) / 16 * 16, Tp = (T + 15) / 16 * 16 + 16;
  return static_cast<size_t>(n_heads * Tp * (2 * dq + dv));
}
}  // namespace

size_t attention_bf16_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim) {
  if (T <= 0 || n_heads <= 0 || head_dim <= 0) return 0;
  return (workspace_bf16_elements(T, n_heads, head_dim) + 1) / 2;
}

namespace {

// attention_bf16 into out (fp32) or, with out nullptr, into outb (bf16).
void attention_bf16_into(const float* qkv, float* out, uint16_t* outb, const int64_t* cu, int64_t num_seqs,
                         int64_t n_heads, int64_t d, int64_t hw, float* workspace, const RopeTable* rope) {
  if (n_heads <= 0 || d <= 0) throw Error("attention_bf16: n_heads and head_dim must be positive");
  if (num_seqs < 0 || cu[0] != 0) throw Error("attention_bf16: cu_seqlens[0] must be 0");
  for (int64_t b = 0; b < num_seqs; ++b)
    if (cu[b + 1] < cu[b]) throw Error("attention_bf16: cu_seqlens must be non-decreasing");
  const int64_t T = cu[num_seqs];
  if (T == 0) return;
  hw = std::min(hw, T);  // a wider window sees the same keys (and i + hw cannot overflow)
  if (rope) {
    if (rope->head_dim != d) throw Error("attention_bf16: RoPE table head_dim differs from the heads'");
    for (int64_t b = 0; b < num_seqs; ++b)
      if (cu[b + 1] - cu[b] > rope->max_len) throw Error("attention_bf16: sequence longer than the rotary table");
  }
  const int64_t d2 = (d + 1) / 2, dq = 2 * d2, dv = (d + 15) / 16 * 16, Tp = (T + 15) / 16 * 16 + 16;
  const size_t need = workspace_bf16_elements(T, n_heads, d);
  thread_local std::vector<uint16_t> own;
  uint16_t* ws;
  if (workspace) {
    ws = reinterpret_cast<uint16_t*>(workspace);
  } else {
    if (own.size() < need) own.resize(need);
    ws = own.data();
  }
  bf16attn::Packed packed{cu, num_seqs, n_heads, d, T, Tp, n_heads * d, d2, dq, dv, nullptr, nullptr, nullptr};
  packed.Q = ws;
  packed.K = packed.Q + n_heads * Tp * dq;
  packed.V = packed.K + n_heads * Tp * dq;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const bool native = attention_bf16_native_supported() && !g_force_emulated.load();
  const bf16attn::Ops& ops = native ? bf16attn::native_ops() : bf16attn::emulated_ops();
  bf16attn::pack(qkv, packed, rope, scale, ops);  // all of qkv read: outb may alias it (backend.h)
  bf16attn::attend(packed, hw, out, outb, ops);
}

}  // namespace

void attention_bf16(const float* qkv, float* out, const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t d,
                    int64_t hw, float* workspace, const RopeTable* rope) {
  attention_bf16_into(qkv, out, nullptr, cu, num_seqs, n_heads, d, hw, workspace, rope);
}

void attention_bf16_bf16out(const float* qkv, uint16_t* outb, const int64_t* cu, int64_t num_seqs, int64_t n_heads,
                            int64_t d, int64_t hw, float* workspace, const RopeTable* rope) {
  attention_bf16_into(qkv, nullptr, outb, cu, num_seqs, n_heads, d, hw, workspace, rope);
}

}  // namespace modernbert::kernels::cpu
