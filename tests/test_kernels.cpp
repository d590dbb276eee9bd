// Every kernel backend vs the reference backend (kernels/backend.h, kernels/ref/ref.h), one
// instantiation per backend (backend_test_util.h).
// Inputs are random with odd sizes and edge cases (length-1 sequences, windows wider than the
// sequence, sizes not multiples of the SIMD width or tile sizes). Tolerances are absolute unless
// noted and are stated next to each check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "backend_test_util.h"
#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/ref/ref.h"
#include "modernbert/error.h"
#include "test_util.h"

namespace mk = modernbert::kernels;

namespace {

std::vector<float> rand_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Fast vs reference kernel: every element within |fast - ref| <= atol + kRtol |ref|
// (mbtest::expect_allclose). The atol stated at each check bounds the error of elements near zero;
// kRtol that of large ones. Measured with MB_ALLCLOSE_STATS=1 (AVX2 build): at kRtol the atol needed
// was <= 2.2e-6 for the GEMMs (K <= 130), 2.3e-7 for the layer norms, 5.2e-7 for the GLUs,
// 3.5e-8 for attention at inputs in [-1, 1] (7e-6 at large scores) and 2e-8 for RoPE; each stated
// atol is about 10x the measured need.
constexpr double kRtol = 1e-5;

std::vector<int64_t> cu_from_lengths(const std::vector<int64_t>& lens) {
  std::vector<int64_t> cu(1, 0);
  for (int64_t n : lens) cu.push_back(cu.back() + n);
  return cu;
}

}  // namespace

MB_BACKEND_SUITE(Gemm);
MB_BACKEND_SUITE(LayerNorm);
MB_BACKEND_SUITE(Activation);
MB_BACKEND_SUITE(Rope);
MB_BACKEND_SUITE(Attention);
MB_BACKEND_SUITE(Softmax);

TEST(ThreadPool, CoversRangeOnceAndNests) {
  mk::ThreadPool pool(3);
  for (int64_t n : {1, 7, 1000, 4097}) {
    std::vector<int> hits(static_cast<size_t>(n), 0);
    pool.parallel_for(n, 5, [&](int64_t b, int64_t e, int tid) {
      EXPECT_GE(tid, 0);
      EXPECT_LT(tid, 3);
      for (int64_t i = b; i < e; ++i) {
        hits[static_cast<size_t>(i)]++;
        // Nested loops run inline on the calling worker.
        int inner = 0;
        pool.parallel_for(3, 1, [&](int64_t b2, int64_t e2, int) { inner += static_cast<int>(e2 - b2); });
        EXPECT_EQ(inner, 3);
      }
    });
    for (int h : hits) ASSERT_EQ(h, 1);
  }
}

TEST_P(Gemm, MatchesReferenceOddShapesBothThreadings) {
  struct Shape { int64_t M, N, K; };
  for (auto threading : {mk::GemmThreading::kPool, mk::GemmThreading::kNative}) {
    mk::set_gemm_threading(threading);
    for (Shape s : {Shape{1, 1, 1}, Shape{3, 5, 7}, Shape{17, 33, 65}, Shape{200, 96, 130},
                    Shape{300, 47, 64}, Shape{5, 700, 48}}) {
      for (bool bias : {false, true})
        for (bool acc : {false, true}) {
          auto X = rand_vec(static_cast<size_t>(s.M * s.K), 1);
          auto W = rand_vec(static_cast<size_t>(s.N * s.K), 2);
          auto b = rand_vec(static_cast<size_t>(s.N), 3);
          auto Y0 = rand_vec(static_cast<size_t>(s.M * s.N), 4);
          auto Yr = Y0, Yf = Y0;
          mk::ref::gemm(X.data(), W.data(), bias ? b.data() : nullptr, Yr.data(), s.M, s.N, s.K, acc);
          mk::gemm(X.data(), W.data(), bias ? b.data() : nullptr, Yf.data(), s.M, s.N, s.K, acc);
          // fp32 dot products of K terms in [-1, 1]: error grows ~ sqrt(K) * eps; 1e-6 * K is loose.
          mbtest::expect_allclose(Yf, Yr, 1e-6f * static_cast<float>(s.K) + 1e-6f, kRtol,
                                  mbtest::str(s.M, "x", s.N, "x", s.K, " bias=", bias, " acc=", acc));
        }
    }
  }
  mk::set_gemm_threading(mk::GemmThreading::kPool);
}

