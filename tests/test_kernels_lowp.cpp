// The reduced-precision ops (#15; kernels/backend.h, modernbert/precision.h) of every backend vs the
// reference backend: linear over bf16 / f16 / int8 weights, embedding_typed, quantize_rows_i8 and
// gemm_i8, and the reference against float64 and hand-made cases.
//
// Exactness: quantize_rows_i8, gemm_i8, embedding_typed and the int8 linear (exact int32 sums, then
// the same float epilogue) are compared bit for bit. The bf16 / f16 linears accumulate in fp32
// (ref in double): |got - ref| <= atol + 1e-5 |ref|, atol stated at each check (~10x the need
// measured with MB_ALLCLOSE_STATS=1 on AVX512-BF16 Zen 5). The cpu backend's two paths of each
// type (native oneDNN bf16 / int8 matmuls, and the portable widening / own-int8 paths) are both
// run, through the lowp test hook.
#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend_test_util.h"
#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/lowp.h"
#include "kernels/cpu/simd.h"
#include "kernels/ref/ref.h"
#include "modernbert/error.h"
#include "modernbert/precision.h"
#include "test_util.h"

namespace mk = modernbert::kernels;
using modernbert::Precision;
using modernbert::WeightMatrix;

namespace {

constexpr double kRtol = 1e-5;

std::vector<float> rand_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

std::vector<uint16_t> to_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = mk::ref::bf16_from_float(v[i]);
  return o;
}
std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = mk::ref::f16_from_float(v[i]);
  return o;
}

// Symmetric per-row int8 weights (precision.h): q = nearbyint(w * 127 / max|w|), scale = max / 127.
struct QuantW {
  std::vector<int8_t> q;
  std::vector<float> scale;
};
QuantW quantize_w(const std::vector<float>& w, int64_t N, int64_t K) {
  QuantW r{std::vector<int8_t>(static_cast<size_t>(N * K)), std::vector<float>(static_cast<size_t>(N))};
  mk::ref::quantize_rows_i8(w.data(), K, N, K, r.q.data(), r.scale.data());
  return r;
}

// Bit equality, NaN equal to NaN.
::testing::AssertionResult same_bits(const std::vector<float>& got, const std::vector<float>& ref) {
  if (got.size() != ref.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i]) && std::isnan(ref[i])) continue;
    if (std::memcmp(&got[i], &ref[i], 4) != 0)
      return ::testing::AssertionFailure() << "element " << i << ": got " << got[i] << ", ref " << ref[i];
  }
  return ::testing::AssertionSuccess();
}

// Runs body once per cpu path: native (oneDNN where usable) and forced portable; restores native.
template <class F>
void for_each_path(F&& body) {
  for (bool portable : {false, true}) {
    mk::cpu::lowp::set_force_portable(portable);
    SCOPED_TRACE(portable ? "portable path" : "native path");
    body(portable);
  }
  mk::cpu::lowp::set_force_portable(false);
}

struct Shape {
  int64_t M, N, K;
};
// M in {1, 7, 64, 300} (serial, column split, row split on 2 threads) x base-like N, K, plus odd
// shapes and M <= 4 (the in-register small-M kernel of 16-bit weights).
const std::vector<Shape>& linear_shapes() {
  static const std::vector<Shape> s = {{1, 160, 768}, {7, 160, 768},  {64, 160, 768}, {300, 160, 768},
                                       {1, 72, 1152}, {64, 72, 1152}, {300, 33, 67},  {5, 17, 3},
                                       {2, 37, 77},   {3, 66, 768},   {4, 9, 1}};
  return s;
}

}  // namespace

MB_BACKEND_SUITE(LowpQuantize);
MB_BACKEND_SUITE(LowpGemmI8);
MB_BACKEND_SUITE(LowpLinear);
MB_BACKEND_SUITE(LowpEmbedding);

// ---- quantize_rows_i8 ------------------------------------------------------------------------------

TEST_P(LowpQuantize, BitExactOddSizesAndEdgeRows) {
  for_each_path([&](bool) {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    for (int64_t K : {1, 3, 15, 17, 31, 33, 63, 65, 130, 768, 1001}) {
      const int64_t rows = 12, ldx = K + 5;
      auto x = rand_vec(static_cast<size_t>(rows * ldx), static_cast<uint32_t>(K), -3.0f, 3.0f);
      auto row = [&](int64_t r) { return x.data() + r * ldx; };
      for (int64_t k = 0; k < K; ++k) row(0)[k] = 0.0f;                                    // zeros
      for (int64_t k = 0; k < K; ++k) row(1)[k] = (k % 2) ? -0.0f : 0.0f;                  // signed zeros
      row(2)[K / 2] = nan;                                                                 // NaN
      row(3)[K - 1] = inf;                                                                 // inf
      row(4)[0] = -inf;                                                                    // -inf
      for (int64_t k = 0; k < K; ++k) row(5)[k] = (k % 3 == 0) ? 5.0f : -5.0f;             // +-127 extremes
      for (int64_t k = 0; k < K; ++k) row(6)[k] = static_cast<float>(k % 254) - 126.5f;    // ties
      row(6)[0] = 127.0f;                                                                  // a = 127, 127/a = 1
      for (int64_t k = 0; k < K; ++k) row(7)[k] = 1e-40f * static_cast<float>(k % 5 - 2);  // subnormals
      row(10)[K - 1] = 3e-38f;                                                             // tiny: 127 / a = inf
      for (int64_t k = 0; k + 1 < K; ++k) row(10)[k] = 1e-38f * static_cast<float>(k % 3 - 1);
      for (int64_t k = 0; k < K; ++k) row(11)[k] = (k % 2) ? 1e-45f : 0.0f;  // smallest subnormal
      row(8)[K - 1] = 1e30f;                                                 // one huge value
      for (int64_t k = 0; k < K; ++k) row(9)[k] = -1.0f;                     // all equal, negative
      std::vector<int8_t> qg(static_cast<size_t>(rows * K), 99), qr(qg.size(), 98);
      std::vector<float> sg(rows, -1), sr(rows, -2);
      mk::quantize_rows_i8(x.data(), ldx, rows, K, qg.data(), sg.data());
      mk::ref::quantize_rows_i8(x.data(), ldx, rows, K, qr.data(), sr.data());
      EXPECT_EQ(qg, qr) << "K=" << K;
      EXPECT_TRUE(same_bits(sg, sr)) << "K=" << K;
      // The contract itself on the edge rows.
      EXPECT_EQ(sr[0], 0.0f);
      EXPECT_EQ(sr[1], 0.0f);
      for (int r : {2, 3, 4}) {
        EXPECT_TRUE(std::isnan(sr[static_cast<size_t>(r)])) << r;
        for (int64_t k = 0; k < K; ++k) EXPECT_EQ(qr[static_cast<size_t>(r * K + k)], 0);
      }
      for (int64_t k = 0; k < K; ++k) EXPECT_EQ(qr[static_cast<size_t>(5 * K + k)], (k % 3 == 0) ? 127 : -127);
      EXPECT_EQ(sr[5], 5.0f / 127.0f);
      if (K > 2) {
        EXPECT_EQ(qr[static_cast<size_t>(6 * K + 1)], -126);  // -125.5 -> -126 (half to even)
      }
      if (K > 3) {
        EXPECT_EQ(qr[static_cast<size_t>(6 * K + 2)], -124);  // -124.5 -> -124
      }
      for (int64_t k = 0; k < K; ++k) EXPECT_EQ(qr[static_cast<size_t>(9 * K + k)], -127);
    }
  });
}

