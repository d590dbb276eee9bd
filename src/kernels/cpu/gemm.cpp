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
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#ifdef MODERNBERT_HAVE_ONEDNN
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#endif

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/ref/ref.h"

namespace modernbert::kernels {

namespace {
std::atomic<GemmThreading> g_threading{GemmThreading::kPool};
std::once_flag g_blas_once;

enum class SgemmLib { kOpenBlas, kOneDnn };
SgemmLib sgemm_lib() {
  static const SgemmLib b = [] {
    const char* e = std::getenv("MODERNBERT_GEMM");
    const std::string v = e ? e : "";
#ifdef MODERNBERT_HAVE_ONEDNN
    return v == "openblas" ? SgemmLib::kOpenBlas : SgemmLib::kOneDnn;
#else
    return SgemmLib::kOpenBlas;
#endif
  }();
  return b;
}

}  // namespace

const char* gemm_backend_name() { return sgemm_lib() == SgemmLib::kOneDnn ? "onednn" : "openblas"; }

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
  cpu::sgemm_serial(false, true, M, N, K, 1.0f, X, ldx, W, ldw, beta, Y, ldy);
}
}  // namespace

void cpu::sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                       int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  std::call_once(g_blas_once, [] { configure_blas(g_threading.load()); });
#ifdef MODERNBERT_HAVE_ONEDNN
  if (sgemm_lib() == SgemmLib::kOneDnn) {
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

void set_num_threads(int n) {
  set_default_threads(n);
  // Re-pin the BLAS library to the new size (kNative threads it over the pool's size).
  std::call_once(g_blas_once, [] {});
  configure_blas(g_threading.load());
}

void cpu::gemm(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
               bool accumulate, int64_t ldx, int64_t ldy) {
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

// ---- Training GEMM helpers (the backward's dX, dW, db) ---------------------------------------------
// Deterministic: outputs split into fixed tiles whose count depends on the shape only, never on the
// thread count, each tile one sgemm call reduced by one thread.

namespace {

// OpenBLAS must run single-threaded inside our pool; configure it once (as the forward gemm does).
void ensure_blas_configured() {
  std::call_once(g_blas_once, [] { configure_blas(g_threading.load()); });
}

// Output tiles per GEMM: as few as keep both cores busy, each worth >= ~2 GFLOP, and an even
// number so two threads get equal shares. Measured on the backward's shapes (T = 2048, base
// model, 2 threads): 64-row tiles ran at ~130 GFLOP/s, quarter/half splits at ~150-165 (every
// BLAS call packs its operands; fewer, larger calls amortise that). The count depends on the
// shape only, never on the thread count (the determinism rule of kernels/backend.h).
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

namespace cpu {

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
    sgemm_serial(false, false, m1 - m0, n1 - n0, K, 1.0f, A + m0 * lda, lda, B + n0, ldb, beta, C + m0 * ldc + n0, ldc);
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
    parallel_for(kSplitK, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) {
        const int64_t k0 = p * len, kn = std::min(K, k0 + len) - k0;
        sgemm_serial(false, false, M, N, kn, 1.0f, A + k0, lda, B + k0 * ldb, ldb, 0.0f, partial.data() + p * M * N, N);
      }
    });
    parallel_for(M, 16, [&](int64_t b, int64_t e, int) {
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
    parallel_for((M + tile - 1) / tile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(p * tile, std::min(M, (p + 1) * tile), 0, N);
    });
  } else {
    const int64_t tile = tile_length(flops, N);
    parallel_for((N + tile - 1) / tile, 1, [&](int64_t b, int64_t e, int) {
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
    sgemm_serial(true, false, n1 - n0, k1 - k0, M, 1.0f, A + n0, lda, B + k0, ldb, 1.0f, C + n0 * K + k0, K);
  };
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (flops < kSerialFlops) return block(0, N, 0, K);
  if (N >= 128) {
    const int64_t tile = tile_length(flops, N);
    parallel_for((N + tile - 1) / tile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(p * tile, std::min(N, (p + 1) * tile), 0, K);
    });
  } else {
    const int64_t tile = tile_length(flops, K);
    parallel_for((K + tile - 1) / tile, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) block(0, N, p * tile, std::min(K, (p + 1) * tile));
    });
  }
}

void bias_grad_acc(const float* dY, float* db, int64_t M, int64_t N) {
  // Columns split in fixed chunks; each column summed over rows in order (in double).
  constexpr int64_t kChunk = 64;
  parallel_for((N + kChunk - 1) / kChunk, 1, [&](int64_t b, int64_t e, int) {
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

}  // namespace cpu

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
