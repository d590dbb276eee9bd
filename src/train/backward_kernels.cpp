// Training kernels (see backward_kernels.h for the contracts and the determinism rule).
#include "train/backward_kernels.h"

#include <cblas.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "kernels/cpu/microkernel.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/thread_pool.h"
#include "modernbert/error.h"

namespace modernbert::train {

namespace k = kernels;

namespace {

// OpenBLAS must run single-threaded inside our pool; the forward's gemm wrapper configures that on
// first use, so make sure it has (re-applying the current mode is a no-op otherwise).
void ensure_blas_configured() {
  static std::once_flag once;
  std::call_once(once, [] { k::set_gemm_threading(k::gemm_threading()); });
}

// Output tiles per GEMM: as few as keep both cores busy, each worth >= ~2 GFLOP, and an even
// number so two threads get equal shares. Measured on the backward's shapes (T = 2048, base
// model, 2 threads): 64-row tiles ran at ~130 GFLOP/s, quarter/half splits at ~150-165 (every
// BLAS call packs its operands; fewer, larger calls amortise that). The count depends on the
// shape only, never on the thread count (the determinism rule above).
constexpr double kFlopsPerTile = 2e9;
constexpr double kSerialFlops = 1e6;

// Tile length along a dimension of `dim` for a GEMM of `flops` (a multiple of 16 unless dim < 16).
int64_t tile_length(double flops, int64_t dim) {
  int64_t parts = static_cast<int64_t>(std::ceil(flops / kFlopsPerTile));
  parts = std::max<int64_t>(2, (parts + 1) / 2 * 2);
  parts = std::min(parts, std::max<int64_t>(1, dim / 16));
  const int64_t len = (dim + parts - 1) / parts;
  return dim < 16 ? dim : (len + 15) / 16 * 16;
}

}  // namespace

// ---- GEMMs -----------------------------------------------------------------------------------------

void matmul_nn(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, int64_t lda,
               int64_t ldb, int64_t ldc) {
  if (lda == 0) lda = K;
  if (ldb == 0) ldb = N;
  if (ldc == 0) ldc = N;
  if (M <= 0 || N <= 0) return;
  ensure_blas_configured();
  const float beta = accumulate ? 1.0f : 0.0f;
  auto block = [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (K == 0) {
      if (!accumulate)
        for (int64_t i = m0; i < m1; ++i) std::fill(C + i * ldc + n0, C + i * ldc + n1, 0.0f);
      return;
    }
    k::sgemm_serial(false, false, m1 - m0, n1 - n0, K, 1.0f, A + m0 * lda, lda, B + n0, ldb, beta, C + m0 * ldc + n0,
                    ldc);
  };
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (flops < kSerialFlops) return block(0, M, 0, N);
  if (K >= 8 * std::max(M, N) && K >= 4096) {
    // A long reduction (the tied decoder's dX = dlogits · E: K = vocab): row or column tiles would
    // each stream all of B or A (150 MB) again, so split K into kSplitK fixed ranges instead, each
    // multiplied into its own [M, N] buffer, and add the buffers in range order.
    constexpr int64_t kSplitK = 4;
    const int64_t len = (K + kSplitK - 1) / kSplitK;
    // The buffer is the calling thread's; the tasks reach it through this reference (inside them
    // the thread_local's own name would mean each worker's own, empty, vector).
    thread_local std::vector<float> caller_partial;
    std::vector<float>& partial = caller_partial;
    partial.resize(static_cast<size_t>(kSplitK * M * N));
    k::parallel_for(kSplitK, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t k0 = p * len, kn = std::min(K, k0 + len) - k0;
        k::sgemm_serial(false, false, M, N, kn, 1.0f, A + k0, lda, B + k0 * ldb, ldb, 0.0f, partial.data() + p * M * N,
                        N);
      }
    });
    k::parallel_for(M, 16, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        float* c = C + i * ldc;
        for (int64_t j = 0; j < N; ++j) {
          float acc = accumulate ? c[j] : 0.0f;
          for (int64_t p = 0; p < kSplitK; ++p) acc += partial[static_cast<size_t>((p * M + i) * N + j)];
          c[j] = acc;
        }
      }
    });
    return;
  }
  if (M >= 128) {  // row tiles: each reads all of B
    const int64_t tile = tile_length(flops, M);
    k::parallel_for((M + tile - 1) / tile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(p * tile, std::min(M, (p + 1) * tile), 0, N);
    });
  } else {
    const int64_t tile = tile_length(flops, N);
    k::parallel_for((N + tile - 1) / tile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(0, M, p * tile, std::min(N, (p + 1) * tile));
    });
  }
}

