// Training backward of the varlen attention (the forward is kernels/cpu/attention.cpp, which saves
// the per-row log-sum-exp this backward uses). Contract in kernels/backend.h.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/microkernel.h"
#include "kernels/cpu/simd.h"

namespace modernbert::kernels::cpu {

// ---- Attention -------------------------------------------------------------------------------------
//
// Forward: the inference kernel (kernels/cpu/attention.cpp, register-blocked online softmax over
// the key band) with its per-row log-sum-exp stored. Backward: the FlashAttention-2 recurrence on
// the same micro-kernel, one work item per (sequence, head) so that item owns its dQ/dK/dV rows
// (fixed order, no atomics, results independent of the thread count). Per item the head's Q, K,
// V and dO are packed once into 16-wide panels (each micro-kernel B operand is then a contiguous
// stream of 64-byte rows):
//   KT, VT [n16/16][d][16]   keys as columns   (B of S = Q Kᵀ and dP = dO Vᵀ)
//   Kp, Qp, dOp [dp/16][n16][16]  16 channels  (B of dQ = dS K, dK = dSᵀ Q, dV = Pᵀ dO)
// and for every (query block, key block) of 64 x 64 inside the band:
//   S, dP [bq, bk]  by 6-row query tiles over the 16-key panels the tile's band touches;
//   P = exp(scale S - lse) and dS = P (dP - D) on the band (0 elsewhere, masks applied after the
//   arithmetic so stale values in skipped panels cannot leak), then Pᵀ and dSᵀ by 8x8 transposes;
//   dQ += dS K over the tile's key panels; dK += dSᵀ Q and dV += Pᵀ dO by 6-key tiles over the
//   16-query panels their band touches.
// dQ and dK are scaled by 1/sqrt(d) once, when the item's rows are written to dqkv.

namespace {

constexpr int64_t kBlk = 64;  // queries per block = keys per block (a multiple of 16)
constexpr int64_t kTile = 6;  // micro-kernel rows

inline int64_t round16(int64_t x) { return (x + 15) / 16 * 16; }

// dst[g][c][16] = src[16 g + j][c] (row stride ld), c < d; rows >= n are zero.
void pack_transposed_panels(const float* src, int64_t ld, int64_t n, int64_t n16, int64_t d, float* dst) {
  for (int64_t g = 0; g < n16 / 16; ++g) {
    float* panel = dst + g * d * 16;
    for (int64_t j = 0; j < 16; ++j) {
      const int64_t r = g * 16 + j;
      if (r < n) {
        const float* row = src + r * ld;
        for (int64_t c = 0; c < d; ++c) panel[c * 16 + j] = row[c];
      } else {
        for (int64_t c = 0; c < d; ++c) panel[c * 16 + j] = 0.0f;
      }
    }
  }
}

// dst[p][r][16] = src[r][16 p + j] (row stride ld); columns >= d and rows >= n are zero.
void pack_column_panels(const float* src, int64_t ld, int64_t n, int64_t n16, int64_t d, int64_t dp, float* dst) {
  for (int64_t p = 0; p < dp / 16; ++p) {
    const int64_t c0 = p * 16, nc = std::min<int64_t>(16, d - c0);
    for (int64_t r = 0; r < n16; ++r) {
      float* o = dst + (p * n16 + r) * 16;
      if (r < n && nc == 16) {
        _mm256_storeu_ps(o, _mm256_loadu_ps(src + r * ld + c0));
        _mm256_storeu_ps(o + 8, _mm256_loadu_ps(src + r * ld + c0 + 8));
      } else {
        for (int64_t j = 0; j < 16; ++j) o[j] = (r < n && j < nc) ? src[r * ld + c0 + j] : 0.0f;
      }
    }
  }
}

// dst[c][r] = src[r][c] for r < rows, c < cols (both multiples of 8), leading dimensions ls / ldd.
void transpose_block(const float* src, int64_t ls, float* dst, int64_t ldd, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; r += 8)
    for (int64_t c = 0; c < cols; c += 8) {
      __m256 v[8];
      for (int i = 0; i < 8; ++i) v[i] = _mm256_loadu_ps(src + (r + i) * ls + c);
      simd::transpose8(v);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + (c + i) * ldd + r, v[i]);
    }
}

