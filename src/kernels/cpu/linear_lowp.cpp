// Reduced-precision inference ops of the cpu backend (#15): linear over bf16 / f16 / int8 weights,
// the typed embedding gather, per-row int8 quantization and the exact int8 GEMM. Contracts in
// kernels/backend.h; the int8 scheme in modernbert/precision.h.
//
// Paths, chosen at run time (onednn_matmul.cpp probes oneDNN once; linear_path() names them):
//   kBF16  native bf16 (oneDNN's effective ISA has AVX512-BF16 / AMX): X rounded to bf16 (RNE)
//          into a scratch, one bf16 x bf16 -> f32 oneDNN matmul per pool slice, W read in place
//          (oneDNN `ba` layout), bias by oneDNN. Otherwise the widening path: W widened to fp32 in
//          panels of panel_rows() rows (per-thread scratch) for the fp32 sgemm, X stays fp32; at
//          M >= 256 rows W widened whole once and the fp32 gemm; at M <= 4 rows a kernel converting
//          W in registers instead (gemv_lowp.cpp). Below 256 rows the pool splits the columns only,
//          so no two threads widen the same panel.
//   kF16   always the widening path (oneDNN 2.6 has no f16 matmul). Where oneDNN's fp32 brgemm
//          reads pre-packed weights (AVX-512) and W would be widened whole (M >= 256), W is widened
//          straight into that packed layout once per call and pieces of up to 128 rows are dealt to
//          the pool (the packed path below; their count a multiple of the threads); likewise bf16
//          without native bf16.
//   kInt8  X quantized per row into a scratch; int32 products by oneDNN's s8 x s8 -> s32 matmul
//          where a probe finds them exact (VNNI / AMX), else by our own int16 kernel (gemm_i8.cpp;
//          pre-VNNI oneDNN saturates); the int32 tile is written into Y's own storage and the
//          epilogue converts it in place.
// Threading as the fp32 gemm: M split over default_pool() when M >= 64 per thread (slices of 16k
// rows), else N; each slice is one single-threaded call. Scratch is thread-local, grown, never
// shrunk.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/attention_bf16.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/lowp.h"
#include "modernbert/error.h"