TEST_P(LowpQuantize, DenseDefaultStride) {
  const int64_t rows = 37, K = 100;
  auto x = rand_vec(static_cast<size_t>(rows * K), 9, -50.0f, 50.0f);
  std::vector<int8_t> qg(static_cast<size_t>(rows * K)), qr(qg.size());
  std::vector<float> sg(rows), sr(rows);
  mk::ref::quantize_rows_i8(x.data(), 0, rows, K, qr.data(), sr.data());
  for_each_path([&](bool) {
    mk::quantize_rows_i8(x.data(), 0, rows, K, qg.data(), sg.data());
    EXPECT_EQ(qg, qr);
    EXPECT_TRUE(same_bits(sg, sr));
  });
}

// ---- gemm_i8 -----------------------------------------------------------------------------------------

TEST_P(LowpGemmI8, BitExactShapesAndExtremes) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> u(-127, 127);
  for (Shape s : {Shape{1, 1, 1}, Shape{1, 300, 768}, Shape{3, 5, 7}, Shape{2, 33, 47}, Shape{4, 21, 40},
                  Shape{17, 33, 65}, Shape{64, 48, 200}, Shape{130, 70, 129}, Shape{300, 40, 1152}}) {
    for (int fill : {0, 1, 2}) {  // random, all +127, alternating +-127 against +127 (worst saturation)
      std::vector<int8_t> A(static_cast<size_t>(s.M * s.K)), B(static_cast<size_t>(s.N * s.K));
      for (size_t i = 0; i < A.size(); ++i)
        A[i] = static_cast<int8_t>(fill == 0 ? u(rng) : (fill == 1 || i % 2 == 0) ? 127 : -127);
      for (size_t i = 0; i < B.size(); ++i) B[i] = static_cast<int8_t>(fill == 0 ? u(rng) : 127);
      std::vector<int32_t> Cr(static_cast<size_t>(s.M * s.N));
      mk::ref::gemm_i8(A.data(), B.data(), Cr.data(), s.M, s.N, s.K);
      for_each_path([&](bool) {
        std::vector<int32_t> Cg(Cr.size(), 12345);
        mk::gemm_i8(A.data(), B.data(), Cg.data(), s.M, s.N, s.K);
        EXPECT_EQ(Cg, Cr) << s.M << "x" << s.N << "x" << s.K << " fill " << fill;
      });
    }
  }
}

TEST_P(LowpGemmI8, ExactUpToTheKLimitAndRefusedBeyond) {
  // K = 2^17 - 1, every product +127^2: the largest sum the contract allows (2,114,044,159 < 2^31).
  const int64_t M = 2, N = 3, K = (int64_t{1} << 17) - 1;
  std::vector<int8_t> A(static_cast<size_t>(M * (K + 1)), 127), B(static_cast<size_t>(N * (K + 1)), 127);
  for (int64_t k = 0; k < K; k += 2) A[static_cast<size_t>(K + k)] = -127;  // row 1 alternates in sign
  std::vector<int32_t> Cr(static_cast<size_t>(M * N));
  mk::ref::gemm_i8(A.data(), B.data(), Cr.data(), M, N, K);
  EXPECT_EQ(Cr[0], int64_t{127} * 127 * K);
  for_each_path([&](bool) {
    std::vector<int32_t> Cg(Cr.size(), 12345);
    mk::gemm_i8(A.data(), B.data(), Cg.data(), M, N, K);
    EXPECT_EQ(Cg, Cr);
    // One more and the int32 sums could wrap: an error, not a wrong number.
    try {
      mk::gemm_i8(A.data(), B.data(), Cg.data(), M, N, K + 1);
      ADD_FAILURE() << "K = 2^17 accepted";
    } catch (const modernbert::Error& e) {
      EXPECT_NE(std::string(e.what()).find(">= 2^17"), std::string::npos) << e.what();
    }
  });
}

// ---- linear ------------------------------------------------------------------------------------------

TEST_P(LowpLinear, F32IsTheGemm) {
  const int64_t M = 9, N = 20, K = 31;
  auto X = rand_vec(M * K, 1), W = rand_vec(N * K, 2), b = rand_vec(N, 3);
  std::vector<float> Yl(M * N), Yg(M * N);
  mk::linear(X.data(), WeightMatrix(W.data()), b.data(), Yl.data(), M, N, K);
  mk::gemm(X.data(), W.data(), b.data(), Yg.data(), M, N, K);
  EXPECT_TRUE(same_bits(Yl, Yg));
}

TEST_P(LowpLinear, Bf16MatchesReference) {
  for_each_path([&](bool portable) {
    if (portable) {
      EXPECT_FALSE(mk::linear_rounds_x_bf16());
    }
    for (Shape s : linear_shapes())
      for (bool bias : {false, true}) {
        auto X = rand_vec(s.M * s.K, 11), b = rand_vec(s.N, 13);
        auto W = to_bf16(rand_vec(s.N * s.K, 12));
        std::vector<float> Yg(s.M * s.N), Yr(s.M * s.N);
        const WeightMatrix wm(Precision::kBF16, W.data());
        mk::linear(X.data(), wm, bias ? b.data() : nullptr, Yg.data(), s.M, s.N, s.K);
        mk::ref::linear(X.data(), wm, bias ? b.data() : nullptr, Yr.data(), s.M, s.N, s.K);
        // fp32 accumulation of K products in [-1, 1] (measured need <= 1.8e-5 at K = 768, 1152).
        mbtest::expect_allclose(Yg, Yr, 1e-4, kRtol, mbtest::str("bf16 ", s.M, "x", s.N, "x", s.K, " bias=", bias));
      }
  });
}

TEST_P(LowpLinear, F16MatchesReference) {
  for (Shape s : linear_shapes())
    for (bool bias : {false, true}) {
      auto X = rand_vec(s.M * s.K, 21), b = rand_vec(s.N, 23);
      auto W = to_f16(rand_vec(s.N * s.K, 22));
      std::vector<float> Yg(s.M * s.N), Yr(s.M * s.N);
      const WeightMatrix wm(Precision::kF16, W.data());
      mk::linear(X.data(), wm, bias ? b.data() : nullptr, Yg.data(), s.M, s.N, s.K);
      mk::ref::linear(X.data(), wm, bias ? b.data() : nullptr, Yr.data(), s.M, s.N, s.K);
      mbtest::expect_allclose(Yg, Yr, 1e-4, kRtol, mbtest::str("f16 ", s.M, "x", s.N, "x", s.K, " bias=", bias));
    }
}

TEST_P(LowpLinear, Int8BitExactWithReference) {
  for_each_path([&](bool) {
    for (Shape s : linear_shapes())
      for (bool bias : {false, true}) {
        auto X = rand_vec(s.M * s.K, 31, -4.0f, 4.0f), b = rand_vec(s.N, 33);
        const QuantW w = quantize_w(rand_vec(s.N * s.K, 32, -0.2f, 0.2f), s.N, s.K);
        std::vector<float> Yg(s.M * s.N), Yr(s.M * s.N);
        const WeightMatrix wm(Precision::kInt8, w.q.data(), w.scale.data());
        mk::linear(X.data(), wm, bias ? b.data() : nullptr, Yg.data(), s.M, s.N, s.K);
        mk::ref::linear(X.data(), wm, bias ? b.data() : nullptr, Yr.data(), s.M, s.N, s.K);
        EXPECT_TRUE(same_bits(Yg, Yr)) << "int8 " << s.M << "x" << s.N << "x" << s.K << " bias=" << bias;
      }
  });
}