void matmul_tn_acc(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, int64_t lda,
                   int64_t ldb) {
  if (lda == 0) lda = N;
  if (ldb == 0) ldb = K;
  if (M <= 0 || N <= 0 || K <= 0) return;
  ensure_blas_configured();
  // C[n0:n1, k0:k1] += A[:, n0:n1]^T · B[:, k0:k1]; every tile reduces over all M rows itself.
  auto block = [&](int64_t n0, int64_t n1, int64_t k0, int64_t k1) {
    k::sgemm_serial(true, false, n1 - n0, k1 - k0, M, 1.0f, A + n0, lda, B + k0, ldb, 1.0f, C + n0 * K + k0, K);
  };
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (flops < kSerialFlops) return block(0, N, 0, K);
  if (N >= 128) {
    const int64_t tile = tile_length(flops, N);
    k::parallel_for((N + tile - 1) / tile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(p * tile, std::min(N, (p + 1) * tile), 0, K);
    });
  } else {
    const int64_t tile = tile_length(flops, K);
    k::parallel_for((K + tile - 1) / tile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(0, N, p * tile, std::min(K, (p + 1) * tile));
    });
  }
}

void bias_grad_acc(const float* dY, float* db, int64_t M, int64_t N) {
  // Columns split in fixed chunks; each column summed over rows in order (in double).
  constexpr int64_t kChunk = 64;
  k::parallel_for((N + kChunk - 1) / kChunk, 1, [&](int64_t b, int64_t e, int) {
    std::vector<double> acc(kChunk);
    for (int64_t p = b; p < e; ++p) {
      const int64_t c0 = p * kChunk, c1 = std::min(N, c0 + kChunk);
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t c = c0; c < c1; ++c) acc[static_cast<size_t>(c - c0)] += dY[m * N + c];
      for (int64_t c = c0; c < c1; ++c) db[c] += static_cast<float>(acc[static_cast<size_t>(c - c0)]);
    }
  });
}

void linear_backward(const float* X, const float* W, const float* dY, float* dX, bool accumulate_dx, float* dW,
                     float* db, int64_t M, int64_t N, int64_t K) {
  // dX[M,K] = dY[M,N] · W[N,K]
  if (dX) matmul_nn(dY, W, dX, M, K, N, accumulate_dx);
  // dW[N,K] += dY^T[N,M] · X[M,K]
  if (dW) matmul_tn_acc(dY, X, dW, M, N, K);
  if (db) bias_grad_acc(dY, db, M, N);
}

// ---- LayerNorm -------------------------------------------------------------------------------------

void layernorm_forward(const float* x, const float* g, const float* b, float* y, float* mean, float* rstd, int64_t rows,
                       int64_t C, float eps) {
  k::parallel_for(rows, 64, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * C;
      float* yr = y + r * C;
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += xr[c];
      const double mu = s / static_cast<double>(C);
      double v = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double dd = xr[c] - mu;
        v += dd * dd;
      }
      const float rs = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(C) + eps));
      const float m = static_cast<float>(mu);
      for (int64_t c = 0; c < C; ++c) {
        float o = (xr[c] - m) * rs;
        if (g) o *= g[c];
        if (b) o += b[c];
        yr[c] = o;
      }
      mean[r] = m;
      rstd[r] = rs;
    }
  });
}

