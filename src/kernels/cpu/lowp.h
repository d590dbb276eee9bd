// Internal building blocks of the cpu backend's reduced-precision ops (#15): element conversions
// (bf16 rounding, bf16 / f16 widening, per-row int8 quantization) with run-time ISA dispatch, the
// exact int8 GEMM kernel of our own, and the per-thread oneDNN matmul wrapper. Contracts of the
// public ops are in kernels/backend.h and modernbert/precision.h.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "modernbert/precision.h"

namespace modernbert::kernels::cpu::lowp {

// ---- Conversions (single thread; dispatch AVX-512 / AVX2 at run time) ------------------------------
// y[i] = bits of x[i] rounded to bf16, round to nearest even (NaN stays a quiet NaN). On CPUs
// with AVX512-BF16 (vcvtneps2bf16) fp32 denormals become +-0, as the bf16 dot products reading y
// would treat them; elsewhere they round like any value (ref::bf16_from_float exactly).
void round_bf16(const float* x, uint16_t* y, int64_t n);
// y[i] = bits of x[i] rounded to IEEE half, round to nearest even (F16C vcvtps2ph): |x| >= 65520
// becomes +-inf, subnormal halves are kept, NaN stays a quiet NaN (ref::f16_from_float exactly).
void round_f16(const float* x, uint16_t* y, int64_t n);
// This thread's fp32 scratch row of at least n floats (grown, never shrunk): the *_bf16out ops
// compute a row into it (in L1 for a model row) and round_bf16 (round_f16) it out. Not for nested
// use.
float* row_buffer(int64_t n);
// A 16-bit output row pointer with its rounding (round_bf16 or round_f16): the *_bf16out /
// *_f16out ops compute fp32 rows into row_buffer() and round them out through it.
struct Out16 {
  uint16_t* p;
  void (*round)(const float*, uint16_t*, int64_t);
  Out16 operator+(int64_t i) const { return {p + i, round}; }
};
// y[i] = float(bf16 x[i]) (exact).
void widen_bf16(const uint16_t* x, float* y, int64_t n);
// y[i] = float(f16 x[i]) (exact, subnormals included).
void widen_f16(const uint16_t* x, float* y, int64_t n);
// widen_bf16 or widen_f16 / round_bf16 or round_f16 by t (kBF16 or kF16): the 16-bit types of the
// activation streams.
void widen_16(Precision t, const uint16_t* x, float* y, int64_t n);
void round_16(Precision t, const float* x, uint16_t* y, int64_t n);
// Eight (one) 16-bit values, f16 when kF16 else bf16, widened exactly into a register (the values
// widen_16 gives): for kernels that read 16-bit operands in their inner loops (F16C / AVX2, the
// project's baseline ISA).
template <bool kF16>
inline __m256 widen8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kF16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
template <bool kF16>
inline float widen1(uint16_t v) {
  if constexpr (kF16) return _cvtsh_ss(v);
  const uint32_t b = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}
inline __m256 widen8(const uint16_t* p, bool f16) { return f16 ? widen8<true>(p) : widen8<false>(p); }
inline float widen1(uint16_t v, bool f16) { return f16 ? widen1<true>(v) : widen1<false>(v); }
// One row of quantize_rows_i8 (contract in backend.h): q[0..K), *scale.
void quantize_row_i8(const float* x, int64_t K, int8_t* q, float* scale);
// y[m, n] = float(acc[m, n]) * (sx[m] * sw[n]) + bias[n] (one fma; no bias: the product), rows of a
// non-finite sx[m] NaN. acc may be y's own storage reinterpreted (in place): both have stride ldy.
void int8_epilogue(const int32_t* acc, const float* sx, const float* sw, const float* bias, float* y, int64_t M,
                   int64_t N, int64_t ldy);
// Small-M linear over 16-bit weights, converted in registers: Y[m, n] (ldy) = X[m, :] (ldx) ·
// float(W[n, :]) (+ bias[n]) for m < M, n in [n0, n1); W [N, K] bf16 or (f16) IEEE half bits. For
// M <= kGemvMaxRows (beyond that the widened panels and the sgemm are faster).
constexpr int64_t kGemvMaxRows = 4;
void gemv_widened(const float* X, int64_t ldx, bool f16, const uint16_t* W, const float* bias, float* Y, int64_t ldy,
                  int64_t M, int64_t n0, int64_t n1, int64_t K);
// AVX-512 F/BW/VL on this CPU (and OS), unless the test hook asks for the portable code: the
// conversions here and the 16-bit-output GELU of activations.cpp take their AVX-512 twins then.
bool avx512_usable();
// The target attribute of those AVX-512 twins (built in the portable binary too, called only when
// avx512_usable()).
#define MB_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
// Name of the conversion ISA in use ("avx512" | "avx2").
const char* convert_isa();
// The ISA round_bf16 uses: "avx512_bf16" (vcvtneps2bf16) or convert_isa().
const char* round_bf16_isa();

// ---- Exact int8 GEMM of our own: C[M,N] (ldc) = A[M,K] (lda) · B[N,K]^T (ldb) in int32 -------------
// int16 products (vpmaddwd), exact for |A|, |B| <= 128 and K < 2^17. Single thread.
void gemm_i8_own(const int8_t* A, int64_t lda, const int8_t* B, int64_t ldb, int32_t* C, int64_t ldc, int64_t M,
                 int64_t N, int64_t K);
const char* gemm_i8_own_name();

// ---- oneDNN matmul (per-thread cached primitives; single-threaded on the calling thread) -----------
enum class MatmulKind { kBf16, kS8 };
// Whether oneDNN can run `kind` natively and exactly here (probed once: a native implementation,
// not a reference one; for kS8 integer sums checked exact on saturating worst-case data). `impl`
// gets the implementation name (impl_info_str) when available.
bool onednn_matmul_usable(MatmulKind kind, std::string* impl = nullptr);
// C[M, N] (ldc) = A[M, K] (dense, bf16 bits | int8) · W[N, K]^T (W row-major [N,K] with row stride
// K, read in place as oneDNN's {K, N} `ba` weights) (+ bias[N], kBf16 only). C is float (kBf16) or
// int32 (kS8). Returns false when the primitive cannot be created (the caller falls back).
bool onednn_matmul(MatmulKind kind, const void* A, const void* W, const float* bias, void* C, int64_t ldc, int64_t M,
                   int64_t N, int64_t K);

// ---- fp32 weights packed for oneDNN's brgemm matmul (the widening path where it exists) ----------
// A linear over 16-bit weights without native 16-bit products runs in fp32 on widened weights. On
// AVX-512 oneDNN's brgemm matmul reads the weights pre-packed (layout BA16a64b of the {K, N}
// weights W^T): packed once per call, they serve every tile of rows, where each sgemm call would
// pack W again. Layout: one [Kp, 64] row-major panel per block of 64 output channels, panel b at
// P + b * Kp * 64; Kp = K rounded up to 16, Np = N rounded up to 64; zero beyond K and N.
constexpr int64_t kPackN = 64, kPackK = 16;
inline int64_t packed_floats(int64_t N, int64_t K) {
  return (N + kPackN - 1) / kPackN * kPackN * ((K + kPackK - 1) / kPackK * kPackK);
}
// Panels [b0, b1) of P = widen_t(W)^T packed as above; W [N, K] row-major bits of t (kBF16 or
// kF16). Exact (widening only). Single thread; AVX2 / F16C.
void widen_pack(Precision t, const uint16_t* W, int64_t N, int64_t K, float* P, int64_t b0, int64_t b1);
// Whether oneDNN's fp32 matmul runs on packed weights here (probed once: a brgemm implementation
// whose weights layout is the one above, checked on exact data; AVX-512 CPUs). `impl` names it.
bool onednn_packed_usable(std::string* impl = nullptr);
// C[M, N] (ldc) = A[M, K] (row stride lda) · W^T (+ bias[N]), W packed in P (widen_pack), on the
// calling thread (fixed-M primitives, cached per thread: M is run in pieces of at most 128 rows,
// multiples of 16 down to 16, then powers of two). Returns false when a primitive cannot be
// created, or A or C is not dense (lda != K, ldc != N: oneDNN 2.6's brgemm takes neither); C may
// then hold part of the result, and the caller computes it again another way.
bool onednn_matmul_packed(const float* A, int64_t lda, const float* P, const float* bias, float* C, int64_t ldc,
                          int64_t M, int64_t N, int64_t K);
constexpr int64_t kPackedPieceRows = 128;

// ---- Test hook -----------------------------------------------------------------------------------
// true: behave as a CPU without usable oneDNN low-precision matmuls nor AVX-512 (bf16 widened into
// the fp32 sgemm, int8 through gemm_i8_own, AVX2 conversions). Tests use it to cover both paths in
// one process; not while ops run. The bf16 attention kernel has its own switch
// (set_attention_bf16_force_emulated); the encoder does not reach it under this hook, as
// attention_runs_bf16() is then false.
void set_force_portable(bool on);
bool force_portable();

}  // namespace modernbert::kernels::cpu::lowp
