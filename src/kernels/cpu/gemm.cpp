// GEMM wrapper: Y[M,N] = X[M,K] · W[N,K]^T (+ bias) (+ Y). The only place that calls BLAS.
//
// Threading: OpenBLAS (pthreads build) keeps its worker threads spinning for a while after each
// call, which would compete with our pool in the attention/norm kernels that follow every gemm.
// So by default (kPool) OpenBLAS is pinned to one thread and we split the output over our pool:
// by rows of X when M is large (each slice packs W itself; with >= 64 rows per slice that cost is
// small), otherwise by rows of W (output columns): the small-M case of the classifier/MLM heads.
// kNative (one call, OpenBLAS threads it) is kept for comparison; bench/bench_kernels times both,
// per gemm and for a whole encoder. On the shared 2-core dev machine they were within noise.
//
// Backend: oneDNN's dnnl_sgemm when built with it (the default: measured 2.5-12% faster end to end
// than OpenBLAS on the four bench workloads, same run, idle machine; docs/benchmarks.md), else
// OpenBLAS cblas_sgemm; MODERNBERT_GEMM=openblas|onednn overrides (read once). Both are called
// single-threaded from our pool's threads; for oneDNN (OpenMP runtime) each pool thread sets its
// OpenMP team size to 1 before its first call.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#ifdef MODERNBERT_HAVE_ONEDNN
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#endif

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/thread_pool.h"

namespace modernbert::kernels {

namespace {
std::atomic<GemmThreading> g_threading{GemmThreading::kPool};
std::once_flag g_blas_once;

enum class Backend { kOpenBlas, kOneDnn };
Backend backend() {
  static const Backend b = [] {
    const char* e = std::getenv("MODERNBERT_GEMM");
    const std::string v = e ? e : "";
#ifdef MODERNBERT_HAVE_ONEDNN
    return v == "openblas" ? Backend::kOpenBlas : Backend::kOneDnn;
#else
    return Backend::kOpenBlas;
#endif
  }();
  return b;
}

}  // namespace

const char* gemm_backend_name() { return backend() == Backend::kOneDnn ? "onednn" : "openblas"; }

namespace {

void configure_blas(GemmThreading t) {
  openblas_set_num_threads(t == GemmThreading::kPool ? 1 : default_pool().size());
}

// One BLAS call (sgemm_serial) for a block of the output. Bias (if any) is copied into Y first and the gemm
// accumulates (beta = 1), which keeps the epilogue out of a second pass over Y.
void gemm_block(const float* X, int64_t ldx, const float* W, int64_t ldw, const float* bias, float* Y, int64_t ldy,
                int64_t M, int64_t N, int64_t K, bool accumulate) {
  float beta = accumulate ? 1.0f : 0.0f;
  if (bias) {
    for (int64_t i = 0; i < M; ++i) {
      float* y = Y + i * ldy;
      if (accumulate) {
        for (int64_t j = 0; j < N; ++j) y[j] += bias[j];
      } else {
        std::memcpy(y, bias, static_cast<size_t>(N) * sizeof(float));
      }
    }
    beta = 1.0f;
  }
  if (K == 0) {
    if (beta == 0.0f)
      for (int64_t i = 0; i < M; ++i) std::fill(Y + i * ldy, Y + i * ldy + N, 0.0f);
    return;
  }
  sgemm_serial(false, true, M, N, K, 1.0f, X, ldx, W, ldw, beta, Y, ldy);
}
}  // namespace

void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  std::call_once(g_blas_once, [] { configure_blas(g_threading.load()); });
#ifdef MODERNBERT_HAVE_ONEDNN
  if (backend() == Backend::kOneDnn) {
    thread_local bool single = [] {
      if (g_threading.load() == GemmThreading::kPool) omp_set_num_threads(1);
      return true;
    }();
    (void)single;
    dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), alpha, A, static_cast<int>(lda), B,
              static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

void set_gemm_threading(GemmThreading t) {
  std::call_once(g_blas_once, [] {});
  g_threading.store(t);
  configure_blas(t);
}

GemmThreading gemm_threading() { return g_threading.load(); }

void gemm(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K, bool accumulate,
          int64_t ldx, int64_t ldy) {
  if (ldx == 0) ldx = K;
  if (ldy == 0) ldy = N;
  if (M <= 0 || N <= 0) return;
  std::call_once(g_blas_once, [] { configure_blas(g_threading.load()); });
  ThreadPool& pool = default_pool();
  const int nt = pool.size();
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (g_threading.load() == GemmThreading::kNative || nt == 1 || flops < 2e6) {
    gemm_block(X, ldx, W, K, bias, Y, ldy, M, N, K, accumulate);
    return;
  }
  if (M >= 64 * nt) {
    // Row slices, rounded to multiples of 16 rows (the BLAS micro-tile height).
    const int64_t rows = ((M + nt - 1) / nt + 15) / 16 * 16;
    const int64_t parts = (M + rows - 1) / rows;
    pool.parallel_for(parts, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t r0 = p * rows, r1 = std::min(M, r0 + rows);
        gemm_block(X + r0 * ldx, ldx, W, K, bias, Y + r0 * ldy, ldy, r1 - r0, N, K, accumulate);
      }
    });
  } else {
    // Column slices: each thread multiplies all rows by its own rows of W.
    const int64_t cols = ((N + nt - 1) / nt + 15) / 16 * 16;
    const int64_t parts = (N + cols - 1) / cols;
    pool.parallel_for(parts, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t c0 = p * cols, c1 = std::min(N, c0 + cols);
        gemm_block(X, ldx, W + c0 * K, K, bias ? bias + c0 : nullptr, Y + c0, ldy, M, c1 - c0, K, accumulate);
      }
    });
  }
}

namespace ref {
void gemm(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K, bool accumulate,
          int64_t ldx, int64_t ldy) {
  if (ldx == 0) ldx = K;
  if (ldy == 0) ldy = N;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = bias ? bias[j] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(X[i * ldx + k]) * W[j * K + k];
      Y[i * ldy + j] = static_cast<float>(accumulate ? Y[i * ldy + j] + s : s);
    }
}
}  // namespace ref

}  // namespace modernbert::kernels