void layernorm_backward(const float* dy, const float* x, const float* g, const float* mean, const float* rstd,
                        float* dx, bool accumulate_dx, float* dg, float* db, int64_t rows, int64_t C) {
  // Rows in fixed chunks; each chunk writes its own dg/db partial, reduced in chunk order below.
  constexpr int64_t kChunk = 32;
  const int64_t nchunks = (rows + kChunk - 1) / kChunk;
  const bool need_params = dg || db;
  std::vector<float> pg(need_params ? static_cast<size_t>(nchunks * C) : 0),
      pb(need_params ? static_cast<size_t>(nchunks * C) : 0);
  k::parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      float* pgc = need_params ? pg.data() + ch * C : nullptr;
      float* pbc = need_params ? pb.data() + ch * C : nullptr;
      for (int64_t r = ch * kChunk; r < std::min(rows, (ch + 1) * kChunk); ++r) {
        const float* dyr = dy + r * C;
        const float* xr = x + r * C;
        float* dxr = dx + r * C;
        const float m = mean[r], rs = rstd[r];
        // s1 = Σ dy·g, s2 = Σ dy·g·xhat (8 float lanes, then the lanes and the tail in double).
        const __m256 vm = _mm256_set1_ps(m), vrs = _mm256_set1_ps(rs);
        __m256 v1 = _mm256_setzero_ps(), v2 = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + 8 <= C; c += 8) {
          const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm), vrs);
          const __m256 d8 = _mm256_loadu_ps(dyr + c);
          const __m256 dyg = g ? _mm256_mul_ps(d8, _mm256_loadu_ps(g + c)) : d8;
          v1 = _mm256_add_ps(v1, dyg);
          v2 = _mm256_fmadd_ps(dyg, xh, v2);
          if (pgc) {
            _mm256_storeu_ps(pgc + c, _mm256_fmadd_ps(d8, xh, _mm256_loadu_ps(pgc + c)));
            _mm256_storeu_ps(pbc + c, _mm256_add_ps(d8, _mm256_loadu_ps(pbc + c)));
          }
        }
        double s1 = k::simd::hsum(v1), s2 = k::simd::hsum(v2);
        for (; c < C; ++c) {
          const float xh = (xr[c] - m) * rs;
          const float dyg = g ? dyr[c] * g[c] : dyr[c];
          s1 += dyg;
          s2 += static_cast<double>(dyg) * xh;
          if (pgc) {
            pgc[c] += dyr[c] * xh;
            pbc[c] += dyr[c];
          }
        }
        const float a1 = static_cast<float>(s1 / static_cast<double>(C));
        const float a2 = static_cast<float>(s2 / static_cast<double>(C));
        const __m256 va1 = _mm256_set1_ps(a1), va2 = _mm256_set1_ps(a2);
        for (c = 0; c + 8 <= C; c += 8) {
          const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm), vrs);
          const __m256 d8 = _mm256_loadu_ps(dyr + c);
          const __m256 dyg = g ? _mm256_mul_ps(d8, _mm256_loadu_ps(g + c)) : d8;
          __m256 v = _mm256_mul_ps(vrs, _mm256_sub_ps(_mm256_sub_ps(dyg, va1), _mm256_mul_ps(xh, va2)));
          if (accumulate_dx) v = _mm256_add_ps(v, _mm256_loadu_ps(dxr + c));
          _mm256_storeu_ps(dxr + c, v);
        }
        for (; c < C; ++c) {
          const float xh = (xr[c] - m) * rs;
          const float dyg = g ? dyr[c] * g[c] : dyr[c];
          const float v = rs * (dyg - a1 - xh * a2);
          dxr[c] = accumulate_dx ? dxr[c] + v : v;
        }
      }
    }
  });
  if (!need_params) return;
  k::parallel_for(C, 64, [&](int64_t b0, int64_t b1, int) {
    for (int64_t c = b0; c < b1; ++c) {
      double sg = 0, sb = 0;
      for (int64_t ch = 0; ch < nchunks; ++ch) {
        sg += pg[static_cast<size_t>(ch * C + c)];
        sb += pb[static_cast<size_t>(ch * C + c)];
      }
      if (dg) dg[c] += static_cast<float>(sg);
      if (db) db[c] += static_cast<float>(sb);
    }
  });
}