namespace modernbert::kernels {

namespace {

using cpu::lowp::MatmulKind;

template <class T>
T* grow(std::vector<T>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Calls f(m0, m1, n0, n1) for the slices of the [M, N] output (the split of cpu::gemm).
// Rows are split from min_rows_per_thread rows a thread on (kColumnsOnly: never), else the columns.
constexpr int64_t kColumnsOnly = INT64_MAX;
template <class F>
void for_slices(int64_t M, int64_t N, int64_t K, F&& f, int64_t min_rows_per_thread = 64) {
  ThreadPool& pool = default_pool();
  const int nt = pool.size();
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  if (nt == 1 || flops < 2e6) return f(int64_t{0}, M, int64_t{0}, N);
  if (M / nt >= min_rows_per_thread) {
    const int64_t rows = ((M + nt - 1) / nt + 15) / 16 * 16;
    pool.parallel_for((M + rows - 1) / rows, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) f(p * rows, std::min(M, (p + 1) * rows), int64_t{0}, N);
    });
  } else {
    const int64_t cols = ((N + nt - 1) / nt + 15) / 16 * 16;
    pool.parallel_for((N + cols - 1) / cols, 1, [&](int64_t b, int64_t e, int) {
      for (int64_t p = b; p < e; ++p) f(int64_t{0}, M, p * cols, std::min(N, (p + 1) * cols));
    });
  }
}

// Rows of W per widened fp32 panel: ~2 MB of fp32. Each sgemm call packs its rows of X again, so
// few large panels beat L2-sized ones: f16 / f32 at 512 x 768 x 768, single thread, Zen 5: 0.92-0.93
// with 128K-float panels, 0.99-1.01 with 600K, 0.96-1.02 with 4M (3 alternating runs each).
int64_t panel_rows(int64_t K) { return std::clamp<int64_t>((524288 / std::max<int64_t>(K, 1)) / 16 * 16, 16, 1024); }

// The widening path for one output slice: Y[0:rows, n0:n1] = X[0:rows] · widen(W[n0:n1])^T + bias
// (X and Y point at the slice's first row).
void widened_slice(const float* X, int64_t ldx, Precision type, const uint16_t* W, const float* bias, float* Y,
                   int64_t ldy, int64_t rows, int64_t n0, int64_t n1, int64_t K) {
  if (rows <= cpu::lowp::kGemvMaxRows)
    return cpu::lowp::gemv_widened(X, ldx, type == Precision::kF16, W, bias, Y, ldy, rows, n0, n1, K);
  thread_local std::vector<float> panel_buf;
  const int64_t pr = panel_rows(K);
  float* panel = grow(panel_buf, pr * K);
  for (int64_t p0 = n0; p0 < n1; p0 += pr) {
    const int64_t nb = std::min(pr, n1 - p0);
    if (type == Precision::kBF16)
      cpu::lowp::widen_bf16(W + p0 * K, panel, nb * K);
    else
      cpu::lowp::widen_f16(W + p0 * K, panel, nb * K);
    float beta = 0.0f;
    if (bias) {
      for (int64_t i = 0; i < rows; ++i)
        std::memcpy(Y + i * ldy + p0, bias + p0, static_cast<size_t>(nb) * sizeof(float));
      beta = 1.0f;
    }
    cpu::sgemm_serial(false, true, rows, nb, K, 1.0f, X, ldx, panel, K, beta, Y + p0, ldy);
  }
}

// Large M: all of W widened once (in parallel, into the calling thread's scratch), then the fp32
// gemm exactly as for f32 weights. N·K conversions against 2·M·N·K flops, so the widening is in the
// noise, whereas per-slice panels widen W once per thread and cut each slice's sgemm into panel
// calls. Base encoder, 64 x 128 tokens, 2 threads, Zen 5, f16 / f32 tokens/s: 0.93-0.98 with
// panels, 1.00-1.03 widened whole (Wo_mlp alone 0.86 -> 1.01). Capped at kWidenWholeMaxElems (16
// MiB of fp32, 2x the largest base layer matrix) so an f16 MLM decoder [50368 x 768] keeps the
// panel path and adds no 150 MiB scratch.
constexpr int64_t kWidenWholeMinRows = 256;
constexpr int64_t kWidenWholeMaxElems = int64_t{4} << 20;

// All of W [N, K] (bf16 or f16) widened, in parallel, into `wide` (default: the calling thread's
// scratch).
const float* widen_whole(Precision type, const uint16_t* W, int64_t N, int64_t K, float* wide = nullptr) {
  thread_local std::vector<float> caller_wide;
  if (!wide) wide = grow(caller_wide, N * K);
  default_pool().parallel_for(N, std::max<int64_t>(1, 16384 / K), [&](int64_t b, int64_t e, int) {
    cpu::lowp::widen_16(type, W + b * K, wide + b * K, (e - b) * K);
  });
  return wide;
}

// ---- The packed path (AVX-512: oneDNN's fp32 brgemm on weights packed once per call) ----------------
// Where linear() would widen W whole, and oneDNN's brgemm reads packed weights (lowp.h), W is widened
// straight into the packed layout instead, once per call, and the rows are run in pieces of up to
// lowp::kPackedPieceRows, dealt to the pool: each piece is one single-threaded matmul that packs
// nothing, so the pieces can be small enough for a 16-bit X's widened rows (and a 16-bit output's
// fp32 rows) to stay in L2 between the ops around the matmul. f16 / f32 at base shapes, 8192 rows,
// 2 threads, Zen 4: see docs/benchmarks.md (sessions 14 and 15).

// Rows per piece for M rows: at most kPackedPieceRows, a multiple of 16 (but the last piece), and
// as many pieces as a multiple of the pool's threads, so that no thread idles while another runs
// the last piece: 384 rows on 2 threads are 4 pieces of 96 rather than 128 + 128 + 128 (one thread
// doing two thirds of the work: f16 linears at 384 rows ran 0.75-0.86x of f32 that way).
int64_t packed_piece_rows(int64_t M) {
  const int64_t nt = std::max(1, default_pool().size());
  constexpr int64_t kMax = cpu::lowp::kPackedPieceRows;
  const int64_t pieces = (M + kMax * nt - 1) / (kMax * nt) * nt;
  return std::min(kMax, ((M + pieces - 1) / pieces + 15) / 16 * 16);
}

bool packed_path() { return cpu::lowp::onednn_packed_usable(); }

// widen(W) packed (packed_floats(N, K) floats), in parallel over its 64-channel panels, into
// `workspace` when it holds it, else into the calling thread's scratch.
const float* widen_pack_parallel(Precision type, const uint16_t* W, int64_t N, int64_t K, float* workspace = nullptr,
                                 int64_t workspace_floats = 0) {
  thread_local std::vector<float> caller_packed;
  const int64_t pf = cpu::lowp::packed_floats(N, K);
  float* P = workspace && workspace_floats >= pf ? workspace : grow(caller_packed, pf);
  parallel_for((N + cpu::lowp::kPackN - 1) / cpu::lowp::kPackN, 1,
               [&](int64_t b, int64_t e, int) { cpu::lowp::widen_pack(type, W, N, K, P, b, e); });
  return P;
}

// Y = x · widen(W)^T + bias a piece of rows at a time, W packed in P. X is fp32 (xtype kF32, row
// stride ldx) or 16-bit bits of xtype (dense), widened a piece at a time. With y_tile each piece's
// output goes to a [rows, N] scratch and epilogue(m0, rows, y) takes it from there (on the pool
// thread that ran the piece), else to Y + m0 * ldy. A piece whose primitive cannot be made runs on
// the widening panels instead (widened_slice).
struct PieceScratch {
  std::vector<float> x, y;  // a piece's widened X [rows, K] and fp32 output [rows, N]
};
// This thread's piece scratch (one for every instantiation of packed_rows; grown, never shrunk).
PieceScratch& piece_scratch() {
  thread_local PieceScratch s;
  return s;
}

template <class Epilogue>
void packed_rows(Precision xtype, const void* X, int64_t ldx, const WeightMatrix& W, const float* P, const float* bias,
                 float* Y, int64_t ldy, int64_t M, int64_t N, int64_t K, bool y_tile, Epilogue&& epilogue) {
  const int64_t piece = packed_piece_rows(M);
  parallel_for((M + piece - 1) / piece, 1, [&](int64_t b, int64_t e, int) {
    std::vector<float>& xt_buf = piece_scratch().x;
    std::vector<float>& yt_buf = piece_scratch().y;
    for (int64_t c = b; c < e; ++c) {
      const int64_t m0 = c * piece, rows = std::min(piece, M - m0);
      const float* x = nullptr;
      int64_t lda = ldx;
      if (xtype == Precision::kF32) {
        x = static_cast<const float*>(X) + m0 * ldx;
      } else {
        float* xt = grow(xt_buf, rows * K);
        cpu::lowp::widen_16(xtype, static_cast<const uint16_t*>(X) + m0 * K, xt, rows * K);
        x = xt, lda = K;
      }
      float* y = y_tile ? grow(yt_buf, rows * N) : Y + m0 * ldy;
      const int64_t ldc = y_tile ? N : ldy;
      if (!cpu::lowp::onednn_matmul_packed(x, lda, P, bias, y, ldc, rows, N, K))
        widened_slice(x, lda, W.type, static_cast<const uint16_t*>(W.data), bias, y, ldc, rows, 0, N, K);
      if (y_tile) epilogue(m0, rows, static_cast<const float*>(y));
    }
  });
}

void linear_widened_whole(const float* X, int64_t ldx, Precision type, const uint16_t* W, const float* bias, float* Y,
                          int64_t ldy, int64_t M, int64_t N, int64_t K) {
  if (packed_path() && ldx == K && ldy == N) {  // (brgemm: dense X and Y only)
    const float* P = widen_pack_parallel(type, W, N, K);
    return packed_rows(Precision::kF32, X, ldx, WeightMatrix{type, W}, P, bias, Y, ldy, M, N, K, false,
                       [](int64_t, int64_t, const float*) {});
  }
  cpu::gemm(X, widen_whole(type, W, N, K), bias, Y, M, N, K, false, ldx, ldy);
}

// y = widen_t(x) / y = t(x) (RNE) over n elements, in parallel (t kBF16 or kF16).
void widen16_parallel(Precision t, const uint16_t* x, float* y, int64_t n) {
  parallel_for(n, 16384, [&](int64_t b, int64_t e, int) { cpu::lowp::widen_16(t, x + b, y + b, e - b); });
}
void round16_parallel(Precision t, const float* x, uint16_t* y, int64_t n) {
  parallel_for(n, 16384, [&](int64_t b, int64_t e, int) { cpu::lowp::round_16(t, x + b, y + b, e - b); });
}

// Rows of X widened per step of linear_16in. Each step is one threaded sgemm call, which packs W
// again: with 512-row tiles (256 rows per thread) that cost the base encoder's f16 GEMMs 5-10%
// against one call over all rows (Zen 4, 64 x 128 tokens, 2 threads), with 2048-row tiles ~1%.
// The tiles of X (and of Y for a 16-bit output) and the widened W go to the caller's workspace
// when it holds them at >= kStreamMinTile rows (the encoder hands over the free part of its arena),
// else to thread-local scratch at kStreamTileRows.
constexpr int64_t kStreamTileRows = 512;
constexpr int64_t kStreamMinTile = 256;
constexpr int64_t kStreamMaxTile = 4096;

// Y = xb · W^T + bias on the native bf16 matmul, xb [M, K] dense bf16 (X already rounded).
void matmul_bf16_native(const uint16_t* xb, const uint16_t* W, const float* bias, float* Y, int64_t ldy, int64_t M,
                        int64_t N, int64_t K) {
  for_slices(M, N, K, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (cpu::lowp::onednn_matmul(MatmulKind::kBf16, xb + m0 * K, W + n0 * K, bias ? bias + n0 : nullptr,
                                 Y + m0 * ldy + n0, ldy, m1 - m0, n1 - n0, K))
      return;
    // This shape has no primitive (unexpected once the probe passed): the same numbers (X rounded
    // to bf16) through the widening path.
    thread_local std::vector<float> xr_buf;
    float* xr = grow(xr_buf, (m1 - m0) * K);
    cpu::lowp::widen_bf16(xb + m0 * K, xr, (m1 - m0) * K);
    widened_slice(xr, K, Precision::kBF16, W, bias, Y + m0 * ldy, ldy, m1 - m0, n0, n1, K);
  });
}

