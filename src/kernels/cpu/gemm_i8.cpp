// The exact int8 GEMM of our own (lowp.h): C[M,N] = A[M,K] · B[N,K]^T in int32, for CPUs where
// oneDNN's int8 matmul is not exact (pre-VNNI x86 multiplies u8 x s8 pairs with the saturating
// vpmaddubsw: 255 * 127 * 2 overflows int16) or not available.
//
// AVX2 only (the portable baseline): both operands widened to int16 and multiplied with vpmaddwd,
// whose pair sums (<= 2 * 128^2) fit int32 exactly. B is packed per block of 16 columns as
// [K/2][16][2] int16 (a k-pair of 16 columns = two registers), A as int16 rows, so one broadcast
// 32-bit load gives a row's k-pair. Micro-tile 6 rows x 16 columns: 12 int32 accumulators + 2 B +
// 1 A of the 16 registers (2.8x the speed of 4 x 16 here: 170 vs 60 GFLOP/s single-thread at
// 512 x 768 x 768 on Zen 5).
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/lowp.h"
#include "kernels/cpu/simd.h"

namespace modernbert::kernels::cpu::lowp {

namespace {

constexpr int64_t kNb = 16;  // columns per packed B block
constexpr int64_t kMr = 6;   // rows per micro-tile
constexpr int64_t kMc = 96;  // rows of A per block (int16, L2-resident)

// row[0..kp) = int16(a[0..K)), zero beyond K.
void widen_row(const int8_t* a, int64_t K, int64_t kp, int16_t* row) {
  int64_t k = 0;
  for (; k + 16 <= K; k += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(row + k),
                        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + k))));
  for (; k < K; ++k) row[k] = a[k];
  for (; k < kp; ++k) row[k] = 0;
}

// bp[p][j][0..1] = B[n0 + j, 2p .. 2p+1] (zero beyond N or K): the 16 rows widened to int16, then
// their k-pairs (one int32 each) transposed in 8 x 8 blocks.
void pack_b(const int8_t* B, int64_t ldb, int64_t n0, int64_t nb, int64_t K, int64_t kp, int16_t* bp) {
  thread_local std::vector<int16_t> rows_buf;
  if (rows_buf.size() < static_cast<size_t>(kNb * kp)) rows_buf.resize(static_cast<size_t>(kNb * kp));
  int16_t* rows = rows_buf.data();
  for (int64_t j = 0; j < kNb; ++j) {
    if (j < nb)
      widen_row(B + (n0 + j) * ldb, K, kp, rows + j * kp);
    else
      std::fill(rows + j * kp, rows + (j + 1) * kp, int16_t{0});
  }
  const int64_t P = kp / 2;                                  // k-pairs per row
  const auto* src = reinterpret_cast<const int32_t*>(rows);  // [kNb][P] pairs
  auto* dst = reinterpret_cast<int32_t*>(bp);                // [P][kNb] pairs
  int64_t p0 = 0;
  for (; p0 + 8 <= P; p0 += 8)
    for (int64_t j0 = 0; j0 < kNb; j0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(reinterpret_cast<const float*>(src + (j0 + i) * P + p0));
      simd::transpose8(r);
      for (int i = 0; i < 8; ++i) _mm256_storeu_ps(reinterpret_cast<float*>(dst + (p0 + i) * kNb + j0), r[i]);
    }
  for (; p0 < P; ++p0)
    for (int64_t j = 0; j < kNb; ++j) dst[p0 * kNb + j] = src[j * P + p0];
}

// acc tile [kMr][kNb] = a16 rows (kMr rows of kp int16, row stride kp) · packed block. The row
// loops are unrolled by pragma: GCC 12 at -O2 leaves them rolled and the 12 accumulators in memory
// (half the speed). (Two k-pairs per iteration measured 5% faster alone, but in the library GCC
// reassociated the two products' sums and added a register move per accumulator: 10% slower.)
inline void micro(const int16_t* a16, int64_t kp, const int16_t* bp, int32_t* tile) {
  __m256i c[kMr][2];
  for (auto& r : c) r[0] = r[1] = _mm256_setzero_si256();
  for (int64_t p = 0; p < kp / 2; ++p) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + p * 32));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + p * 32 + 16));
#pragma GCC unroll 6
    for (int64_t r = 0; r < kMr; ++r) {
      int32_t pair;
      std::memcpy(&pair, a16 + r * kp + 2 * p, 4);
      const __m256i a = _mm256_set1_epi32(pair);
      c[r][0] = _mm256_add_epi32(c[r][0], _mm256_madd_epi16(a, b0));
      c[r][1] = _mm256_add_epi32(c[r][1], _mm256_madd_epi16(a, b1));
    }
  }