TEST_P(Gemm, Strides) {
  const int64_t M = 70, N = 40, K = 33, ldx = 50, ldy = 61;
  auto X = rand_vec(static_cast<size_t>(M * ldx), 5);
  auto W = rand_vec(static_cast<size_t>(N * K), 6);
  std::vector<float> Yr(static_cast<size_t>(M * ldy), 7.0f), Yf = Yr;
  mk::ref::gemm(X.data(), W.data(), nullptr, Yr.data(), M, N, K, false, ldx, ldy);
  mk::gemm(X.data(), W.data(), nullptr, Yf.data(), M, N, K, false, ldx, ldy);
  mbtest::expect_allclose(Yf, Yr, 1e-5f, kRtol, "Yf vs Yr");
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = N; j < ldy; ++j) ASSERT_EQ(Yf[static_cast<size_t>(i * ldy + j)], 7.0f);  // untouched
}

TEST_P(LayerNorm, MatchesReference) {
  for (int64_t C : {1, 7, 8, 33, 768}) {
    const int64_t rows = 37;
    auto x = rand_vec(static_cast<size_t>(rows * C), 10, -3.0f, 5.0f);  // non-zero mean
    auto g = rand_vec(static_cast<size_t>(C), 11, 0.5f, 1.5f);
    auto b = rand_vec(static_cast<size_t>(C), 12);
    for (bool with_bias : {false, true}) {
      std::vector<float> yr(x.size()), yf(x.size());
      mk::ref::layernorm(x.data(), g.data(), with_bias ? b.data() : nullptr, yr.data(), rows, C, 1e-5f);
      mk::layernorm(x.data(), g.data(), with_bias ? b.data() : nullptr, yf.data(), rows, C, 1e-5f);
      mbtest::expect_allclose(yf, yr, 2e-6f, kRtol, mbtest::str("yf vs yr ", "C=", C));  // outputs are O(1)..O(5)
    }
    // In place.
    std::vector<float> yr(x.size()), xi = x;
    mk::ref::layernorm(x.data(), nullptr, nullptr, yr.data(), rows, C, 1e-5f);
    mk::layernorm(xi.data(), nullptr, nullptr, xi.data(), rows, C, 1e-5f);
    mbtest::expect_allclose(xi, yr, 2e-6f, kRtol, "xi vs yr");
  }
}

TEST_P(LayerNorm, FusedResidualAdd) {
  for (int64_t C : {5, 64, 130}) {
    const int64_t rows = 19;
    auto x = rand_vec(static_cast<size_t>(rows * C), 20);
    auto r = rand_vec(static_cast<size_t>(rows * C), 21);
    auto g = rand_vec(static_cast<size_t>(C), 22, 0.5f, 1.5f);
    auto xr = x, xf = x, rf = r;
    std::vector<float> yr(x.size());
    mk::ref::add_layernorm(xr.data(), r.data(), g.data(), nullptr, yr.data(), rows, C, 1e-5f);
    // Fast variant with y aliasing r (how the encoder uses it).
    mk::add_layernorm(xf.data(), rf.data(), g.data(), nullptr, rf.data(), rows, C, 1e-5f);
    mbtest::expect_allclose(xf, xr, 1e-6f, kRtol, "xf vs xr");  // the sum itself is exact-ish (one rounding)
    mbtest::expect_allclose(rf, yr, 2e-6f, kRtol, "rf vs yr");
  }
}