// ---- Activations -----------------------------------------------------------------------------------

float act_derivative(Act act, float xf) {
  const double x = xf;
  switch (act) {
    case Act::kGelu: {
      // d/dx [x Φ(x)] = Φ(x) + x φ(x)
      const double cdf = 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
      const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
      return static_cast<float>(cdf + x * pdf);
    }
    case Act::kGeluTanh: {
      const double kk = std::sqrt(2.0 / M_PI);
      const double inner = kk * (x + 0.044715 * x * x * x);
      const double t = std::tanh(inner);
      return static_cast<float>(0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kk * (1.0 + 3.0 * 0.044715 * x * x));
    }
    case Act::kRelu:
      return x > 0 ? 1.0f : 0.0f;
    case Act::kSilu: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return static_cast<float>(s * (1.0 + x * (1.0 - s)));
    }
  }
  return 0.0f;
}

void act_backward(Act act, const float* x, const float* dy, float* dx, int64_t n) {
  k::parallel_for(n, 4096, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * act_derivative(act, x[i]);
  });
}

void glu_backward(Act act, const float* u, const float* dy, float* du, int64_t T, int64_t I) {
  k::parallel_for(T, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const float* ut = u + t * 2 * I;
      const float* dyt = dy + t * I;
      float* dut = du + t * 2 * I;
      int64_t i = 0;
      if (act == Act::kGelu) {
        // Exact GELU, 8 lanes: Φ = 0.5 (1 + erf(x/√2)), φ = exp(-x²/2)/√(2π);
        // gelu = x Φ, gelu' = Φ + x φ (simd erf / exp of the forward kernels, ~1e-7 error).
        const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
        const __m256 rs2 = _mm256_set1_ps(0.70710678118654752f), rs2pi = _mm256_set1_ps(0.39894228040143268f);
        const __m256 mhalf = _mm256_set1_ps(-0.5f);
        for (; i + 8 <= I; i += 8) {
          const __m256 x = _mm256_loadu_ps(ut + i), gate = _mm256_loadu_ps(ut + I + i);
          const __m256 g = _mm256_loadu_ps(dyt + i);
          const __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, k::simd::erf(_mm256_mul_ps(x, rs2))));
          const __m256 pdf = _mm256_mul_ps(rs2pi, k::simd::exp(_mm256_mul_ps(mhalf, _mm256_mul_ps(x, x))));
          const __m256 dact = _mm256_fmadd_ps(x, pdf, cdf);
          _mm256_storeu_ps(dut + i, _mm256_mul_ps(_mm256_mul_ps(g, gate), dact));
          _mm256_storeu_ps(dut + I + i, _mm256_mul_ps(g, _mm256_mul_ps(x, cdf)));
        }
      }
      for (; i < I; ++i) {
        const float a = ut[i], gate = ut[I + i];
        dut[i] = dyt[i] * gate * act_derivative(act, a);
        dut[I + i] = dyt[i] * k::ref::act_scalar(act, a);
      }
    }
  });
}

// ---- RoPE ------------------------------------------------------------------------------------------