#pragma GCC unroll 6
  for (int64_t r = 0; r < kMr; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kNb), c[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kNb + 8), c[r][1]);
  }
}

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// Small M (<= kGemvRows): no packing (it would cost as much as the products); each row of B is
// widened in registers, R rows of A (int16, the first K / 16 * 16 columns) x J rows of B per step.
constexpr int64_t kGemvRows = 4;
template <int R, int J>
void gemv_rows(const int16_t* a16, int64_t k16, const int8_t* A, int64_t lda, const int8_t* B, int64_t ldb, int32_t* C,
               int64_t ldc, int64_t N, int64_t K) {
  auto finish = [&](__m256i acc, int r, int64_t n) {
    int32_t s = hsum_epi32(acc);
    for (int64_t k = k16; k < K; ++k) s += static_cast<int32_t>(A[r * lda + k]) * B[n * ldb + k];
    C[r * ldc + n] = s;
  };
  int64_t n = 0;
  for (; n + J <= N; n += J) {
    __m256i acc[R][J];
    for (auto& a : acc)
      for (auto& v : a) v = _mm256_setzero_si256();
    for (int64_t k = 0; k < k16; k += 16) {
      __m256i w[J];
      for (int j = 0; j < J; ++j)
        w[j] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(B + (n + j) * ldb + k)));
      for (int r = 0; r < R; ++r) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a16 + r * k16 + k));
        for (int j = 0; j < J; ++j) acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(a, w[j]));
      }
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < J; ++j) finish(acc[r][j], r, n + j);
  }
  for (; n < N; ++n)
    for (int r = 0; r < R; ++r) {
      __m256i acc = _mm256_setzero_si256();
      for (int64_t k = 0; k < k16; k += 16) {
        const __m256i w = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(B + n * ldb + k)));
        acc = _mm256_add_epi32(
            acc, _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a16 + r * k16 + k)), w));
      }
      finish(acc, r, n);
    }
}

void gemv_i8(const int8_t* A, int64_t lda, const int8_t* B, int64_t ldb, int32_t* C, int64_t ldc, int64_t M, int64_t N,
             int64_t K) {
  const int64_t k16 = K / 16 * 16;  // the vector part; the tail is summed in scalar
  thread_local std::vector<int16_t> buf_v;
  if (buf_v.size() < static_cast<size_t>(kGemvRows * k16)) buf_v.resize(static_cast<size_t>(kGemvRows * k16));
  int16_t* buf = buf_v.data();
  for (int64_t m = 0; m < M; ++m) widen_row(A + m * lda, k16, k16, buf + m * k16);
  switch (M) {  // R rows x J columns <= 8 accumulators (AVX2 has 16 registers)
    case 1:
      return gemv_rows<1, 4>(buf, k16, A, lda, B, ldb, C, ldc, N, K);
    case 2:
      return gemv_rows<2, 4>(buf, k16, A, lda, B, ldb, C, ldc, N, K);
    case 3:
      return gemv_rows<3, 2>(buf, k16, A, lda, B, ldb, C, ldc, N, K);
    default:
      return gemv_rows<4, 2>(buf, k16, A, lda, B, ldb, C, ldc, N, K);
  }
}

}  // namespace

const char* gemm_i8_own_name() { return "own int8 kernel avx2 (vpmaddwd on int16, s8 x s8 -> s32)"; }

void gemm_i8_own(const int8_t* A, int64_t lda, const int8_t* B, int64_t ldb, int32_t* C, int64_t ldc, int64_t M,
                 int64_t N, int64_t K) {
  if (M <= 0 || N <= 0) return;
  if (M <= kGemvRows) return gemv_i8(A, lda, B, ldb, C, ldc, M, N, K);
  const int64_t kp = (K + 1) / 2 * 2;
  // Blocking: all of B packed once ([N/16][kp][16] int16), then row blocks of kMc rows of A (int16,
  // ~150 KB at K = 768: stays in L2) against every packed column block (24 KB: L1).
  const int64_t nblocks = (N + kNb - 1) / kNb;
  thread_local std::vector<int16_t> a16_buf, bp_buf;
  if (a16_buf.size() < static_cast<size_t>(kMc * kp)) a16_buf.resize(static_cast<size_t>(kMc * kp));
  if (bp_buf.size() < static_cast<size_t>(nblocks * kp * kNb)) bp_buf.resize(static_cast<size_t>(nblocks * kp * kNb));
  int16_t* a16 = a16_buf.data();
  for (int64_t b = 0; b < nblocks; ++b)
    pack_b(B, ldb, b * kNb, std::min(kNb, N - b * kNb), K, kp, bp_buf.data() + b * kp * kNb);
  alignas(32) int32_t tile[kMr * kNb];
  for (int64_t mb = 0; mb < M; mb += kMc) {
    const int64_t mc = std::min(kMc, M - mb), mcp = (mc + kMr - 1) / kMr * kMr;
    for (int64_t m = 0; m < mcp; ++m) {
      if (m < mc)
        widen_row(A + (mb + m) * lda, K, kp, a16 + m * kp);
      else
        std::fill(a16 + m * kp, a16 + (m + 1) * kp, int16_t{0});
    }
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t n0 = b * kNb, nb = std::min(kNb, N - n0);
      for (int64_t m0 = 0; m0 < mc; m0 += kMr) {
        micro(a16 + m0 * kp, kp, bp_buf.data() + b * kp * kNb, tile);
        const int64_t mr = std::min(kMr, mc - m0);
        for (int64_t r = 0; r < mr; ++r) {
          int32_t* c = C + (mb + m0 + r) * ldc + n0;
          const int32_t* t = tile + r * kNb;
          if (nb == kNb) {  // a full tile row: two stores. A memcpy of variable length is a libc call:
                            // 3% of int8's time in the model (perf), the kernel 2-5% slower with it.
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), _mm256_load_si256(reinterpret_cast<const __m256i*>(t)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 8),
                                _mm256_load_si256(reinterpret_cast<const __m256i*>(t + 8)));
          } else {
            std::memcpy(c, t, static_cast<size_t>(nb) * sizeof(int32_t));
          }
        }
      }
    }
  }
}

}  // namespace modernbert::kernels::cpu::lowp