void linear_bf16_native(const float* X, int64_t ldx, const uint16_t* W, const float* bias, float* Y, int64_t ldy,
                        int64_t M, int64_t N, int64_t K) {
  thread_local std::vector<uint16_t> caller_xb;
  uint16_t* xb = grow(caller_xb, M * K);
  parallel_for(M, std::max<int64_t>(1, 8192 / K), [&](int64_t b, int64_t e, int) {
    for (int64_t m = b; m < e; ++m) cpu::lowp::round_bf16(X + m * ldx, xb + m * K, K);
  });
  matmul_bf16_native(xb, W, bias, Y, ldy, M, N, K);
}

// C (ldc) = A[M,K] · B[N,K]^T exactly in int32, on the calling thread.
void i8_core(const int8_t* A, const int8_t* B, int32_t* C, int64_t ldc, int64_t M, int64_t N, int64_t K) {
  if (cpu::lowp::onednn_matmul_usable(MatmulKind::kS8) &&
      cpu::lowp::onednn_matmul(MatmulKind::kS8, A, B, nullptr, C, ldc, M, N, K))
    return;
  cpu::lowp::gemm_i8_own(A, K, B, K, C, ldc, M, N, K);
}

void linear_int8(const float* X, int64_t ldx, const WeightMatrix& W, const float* bias, float* Y, int64_t ldy,
                 int64_t M, int64_t N, int64_t K) {
  if (!W.scale) throw Error("cpu linear: int8 weights without their per-channel scales");
  if (K >= kInt8KLimit)
    throw Error("cpu linear: int8 with K = " + std::to_string(K) + " >= 2^17 (int32 sums may overflow)");
  thread_local std::vector<int8_t> caller_q;
  thread_local std::vector<float> caller_sx;
  int8_t* q = grow(caller_q, M * K);
  float* sx = grow(caller_sx, M);
  cpu::quantize_rows_i8(X, ldx, M, K, q, sx);
  const auto* wq = static_cast<const int8_t*>(W.data);
  for_slices(M, N, K, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    // The int32 sums go to Y's own storage (4 bytes each, same stride), converted in place.
    float* y = Y + m0 * ldy + n0;
    auto* acc = reinterpret_cast<int32_t*>(y);
    i8_core(q + m0 * K, wq + n0 * K, acc, ldy, m1 - m0, n1 - n0, K);
    cpu::lowp::int8_epilogue(acc, sx + m0, W.scale + n0, bias ? bias + n0 : nullptr, y, m1 - m0, n1 - n0, ldy);
  });
}

}  // namespace

