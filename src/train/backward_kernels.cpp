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

// Fixed tile sizes: the split of an output depends only on its shape, never on the thread count.
constexpr int64_t kRowTile = 64;
constexpr int64_t kColTile = 256;
constexpr double kSerialFlops = 1e6;


}  // namespace

// ---- GEMMs -----------------------------------------------------------------------------------------

void matmul_nn(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
               int64_t lda, int64_t ldb, int64_t ldc) {
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
    k::sgemm_serial(false, false, m1 - m0, n1 - n0, K, 1.0f, A + m0 * lda, lda, B + n0, ldb, beta, C + m0 * ldc + n0, ldc);
  };
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (flops < kSerialFlops) return block(0, M, 0, N);
  if (M >= 2 * kRowTile) {
    k::parallel_for((M + kRowTile - 1) / kRowTile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(p * kRowTile, std::min(M, (p + 1) * kRowTile), 0, N);
    });
  } else {
    k::parallel_for((N + kColTile - 1) / kColTile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(0, M, p * kColTile, std::min(N, (p + 1) * kColTile));
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
  if (N >= 2 * kRowTile) {
    k::parallel_for((N + kRowTile - 1) / kRowTile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(p * kRowTile, std::min(N, (p + 1) * kRowTile), 0, K);
    });
  } else {
    k::parallel_for((K + kColTile - 1) / kColTile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(0, N, p * kColTile, std::min(K, (p + 1) * kColTile));
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

void layernorm_forward(const float* x, const float* g, const float* b, float* y, float* mean, float* rstd,
                       int64_t rows, int64_t C, float eps) {
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
        double s1 = 0, s2 = 0;  // mean(dy·g), mean(dy·g·xhat)
        for (int64_t c = 0; c < C; ++c) {
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
        for (int64_t c = 0; c < C; ++c) {
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
    case Act::kRelu: return x > 0 ? 1.0f : 0.0f;
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

namespace {

constexpr int64_t kQBlock = 64;

struct AttnItem {
  int64_t b, h, q0, q1;  // query rows [q0, q1) (absolute token indices)
};

// Visible key range of query i (absolute) in sequence [s, e): [lo, hi).
inline void key_range(int64_t i, int64_t s, int64_t e, int64_t hw, int64_t* lo, int64_t* hi) {
  if (hw < 0) {
    *lo = s;
    *hi = e;
  } else {
    *lo = std::max(s, i - hw);
    *hi = std::min(e, i + hw + 1);
  }
}

}  // namespace

void attention_forward(const float* qkv, float* out, float* lse, const int64_t* cu, int64_t num_seqs,
                       int64_t n_heads, int64_t d, int64_t hw) {
  ensure_blas_configured();
  const int64_t H = n_heads * d, ld = 3 * H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  std::vector<AttnItem> items;
  int64_t max_band = 0;
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t n = cu[b + 1] - cu[b];
    max_band = std::max(max_band, hw < 0 ? n : std::min(n, kQBlock + 2 * hw));
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t q0 = cu[b]; q0 < cu[b + 1]; q0 += kQBlock) items.push_back({b, h, q0, std::min(cu[b + 1], q0 + kQBlock)});
  }
  const int nt = k::default_pool().size();
  std::vector<std::vector<float>> scratch(static_cast<size_t>(nt));
  k::parallel_for(static_cast<int64_t>(items.size()), 1, [&](int64_t i0, int64_t i1, int tid) {
    auto& S = scratch[static_cast<size_t>(tid)];
    if (S.size() < static_cast<size_t>(kQBlock * max_band)) S.resize(static_cast<size_t>(kQBlock * max_band));
    for (int64_t it = i0; it < i1; ++it) {
      const AttnItem& w = items[static_cast<size_t>(it)];
      const int64_t s = cu[w.b], e = cu[w.b + 1];
      int64_t k0, k1, tmp;
      key_range(w.q0, s, e, hw, &k0, &tmp);
      key_range(w.q1 - 1, s, e, hw, &tmp, &k1);
      const int64_t nq = w.q1 - w.q0, nk = k1 - k0;
      const float* Q = qkv + w.q0 * ld + w.h * d;
      const float* K = qkv + k0 * ld + H + w.h * d;
      const float* V = qkv + k0 * ld + 2 * H + w.h * d;
      // S[nq, nk] = scale · Q K^T
      k::sgemm_serial(false, true, nq, nk, d, scale, Q, ld, K, ld, 0.0f, S.data(), nk);
      for (int64_t r = 0; r < nq; ++r) {
        const int64_t i = w.q0 + r;
        int64_t lo, hi;
        key_range(i, s, e, hw, &lo, &hi);
        float* Sr = S.data() + r * nk;
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t j = lo; j < hi; ++j) m = std::max(m, Sr[j - k0]);
        double l = 0;
        for (int64_t j = k0; j < k1; ++j) {
          if (j < lo || j >= hi) {
            Sr[j - k0] = 0.0f;
            continue;
          }
          const float p = std::exp(Sr[j - k0] - m);
          Sr[j - k0] = p;
          l += p;
        }
        const float inv = static_cast<float>(1.0 / l);
        for (int64_t j = lo; j < hi; ++j) Sr[j - k0] *= inv;
        lse[i * n_heads + w.h] = m + static_cast<float>(std::log(l));
      }
      // O[nq, d] = P V
      k::sgemm_serial(false, false, nq, d, nk, 1.0f, S.data(), nk, V, ld, 0.0f, out + w.q0 * H + w.h * d, H);
    }
  });
}

void attention_backward(const float* qkv, const float* out, const float* dout, const float* lse, float* dqkv,
                        const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t d, int64_t hw) {
  ensure_blas_configured();
  const int64_t H = n_heads * d, ld = 3 * H;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  int64_t max_band = 0;
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t n = cu[b + 1] - cu[b];
    max_band = std::max(max_band, hw < 0 ? n : std::min(n, kQBlock + 2 * hw));
  }
  const int nt = k::default_pool().size();
  std::vector<std::vector<float>> scratch(static_cast<size_t>(nt));
  // One item per (sequence, head): it owns dK/dV of those rows, so query blocks accumulate into
  // them in a fixed order without atomics.
  k::parallel_for(num_seqs * n_heads, 1, [&](int64_t i0, int64_t i1, int tid) {
    auto& buf = scratch[static_cast<size_t>(tid)];
    const size_t blk = static_cast<size_t>(kQBlock * max_band);
    if (buf.size() < 2 * blk) buf.resize(2 * blk);
    float* P = buf.data();
    float* dS = buf.data() + blk;
    for (int64_t it = i0; it < i1; ++it) {
      const int64_t b = it / n_heads, h = it % n_heads;
      const int64_t s = cu[b], e = cu[b + 1];
      for (int64_t t = s; t < e; ++t) {
        std::memset(dqkv + t * ld + H + h * d, 0, static_cast<size_t>(d) * sizeof(float));
        std::memset(dqkv + t * ld + 2 * H + h * d, 0, static_cast<size_t>(d) * sizeof(float));
      }
      for (int64_t q0 = s; q0 < e; q0 += kQBlock) {
        const int64_t q1 = std::min(e, q0 + kQBlock);
        int64_t k0, k1, tmp;
        key_range(q0, s, e, hw, &k0, &tmp);
        key_range(q1 - 1, s, e, hw, &tmp, &k1);
        const int64_t nq = q1 - q0, nk = k1 - k0;
        const float* Q = qkv + q0 * ld + h * d;
        const float* K = qkv + k0 * ld + H + h * d;
        const float* V = qkv + k0 * ld + 2 * H + h * d;
        const float* dO = dout + q0 * H + h * d;
        // Recompute P = exp(scale·QKᵀ - lse) on the visible band, 0 elsewhere.
        k::sgemm_serial(false, true, nq, nk, d, scale, Q, ld, K, ld, 0.0f, P, nk);
        // dP = dO Vᵀ
        k::sgemm_serial(false, true, nq, nk, d, 1.0f, dO, H, V, ld, 0.0f, dS, nk);
        for (int64_t r = 0; r < nq; ++r) {
          const int64_t i = q0 + r;
          int64_t lo, hi;
          key_range(i, s, e, hw, &lo, &hi);
          const float L = lse[i * n_heads + h];
          double D = 0;  // rowsum(dO ⊙ O)
          const float* o = out + i * H + h * d;
          const float* go = dout + i * H + h * d;
          for (int64_t c = 0; c < d; ++c) D += static_cast<double>(o[c]) * go[c];
          const float Df = static_cast<float>(D);
          float* Pr = P + r * nk;
          float* dSr = dS + r * nk;
          for (int64_t j = k0; j < k1; ++j) {
            if (j < lo || j >= hi) {
              Pr[j - k0] = 0.0f;
              dSr[j - k0] = 0.0f;
              continue;
            }
            const float p = std::exp(Pr[j - k0] - L);
            Pr[j - k0] = p;
            dSr[j - k0] = p * (dSr[j - k0] - Df);
          }
        }
        // dQ[q0:q1] = scale · dS K  (each query row belongs to exactly one block: overwrite)
        k::sgemm_serial(false, false, nq, d, nk, scale, dS, nk, K, ld, 0.0f, dqkv + q0 * ld + h * d, ld);
        // dK[k0:k1] += scale · dSᵀ Q ;  dV[k0:k1] += Pᵀ dO
        k::sgemm_serial(true, false, nk, d, nq, scale, dS, nk, Q, ld, 1.0f, dqkv + k0 * ld + H + h * d, ld);
        k::sgemm_serial(true, false, nk, d, nq, 1.0f, P, nk, dO, H, 1.0f, dqkv + k0 * ld + 2 * H + h * d, ld);
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