TEST_P(LayerNorm, FusedActivationHeadEpilogue) {
  for (int64_t C : {7, 768}) {
    const int64_t rows = 23;
    auto x = rand_vec(static_cast<size_t>(rows * C), 23, -3.0f, 3.0f);
    auto g = rand_vec(static_cast<size_t>(C), 24, 0.5f, 1.5f);
    auto b = rand_vec(static_cast<size_t>(C), 25);
    for (mk::Act a : {mk::Act::kGelu, mk::Act::kSilu}) {
      std::vector<float> yr(x.size()), yf = x;
      mk::ref::act_layernorm(a, x.data(), g.data(), b.data(), yr.data(), rows, C, 1e-5f);
      mk::act_layernorm(a, yf.data(), g.data(), b.data(), yf.data(), rows, C, 1e-5f);  // in place
      mbtest::expect_allclose(yf, yr, 2e-6f, kRtol, mbtest::str("yf vs yr ", "C=", C));
      // The statistics the training head's backward reads (mean / rstd of act(x)), against the
      // float64 reference's.
      std::vector<float> mr(rows), rr(rows), mf(rows), rf(rows), y2(x.size());
      mk::ref::act_layernorm(a, x.data(), g.data(), b.data(), y2.data(), rows, C, 1e-5f, mr.data(), rr.data());
      mk::act_layernorm(a, x.data(), g.data(), b.data(), y2.data(), rows, C, 1e-5f, mf.data(), rf.data());
      mbtest::expect_allclose(mf, mr, 1e-6f, kRtol, mbtest::str("mean ", "C=", C));
      mbtest::expect_allclose(rf, rr, 1e-6f, 1e-5, mbtest::str("rstd ", "C=", C));
    }
  }
}

TEST_P(Activation, ErfAccuracy) {
  // Dense grid over [-6, 6] plus specials; compare to double std::erf.
  std::vector<float> x;
  for (int i = -600000; i <= 600000; ++i) x.push_back(static_cast<float>(i) * 1e-5f);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-20f, 3.9999f, 4.0f, 4.5f, 50.0f, -1e4f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()})
    x.push_back(v);
  std::vector<float> y(x.size());
  mk::erf_array(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double max_abs = 0, max_rel = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = std::erf(static_cast<double>(x[i]));
    max_abs = std::max(max_abs, std::abs(y[i] - e));
    if (std::abs(e) > 1e-30) max_rel = std::max(max_rel, std::abs(y[i] - e) / std::abs(e));
  }
  EXPECT_LE(max_abs, 1.2e-7);  // measured 9.5e-8: rational error 6.5e-8 + one float rounding
  EXPECT_LE(max_rel, 2e-7);
}

TEST_P(Activation, AllMatchReference) {
  auto x = rand_vec(1027, 30, -8.0f, 8.0f);
  x[0] = 0.0f;
  x[1] = -30.0f;
  x[2] = 30.0f;
  x[3] = 1e-6f;
  for (mk::Act a : {mk::Act::kGelu, mk::Act::kGeluTanh, mk::Act::kRelu, mk::Act::kSilu}) {
    std::vector<float> yr(x.size()), yf(x.size());
    mk::ref::activation(a, x.data(), yr.data(), static_cast<int64_t>(x.size()));
    mk::activation(a, x.data(), yf.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i)
      // relative 1e-6 of |x| plus absolute 2e-7 (tanh/exp based forms lose a few ulp).
      ASSERT_NEAR(yr[i], yf[i], 1e-6f * std::abs(x[i]) + 2e-7f) << "act " << static_cast<int>(a) << " x=" << x[i];
  }
}

TEST_P(Activation, GluOddWidth) {
  for (int64_t I : {1, 9, 48}) {
    const int64_t T = 13;
    auto u = rand_vec(static_cast<size_t>(T * 2 * I), 31, -4.0f, 4.0f);
    for (mk::Act a : {mk::Act::kGelu, mk::Act::kSilu}) {
      std::vector<float> yr(static_cast<size_t>(T * I)), yf(yr.size());
      mk::ref::glu(a, u.data(), yr.data(), T, I);
      mk::glu(a, u.data(), yf.data(), T, I);
      mbtest::expect_allclose(yf, yr, 4e-6f, kRtol, "yf vs yr");  // |act| <= 4, |gate| <= 4
    }
  }
}

TEST_P(Rope, TableMatchesHfFloat32Recipe) {
  const auto t = mk::make_rope_table(160000.0, 64, 8192);
  // Spot-check against the float32 recipe computed independently here.
  for (int64_t p : {0, 1, 63, 4097, 8191})
    for (int64_t j : {0, 1, 17, 31}) {
      const float invf = 1.0f / static_cast<float>(std::pow(160000.0, static_cast<double>(static_cast<float>(2 * j) / 64.0f)));
      const float ang = static_cast<float>(p) * invf;
      EXPECT_NEAR(t.cos[static_cast<size_t>(p * 32 + j)], std::cos(static_cast<double>(ang)), 1e-7);
      EXPECT_NEAR(t.sin[static_cast<size_t>(p * 32 + j)], std::sin(static_cast<double>(ang)), 1e-7);
    }
  EXPECT_EQ(t.cos[0], 1.0f);
  EXPECT_EQ(t.sin[5], 0.0f);
}