TEST_P(LowpLinear, Int8EdgeRowsAndStrides) {
  const int64_t M = 70, N = 40, K = 33, ldx = 50, ldy = 61;
  auto X = rand_vec(M * ldx, 41, -2.0f, 2.0f), b = rand_vec(N, 43);
  for (int64_t k = 0; k < K; ++k) X[static_cast<size_t>(3 * ldx + k)] = 0.0f;  // zeros -> bias
  X[static_cast<size_t>(5 * ldx + 7)] = std::numeric_limits<float>::quiet_NaN();
  X[static_cast<size_t>(6 * ldx + 0)] = -std::numeric_limits<float>::infinity();
  const QuantW w = quantize_w(rand_vec(N * K, 42), N, K);
  const WeightMatrix wm(Precision::kInt8, w.q.data(), w.scale.data());
  for_each_path([&](bool) {
    std::vector<float> Yg(M * ldy, 7.0f), Yr = Yg;
    mk::linear(X.data(), wm, b.data(), Yg.data(), M, N, K, ldx, ldy);
    mk::ref::linear(X.data(), wm, b.data(), Yr.data(), M, N, K, ldx, ldy);
    EXPECT_TRUE(same_bits(Yg, Yr));
    for (int64_t j = 0; j < N; ++j) {
      EXPECT_EQ(Yg[static_cast<size_t>(3 * ldy + j)], b[static_cast<size_t>(j)]);
      EXPECT_TRUE(std::isnan(Yg[static_cast<size_t>(5 * ldy + j)]));
      EXPECT_TRUE(std::isnan(Yg[static_cast<size_t>(6 * ldy + j)]));
    }
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = N; j < ldy; ++j) ASSERT_EQ(Yg[static_cast<size_t>(i * ldy + j)], 7.0f);  // untouched
  });
}

// M = 150: per-slice widened panels; M = 300: W widened whole, then the fp32 gemm (>= 256 rows).
TEST_P(LowpLinear, Bf16F16Strides) {
  for (const int64_t M : {150, 300}) {
    const int64_t N = 40, K = 33, ldx = 50, ldy = 61;
    auto X = rand_vec(M * ldx, 51), b = rand_vec(N, 53), Wf = rand_vec(N * K, 52);
    const auto wb = to_bf16(Wf), wh = to_f16(Wf);
    for_each_path([&](bool) {
      for (const WeightMatrix wm :
           {WeightMatrix(Precision::kBF16, wb.data()), WeightMatrix(Precision::kF16, wh.data())}) {
        std::vector<float> Yg(M * ldy, 7.0f), Yr = Yg;
        mk::linear(X.data(), wm, b.data(), Yg.data(), M, N, K, ldx, ldy);
        mk::ref::linear(X.data(), wm, b.data(), Yr.data(), M, N, K, ldx, ldy);
        mbtest::expect_allclose(Yg, Yr, 1e-5, kRtol, modernbert::precision_name(wm.type));
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = N; j < ldy; ++j) ASSERT_EQ(Yg[static_cast<size_t>(i * ldy + j)], 7.0f);
      }
    });
  }
}

TEST_P(LowpLinear, EmptyReductionAndMissingScale) {
  const int64_t M = 3, N = 4;
  std::vector<float> X(1), b = {1, 2, 3, 4}, Y(M * N, 9.0f);
  std::vector<uint16_t> w(1);
  mk::linear(X.data(), WeightMatrix(Precision::kBF16, w.data()), b.data(), Y.data(), M, N, 0);
  for (int64_t i = 0; i < M * N; ++i) EXPECT_EQ(Y[static_cast<size_t>(i)], b[static_cast<size_t>(i % N)]);
  std::vector<int8_t> q(N * 8);
  std::vector<float> X8(M * 8, 1.0f);
  EXPECT_THROW(mk::linear(X8.data(), WeightMatrix(Precision::kInt8, q.data()), nullptr, Y.data(), M, N, 8),
               modernbert::Error);
}

// The bf16 numerics against float64 on well-conditioned data (the reference backend and every
// backend): with u = 2^-9 (bf16 unit roundoff) and e = 2^-24, each element satisfies
//   |y - y64| <= (u_w + u_x + u_w u_x + K e) · Σ_k |x_k w_k|,
// u_w = u (W stored in bf16), u_x = u iff X is rounded, y64 the float64 product of the fp32 X and W.
TEST(LowpNumerics, Bf16LinearWithinBf16BoundOfFloat64) {
  const int64_t M = 64, N = 96, K = 768;
  auto X = rand_vec(M * K, 61), Wf = rand_vec(N * K, 62);
  const auto wb = to_bf16(Wf);
  const WeightMatrix wm(Precision::kBF16, wb.data());
  const double u = std::ldexp(1.0, -9), e = std::ldexp(1.0, -24);
  for (const mk::Backend* be : mbtest::test_backends_and_ref())
    for_each_path([&](bool) {
      const double ux = mk::linear_rounds_x_bf16() ? u : 0.0;
      std::vector<float> Y(M * N);
      be->linear(X.data(), wm, nullptr, Y.data(), M, N, K, 0, 0);
      double worst = 0;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double exact = 0, mag = 0;
          for (int64_t k = 0; k < K; ++k) {
            const double p = static_cast<double>(X[i * K + k]) * Wf[j * K + k];
            exact += p;
            mag += std::fabs(p);
          }
          const double bound = (u + ux + u * ux + static_cast<double>(K) * e) * mag;
          const double err = std::fabs(Y[static_cast<size_t>(i * N + j)] - exact);
          worst = std::max(worst, err / bound);
          ASSERT_LE(err, bound) << be->name << " [" << i << "," << j << "]";
        }
      // Random rounding errors add up like a random walk: far inside the worst-case bound.
      EXPECT_LT(worst, 0.25) << be->name;
    });
}