void rope_backward(float* dqkv, const int64_t* cu, int64_t num_seqs, int64_t n_heads, const k::RopeTable& table) {
  const int64_t d = table.head_dim, half = d / 2, H = n_heads * d;
  for (int64_t b = 0; b < num_seqs; ++b)
    if (cu[b + 1] - cu[b] > table.max_len) throw Error("rope_backward: sequence longer than the rotary table");
  k::parallel_for(num_seqs, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t t = cu[b]; t < cu[b + 1]; ++t) {
        const float* c = table.cos.data() + (t - cu[b]) * half;
        const float* s = table.sin.data() + (t - cu[b]) * half;
        for (int64_t part = 0; part < 2; ++part)  // Q, then K
          for (int64_t h = 0; h < n_heads; ++h) {
            float* v = dqkv + t * 3 * H + part * H + h * d;
            // forward: y1 = x1 c - x2 s, y2 = x2 c + x1 s  =>  dx1 = dy1 c + dy2 s, dx2 = dy2 c - dy1 s
            for (int64_t j = 0; j < half; ++j) {
              const float dy1 = v[j], dy2 = v[half + j];
              v[j] = dy1 * c[j] + dy2 * s[j];
              v[half + j] = dy2 * c[j] - dy1 * s[j];
            }
          }
      }
  });
}

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
      k::simd::transpose8(v);
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

void attention_forward(const float* qkv, float* out, float* lse, const int64_t* cu, int64_t num_seqs, int64_t n_heads,
                       int64_t d, int64_t hw) {
  k::attention(qkv, out, cu, num_seqs, n_heads, d, hw, nullptr, nullptr, lse);
}