TEST_P(Rope, MatchesReferenceVarlen) {
  for (int64_t d : {8, 12, 64}) {  // half = 4 (scalar tail), 6, 32
    const int64_t heads = 3, H = heads * d;
    const auto cu = cu_from_lengths({1, 5, 0, 70, 2});
    const int64_t T = cu.back(), B = static_cast<int64_t>(cu.size()) - 1;
    const auto table = mk::make_rope_table(10000.0, d, 80);
    auto qkv = rand_vec(static_cast<size_t>(T * 3 * H), 40);
    auto r = qkv, f = qkv;
    mk::ref::rope_qkv(r.data(), cu.data(), B, heads, table);
    mk::rope_qkv(f.data(), cu.data(), B, heads, table);
    mbtest::expect_allclose(f, r, 1e-6f, kRtol, "f vs r");
    // V untouched, position 0 of every sequence untouched.
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 2 * H; c < 3 * H; ++c) ASSERT_EQ(f[static_cast<size_t>(t * 3 * H + c)], qkv[static_cast<size_t>(t * 3 * H + c)]);
    for (int64_t b = 0; b < B; ++b) {
      if (cu[b + 1] == cu[b]) continue;
      for (int64_t c = 0; c < 2 * H; ++c)
        ASSERT_EQ(f[static_cast<size_t>(cu[b] * 3 * H + c)], qkv[static_cast<size_t>(cu[b] * 3 * H + c)]);
    }
  }
  // A sequence longer than the table is an error, not a silent overflow.
  const auto table = mk::make_rope_table(10000.0, 8, 4);
  std::vector<int64_t> cu{0, 5};
  std::vector<float> qkv(5 * 3 * 8);
  EXPECT_THROW(mk::rope_qkv(qkv.data(), cu.data(), 1, 1, table), modernbert::Error);
}

namespace {
void check_attention(const std::vector<int64_t>& lens, int64_t heads, int64_t d, int64_t hw, uint32_t seed,
                     float scale_in = 1.0f, float tol = 5e-7f) {
  const auto cu = cu_from_lengths(lens);
  const int64_t T = cu.back(), B = static_cast<int64_t>(lens.size()), H = heads * d;
  auto qkv = rand_vec(static_cast<size_t>(T * 3 * H), seed, -scale_in, scale_in);
  std::vector<float> r(static_cast<size_t>(T * H), -7.0f), f(r.size(), 7.0f);
  mk::ref::attention(qkv.data(), r.data(), cu.data(), B, heads, d, hw);
  mk::attention(qkv.data(), f.data(), cu.data(), B, heads, d, hw);
  // Outputs are convex combinations of V in [-1, 1]; fp32 scores and online softmax: 5e-7.
  mbtest::expect_allclose(f, r, tol, kRtol, mbtest::str("f vs r ", "d=", d, " hw=", hw, " T=", T));
}
}  // namespace

TEST_P(Attention, GlobalVarlen) {
  check_attention({1, 7, 64, 65, 150}, 2, 64, -1, 50);
  check_attention({3, 129}, 3, 16, -1, 51);
  check_attention({40}, 1, 8, -1, 52);   // dp padding 8 -> 16
  check_attention({33, 2}, 2, 24, -1, 53);  // d not a multiple of 16
}

TEST_P(Attention, LocalWindowEdgeCases) {
  check_attention({1, 2, 200, 64, 129}, 2, 64, 64, 60);  // ModernBERT window, lengths around it
  check_attention({300}, 1, 32, 3, 61);                    // tiny window
  check_attention({5, 17}, 2, 16, 1000, 62);               // window wider than the sequences
  check_attention({130}, 2, 16, 0, 63);                    // only itself
}

TEST_P(Attention, TileSizesAndLargeScores) {
  for (int bq : {1, 7, 64, 128}) {
    mk::set_attention_tiles({bq, bq});
    check_attention({1, 100, 257}, 2, 32, -1, 70);
    check_attention({1, 100, 257}, 2, 32, 20, 71);
  }
  mk::set_attention_tiles({});
  // Large-magnitude scores (|s| up to ~100) exercise the running-max rescaling; the fp32 rounding
  // of such scores (~1e-5 absolute) bounds the agreement, as it would for any fp32 kernel.
  check_attention({90, 200}, 2, 64, -1, 72, 4.0f, 5e-5f);
}

