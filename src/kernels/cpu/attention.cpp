// Varlen flash-style attention on the CPU (fp32, AVX2/FMA).
//
// Work item = (sequence, head, query block of Bq rows). For each item we walk the key blocks of
// Bk = 64 keys that intersect the item's band, [q0 - hw, q0 + Bq - 1 + hw] for local layers
// (hw = half window) or the whole sequence for global layers, so a local layer costs
// O(n * (Bq + 2 hw)) instead of O(n^2). Per key block:
//   S[Bq, 64]  = Q[Bq, d] · K^T[d, 64]                     (micro-kernel, raw dot products)
//   online softmax per row over the keys valid for that row (|i - j| <= hw, j < n):
//     m' = max(m, max S), alpha = exp((m - m') / sqrt(d)), P = exp((S - m') / sqrt(d)),
//     l = alpha l + sum P, O = alpha O
//   O[Bq, dp] += P[Bq, bk] · V[bk, dp]                      (same micro-kernel)
// and finally out = O / l. Nothing n x n is ever stored: per thread S is Bq x 64, O is Bq x dp.
//
// Layout: K and V are first repacked per head into the workspace: K^T in panels of 16 keys,
// [head][T/16][d][16] (the B operand of the S micro-kernel is then one contiguous 4 KB panel per
// 16 keys instead of d rows far apart, which thrashed the TLB), and V as [head][Tp][dp] (dp = d
// rounded up to 16, zero-padded). Key blocks start on a global multiple of 16 (possibly up to 15
// keys before the sequence start; those columns are masked like any invalid key, and their V
// rows, from the previous sequence, are multiplied by P = 0). Tp >= T + 64 so a key block may run
// past the last token. The Q block is copied to a contiguous [Bq, d] scratch.
//
// The micro-kernel computes C[MR x 16] (+)= A[MR x K] · B[K x 16] with MR <= 6: 12 ymm
// accumulators, per k two B loads, MR broadcasts and 2 MR FMAs (FMA-bound on Zen3).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "modernbert/error.h"