void attention_backward(const float* qkv, const float* out, const float* dout, const float* lse, float* dqkv,
                        const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t d, int64_t hw) {
  const int64_t H = n_heads * d, ld = 3 * H, dp = round16(d), np = dp / 16;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  k::parallel_for(num_seqs * n_heads, 1, [&](int64_t i0, int64_t i1, int) {
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
              k::tile_kernel<false>(mr, Q + (q0 + i) * ld, ld, KT + g * d * 16, S + i * kBlk + p * 16, kBlk, d);
              k::tile_kernel<false>(mr, dO + (q0 + i) * H, H, VT + g * d * 16, dP + i * kBlk + p * 16, kBlk, d);
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
              const __m256 p =
                  _mm256_and_ps(k::simd::exp(_mm256_fmadd_ps(_mm256_loadu_ps(srow + c), vscale, vl)), mask);
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
              k::tile_kernel<true>(mr, dP + i * kBlk + plo * 16, kBlk, Kp + (pn * n16 + k0 + plo * 16) * 16,
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
              k::tile_kernel<true>(mr, dST + j * kBlk + plo * 16, kBlk, Qp + boff, dK + (k0 + j) * dp + pn * 16, dp,
                                   kl);
              k::tile_kernel<true>(mr, PT + j * kBlk + plo * 16, kBlk, dOp + boff, dV + (k0 + j) * dp + pn * 16, dp,
                                   kl);
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

// ---- Embedding -------------------------------------------------------------------------------------

void embedding_backward(const int32_t* ids, const float* dx, float* dE, int64_t T, int64_t H) {
  constexpr int64_t kChunk = 64;
  k::parallel_for((H + kChunk - 1) / kChunk, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t c0 = p * kChunk, c1 = std::min(H, c0 + kChunk);
      for (int64_t t = 0; t < T; ++t) {
        float* row = dE + static_cast<int64_t>(ids[t]) * H;
        const float* src = dx + t * H;
        for (int64_t c = c0; c < c1; ++c) row[c] += src[c];
      }
    }
  });
}

// ---- Losses ----------------------------------------------------------------------------------------

double cross_entropy(const float* logits, const int32_t* labels, float* dlogits, int64_t R, int64_t C, float dscale,
                     int64_t* counted, int64_t* correct) {
  // Per row, AVX2: max (and a NaN check), exp(x - max) with the forward kernels' simd::exp stored
  // into dlogits (or scratch), their sum in double; lse = max + log(sum), nll = lse - x[label]
  // (read before the row may be overwritten: dlogits may alias logits), grad = p · dscale - onehot.
  std::vector<double> nll(static_cast<size_t>(R), 0.0);
  std::vector<uint8_t> hit(static_cast<size_t>(R), 0);
  const int nt = k::default_pool().size();
  std::vector<std::vector<float>> scratch(dlogits ? 0 : static_cast<size_t>(nt));
  k::parallel_for(R, 1, [&](int64_t b, int64_t e, int tid) {
    for (int64_t r = b; r < e; ++r) {
      const float* x = logits + r * C;
      const int32_t y = labels[r];
      float* out;
      if (dlogits) {
        out = dlogits + r * C;
      } else {
        auto& sc = scratch[static_cast<size_t>(tid)];
        sc.resize(static_cast<size_t>(C));
        out = sc.data();
      }
      if (y < 0) {
        if (dlogits) std::fill(out, out + C, 0.0f);
        continue;
      }
      if (y >= C) throw Error("cross_entropy: label " + std::to_string(y) + " outside [0, " + std::to_string(C) + ")");
      __m256 vm = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
      __m256 vnan = _mm256_setzero_ps();
      int64_t c = 0;
      for (; c + 8 <= C; c += 8) {
        const __m256 v = _mm256_loadu_ps(x + c);
        vm = _mm256_max_ps(vm, v);
        vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      }
      float m = k::simd::hmax(vm);
      bool has_nan = _mm256_movemask_ps(vnan) != 0;
      for (; c < C; ++c) {
        m = std::max(m, x[c]);
        has_nan = has_nan || std::isnan(x[c]);
      }
      const float xy = x[y];
      int64_t am = 0;  // argmax (first maximum)
      while (x[am] != m && am + 1 < C) ++am;
      const __m256 vmax = _mm256_set1_ps(m);
      double total = 0;
      __m256 acc = _mm256_setzero_ps();
      for (c = 0; c + 8 <= C; c += 8) {
        const __m256 ex = k::simd::exp(_mm256_sub_ps(_mm256_loadu_ps(x + c), vmax));
        _mm256_storeu_ps(out + c, ex);
        acc = _mm256_add_ps(acc, ex);
        if ((c & 1023) == 1016) {  // flush float partials every 1024 elements
          total += k::simd::hsum(acc);
          acc = _mm256_setzero_ps();
        }
      }
      total += k::simd::hsum(acc);
      for (; c < C; ++c) {
        out[c] = std::exp(x[c] - m);
        total += out[c];
      }
      const double lse = static_cast<double>(m) + std::log(total);
      nll[static_cast<size_t>(r)] = has_nan ? std::nan("") : lse - static_cast<double>(xy);
      hit[static_cast<size_t>(r)] = am == y;
      if (dlogits) {
        const __m256 sc = _mm256_set1_ps(static_cast<float>(dscale / total));
        for (c = 0; c + 8 <= C; c += 8) _mm256_storeu_ps(out + c, _mm256_mul_ps(_mm256_loadu_ps(out + c), sc));
        for (; c < C; ++c) out[c] = static_cast<float>(out[c] * (dscale / total));
        out[y] -= dscale;
      }
    }
  });
  double sum = 0;
  int64_t n = 0, ok = 0;
  for (int64_t r = 0; r < R; ++r)
    if (labels[r] >= 0) {
      sum += nll[static_cast<size_t>(r)];
      ++n;
      ok += hit[static_cast<size_t>(r)];
    }
  if (counted) *counted = n;
  if (correct) *correct = ok;
  return sum;
}

double mse_loss(const float* pred, const float* target, float* dpred, int64_t n, float dscale) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = static_cast<double>(pred[i]) - target[i];
    s += diff * diff;
    if (dpred) dpred[i] = static_cast<float>(2.0 * diff) * dscale;
  }
  return s;
}

double bce_with_logits(const float* logits, const float* target, float* dlogits, int64_t n, float dscale) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = logits[i], t = target[i];
    s += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x)));
    if (dlogits) dlogits[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)) - t) * dscale;
  }
  return s;
}

}  // namespace modernbert::train