TEST_P(Attention, FusedRopeEqualsRopeThenAttention) {
  // attention(..., rope) rotates Q and K while repacking them; compare with the reference fused
  // form (ref::rope_qkv on a copy, then ref::attention) and with the two fast kernels in sequence.
  for (int64_t d : {64, 16, 12})
  for (int64_t hw : {int64_t{-1}, int64_t{64}, int64_t{5}}) {
    const int64_t heads = 2, H = heads * d;
    const auto cu = cu_from_lengths({1, 130, 7, 300});
    const int64_t T = cu.back(), B = static_cast<int64_t>(cu.size()) - 1;
    const auto table = mk::make_rope_table(160000.0, d, 512);
    auto qkv = rand_vec(static_cast<size_t>(T * 3 * H), 100 + static_cast<uint32_t>(hw + 1));
    std::vector<float> r(static_cast<size_t>(T * H)), f(r.size()), two(r.size());
    mk::ref::attention(qkv.data(), r.data(), cu.data(), B, heads, d, hw, nullptr, &table);
    const auto untouched = qkv;
    mk::attention(qkv.data(), f.data(), cu.data(), B, heads, d, hw, nullptr, &table);
    EXPECT_EQ(qkv, untouched);  // qkv itself is not rotated
    mbtest::expect_allclose(f, r, 5e-7f, kRtol, mbtest::str("f vs r ", "hw=", hw, " d=", d));
    auto rotated = qkv;
    mk::rope_qkv(rotated.data(), cu.data(), B, heads, table);
    mk::attention(rotated.data(), two.data(), cu.data(), B, heads, d, hw);
    mbtest::expect_allclose(f, two, 5e-7f, kRtol, mbtest::str("f vs two ", "hw=", hw));
  }
}

TEST_P(Attention, EmptySequencesAndNoNxN) {
  // Zero-length sequences in the middle are allowed and produce nothing.
  check_attention({0, 5, 0, 3}, 2, 16, -1, 80);
  // Workspace is linear in T.
  EXPECT_LE(mk::attention_workspace_floats(8192, 12, 64), static_cast<size_t>(3 * 12 * 64 * (8192 + 200)));  // Q, K^T, V
}

TEST_P(Softmax, MatchesReference) {
  for (int64_t C : {1, 9, 1000, 50368}) {
    const int64_t rows = 3;
    auto x = rand_vec(static_cast<size_t>(rows * C), 90, -20.0f, 20.0f);
    std::vector<float> r(x.size()), f(x.size());
    mk::ref::softmax(x.data(), r.data(), rows, C);
    mk::softmax(x.data(), f.data(), rows, C);
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(r[i], f[i], 1e-6f * r[i] + 1e-9f);  // relative 1e-6
    mk::ref::log_softmax(x.data(), r.data(), rows, C);
    mk::log_softmax(x.data(), f.data(), rows, C);
    mbtest::expect_allclose(f, r, 1e-5f, kRtol, "f vs r");  // values up to ~50 in magnitude
  }
}

TEST_P(Softmax, TopK) {
  std::vector<float> x{1, 5, 3, 5, -1, 9, 0};
  std::vector<int64_t> idx(4);
  std::vector<float> val(4);
  mk::top_k(x.data(), 7, 4, idx.data(), val.data());
  EXPECT_EQ(idx, (std::vector<int64_t>{5, 1, 3, 2}));  // tie 5 @1 and @3: lower index first
  EXPECT_EQ(val, (std::vector<float>{9, 5, 5, 3}));
  auto big = rand_vec(50368, 91);
  std::vector<int64_t> i1(10), i2(10);
  std::vector<float> v1(10), v2(10);
  mk::top_k(big.data(), 50368, 10, i1.data(), v1.data());
  mk::ref::top_k(big.data(), 50368, 10, i2.data(), v2.data());
  EXPECT_EQ(i1, i2);
  std::vector<int64_t> i3(3);
  std::vector<float> v3(3);
  mk::top_k(x.data(), 2, 10, i3.data(), v3.data());  // k clamped to n
  EXPECT_EQ(i3[0], 1);
  EXPECT_EQ(i3[1], 0);
}