namespace modernbert::kernels {

namespace {

constexpr int kBk = 64;   // keys per block (S columns)
constexpr int kMaxBq = 128;
std::atomic<int> g_bq_global{AttentionTiles{}.q_block_global}, g_bq_local{AttentionTiles{}.q_block_local};

int64_t padded_dim(int64_t d) { return (d + 15) / 16 * 16; }
int64_t padded_tokens(int64_t T) { return (T + kBk + 15) / 16 * 16; }

template <int MR, bool ACC>
inline void micro_kernel(const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
                         int64_t ldc, int64_t K) {
  __m256 c0[MR], c1[MR];
#pragma GCC unroll 6
  for (int r = 0; r < MR; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(B + k * ldb), b1 = _mm256_loadu_ps(B + k * ldb + 8);
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

// C[M, N] (+)= A[M, K] · B[K, N]; N must be a multiple of 16. The 16-column panel n0/16 of B
// starts at B + (n0/16) * panel_stride with rows ldb apart (row-major B: panel_stride = 16,
// paneled K^T: ldb = 16, panel_stride = 16 K).
template <bool ACC>
void small_gemm(const float* A, int64_t lda, const float* B, int64_t ldb, int64_t panel_stride, float* C,
                int64_t ldc, int64_t M, int64_t N, int64_t K) {
  for (int64_t n0 = 0; n0 < N; n0 += 16) {
    const float* Bp = B + (n0 / 16) * panel_stride;
    int64_t i = 0;
    for (; i + 6 <= M; i += 6) micro_kernel<6, ACC>(A + i * lda, lda, Bp, ldb, C + i * ldc + n0, ldc, K);
    switch (M - i) {
      case 5: micro_kernel<5, ACC>(A + i * lda, lda, Bp, ldb, C + i * ldc + n0, ldc, K); break;
      case 4: micro_kernel<4, ACC>(A + i * lda, lda, Bp, ldb, C + i * ldc + n0, ldc, K); break;
      case 3: micro_kernel<3, ACC>(A + i * lda, lda, Bp, ldb, C + i * ldc + n0, ldc, K); break;
      case 2: micro_kernel<2, ACC>(A + i * lda, lda, Bp, ldb, C + i * ldc + n0, ldc, K); break;
      case 1: micro_kernel<1, ACC>(A + i * lda, lda, Bp, ldb, C + i * ldc + n0, ldc, K); break;
      default: break;
    }
  }
}

struct Scratch {
  std::vector<float> S, O, m, l, Q;
  void ensure(int64_t bq, int64_t dp) {
    const size_t s = static_cast<size_t>(bq * kBk), o = static_cast<size_t>(bq * dp);
    if (S.size() < s) S.resize(s);
    if (Q.size() < o) Q.resize(o);
    if (O.size() < o) O.resize(o);
    if (m.size() < static_cast<size_t>(bq)) {
      m.resize(static_cast<size_t>(bq));
      l.resize(static_cast<size_t>(bq));
    }
  }
};

void check_args(const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t head_dim) {
  if (n_heads <= 0 || head_dim <= 0) throw Error("attention: n_heads and head_dim must be positive");
  if (cu[0] != 0) throw Error("attention: cu_seqlens[0] must be 0");
  for (int64_t b = 0; b < num_seqs; ++b)
    if (cu[b + 1] < cu[b]) throw Error("attention: cu_seqlens must be non-decreasing");
}

}  // namespace

size_t attention_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim) {
  const int64_t tp = padded_tokens(T);
  return static_cast<size_t>(n_heads * tp * (head_dim + padded_dim(head_dim)));
}

void set_attention_tiles(AttentionTiles t) {
  g_bq_global.store(std::clamp(t.q_block_global, 1, kMaxBq));
  g_bq_local.store(std::clamp(t.q_block_local, 1, kMaxBq));
}

void attention(const float* qkv, float* out, const int64_t* cu, int64_t num_seqs, int64_t n_heads,
               int64_t d, int64_t hw, float* workspace) {
  check_args(cu, num_seqs, n_heads, d);
  const int64_t T = cu[num_seqs];
  if (T == 0) return;
  const int64_t H = n_heads * d, ld_qkv = 3 * H, dp = padded_dim(d), Tp = padded_tokens(T);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t Bq = hw < 0 ? g_bq_global.load() : g_bq_local.load();

  thread_local std::vector<float> own_ws;
  if (!workspace) {
    const size_t need = attention_workspace_floats(T, n_heads, d);
    if (own_ws.size() < need) own_ws.resize(need);
    workspace = own_ws.data();
  }
  float* KT = workspace;                     // [n_heads][Tp/16][d][16]
  float* Vp = workspace + n_heads * d * Tp;  // [n_heads][Tp][dp]

  // Pack K^T and V (parallel over head x token chunk). Pad columns/rows are zeroed.
  constexpr int64_t kPackChunk = 64;
  const int64_t chunks = (Tp + kPackChunk - 1) / kPackChunk;
  parallel_for(n_heads * chunks, 4, [&](int64_t b, int64_t e, int) {
    for (int64_t w = b; w < e; ++w) {
      const int64_t h = w / chunks, t0 = (w % chunks) * kPackChunk, t1 = std::min(Tp, t0 + kPackChunk);
      float* vp = Vp + h * Tp * dp;
      for (int64_t t = t0; t < t1; ++t) {
        float* vrow = vp + t * dp;
        float* kt = KT + h * d * Tp + (t / 16) * d * 16 + t % 16;  // column t of its panel
        if (t < T) {
          const float* krow = qkv + t * ld_qkv + H + h * d;
          for (int64_t c = 0; c < d; ++c) kt[c * 16] = krow[c];
          const float* vsrc = qkv + t * ld_qkv + 2 * H + h * d;
          std::copy(vsrc, vsrc + d, vrow);
          std::fill(vrow + d, vrow + dp, 0.0f);
        } else {
          for (int64_t c = 0; c < d; ++c) kt[c * 16] = 0.0f;
          std::fill(vrow, vrow + dp, 0.0f);
        }
      }
    }
  });

  // Items: sequence-major, then head, then query block. item_start[b] = first item of seq b.
  thread_local std::vector<int64_t> item_start;
  item_start.assign(static_cast<size_t>(num_seqs + 1), 0);
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t n = cu[b + 1] - cu[b];
    item_start[static_cast<size_t>(b + 1)] = item_start[static_cast<size_t>(b)] + n_heads * ((n + Bq - 1) / Bq);
  }
  const int64_t n_items = item_start.back();
  const int64_t* starts = item_start.data();