bool linear_rounds_x_bf16() { return cpu::lowp::onednn_matmul_usable(MatmulKind::kBf16); }

namespace {
// The widening path's name for 16-bit weights of type `t` ("bf16" / "f16").
std::string widening_path_name(const char* t) {
  const std::string sgemm = std::string("fp32 sgemm (") + gemm_backend_name() + ")";
  const std::string small = sgemm + " on widened " + t + " panels below 256 rows";
  std::string impl;
  if (cpu::lowp::onednn_packed_usable(&impl))
    return "oneDNN fp32 matmul " + impl + " on " + t + " weights widened once per call into its packed layout, " +
           "pieces of up to 128 rows (in the encoder x held in " + t + ", widened a piece at a time); " + small;
  return small + ", W widened whole from 256 rows (in the encoder x held in " + t +
         ", widened a tile of rows at a time)";
}
}  // namespace

std::string linear_path(Precision p) {
  const std::string sgemm = std::string("fp32 sgemm (") + gemm_backend_name() + ")";
  std::string impl;
  switch (p) {
    case Precision::kF32:
      return sgemm;
    case Precision::kBF16:
      if (cpu::lowp::onednn_matmul_usable(MatmulKind::kBf16, &impl))
        return "oneDNN matmul " + impl + " (bf16 x bf16 -> f32, x rounded to bf16 with " + cpu::lowp::round_bf16_isa() +
               "; in the encoder by the op that writes x)";
      return widening_path_name("bf16") + "; oneDNN's bf16 not used: " + impl;
    case Precision::kF16:
      return widening_path_name("f16");
    case Precision::kInt8:
      if (cpu::lowp::onednn_matmul_usable(MatmulKind::kS8, &impl))
        return "oneDNN matmul " + impl + " (s8 x s8 -> s32, x quantized with " + cpu::lowp::convert_isa() + ")";
      return std::string(cpu::lowp::gemm_i8_own_name()) + " (x quantized with " + cpu::lowp::convert_isa() +
             "); oneDNN's not used: " + impl;
  }
  return "?";
}

