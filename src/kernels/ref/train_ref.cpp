// Reference twins of the training ops (GEMM helpers, LayerNorm / activation / RoPE / attention
// backward): plain loops, double accumulators, single thread. Contracts in kernels/backend.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/ref/ref.h"
#include "modernbert/error.h"

namespace modernbert::kernels::ref {

void matmul_nn(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate, int64_t lda,
               int64_t ldb, int64_t ldc) {
  if (lda == 0) lda = K;
  if (ldb == 0) ldb = N;
  if (ldc == 0) ldc = N;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[i * lda + k]) * B[k * ldb + j];
      C[i * ldc + j] = static_cast<float>(accumulate ? C[i * ldc + j] + s : s);
    }
}

void matmul_tn_acc(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, int64_t lda,
                   int64_t ldb) {
  if (lda == 0) lda = N;
  if (ldb == 0) ldb = K;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      double s = 0;
      for (int64_t m = 0; m < M; ++m) s += static_cast<double>(A[m * lda + n]) * B[m * ldb + k];
      C[n * K + k] = static_cast<float>(C[n * K + k] + s);
    }
}

void bias_grad_acc(const float* dY, float* db, int64_t M, int64_t N) {
  for (int64_t c = 0; c < N; ++c) {
    double s = 0;
    for (int64_t m = 0; m < M; ++m) s += dY[m * N + c];
    db[c] += static_cast<float>(s);
  }
}

void linear_backward(const float* X, const float* W, const float* dY, float* dX, bool accumulate_dx, float* dW,
                     float* db, int64_t M, int64_t N, int64_t K) {
  if (dX) matmul_nn(dY, W, dX, M, K, N, accumulate_dx);
  if (dW) matmul_tn_acc(dY, X, dW, M, N, K);
  if (db) bias_grad_acc(dY, db, M, N);
}

void layernorm_backward(const float* dy, const float* x, const float* g, const float* mean, const float* rstd,
                        float* dx, bool accumulate_dx, float* dg, float* db, int64_t rows, int64_t C) {
  std::vector<double> sg(static_cast<size_t>(C), 0.0), sb(static_cast<size_t>(C), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* dyr = dy + r * C;
    const float* xr = x + r * C;
    const double m = mean[r], rs = rstd[r];
    double s1 = 0, s2 = 0;
    for (int64_t c = 0; c < C; ++c) {
      const double xh = (xr[c] - m) * rs, dyg = static_cast<double>(dyr[c]) * (g ? g[c] : 1.0f);
      s1 += dyg;
      s2 += dyg * xh;
      sg[static_cast<size_t>(c)] += dyr[c] * xh;
      sb[static_cast<size_t>(c)] += dyr[c];
    }
    s1 /= static_cast<double>(C);
    s2 /= static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c) {
      const double xh = (xr[c] - m) * rs, dyg = static_cast<double>(dyr[c]) * (g ? g[c] : 1.0f);
      const double v = rs * (dyg - s1 - xh * s2);
      dx[r * C + c] = static_cast<float>(accumulate_dx ? dx[r * C + c] + v : v);
    }
  }
  for (int64_t c = 0; c < C; ++c) {
    if (dg) dg[c] += static_cast<float>(sg[static_cast<size_t>(c)]);
    if (db) db[c] += static_cast<float>(sb[static_cast<size_t>(c)]);
  }
}

void act_backward(Act act, const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * act_derivative(act, x[i]);
}

void glu_backward(Act act, const float* u, const float* dy, float* du, int64_t T, int64_t I) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < I; ++i) {
      const float a = u[t * 2 * I + i], gate = u[t * 2 * I + I + i], g = dy[t * I + i];
      du[t * 2 * I + i] = static_cast<float>(static_cast<double>(g) * gate * act_derivative(act, a));
      du[t * 2 * I + I + i] = static_cast<float>(static_cast<double>(g) * act_scalar(act, a));
    }
}

void rope_backward(float* dqkv, const int64_t* cu, int64_t num_seqs, int64_t n_heads, const RopeTable& table) {
  const int64_t d = table.head_dim, half = d / 2, H = n_heads * d;
  for (int64_t b = 0; b < num_seqs; ++b) {
    if (cu[b + 1] - cu[b] > table.max_len) throw Error("rope_backward: sequence longer than the rotary table");
    for (int64_t t = cu[b]; t < cu[b + 1]; ++t) {
      const float* c = table.cos.data() + (t - cu[b]) * half;
      const float* s = table.sin.data() + (t - cu[b]) * half;
      for (int64_t part = 0; part < 2; ++part)
        for (int64_t h = 0; h < n_heads; ++h) {
          float* v = dqkv + t * 3 * H + part * H + h * d;
          for (int64_t j = 0; j < half; ++j) {
            const double dy1 = v[j], dy2 = v[half + j];
            v[j] = static_cast<float>(dy1 * c[j] + dy2 * s[j]);
            v[half + j] = static_cast<float>(dy2 * c[j] - dy1 * s[j]);
          }
        }
    }
  }
}

// Dense per (sequence, head, query row): P recomputed from lse, then the FlashAttention-2
// recurrence written out in double.
void attention_backward(const float* qkv, const float* out, const float* dout, const float* lse, float* dqkv,
                        const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t d, int64_t hw) {
  const int64_t H = n_heads * d, ld = 3 * H;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t s = cu[b], n = cu[b + 1] - cu[b];
    std::vector<double> dq, dk, dv, p(static_cast<size_t>(n));
    for (int64_t h = 0; h < n_heads; ++h) {
      dq.assign(static_cast<size_t>(n * d), 0.0);
      dk.assign(static_cast<size_t>(n * d), 0.0);
      dv.assign(static_cast<size_t>(n * d), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const float* q = qkv + (s + i) * ld + h * d;
        const float* o = out + (s + i) * H + h * d;
        const float* g = dout + (s + i) * H + h * d;
        double D = 0;
        for (int64_t c = 0; c < d; ++c) D += static_cast<double>(o[c]) * g[c];
        const double L = lse[(s + i) * n_heads + h];
        for (int64_t j = 0; j < n; ++j) {
          if (hw >= 0 && std::abs(i - j) > hw) continue;
          const float* k = qkv + (s + j) * ld + H + h * d;
          const float* v = qkv + (s + j) * ld + 2 * H + h * d;
          double sc = 0, dp = 0;
          for (int64_t c = 0; c < d; ++c) {
            sc += static_cast<double>(q[c]) * k[c];
            dp += static_cast<double>(g[c]) * v[c];
          }
          const double P = std::exp(sc * scale - L), dS = P * (dp - D);
          for (int64_t c = 0; c < d; ++c) {
            dq[static_cast<size_t>(i * d + c)] += scale * dS * k[c];
            dk[static_cast<size_t>(j * d + c)] += scale * dS * q[c];
            dv[static_cast<size_t>(j * d + c)] += P * g[c];
          }
        }
      }
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < d; ++c) {
          float* dst = dqkv + (s + r) * ld + h * d;
          dst[c] = static_cast<float>(dq[static_cast<size_t>(r * d + c)]);
          dst[H + c] = static_cast<float>(dk[static_cast<size_t>(r * d + c)]);
          dst[2 * H + c] = static_cast<float>(dv[static_cast<size_t>(r * d + c)]);
        }
    }
  }
}

}  // namespace modernbert::kernels::ref

namespace modernbert::kernels::ref {
// The reference attention needs no workspace.
size_t attention_workspace_floats(int64_t, int64_t, int64_t) { return 0; }
}  // namespace modernbert::kernels::ref