  parallel_for(n_items, 1, [&](int64_t ib, int64_t ie, int) {
    thread_local Scratch sc;
    sc.ensure(Bq, dp);
    float* S = sc.S.data();
    float* O = sc.O.data();
    float* m = sc.m.data();
    float* l = sc.l.data();
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int64_t item = ib; item < ie; ++item) {
      const int64_t b = std::upper_bound(starts, starts + num_seqs + 1, item) - starts - 1;
      const int64_t n = cu[b + 1] - cu[b], base = cu[b];
      const int64_t nqb = (n + Bq - 1) / Bq, local = item - starts[b];
      const int64_t h = local / nqb, q0 = (local % nqb) * Bq, bq = std::min(Bq, n - q0);
      // Keys any row of this block may see: [klo, khi).
      const int64_t klo = hw < 0 ? 0 : std::max<int64_t>(0, q0 - hw);
      const int64_t khi = hw < 0 ? n : std::min<int64_t>(n, q0 + bq + hw);
      float* Q = sc.Q.data();  // [bq, d] contiguous copy of the query block
      for (int64_t i = 0; i < bq; ++i) {
        const float* src = qkv + (base + q0 + i) * ld_qkv + h * d;
        std::copy(src, src + d, Q + i * d);
      }
      const float* kt = KT + h * d * Tp;    // panels of this head
      const float* vp = Vp + (h * Tp + base) * dp;  // row j = key j of this sequence
      std::fill(O, O + bq * dp, 0.0f);
      std::fill(m, m + bq, -std::numeric_limits<float>::infinity());
      std::fill(l, l + bq, 0.0f);
      // First key block starts at the global multiple of 16 at or below the band start.
      const int64_t kfirst = (base + klo) / 16 * 16 - base;
      for (int64_t k0 = kfirst; k0 < khi; k0 += kBk) {
        const int64_t bk = std::min<int64_t>(kBk, khi - k0);
        const int64_t bk16 = (bk + 15) / 16 * 16;  // only the panels that hold keys of the band
        small_gemm<false>(Q, d, kt + (base + k0) / 16 * d * 16, 16, d * 16, S, kBk, bq, bk16, d);
        for (int64_t i = 0; i < bq; ++i) {
          const int64_t qi = q0 + i;
          // Valid keys of this row inside the block, as block columns [c0, c1).
          const int64_t lo = hw < 0 ? 0 : std::max<int64_t>(0, qi - hw);
          const int64_t hi = hw < 0 ? n : std::min<int64_t>(n, qi + hw + 1);
          const int64_t c0 = std::max(lo, k0) - k0, c1 = std::min(hi, k0 + bk) - k0;
          float* srow = S + i * kBk;
          const int64_t bk8 = (bk + 7) / 8 * 8;
          if (c0 >= c1) {
            std::fill(srow, srow + bk8, 0.0f);
            continue;
          }
          const __m256i vc0 = _mm256_set1_epi32(static_cast<int>(c0));
          const __m256i vc1 = _mm256_set1_epi32(static_cast<int>(c1));
          __m256 vmax = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
          for (int64_t c = 0; c < bk8; c += 8) {
            const __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(c)));
            const __m256 ok = _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(vc0, idx),
                                                                      _mm256_cmpgt_epi32(vc1, idx)));
            vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(vmax, _mm256_loadu_ps(srow + c), ok));
          }
          const float mnew = std::max(m[i], simd::hmax(vmax));
          const float alpha = std::exp((m[i] - mnew) * scale);  // 0 when m[i] = -inf
          const __m256 vm = _mm256_set1_ps(mnew);
          __m256 vsum = _mm256_setzero_ps();
          for (int64_t c = 0; c < bk8; c += 8) {
            const __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(c)));
            const __m256 ok = _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(vc0, idx),
                                                                      _mm256_cmpgt_epi32(vc1, idx)));
            __m256 p = simd::exp(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(srow + c), vm), vscale));
            p = _mm256_and_ps(p, ok);
            vsum = _mm256_add_ps(vsum, p);
            _mm256_storeu_ps(srow + c, p);
          }
          l[i] = l[i] * alpha + simd::hsum(vsum);
          m[i] = mnew;
          if (alpha != 1.0f) {
            const __m256 va = _mm256_set1_ps(alpha);
            float* orow = O + i * dp;
            for (int64_t c = 0; c < dp; c += 8) _mm256_storeu_ps(orow + c, _mm256_mul_ps(_mm256_loadu_ps(orow + c), va));
          }
        }
        small_gemm<true>(S, kBk, vp + k0 * dp, dp, 16, O, dp, bq, dp, bk);
      }
      for (int64_t i = 0; i < bq; ++i) {
        const float inv = 1.0f / l[i];  // l >= 1: the row's own key is always valid
        const float* orow = O + i * dp;
        float* dst = out + (base + q0 + i) * H + h * d;
        for (int64_t c = 0; c < d; ++c) dst[c] = orow[c] * inv;
      }
    }
  });
}

namespace ref {
void attention(const float* qkv, float* out, const int64_t* cu, int64_t num_seqs, int64_t n_heads,
               int64_t d, int64_t hw, float*) {
  check_args(cu, num_seqs, n_heads, d);
  const int64_t H = n_heads * d;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t base = cu[b], n = cu[b + 1] - cu[b];
    std::vector<double> p(static_cast<size_t>(n));
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < n; ++i) {
        const float* q = qkv + (base + i) * 3 * H + h * d;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n; ++j) {
          const bool ok = hw < 0 || std::abs(i - j) <= hw;
          double s = -std::numeric_limits<double>::infinity();
          if (ok) {
            const float* k = qkv + (base + j) * 3 * H + H + h * d;
            s = 0;
            for (int64_t c = 0; c < d; ++c) s += static_cast<double>(q[c]) * k[c];
            s *= scale;
          }
          p[static_cast<size_t>(j)] = s;
          mx = std::max(mx, s);
        }
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += (p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - mx));
        for (int64_t c = 0; c < d; ++c) {
          double o = 0;
          for (int64_t j = 0; j < n; ++j) o += p[static_cast<size_t>(j)] * qkv[(base + j) * 3 * H + 2 * H + h * d + c];
          out[(base + i) * H + h * d + c] = static_cast<float>(o / sum);
        }
      }
  }
}
}  // namespace ref

}  // namespace modernbert::kernels