// Lanes c..c+7 of [v0, v1) as a float mask.
inline __m256 range_mask(int64_t c, int64_t v0, int64_t v1) {
  const __m256i idx =
      _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(c)));
  const __m256i ge = _mm256_cmpgt_epi32(idx, _mm256_set1_epi32(static_cast<int>(v0 - 1)));
  const __m256i lt = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(v1)), idx);
  return _mm256_castsi256_ps(_mm256_and_si256(ge, lt));
}

// Keys [lo, hi) of a sequence of n tokens that query i may see (hw < 0: all).
inline void band(int64_t i, int64_t n, int64_t hw, int64_t* lo, int64_t* hi) {
  *lo = hw < 0 ? 0 : std::max<int64_t>(0, i - hw);
  *hi = hw < 0 ? n : std::min<int64_t>(n, i + hw + 1);
}

struct AttnBackwardScratch {
  std::vector<float> buf;
  float* ensure(size_t n) {
    if (buf.size() < n) buf.resize(n);
    return buf.data();
  }
};

}  // namespace

void attention_backward(const float* qkv, const float* out, const float* dout, const float* lse, float* dqkv,
                        const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t d, int64_t hw) {
  const int64_t H = n_heads * d, ld = 3 * H, dp = round16(d), np = dp / 16;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  parallel_for(num_seqs * n_heads, 1, [&](int64_t i0, int64_t i1, int) {
    thread_local AttnBackwardScratch scratch;
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t b = it / n_heads, h = it % n_heads;
      const int64_t s = cu[b], n = cu[b + 1] - cu[b];
      if (n == 0) continue;
      const int64_t n16 = round16(n);
      const size_t panel = static_cast<size_t>(n16 * dp), blk = static_cast<size_t>(kBlk * kBlk);
      float* KT = scratch.ensure(8 * panel + 4 * blk + 2 * static_cast<size_t>(n16));
      float* VT = KT + panel;
      float* Kp = VT + panel;
      float* Qp = Kp + panel;
      float* dOp = Qp + panel;
      float* dQ = dOp + panel;  // [n16, dp] accumulators
      float* dK = dQ + panel;
      float* dV = dK + panel;
      float* S = dV + panel;  // [kBlk, kBlk]: scores, then P
      float* dP = S + blk;    // dP, then dS
      float* PT = dP + blk;
      float* dST = PT + blk;
      float* Dr = dST + blk;  // rowsum(dO ⊙ O)
      float* Lr = Dr + n16;   // lse
      const float* Q = qkv + s * ld + h * d;
      const float* K = Q + H;
      const float* V = Q + 2 * H;
      const float* dO = dout + s * H + h * d;
      pack_transposed_panels(K, ld, n, n16, d, KT);
      pack_transposed_panels(V, ld, n, n16, d, VT);
      pack_column_panels(K, ld, n, n16, d, dp, Kp);
      pack_column_panels(Q, ld, n, n16, d, dp, Qp);
      pack_column_panels(dO, H, n, n16, d, dp, dOp);
      for (int64_t r = 0; r < n; ++r) {
        const float* o = out + (s + r) * H + h * d;
        const float* g = dO + r * H;
        double acc = 0;
        for (int64_t c = 0; c < d; ++c) acc += static_cast<double>(o[c]) * g[c];
        Dr[r] = static_cast<float>(acc);
        Lr[r] = lse[(s + r) * n_heads + h];
      }
      std::fill(dQ, dQ + 3 * panel, 0.0f);
      const __m256 vscale = _mm256_set1_ps(scale);
      for (int64_t q0 = 0; q0 < n; q0 += kBlk) {
        const int64_t bq = std::min(kBlk, n - q0), bq16 = round16(bq);
        int64_t klo, khi, tmp;
        band(q0, n, hw, &klo, &tmp);
        band(q0 + bq - 1, n, hw, &tmp, &khi);
        for (int64_t k0 = klo / 16 * 16; k0 < khi; k0 += kBlk) {
          const int64_t bk = std::min(kBlk, khi - k0), bk16 = round16(bk);
          // S and dP over each query tile's band panels; P and dS on the band.
          int64_t tile_plo[kBlk / kTile + 1], tile_phi[kBlk / kTile + 1];
          for (int64_t i = 0, ti = 0; i < bq; i += kTile, ++ti) {
            const int64_t mr = std::min(kTile, bq - i);
            int64_t tlo, thi;
            band(q0 + i, n, hw, &tlo, &tmp);
            band(q0 + i + mr - 1, n, hw, &tmp, &thi);
            const int64_t c_lo = std::max(tlo, k0) - k0, c_hi = std::min(thi, k0 + bk) - k0;
            tile_plo[ti] = c_lo < c_hi ? c_lo / 16 : 0;
            tile_phi[ti] = c_lo < c_hi ? (c_hi + 15) / 16 : 0;
            for (int64_t p = tile_plo[ti]; p < tile_phi[ti]; ++p) {
              const int64_t g = k0 / 16 + p;
              tile_kernel<false>(mr, Q + (q0 + i) * ld, ld, KT + g * d * 16, S + i * kBlk + p * 16, kBlk, d);
              tile_kernel<false>(mr, dO + (q0 + i) * H, H, VT + g * d * 16, dP + i * kBlk + p * 16, kBlk, d);
            }
          }
          for (int64_t r = 0; r < bq16; ++r) {
            float* srow = S + r * kBlk;
            float* drow = dP + r * kBlk;
            int64_t lo = 0, hi = 0;
            if (r < bq) band(q0 + r, n, hw, &lo, &hi);
            const int64_t v0 = std::max(lo, k0) - k0, v1 = std::min(hi, k0 + bk) - k0;
            if (r >= bq || v0 >= v1) {
              std::fill(srow, srow + bk16, 0.0f);
              std::fill(drow, drow + bk16, 0.0f);
              continue;
            }
            const __m256 vl = _mm256_set1_ps(-Lr[q0 + r]), vd = _mm256_set1_ps(Dr[q0 + r]);
            for (int64_t c = 0; c < bk16; c += 8) {
              const __m256 mask = range_mask(c, v0, v1);
              const __m256 p = _mm256_and_ps(simd::exp(_mm256_fmadd_ps(_mm256_loadu_ps(srow + c), vscale, vl)), mask);
              const __m256 ds = _mm256_and_ps(_mm256_mul_ps(p, _mm256_sub_ps(_mm256_loadu_ps(drow + c), vd)), mask);
              _mm256_storeu_ps(srow + c, p);
              _mm256_storeu_ps(drow + c, ds);
            }
          }
          transpose_block(S, kBlk, PT, kBlk, bq16, bk16);
          transpose_block(dP, kBlk, dST, kBlk, bq16, bk16);
          // dQ[q0 + i ..] += dS[i.., panels] · K[panels]
          for (int64_t i = 0, ti = 0; i < bq; i += kTile, ++ti) {
            const int64_t mr = std::min(kTile, bq - i), plo = tile_plo[ti], kl = (tile_phi[ti] - plo) * 16;
            if (kl == 0) continue;
            for (int64_t pn = 0; pn < np; ++pn)
              tile_kernel<true>(mr, dP + i * kBlk + plo * 16, kBlk, Kp + (pn * n16 + k0 + plo * 16) * 16,
                                dQ + (q0 + i) * dp + pn * 16, dp, kl);
          }
          // dK[k0 + j ..] += dSᵀ[j.., query panels] · Q ;  dV[k0 + j ..] += Pᵀ[j.., query panels] · dO
          for (int64_t j = 0; j < bk; j += kTile) {
            const int64_t mr = std::min(kTile, bk - j);
            // Queries that see any of keys k0+j .. k0+j+mr-1 (the band is symmetric).
            int64_t qlo, qhi;
            band(k0 + j, n, hw, &qlo, &tmp);
            band(k0 + j + mr - 1, n, hw, &tmp, &qhi);
            const int64_t r_lo = std::max(qlo, q0) - q0, r_hi = std::min(qhi, q0 + bq) - q0;
            if (r_lo >= r_hi) continue;
            const int64_t plo = r_lo / 16, kl = ((r_hi + 15) / 16 - plo) * 16;
            for (int64_t pn = 0; pn < np; ++pn) {
              const int64_t boff = (pn * n16 + q0 + plo * 16) * 16;
              tile_kernel<true>(mr, dST + j * kBlk + plo * 16, kBlk, Qp + boff, dK + (k0 + j) * dp + pn * 16, dp, kl);
              tile_kernel<true>(mr, PT + j * kBlk + plo * 16, kBlk, dOp + boff, dV + (k0 + j) * dp + pn * 16, dp, kl);
            }
          }
        }
      }
      for (int64_t r = 0; r < n; ++r) {
        float* dst = dqkv + (s + r) * ld + h * d;
        for (int64_t c = 0; c < d; ++c) {
          dst[c] = dQ[r * dp + c] * scale;
          dst[H + c] = dK[r * dp + c] * scale;
          dst[2 * H + c] = dV[r * dp + c];
        }
      }
    }
  });
}

}  // namespace modernbert::kernels::cpu