TEST(LowpNumerics, ConversionsOfTheReference) {
  // bf16: round half to even on the dropped 16 bits, NaN stays NaN, overflow to inf.
  EXPECT_EQ(mk::ref::bf16_from_float(1.0f), 0x3f80);
  EXPECT_EQ(mk::ref::bf16_from_float(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie -> even
  EXPECT_EQ(mk::ref::bf16_from_float(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(mk::ref::bf16_from_float(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_TRUE(std::isnan(mk::ref::bf16_to_float(mk::ref::bf16_from_float(std::nanf("")))));
  // f16 against the hardware conversion (F16C), over a sweep of magnitudes and the edges.
  std::vector<float> v = {0.0f, -0.0f, 1.0f, 65504.0f, 65519.0f, 65520.0f, 1e-8f, 6e-8f, 3e-8f, 6.1e-5f, -2.5e-6f};
  for (int i = -30; i <= 17; ++i)
    for (float f : {1.0f, 1.3f, 1.0009765625f, 1.00048828125f, 1.00146484375f})
      v.push_back(std::ldexp(f, i)), v.push_back(-std::ldexp(f, i));
  for (float f : v) {
    EXPECT_EQ(mk::ref::f16_from_float(f), _cvtss_sh(f, 0)) << f;
    const uint16_t h = _cvtss_sh(f, 0);
    EXPECT_EQ(mk::ref::f16_to_float(h), _cvtsh_ss(h)) << f;
  }
}

TEST(LowpNumerics, PathNamesAndRoundingFlagAgree) {
  for (Precision p : {Precision::kF32, Precision::kBF16, Precision::kF16, Precision::kInt8})
    EXPECT_FALSE(mk::linear_path(p).empty());
  const std::string bf = mk::linear_path(Precision::kBF16);
  EXPECT_EQ(mk::linear_rounds_x_bf16(), bf.find("oneDNN matmul") != std::string::npos) << bf;
  EXPECT_FALSE(mk::attention_runs_bf16(Precision::kF32));
  EXPECT_FALSE(mk::attention_runs_bf16(Precision::kF16));
  EXPECT_EQ(mk::attention_runs_bf16(Precision::kBF16), mk::linear_rounds_x_bf16());
  EXPECT_EQ(mk::attention_runs_bf16(Precision::kInt8), mk::linear_rounds_x_bf16());
  EXPECT_EQ(mk::attention_path(Precision::kF32), "fp32");
  std::printf("  linear paths: bf16: %s | f16: %s | int8: %s\n", bf.c_str(), mk::linear_path(Precision::kF16).c_str(),
              mk::linear_path(Precision::kInt8).c_str());
}

// ---- The packed weights of oneDNN's fp32 brgemm (the widening path on AVX-512) ----------------------

// widen_pack against its layout written out (lowp.h): panel n / 64, row k, column n % 64, zeros
// beyond N and K; every edge case of the 8 x 8 blocks (N, K not multiples of 8, 16 or 64).
TEST(LowpPacked, WidenPackIsTheLayoutBitForBit) {
  namespace lp = mk::cpu::lowp;
  const int64_t shapes[][2] = {{100, 40}, {64, 16}, {7, 3}, {130, 20}, {192, 768}, {9, 1}};
  for (Precision t : {Precision::kF16, Precision::kBF16})
    for (const auto& nk : shapes) {
      const int64_t N = nk[0], K = nk[1], Kp = (K + 15) / 16 * 16, Np = (N + 63) / 64 * 64;
      const auto W32 = rand_vec(N * K, 71, -3.0f, 3.0f);
      const auto W16 = t == Precision::kF16 ? to_f16(W32) : to_bf16(W32);
      ASSERT_EQ(lp::packed_floats(N, K), Kp * Np);
      std::vector<float> got(static_cast<size_t>(Kp * Np), std::numeric_limits<float>::quiet_NaN()),
          want(static_cast<size_t>(Kp * Np), 0.0f);
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
          want[(n / 64) * Kp * 64 + k * 64 + n % 64] =
              t == Precision::kF16 ? mk::ref::f16_to_float(W16[n * K + k]) : mk::ref::bf16_to_float(W16[n * K + k]);
      // Two calls over the panels (as the pool splits them).
      const int64_t panels = Np / 64, half = panels / 2;
      lp::widen_pack(t, W16.data(), N, K, got.data(), 0, half);
      lp::widen_pack(t, W16.data(), N, K, got.data(), half, panels);
      EXPECT_TRUE(same_bits(got, want)) << precision_name(t) << " N=" << N << " K=" << K;
    }
}

// onednn_matmul_packed against the float64 gemm: M in pieces of 128, multiples of 16 and powers of
// two, with and without bias; it refuses strided A or C. Where no brgemm reads the layout (CPUs without
// AVX-512, or the test hook), the probe says so and every linear takes the widening panels.
TEST(LowpPacked, MatmulOnPackedWeightsIsTheGemm) {
  namespace lp = mk::cpu::lowp;
  std::string impl;
  const bool usable = lp::onednn_packed_usable(&impl);
  std::printf("  packed fp32 matmul: %s (%s)\n", usable ? "usable" : "not usable", impl.c_str());
  EXPECT_EQ(mk::linear_path(Precision::kF16).find("packed") != std::string::npos, usable)
      << mk::linear_path(Precision::kF16);
  lp::set_force_portable(true);
  EXPECT_FALSE(lp::onednn_packed_usable());
  EXPECT_EQ(mk::linear_path(Precision::kF16).find("packed"), std::string::npos);
  lp::set_force_portable(false);
  if (!usable) {
    EXPECT_EQ(impl.find("brg"), std::string::npos) << impl;
    return;
  }
  const int64_t N = 130, K = 72;
  const auto W16 = to_f16(rand_vec(N * K, 81));
  std::vector<float> P(static_cast<size_t>(lp::packed_floats(N, K)));
  lp::widen_pack(Precision::kF16, W16.data(), N, K, P.data(), 0, (N + 63) / 64);
  std::vector<float> W(W16.size());
  for (size_t i = 0; i < W.size(); ++i) W[i] = mk::ref::f16_to_float(W16[i]);
  const auto b = rand_vec(N, 83);
  for (int64_t M : {1, 5, 96, 127, 128, 129, 300})
    for (bool bias : {false, true}) {
      const auto X = rand_vec(M * K, 82, -2.0f, 2.0f);
      std::vector<float> got(M * N), want(M * N);
      ASSERT_TRUE(lp::onednn_matmul_packed(X.data(), K, P.data(), bias ? b.data() : nullptr, got.data(), N, M, N, K));
      mk::ref::gemm(X.data(), W.data(), bias ? b.data() : nullptr, want.data(), M, N, K);
      // fp32 sums of 72 products of size <= 2 (atol ~10x the rounding of such sums).
      mbtest::expect_allclose(got, want, 2e-5, kRtol, mbtest::str("packed M=", M, " bias=", bias));
    }
  std::vector<float> X(4 * (K + 1)), C(4 * (N + 1));
  EXPECT_FALSE(lp::onednn_matmul_packed(X.data(), K + 1, P.data(), nullptr, C.data(), N, 4, N, K));
  EXPECT_FALSE(lp::onednn_matmul_packed(X.data(), K, P.data(), nullptr, C.data(), N + 1, 4, N, K));
}

// The pool deals a linear's rows (packed path: pieces whose count is a multiple of the threads) or
// its columns (widening panels) by its size; every output is still one sum in one order, so the
// bits do not depend on the thread count.
TEST(LowpPacked, F16LinearIsThreadCountFree) {
  const int64_t N = 200, K = 96;
  const auto W16 = to_f16(rand_vec(N * K, 91));
  const WeightMatrix wm(Precision::kF16, W16.data());
  const auto b = rand_vec(N, 93);
  for (int64_t M : {3, 40, 200, 300, 384, 1000}) {
    const auto X = rand_vec(M * K, 92, -2.0f, 2.0f);
    std::vector<std::vector<float>> outs;
    for (int threads : {1, 2, 3}) {
      modernbert::set_default_threads(threads);
      outs.emplace_back(static_cast<size_t>(M * N));
      mk::linear(X.data(), wm, b.data(), outs.back().data(), M, N, K);
    }
    modernbert::set_default_threads(0);
    EXPECT_TRUE(same_bits(outs[0], outs[1])) << "M=" << M << ": 1 vs 2 threads";
    EXPECT_TRUE(same_bits(outs[0], outs[2])) << "M=" << M << ": 1 vs 3 threads";
  }
}

// ---- embedding_typed ---------------------------------------------------------------------------------

TEST_P(LowpEmbedding, BitExactAllTypes) {
  const int64_t V = 50, H = 77, T = 300;
  auto Ef = rand_vec(V * H, 71, -3.0f, 3.0f);
  const auto eb = to_bf16(Ef), eh = to_f16(Ef);
  const QuantW eq = quantize_w(Ef, V, H);
  std::vector<int32_t> ids(T);
  for (int64_t t = 0; t < T; ++t) ids[static_cast<size_t>(t)] = static_cast<int32_t>((t * 7 + 3) % V);
  for (const WeightMatrix wm :
       {WeightMatrix(Ef.data()), WeightMatrix(Precision::kBF16, eb.data()), WeightMatrix(Precision::kF16, eh.data()),
        WeightMatrix(Precision::kInt8, eq.q.data(), eq.scale.data())}) {
    std::vector<float> xg(T * H, -1), xr(T * H, -2);
    mk::embedding(ids.data(), wm, xg.data(), T, H);
    mk::ref::embedding_typed(ids.data(), wm, xr.data(), T, H);
    EXPECT_TRUE(same_bits(xg, xr)) << modernbert::precision_name(wm.type);
  }
  // The widened values are the stored ones, exactly.
  std::vector<float> x(H);
  const int32_t id = 4;
  mk::embedding(&id, WeightMatrix(Precision::kBF16, eb.data()), x.data(), 1, H);
  for (int64_t c = 0; c < H; ++c) EXPECT_EQ(x[static_cast<size_t>(c)], mk::ref::bf16_to_float(eb[4 * H + c]));
}

// ---- The bf16 activation stream (backend.h): producers write bf16, linear_bf16_input reads it ----

namespace {

std::vector<float> widen(const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = mk::ref::bf16_to_float(v[i]);
  return o;
}

// Bit equality of two bf16 vectors.
::testing::AssertionResult same_bf16(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      return ::testing::AssertionFailure() << "element " << i << ": got " << mk::ref::bf16_to_float(got[i]) << ", want "
                                           << mk::ref::bf16_to_float(want[i]);
  return ::testing::AssertionSuccess();
}

// A bf16 result against the reference backend's: the fp32 values behind them agree to ~1e-6
// relative, so the rounded values are equal or one bf16 step (2^-8 relative) apart.
void expect_bf16_close(const std::vector<uint16_t>& got, const std::vector<uint16_t>& ref, const std::string& what) {
  mbtest::expect_allclose(widen(got), widen(ref), 1e-6, 1.0 / 128, what);
}

}  // namespace

MB_BACKEND_SUITE(LowpStream);

TEST_P(LowpStream, LinearBf16InputIsLinearOfTheRoundedX) {
  for_each_path([&](bool portable) {
    for (Shape s : linear_shapes())
      for (bool bias : {false, true}) {
        const auto X = rand_vec(s.M * s.K, 21), b = rand_vec(s.N, 23);
        const auto W = to_bf16(rand_vec(s.N * s.K, 22));
        const auto Xb = to_bf16(X);
        const auto Xr = widen(Xb);
        const WeightMatrix wm(Precision::kBF16, W.data());
        const float* bp = bias ? b.data() : nullptr;
        std::vector<float> got(s.M * s.N), want(s.M * s.N), ref(s.M * s.N);
        mk::linear_bf16_input(Xb.data(), wm, bp, got.data(), s.M, s.N, s.K);
        const std::string what = mbtest::str(s.M, "x", s.N, "x", s.K, " bias=", bias);
        // linear() of the widened X: the same sums, bit for bit (rounding a bf16 value is exact) ...
        mk::linear(Xr.data(), wm, bp, want.data(), s.M, s.N, s.K);
        EXPECT_TRUE(same_bits(got, want)) << what;
        // ... and, where linear() rounds X itself, linear() of the fp32 X: the stream changes no bit.
        if (mk::linear_rounds_x_bf16()) {
          mk::linear(X.data(), wm, bp, want.data(), s.M, s.N, s.K);
          EXPECT_TRUE(same_bits(got, want)) << what;
        }
        EXPECT_TRUE(!portable || !mk::linear_rounds_x_bf16());
        mk::ref::linear_bf16_input(Xb.data(), wm, bp, ref.data(), s.M, s.N, s.K);
        mbtest::expect_allclose(got, ref, 1e-4, kRtol, what);
      }
  });
  std::vector<float> w32(4 * 8), y(2 * 4);
  std::vector<uint16_t> xb(2 * 8);
  EXPECT_THROW(mk::linear_bf16_input(xb.data(), WeightMatrix(w32.data()), nullptr, y.data(), 2, 4, 8),
               modernbert::Error);
}

namespace {

std::vector<float> widen16(Precision t, const std::vector<uint16_t>& v) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i)
    o[i] = t == Precision::kBF16 ? mk::ref::bf16_to_float(v[i]) : mk::ref::f16_to_float(v[i]);
  return o;
}
std::vector<uint16_t> round16(Precision t, const std::vector<float>& v) {
  return t == Precision::kBF16 ? to_bf16(v) : to_f16(v);
}
// Bit equality of two 16-bit vectors.
::testing::AssertionResult same_16(const std::vector<uint16_t>& got, const std::vector<uint16_t>& want) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != want[i])
      return ::testing::AssertionFailure() << "element " << i << ": got bits " << got[i] << ", want " << want[i];
  return ::testing::AssertionSuccess();
}
// A 16-bit GeGLU output g [T, I] of GELU (erf evaluated in float, simd::erf_f32) against want,
// the GeGLU of u [T, 2I] with a more exact erf: each element within the type's rounding (2^-8
// relative for bf16, 2^-11 for f16: twice the half step; f16's smallest subnormal 2^-24 absolute)
// plus the float erf's error carried through GELU, 0.5 |a| 5e-7 |b| (a, b the element's inputs).
// No bit-equality count: how many elements round apart depends on how many inputs lie in the
// negative tail, where GELU is tiny and 1 + erf(x) cancels (6% of them for u uniform in [-8, 8],
// 0.04% for 3 sin(i)).
::testing::AssertionResult gelu16_close(Precision t, const std::vector<float>& u, const std::vector<uint16_t>& g,
                                        const std::vector<double>& want, int64_t T, int64_t I) {
  const double rel = t == Precision::kBF16 ? 1.0 / 256 : 1.0 / 2048;
  const double atol = t == Precision::kBF16 ? 0.0 : std::ldexp(1.0, -24);
  for (int64_t r = 0; r < T; ++r)
    for (int64_t i = 0; i < I; ++i) {
      const size_t k = static_cast<size_t>(r * I + i);
      const double a = u[static_cast<size_t>(r * 2 * I + i)], b = u[static_cast<size_t>(r * 2 * I + I + i)];
      const double got = t == Precision::kBF16 ? mk::ref::bf16_to_float(g[k]) : mk::ref::f16_to_float(g[k]);
      if (std::abs(got - want[k]) > rel * std::abs(want[k]) + atol + 0.5 * std::abs(a) * 5e-7 * std::abs(b))
        return ::testing::AssertionFailure()
               << "element " << k << ": got " << got << ", want " << want[k] << " (a " << a << ", b " << b << ")";
    }
  return ::testing::AssertionSuccess();
}
// A 16-bit result against the reference backend's: the fp32 values behind them agree to ~1e-5
// relative, so the rounded values are equal or one step apart (2^-8 relative bf16, 2^-11 f16).
void expect_16_close(Precision t, const std::vector<uint16_t>& got, const std::vector<uint16_t>& ref,
                     const std::string& what) {
  mbtest::expect_allclose(widen16(t, got), widen16(t, ref), 1e-5, t == Precision::kBF16 ? 1.0 / 128 : 1.0 / 1024, what);
}

}  // namespace

TEST_P(LowpStream, SixteenBitOutOpsAreTheirFp32OpsRounded) {
  // The *_bf16out ops (bf16 activation stream) and *_f16out ops (widening stream): each is bitwise
  // its fp32 op rounded to the type, and within one step of the type of the reference backend's.
  // GELU's GLU is the exception: its erf is evaluated in float for a 16-bit output (simd::erf_f32),
  // so a few elements differ from the rounded fp32 op's, within gelu16_close's bounds.
  const int64_t rows = 37, C = 75, I = 43;  // odd sizes: every rounding path ends in a tail
  const auto x = rand_vec(rows * C, 31, -3.0f, 3.0f), r = rand_vec(rows * C, 32), g = rand_vec(C, 33, 0.5f, 1.5f),
             be = rand_vec(C, 34), u = rand_vec(rows * 2 * I, 35, -4.0f, 4.0f);
  struct Ops {
    Precision t;
    decltype(&mk::layernorm_bf16out) ln, ref_ln;
    decltype(&mk::add_layernorm_bf16out) add_ln, ref_add_ln;
    decltype(&mk::glu_bf16out) glu, ref_glu;
  };
  const Ops all[] = {{Precision::kBF16, mk::layernorm_bf16out, mk::ref::layernorm_bf16out, mk::add_layernorm_bf16out,
                      mk::ref::add_layernorm_bf16out, mk::glu_bf16out, mk::ref::glu_bf16out},
                     {Precision::kF16, mk::layernorm_f16out, mk::ref::layernorm_f16out, mk::add_layernorm_f16out,
                      mk::ref::add_layernorm_f16out, mk::glu_f16out, mk::ref::glu_f16out}};
  // Both rounding paths of lowp::round_bf16 (AVX512-BF16 / AVX-512 here, and the AVX2 one).
  for_each_path([&](bool) {
    for (const Ops& op : all) {
      SCOPED_TRACE(precision_name(op.t));
      for (bool affine : {true, false}) {
        const float* gp = affine ? g.data() : nullptr;
        const float* bp = affine ? be.data() : nullptr;
        std::vector<float> y(rows * C);
        std::vector<uint16_t> got(rows * C), ref(rows * C);
        mk::layernorm(x.data(), gp, bp, y.data(), rows, C, 1e-5f, nullptr, nullptr);
        op.ln(x.data(), gp, bp, got.data(), rows, C, 1e-5f);
        EXPECT_TRUE(same_16(got, round16(op.t, y))) << "layernorm affine=" << affine;
        op.ref_ln(x.data(), gp, bp, ref.data(), rows, C, 1e-5f);
        expect_16_close(op.t, got, ref, "layernorm");

        auto x1 = x, x2 = x, x3 = x;
        mk::add_layernorm(x1.data(), r.data(), gp, bp, y.data(), rows, C, 1e-5f, nullptr, nullptr);
        op.add_ln(x2.data(), r.data(), gp, bp, got.data(), rows, C, 1e-5f);
        EXPECT_TRUE(same_bits(x2, x1)) << "add_layernorm's residual";
        EXPECT_TRUE(same_16(got, round16(op.t, y))) << "add_layernorm affine=" << affine;
        op.ref_add_ln(x3.data(), r.data(), gp, bp, ref.data(), rows, C, 1e-5f);
        mbtest::expect_allclose(x3, x2, 0, 0, "add_layernorm residual vs ref");
        expect_16_close(op.t, got, ref, "add_layernorm");
      }
      for (mk::Act act : {mk::Act::kGelu, mk::Act::kGeluTanh, mk::Act::kSilu}) {
        std::vector<float> y(rows * I);
        std::vector<uint16_t> got(rows * I), ref(rows * I);
        mk::glu(act, u.data(), y.data(), rows, I);
        op.glu(act, u.data(), got.data(), rows, I);
        if (act == mk::Act::kGelu)
          EXPECT_TRUE(gelu16_close(op.t, u, got, std::vector<double>(y.begin(), y.end()), rows, I));
        else
          EXPECT_TRUE(same_16(got, round16(op.t, y))) << "glu " << static_cast<int>(act);
        op.ref_glu(act, u.data(), ref.data(), rows, I);
        expect_16_close(op.t, got, ref, "glu");
      }
    }
  });
}

TEST(LowpGelu, ErfF32IsWithin4e7AndTheSixteenBitGeluIsPathFree) {
  // simd::erf_f32 (the rational of simd::erf evaluated in float) against std::erf in double on
  // [-6, 6] in steps of 2^-12: |error| <= 4e-7 (measured 3.74e-7, near |x| = 4).
  double worst = 0;
  for (int i = -6 * 4096; i <= 6 * 4096; i += 8) {
    alignas(32) float x[8], e[8];
    for (int j = 0; j < 8; ++j) x[j] = static_cast<float>(i + j) / 4096.0f;
    _mm256_store_ps(e, mk::simd::erf_f32(_mm256_load_ps(x)));
    for (int j = 0; j < 8; ++j) worst = std::max(worst, std::abs(e[j] - std::erf(static_cast<double>(x[j]))));
  }
  EXPECT_LE(worst, 4e-7);
  EXPECT_GT(worst, 1e-8);  // it is the float evaluation (the double one is ~1e-7 at most)
  // The 16-bit GeGLU (its GELU on this erf) gives the same bits on the AVX-512 and AVX2 code, and
  // is gelu16_close to the fp32 op (double-evaluated erf) and to the exact GeGLU in double. u up to
  // |8| reaches every branch of the erf (the clamp at 4, the tails).
  const int64_t T = 64, I = 1000;  // I = 62 x 16 + 8: the AVX-512 loop's masked tail and AVX2's
  const auto u = rand_vec(T * 2 * I, 91, -8.0f, 8.0f);
  std::vector<float> fp32(static_cast<size_t>(T * I));
  mk::glu(mk::Act::kGelu, u.data(), fp32.data(), T, I);
  std::vector<double> exact(fp32.size());
  for (int64_t r = 0; r < T; ++r)
    for (int64_t i = 0; i < I; ++i) {
      const double a = u[static_cast<size_t>(r * 2 * I + i)], b = u[static_cast<size_t>(r * 2 * I + I + i)];
      exact[static_cast<size_t>(r * I + i)] = 0.5 * a * (1.0 + std::erf(a / std::sqrt(2.0))) * b;
    }
  for (Precision t : {Precision::kBF16, Precision::kF16}) {
    SCOPED_TRACE(precision_name(t));
    std::vector<uint16_t> got[2];
    for (bool portable : {false, true}) {
      mk::cpu::lowp::set_force_portable(portable);
      auto& g = got[portable ? 1 : 0];
      g.resize(static_cast<size_t>(T * I));
      (t == Precision::kBF16 ? mk::glu_bf16out : mk::glu_f16out)(mk::Act::kGelu, u.data(), g.data(), T, I);
    }
    mk::cpu::lowp::set_force_portable(false);
    EXPECT_TRUE(same_16(got[0], got[1])) << "AVX-512 against AVX2";
    EXPECT_TRUE(gelu16_close(t, u, got[0], std::vector<double>(fp32.begin(), fp32.end()), T, I)) << "fp32 op";
    EXPECT_TRUE(gelu16_close(t, u, got[0], exact, T, I)) << "exact";
  }
}

TEST_P(LowpStream, AttentionBf16OutIsTheFp32OutRounded) {
  const int64_t heads = 3, d = 32, H = heads * d;
  const std::vector<int64_t> cu = {0, 5, 40, 41, 97};
  const int64_t B = 4, T = cu.back();
  const auto qkv = rand_vec(T * 3 * H, 41, -2.0f, 2.0f);
  const auto table = mk::make_rope_table(160000.0, d, 128);
  for (int64_t hw : {int64_t{-1}, int64_t{8}})
    for (bool with_ws : {false, true}) {
      std::vector<float> ws(with_ws ? mk::attention_bf16_workspace_floats(T, heads, d) : 0);
      float* wsp = with_ws ? ws.data() : nullptr;
      std::vector<float> y(T * H);
      std::vector<uint16_t> got(T * H), ref(T * H);
      mk::attention_bf16(qkv.data(), y.data(), cu.data(), B, heads, d, hw, wsp, &table);
      mk::attention_bf16_bf16out(qkv.data(), got.data(), cu.data(), B, heads, d, hw, wsp, &table);
      EXPECT_TRUE(same_bf16(got, to_bf16(y))) << "hw " << hw;
      mk::ref::attention_bf16_bf16out(qkv.data(), ref.data(), cu.data(), B, heads, d, hw, nullptr, &table);
      expect_bf16_close(got, ref, mbtest::str("attention hw ", hw));
      // outb may alias qkv: written over the end of a copy of it, as the encoder does.
      for (bool reference : {false, true}) {
        auto q2 = qkv;
        uint16_t* ob = reinterpret_cast<uint16_t*>(q2.data() + q2.size()) - T * H;
        (reference ? mk::ref::attention_bf16_bf16out : mk::attention_bf16_bf16out)(q2.data(), ob, cu.data(), B, heads,
                                                                                   d, hw, wsp, &table);
        EXPECT_TRUE(same_bf16(std::vector<uint16_t>(ob, ob + T * H), reference ? ref : got)) << "aliased, hw " << hw;
      }
    }
}

// ---- The widening activation stream (backend.h): 16-bit activations, fp32 GEMMs and attention ----

TEST_P(LowpStream, F16OutBeyondTheRangeIsInfAndSubnormalsStay) {
  // Beyond the f16 range: inf, as F16C rounds it (and ref::f16_from_float); tiny values stay
  // subnormal halves, not zero.
  const std::vector<float> big = {70000.0f, -80000.0f, 65000.0f, 65519.0f, 1e-6f, -3e-7f, 0.0f, 1.0f, 2.5f};
  std::vector<uint16_t> h(big.size());
  std::vector<float> u2(2 * big.size());
  for (size_t i = 0; i < big.size(); ++i) u2[i] = 1000.0f, u2[big.size() + i] = big[i] / 1000.0f;
  // glu with silu(1000) = 1000: y = big (up to rounding of the /1000 * 1000)
  mk::glu_f16out(mk::Act::kSilu, u2.data(), h.data(), 1, static_cast<int64_t>(big.size()));
  EXPECT_TRUE(std::isinf(mk::ref::f16_to_float(h[0])) && mk::ref::f16_to_float(h[0]) > 0);
  EXPECT_TRUE(std::isinf(mk::ref::f16_to_float(h[1])) && mk::ref::f16_to_float(h[1]) < 0);
  EXPECT_TRUE(std::isfinite(mk::ref::f16_to_float(h[2])));
  EXPECT_GT(mk::ref::f16_to_float(h[4]), 0.0f);  // 1e-6: a subnormal half (2^-24 steps)
  EXPECT_LT(mk::ref::f16_to_float(h[5]), 0.0f);
  std::vector<float> y2(big.size());
  mk::glu(mk::Act::kSilu, u2.data(), y2.data(), 1, static_cast<int64_t>(big.size()));
  EXPECT_TRUE(same_16(h, to_f16(y2)));
}

TEST_P(LowpStream, Linear16InIsLinearOfTheWidenedX) {
  // Shapes of linear_shapes() plus M beyond one 512-row tile (and at >= 256 rows, where 16-bit W
  // is widened whole once per call).
  std::vector<Shape> shapes = linear_shapes();
  shapes.push_back({1100, 160, 768});
  shapes.push_back({513, 48, 96});
  for_each_path([&](bool) {
    for (Precision t : {Precision::kBF16, Precision::kF16})
      for (Precision wt : {Precision::kF16, Precision::kBF16, Precision::kF32})
        for (Shape s : shapes) {
          const auto X = rand_vec(s.M * s.K, 61, -2.0f, 2.0f), b = rand_vec(s.N, 63);
          const auto W32 = rand_vec(s.N * s.K, 62);
          const auto W16 = wt == Precision::kBF16 ? to_bf16(W32) : to_f16(W32);
          const WeightMatrix wm = wt == Precision::kF32 ? WeightMatrix(W32.data()) : WeightMatrix(wt, W16.data());
          const auto X16 = round16(t, X);
          const auto Xw = widen16(t, X16);
          const std::string what =
              mbtest::str(precision_name(t), " x, ", precision_name(wt), " W, ", s.M, "x", s.N, "x", s.K);
          std::vector<float> got(s.M * s.N), want(s.M * s.N), ref(s.M * s.N);
          std::vector<uint16_t> got16(s.M * s.N), ref16(s.M * s.N);
          mk::linear_16in(t, X16.data(), wm, b.data(), got.data(), nullptr, s.M, s.N, s.K);
          mk::linear(Xw.data(), wm, b.data(), want.data(), s.M, s.N, s.K);
          // One tile: the very call linear() makes; more: the same sums in tiles of rows.
          if (s.M <= 512)
            EXPECT_TRUE(same_bits(got, want)) << what;
          else
            mbtest::expect_allclose(got, want, 1e-5, kRtol, what);
          mk::linear_16in(t, X16.data(), wm, b.data(), nullptr, got16.data(), s.M, s.N, s.K);
          EXPECT_TRUE(same_16(got16, round16(t, got))) << what << " (16-bit output)";
          mk::ref::linear_16in(t, X16.data(), wm, b.data(), ref.data(), nullptr, s.M, s.N, s.K, nullptr, 0);
          mbtest::expect_allclose(got, ref, 1e-4, kRtol, what + " vs ref");
          mk::ref::linear_16in(t, X16.data(), wm, b.data(), nullptr, ref16.data(), s.M, s.N, s.K, nullptr, 0);
          // With a workspace for 288-row tiles (and W widened whole): the same sums in other tiles.
          std::vector<float> ws(static_cast<size_t>(s.N * s.K + 288 * (s.K + s.N)));
          std::vector<float> got_ws(s.M * s.N);
          std::vector<uint16_t> got16_ws(s.M * s.N);
          mk::linear_16in(t, X16.data(), wm, b.data(), got_ws.data(), nullptr, s.M, s.N, s.K, ws.data(),
                          static_cast<int64_t>(ws.size()));
          if (s.M <= 288)
            EXPECT_TRUE(same_bits(got_ws, want)) << what << " (workspace)";
          else
            mbtest::expect_allclose(got_ws, want, 1e-5, kRtol, what + " (workspace)");
          mk::linear_16in(t, X16.data(), wm, b.data(), nullptr, got16_ws.data(), s.M, s.N, s.K, ws.data(),
                          static_cast<int64_t>(ws.size()));
          // (its tiles are shorter than the fp32 output's: it also holds the Y tile)
          if (s.M <= 288)
            EXPECT_TRUE(same_16(got16_ws, round16(t, want))) << what << " (workspace, 16-bit output)";
          else
            expect_16_close(t, got16_ws, round16(t, want), what + " (workspace, 16-bit output)");
          mbtest::expect_allclose(widen16(t, got16), widen16(t, ref16), 1e-4,
                                  t == Precision::kBF16 ? 1.0 / 128 : 1.0 / 1024, what + " 16-bit vs ref");
        }
  });
  std::vector<float> w32(4 * 8), y(2 * 4);
  std::vector<uint16_t> x16(2 * 8), y16(2 * 4);
  const WeightMatrix wm(w32.data());
  EXPECT_THROW(mk::linear_16in(Precision::kF32, x16.data(), wm, nullptr, y.data(), nullptr, 2, 4, 8),
               modernbert::Error);
  EXPECT_THROW(mk::linear_16in(Precision::kF16, x16.data(), wm, nullptr, nullptr, nullptr, 2, 4, 8), modernbert::Error);
  EXPECT_THROW(mk::linear_16in(Precision::kF16, x16.data(), wm, nullptr, y.data(), y16.data(), 2, 4, 8),
               modernbert::Error);
}

TEST_P(LowpStream, LinearGlu16InIsTheGluOfLinear16In) {
  // The fused Wi + GeGLU of the widening stream: per tile, glu_*out of linear_16in's fp32 tile.
  // Without a workspace both run 512-row tiles, so the bits agree at every M; with one (288-row
  // tiles of X and u), within the type's step of the one-call result beyond one tile.
  struct GluShape {
    int64_t M, I, K;
  };
  for_each_path([&](bool) {
    for (Precision t : {Precision::kBF16, Precision::kF16})
      for (Precision wt : {Precision::kF16, Precision::kBF16, Precision::kF32})
        for (const GluShape s : {GluShape{5, 24, 40}, GluShape{300, 96, 64}, GluShape{1100, 80, 96}})
          for (mk::Act act : {mk::Act::kGelu, mk::Act::kSilu}) {
            const int64_t N = 2 * s.I;
            const auto X = rand_vec(s.M * s.K, 81, -2.0f, 2.0f), b = rand_vec(N, 83);
            const auto W32 = rand_vec(N * s.K, 82);
            const auto W16 = wt == Precision::kBF16 ? to_bf16(W32) : to_f16(W32);
            const WeightMatrix wm = wt == Precision::kF32 ? WeightMatrix(W32.data()) : WeightMatrix(wt, W16.data());
            const auto X16 = round16(t, X);
            const std::string what = mbtest::str(precision_name(t), " x, ", precision_name(wt), " W, ", s.M, "x", s.I,
                                                 "x", s.K, " act ", static_cast<int>(act));
            std::vector<float> u(s.M * N);
            std::vector<uint16_t> want(s.M * s.I), got(s.M * s.I), got_ws(s.M * s.I), ref(s.M * s.I);
            mk::linear_16in(t, X16.data(), wm, b.data(), u.data(), nullptr, s.M, N, s.K);
            if (t == Precision::kF16)
              mk::glu_f16out(act, u.data(), want.data(), s.M, s.I);
            else
              mk::glu_bf16out(act, u.data(), want.data(), s.M, s.I);
            mk::linear_glu_16in(t, act, X16.data(), wm, b.data(), got.data(), s.M, s.I, s.K);
            EXPECT_TRUE(same_16(got, want)) << what;
            std::vector<float> ws(static_cast<size_t>(N * s.K + 288 * (s.K + N)));
            mk::linear_glu_16in(t, act, X16.data(), wm, b.data(), got_ws.data(), s.M, s.I, s.K, ws.data(),
                                static_cast<int64_t>(ws.size()));
            // Absolute slack: 1e-5, and for GELU the float erf's error of its 16-bit output (0.5 |a|
            // 4e-7 |b|, gelu16_close) at |a|, |b| up to ~25 here: 1.3e-4. u's last bits differ
            // between the tilings and from ref, and in GELU's negative tail the float erf turns that
            // into differences of that order.
            const double atol = act == mk::Act::kGelu ? 2e-4 : 1e-5;
            const double rtol = t == Precision::kBF16 ? 1.0 / 128 : 1.0 / 1024;
            if (s.M <= 288)
              EXPECT_TRUE(same_16(got_ws, want)) << what << " (workspace)";
            else
              mbtest::expect_allclose(widen16(t, got_ws), widen16(t, want), atol, rtol, what + " (workspace)");
            mk::ref::linear_glu_16in(t, act, X16.data(), wm, b.data(), ref.data(), s.M, s.I, s.K, nullptr, 0);
            mbtest::expect_allclose(widen16(t, got), widen16(t, ref), std::max(atol, 1e-4), rtol, what + " vs ref");
          }
  });
  std::vector<float> w32(4 * 8);
  std::vector<uint16_t> x16(2 * 8), g16(2 * 2);
  const WeightMatrix wm(w32.data());
  EXPECT_THROW(mk::linear_glu_16in(Precision::kF32, mk::Act::kGelu, x16.data(), wm, nullptr, g16.data(), 2, 2, 8),
               modernbert::Error);
  EXPECT_THROW(mk::linear_glu_16in(Precision::kF16, mk::Act::kGelu, x16.data(), wm, nullptr, nullptr, 2, 2, 8),
               modernbert::Error);
}

TEST_P(LowpStream, Attention16IoIsTheFp32AttentionOfTheWidenedQkv) {
  // Small; and beyond 1024 tokens, where the kernel packs a group of heads at a time (5 heads: groups
  // of 2, 2 and 1), so its workspace is under the all-heads packing's K^T and V.
  struct Case {
    int64_t heads, d;
    std::vector<int64_t> cu;
    int64_t local_hw;
  };
  // (d = 20: the scalar tails of the 16-bit row loads and a part-filled V panel.)
  for (const Case& c :
       {Case{3, 32, {0, 5, 40, 41, 97}, 8}, Case{5, 16, {0, 7, 700, 1100}, 40}, Case{2, 20, {0, 3, 50}, 8}}) {
    const int64_t heads = c.heads, d = c.d, H = heads * d;
    const std::vector<int64_t>& cu = c.cu;
    const int64_t B = static_cast<int64_t>(cu.size()) - 1, T = cu.back();
    const auto qkv = rand_vec(T * 3 * H, 71, -2.0f, 2.0f);
    const auto table = mk::make_rope_table(160000.0, d, 1024);
    if (T > 1024) {
      EXPECT_LT(mk::attention_16io_workspace_floats(T, heads, d), static_cast<size_t>(heads * (T + 16) * 2 * d));
    }
    for (Precision t : {Precision::kBF16, Precision::kF16})
      for (int64_t hw : {int64_t{-1}, c.local_hw})
        for (bool with_ws : {false, true}) {
          const std::string what = mbtest::str(precision_name(t), " T ", T, " hw ", hw, " ws ", with_ws);
          const auto q16 = round16(t, qkv);
          const auto qw = widen16(t, q16);
          std::vector<float> ws(with_ws ? mk::attention_16io_workspace_floats(T, heads, d) : 0);
          float* wsp = with_ws ? ws.data() : nullptr;
          std::vector<float> y(T * H);
          std::vector<uint16_t> got(T * H), ref(T * H);
          mk::attention(qw.data(), y.data(), cu.data(), B, heads, d, hw, nullptr, &table, nullptr);
          mk::attention_16io(t, q16.data(), got.data(), cu.data(), B, heads, d, hw, wsp, &table);
          EXPECT_TRUE(same_16(got, round16(t, y))) << what;
          mk::ref::attention_16io(t, q16.data(), ref.data(), cu.data(), B, heads, d, hw, nullptr, &table);
          expect_16_close(t, got, ref, what + " vs ref");
          // Without RoPE too (each work item then only scales its query rows).
          mk::attention(qw.data(), y.data(), cu.data(), B, heads, d, hw, nullptr, nullptr, nullptr);
          mk::attention_16io(t, q16.data(), got.data(), cu.data(), B, heads, d, hw, wsp, nullptr);
          EXPECT_TRUE(same_16(got, round16(t, y))) << what << " no rope";
        }
  }
  const int64_t heads = 3, d = 32, H = heads * d;
  std::vector<uint16_t> q(3 * H), o(H);
  const std::vector<int64_t> cu1 = {0, 1};
  EXPECT_THROW(mk::attention_16io(Precision::kInt8, q.data(), o.data(), cu1.data(), 1, heads, d, -1, nullptr, nullptr),
               modernbert::Error);
}