namespace {
std::atomic<bool> g_streams{true};
}  // namespace

bool bf16_activation_stream(Precision p) {
  return p == Precision::kBF16 && linear_rounds_x_bf16() && g_streams.load(std::memory_order_relaxed);
}

bool widening_activation_stream(Precision p) {
  return (p == Precision::kF16 || (p == Precision::kBF16 && !linear_rounds_x_bf16())) &&
         g_streams.load(std::memory_order_relaxed);
}

void set_activation_streams(bool enabled) { g_streams.store(enabled, std::memory_order_relaxed); }

bool attention_runs_bf16(Precision p) {
  return (p == Precision::kBF16 || p == Precision::kInt8) && linear_rounds_x_bf16();
}

std::string attention_path(Precision p) {
  if (attention_runs_bf16(p)) return std::string("bf16 products on ") + cpu::attention_bf16_path() + ", fp32 softmax";
  if (widening_activation_stream(p))
    return std::string("fp32 (q, k, v and the output held in ") + precision_name(p) + ")";
  return "fp32";
}

namespace cpu {

void linear(const float* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
            int64_t ldx, int64_t ldy) {
  if (W.type == Precision::kF32) return gemm(X, static_cast<const float*>(W.data), bias, Y, M, N, K, false, ldx, ldy);
  if (ldx == 0) ldx = K;
  if (ldy == 0) ldy = N;
  if (M <= 0 || N <= 0) return;
  if (!W.data) throw Error("cpu linear: null weight matrix");
  if (K <= 0) {  // empty reduction: the bias (or zeros)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) Y[i * ldy + j] = bias ? bias[j] : 0.0f;
    return;
  }
  const auto* w16 = static_cast<const uint16_t*>(W.data);
  switch (W.type) {
    case Precision::kBF16:
      if (linear_rounds_x_bf16()) return linear_bf16_native(X, ldx, w16, bias, Y, ldy, M, N, K);
      [[fallthrough]];
    case Precision::kF16:
      if (M >= kWidenWholeMinRows && N * K <= kWidenWholeMaxElems)
        return linear_widened_whole(X, ldx, W.type, w16, bias, Y, ldy, M, N, K);
      // Columns only: each thread widens its own panels of W (a split of the rows would have every
      // thread widen all of W; f16 / f32 at 128-200 rows 0.88-0.92x that way, 0.99-1.03x so).
      for_slices(
          M, N, K,
          [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
            widened_slice(X + m0 * ldx, ldx, W.type, w16, bias, Y + m0 * ldy, ldy, m1 - m0, n0, n1, K);
          },
          kColumnsOnly);
      return;
    case Precision::kInt8:
      return linear_int8(X, ldx, W, bias, Y, ldy, M, N, K);
    case Precision::kF32:
      break;
  }
}

void linear_bf16_input(const uint16_t* Xb, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N,
                       int64_t K) {
  if (W.type != Precision::kBF16) throw Error("cpu linear_bf16_input: weights must be bf16");
  if (M <= 0 || N <= 0) return;
  if (!W.data) throw Error("cpu linear_bf16_input: null weight matrix");
  const auto* w16 = static_cast<const uint16_t*>(W.data);
  if (K > 0 && linear_rounds_x_bf16()) return matmul_bf16_native(Xb, w16, bias, Y, N, M, N, K);
  // No native bf16 here (or K = 0): X widened exactly, then linear(), which keeps it fp32.
  thread_local std::vector<float> caller_x;
  float* x = grow(caller_x, M * K);
  parallel_for(M, std::max<int64_t>(1, 8192 / std::max<int64_t>(K, 1)),
               [&](int64_t b, int64_t e, int) { lowp::widen_bf16(Xb + b * K, x + b * K, (e - b) * K); });
  linear(x, W, bias, Y, M, N, K, K, N);
}

namespace {

// The tile loop of linear_16in and linear_glu_16in: widen_t(X) · W^T (+ bias) a tile of rows at a
// time into fp32. With y_tile the tile's output goes to a [tile, N] scratch (beside the X tile in
// the workspace) and epilogue(m0, rows, y) takes it from there; without, it goes straight to
// Y + m0 * N (Y [M, N] dense), and the epilogue is not called.
template <class Epilogue>
void linear_16in_tiles(Precision t, const uint16_t* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M,
                       int64_t N, int64_t K, float* workspace, int64_t workspace_floats, bool y_tile,
                       Epilogue&& epilogue) {
  // 16-bit W that linear() would widen whole (no native bf16 for it): widened once for all tiles.
  const bool w16 = W.type == Precision::kF16 || (W.type == Precision::kBF16 && !linear_rounds_x_bf16());
  const bool whole = w16 && K > 0 && M >= kWidenWholeMinRows && N * K <= kWidenWholeMaxElems;
  if (whole && packed_path()) {  // packed W in the workspace when it fits, the pieces per thread
    const float* P =
        widen_pack_parallel(W.type, static_cast<const uint16_t*>(W.data), N, K, workspace, workspace_floats);
    return packed_rows(t, X, K, W, P, bias, Y, N, M, N, K, y_tile, epilogue);
  }
  // Scratch: [wide W][X tile][Y tile] in the workspace if it holds kStreamMinTile rows, else
  // thread-local.
  const int64_t kk = std::max<int64_t>(K, 1), per_row = kk + (y_tile ? N : 0), w_floats = whole ? N * K : 0;
  int64_t tile = 0;
  float *wide_at = nullptr, *xt = nullptr, *yt = nullptr;
  if (workspace && workspace_floats - w_floats >= std::min(M, kStreamMinTile) * per_row) {
    tile = std::min({M, kStreamMaxTile, (workspace_floats - w_floats) / per_row / 16 * 16});
    tile = std::max(tile, std::min(M, kStreamMinTile));
    wide_at = workspace;
    xt = workspace + w_floats;
    yt = y_tile ? xt + tile * kk : nullptr;
  } else {
    tile = std::min(M, kStreamTileRows);
    thread_local std::vector<float> caller_xt, caller_yt;
    xt = grow(caller_xt, tile * kk);
    yt = y_tile ? grow(caller_yt, tile * N) : nullptr;
  }
  const float* wide = whole ? widen_whole(W.type, static_cast<const uint16_t*>(W.data), N, K, wide_at) : nullptr;
  for (int64_t m0 = 0; m0 < M; m0 += tile) {
    const int64_t rows = std::min(tile, M - m0);
    widen16_parallel(t, X + m0 * K, xt, rows * K);
    float* y = y_tile ? yt : Y + m0 * N;
    if (wide)
      cpu::gemm(xt, wide, bias, y, rows, N, K, false, K, N);
    else
      linear(xt, W, bias, y, rows, N, K, K, N);
    if (y_tile) epilogue(m0, rows, static_cast<const float*>(yt));
  }
}

// The weight checks of linear_16in / linear_glu_16in (their callers check the type first).
void check_16in_weights(const char* who, const WeightMatrix& W) {
  if (!W.data) throw Error(std::string("cpu ") + who + ": null weight matrix");
  if (W.type == Precision::kInt8 && !W.scale)
    throw Error(std::string("cpu ") + who + ": int8 weights without their scales");
}

}  // namespace

void linear_16in(Precision t, const uint16_t* X, const WeightMatrix& W, const float* bias, float* Y, uint16_t* Y16,
                 int64_t M, int64_t N, int64_t K, float* workspace, int64_t workspace_floats) {
  if (t != Precision::kBF16 && t != Precision::kF16) throw Error("cpu linear_16in: X must be bf16 or f16");
  if ((Y == nullptr) == (Y16 == nullptr)) throw Error("cpu linear_16in: give exactly one of Y and Y16");
  if (M <= 0 || N <= 0) return;
  check_16in_weights("linear_16in", W);
  linear_16in_tiles(t, X, W, bias, Y, M, N, K, workspace, workspace_floats, Y16 != nullptr,
                    [&](int64_t m0, int64_t rows, const float* y) { round16_parallel(t, y, Y16 + m0 * N, rows * N); });
}

void linear_glu_16in(Precision t, Act act, const uint16_t* X, const WeightMatrix& W, const float* bias, uint16_t* G,
                     int64_t M, int64_t I, int64_t K, float* workspace, int64_t workspace_floats) {
  if (t != Precision::kBF16 && t != Precision::kF16) throw Error("cpu linear_glu_16in: X must be bf16 or f16");
  if (!G) throw Error("cpu linear_glu_16in: no output");
  if (M <= 0 || I <= 0) return;
  check_16in_weights("linear_glu_16in", W);
  linear_16in_tiles(t, X, W, bias, nullptr, M, 2 * I, K, workspace, workspace_floats, true,
                    [&](int64_t m0, int64_t rows, const float* u) {
                      if (t == Precision::kF16)
                        cpu::glu_f16out(act, u, G + m0 * I, rows, I);
                      else
                        cpu::glu_bf16out(act, u, G + m0 * I, rows, I);
                    });
}

void embedding_typed(const int32_t* ids, const WeightMatrix& E, float* x, int64_t T, int64_t H) {
  if (E.type == Precision::kF32) return embedding(ids, static_cast<const float*>(E.data), x, T, H);
  if (E.type == Precision::kInt8 && !E.scale) throw Error("cpu embedding: int8 table without its per-row scales");
  parallel_for(T, 64, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t row = ids[t];
      float* out = x + t * H;
      switch (E.type) {
        case Precision::kBF16:
          lowp::widen_bf16(static_cast<const uint16_t*>(E.data) + row * H, out, H);
          break;
        case Precision::kF16:
          lowp::widen_f16(static_cast<const uint16_t*>(E.data) + row * H, out, H);
          break;
        case Precision::kInt8: {
          const int8_t* qr = static_cast<const int8_t*>(E.data) + row * H;
          const float s = E.scale[row];
          for (int64_t c = 0; c < H; ++c) out[c] = static_cast<float>(qr[c]) * s;
          break;
        }
        case Precision::kF32:
          break;
      }
    }
  });
}

void quantize_rows_i8(const float* x, int64_t ldx, int64_t rows, int64_t K, int8_t* q, float* scale) {
  if (ldx == 0) ldx = K;
  if (rows <= 0) return;
  parallel_for(rows, std::max<int64_t>(1, 8192 / std::max<int64_t>(K, 1)), [&](int64_t b, int64_t e, int) {
    for (int64_t m = b; m < e; ++m) lowp::quantize_row_i8(x + m * ldx, K, q + m * K, scale + m);
  });
}

void gemm_i8(const int8_t* A, const int8_t* B, int32_t* C, int64_t M, int64_t N, int64_t K) {
  if (M <= 0 || N <= 0) return;
  if (K >= kInt8KLimit) throw Error("cpu gemm_i8: K = " + std::to_string(K) + " >= 2^17 (int32 sums may overflow)");
  if (K <= 0) {
    std::fill(C, C + M * N, 0);
    return;
  }
  for_slices(M, N, K, [&](int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    i8_core(A + m0 * K, B + n0 * K, C + m0 * N + n0, N, m1 - m0, n1 - n0, K);
  });
}

}  // namespace cpu
}  // namespace modernbert::kernels
