// The training-side and host-compute ops of kernels/backend.h (embedding gather and scatter-add,
// residual add, pooling, L2 normalisation, dropout, optimizer updates, gradient norm, and every
// backward op) on each backend against its reference twin, plus finite-difference checks of the
// new backward ops (pooling, L2 normalisation) on every backend including the reference, and the
// task-head / retrieval-scoring ops (max pooling, linear_f64, tanh, sigmoid, softmax_f64,
// softmax_top_k, maxsim_scores, masked_softmax_ce) bit for bit against ref and against
// double-precision loops.
// Ops that only move data or whose arithmetic is the same in both (gathers, dropout, pooling, L2
// normalisation) must agree bit for bit; the optimizer's float updates within an ulp or two (the
// compiler may fuse a scalar multiply-add the SIMD code keeps separate); reductions within the
// stated tolerances.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend_test_util.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "fd_util.h"
#include "kernels/backend.h"
#include "kernels/ref/ref.h"
#include "modernbert/error.h"
#include "test_util.h"

namespace {

namespace k = modernbert::kernels;
using mbtest::check_fd;
using mbtest::dot;
using mbtest::randn;

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class KernelOps : public ::mbtest::BackendTest {};
INSTANTIATE_TEST_SUITE_P(Backends, KernelOps, ::testing::ValuesIn(::mbtest::test_backends()), ::mbtest::BackendName());
class KernelOpsFd : public ::mbtest::BackendTest {};
INSTANTIATE_TEST_SUITE_P(Backends, KernelOpsFd, ::testing::ValuesIn(::mbtest::test_backends_and_ref()),
                         ::mbtest::BackendName());

const std::vector<int64_t> kCu = {0, 1, 70, 73, 300};  // a 1-token sequence, a long one

TEST_P(KernelOps, EmbeddingGatherAndScatterAdd) {
  const int64_t V = 50, H = 77, T = 300;
  auto E = randn(V * H, 1);
  std::vector<int32_t> ids(T);
  for (int64_t t = 0; t < T; ++t) ids[t] = static_cast<int32_t>((t * 7 + t / 3) % V);
  std::vector<float> x(T * H, -1.0f), xr(T * H, 1.0f);
  k::embedding(ids.data(), E.data(), x.data(), T, H);
  k::ref::embedding(ids.data(), E.data(), xr.data(), T, H);
  EXPECT_TRUE(same_bits(x, xr));
  auto dx = randn(T * H, 2);
  std::vector<float> dE(V * H, 0.25f), dEr = dE;
  k::embedding_backward(ids.data(), dx.data(), dE.data(), T, H);
  k::ref::embedding_backward(ids.data(), dx.data(), dEr.data(), T, H);
  EXPECT_TRUE(same_bits(dE, dEr));  // both add in token order per element
}

TEST_P(KernelOps, ResidualAdd) {
  for (int64_t n : {1, 7, 8, 100003}) {
    auto a = randn(n, 3), b = randn(n, 4), ar = a;
    k::residual_add(a.data(), b.data(), n);
    k::ref::residual_add(ar.data(), b.data(), n);
    EXPECT_TRUE(same_bits(a, ar)) << n;
  }
}

TEST_P(KernelOps, CopyMatchesReference) {
  for (int64_t n : {1, 7, 70000, 200003}) {  // below and above the parallel grain
    auto src = randn(n, 5);
    std::vector<float> dst(static_cast<size_t>(n) + 1, -7.0f), ref = dst;
    k::copy(src.data(), dst.data(), n);
    k::ref::copy(src.data(), ref.data(), n);
    EXPECT_TRUE(same_bits(dst, ref)) << n;
    EXPECT_EQ(dst.back(), -7.0f) << "wrote past n";
  }
}

TEST_P(KernelOps, PoolingForwardAndBackwardMatchReference) {
  const int64_t H = 37, B = static_cast<int64_t>(kCu.size()) - 1, T = kCu.back();
  auto h = randn(T * H, 5);
  for (k::PoolMode mode : {k::PoolMode::kCls, k::PoolMode::kMean}) {
    std::vector<float> p(B * H), pr(B * H);
    k::pool(mode, h.data(), kCu.data(), B, H, p.data());
    k::ref::pool(mode, h.data(), kCu.data(), B, H, pr.data());
    EXPECT_TRUE(same_bits(p, pr));  // double sums in token order, one rounding
    auto g = randn(B * H, 6);
    std::vector<float> dh(T * H, 0.5f), dhr = dh;
    k::pool_backward(mode, g.data(), kCu.data(), B, H, dh.data());
    k::ref::pool_backward(mode, g.data(), kCu.data(), B, H, dhr.data());
    EXPECT_TRUE(same_bits(dh, dhr));
  }
  const std::vector<int64_t> empty = {0, 3, 3};
  std::vector<float> out(2 * H);
  EXPECT_THROW(k::pool(k::PoolMode::kMean, h.data(), empty.data(), 2, H, out.data()), modernbert::Error);
}

TEST_P(KernelOps, L2NormMatchesReference) {
  const int64_t rows = 33, D = 45;
  auto x = randn(rows * D, 7, 3.0f);
  std::fill(x.begin(), x.begin() + D, 0.0f);  // a zero row stays zero (the eps floor)
  std::vector<float> y(x.size()), yr(x.size()), n(rows), nr(rows);
  k::l2norm(x.data(), y.data(), n.data(), rows, D);
  k::ref::l2norm(x.data(), yr.data(), nr.data(), rows, D);
  EXPECT_TRUE(same_bits(y, yr));
  EXPECT_TRUE(same_bits(n, nr));
  for (int64_t c = 0; c < D; ++c) EXPECT_EQ(y[c], 0.0f);
  auto dy = randn(rows * D, 8);
  std::vector<float> dx(x.size()), dxr(x.size());
  k::l2norm_backward(y.data(), n.data(), dy.data(), dx.data(), rows, D);
  k::ref::l2norm_backward(yr.data(), nr.data(), dy.data(), dxr.data(), rows, D);
  mbtest::expect_allclose(dx, dxr, 1e-7, 1e-6, "l2norm dx");
  // In place.
  auto xi = x;
  k::l2norm(xi.data(), xi.data(), nullptr, rows, D);
  EXPECT_TRUE(same_bits(xi, yr));
}

TEST_P(KernelOps, DropoutIsTheCounterBasedMask) {
  const int64_t n = 100000;
  auto x = randn(n, 9);
  for (double p : {0.0, 0.1, 0.5}) {
    std::vector<float> y(n), yr(n);
    k::dropout(x.data(), y.data(), n, p, 1234, 3, false);
    k::ref::dropout(x.data(), yr.data(), n, p, 1234, 3, false);
    EXPECT_TRUE(same_bits(y, yr)) << p;
    // The mask is the pure function of (seed, layer + 1, i) of core/rng.h (the training model's
    // mask before the kernel existed: bit-identical runs depend on it).
    int64_t dropped = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double u = modernbert::counter_uniform(1234, 4, static_cast<uint64_t>(i));
      const float want = u < p ? 0.0f : x[i] * static_cast<float>(1.0 / (1.0 - p));
      ASSERT_EQ(y[i], want) << i;
      dropped += u < p;
    }
    EXPECT_NEAR(static_cast<double>(dropped) / n, p, 0.01);
    // Accumulate adds; another layer gives another mask.
    std::vector<float> acc(n, 1.0f), other(n);
    k::dropout(x.data(), acc.data(), n, p, 1234, 3, true);
    // (within an ulp: the compiler may fuse the multiply-add)
    for (int64_t i = 0; i < n; i += 997) ASSERT_NEAR(acc[i], 1.0f + y[i], 1e-6f * (1.0f + std::abs(y[i])));
    k::dropout(x.data(), other.data(), n, p, 1234, 4, false);
    if (p > 0) {
      EXPECT_FALSE(same_bits(other, y));
    }
  }
}

TEST_P(KernelOps, OptimizerUpdatesMatchReference) {
  const int64_t n = (1 << 14) * 2 + 37;  // several fixed chunks and a scalar tail
  auto g = randn(n, 10, 0.1f), th0 = randn(n, 11), m0 = randn(n, 12, 0.01f), v0 = randn(n, 13, 0.01f);
  for (auto& v : v0) v = v * v;
  {
    auto m = m0, v = v0, mr = m0, vr = v0;
    const double s = k::adam_moments_rms(g.data(), m.data(), v.data(), n, 0.9f, 0.98f, 1e-12f);
    const double sr = k::ref::adam_moments_rms(g.data(), mr.data(), vr.data(), n, 0.9f, 0.98f, 1e-12f);
    mbtest::expect_allclose(m, mr, 5e-9, 3e-7, "m");  // cancellation near 0: measured atol 1.4e-9
    mbtest::expect_allclose(v, vr, 0.0, 3e-7, "v");
    EXPECT_NEAR(s, sr, 1e-6 * std::abs(sr));  // float ratios summed in another order
    auto th = th0, thr = th0;
    k::adam_apply(th.data(), m.data(), v.data(), n, 0.999f, 1e-3f, 1.0f, 1e-6f);
    k::ref::adam_apply(thr.data(), m.data(), v.data(), n, 0.999f, 1e-3f, 1.0f, 1e-6f);
    mbtest::expect_allclose(th, thr, 1e-9, 3e-7, "theta");
  }
  {
    auto m = m0, v = v0, mr = m0, vr = v0, th = th0, thr = th0;
    k::adamw_update(th.data(), g.data(), m.data(), v.data(), n, 0.9f, 0.98f, 0.9999f, 2e-3f, 1.3f, 1e-6f);
    k::ref::adamw_update(thr.data(), g.data(), mr.data(), vr.data(), n, 0.9f, 0.98f, 0.9999f, 2e-3f, 1.3f, 1e-6f);
    mbtest::expect_allclose(th, thr, 1e-9, 3e-7, "theta");
    mbtest::expect_allclose(m, mr, 5e-9, 3e-7, "m");  // cancellation near 0: measured atol 1.4e-9
    mbtest::expect_allclose(v, vr, 0.0, 3e-7, "v");
  }
}

TEST_P(KernelOps, GradNormMatchesReferenceAndIsThreadCountFree) {
  const size_t n = (size_t{1} << 16) + 5;
  auto g = randn(n, 14);
  const double s = k::grad_norm_sq(g.data(), n), sr = k::ref::grad_norm_sq(g.data(), n);
  EXPECT_NEAR(s, sr, 1e-12 * sr);
  // Fixed chunks added in order: the same bits however the pool is sized.
  modernbert::set_default_threads(1);
  const double s1 = k::grad_norm_sq(g.data(), n);
  modernbert::set_default_threads(3);
  const double s3 = k::grad_norm_sq(g.data(), n);
  modernbert::set_default_threads(0);
  EXPECT_EQ(s1, s);
  EXPECT_EQ(s3, s);
}

TEST_P(KernelOps, LayerNormSavesStatisticsOfReference) {
  const int64_t R = 29, C = 51;
  auto x = randn(R * C, 15, 2.0f), g = randn(C, 16), b = randn(C, 17);
  std::vector<float> y(R * C), yr(R * C), m(R), mr(R), rs(R), rsr(R);
  k::layernorm(x.data(), g.data(), b.data(), y.data(), R, C, 1e-5f, m.data(), rs.data());
  k::ref::layernorm(x.data(), g.data(), b.data(), yr.data(), R, C, 1e-5f, mr.data(), rsr.data());
  mbtest::expect_allclose(m, mr, 1e-6, 1e-6, "mean");
  mbtest::expect_allclose(rs, rsr, 1e-6, 1e-6, "rstd");
  // add_layernorm's statistics are those of the sum.
  auto r = randn(R * C, 18), xa = x, xb = x;
  std::vector<float> ya(R * C), yb(R * C), ma(R), mb(R), ra(R), rb(R);
  k::add_layernorm(xa.data(), r.data(), g.data(), nullptr, ya.data(), R, C, 1e-5f, ma.data(), ra.data());
  k::ref::add_layernorm(xb.data(), r.data(), g.data(), nullptr, yb.data(), R, C, 1e-5f, mb.data(), rb.data());
  mbtest::expect_allclose(ma, mb, 1e-6, 1e-6, "add mean");
  mbtest::expect_allclose(ra, rb, 1e-6, 1e-6, "add rstd");
}

// Every backward op against its reference twin on the same inputs (tolerances: fp32 vs double
// accumulation over at most ~300 terms of O(1)).
TEST_P(KernelOps, BackwardOpsMatchReference) {
  const int64_t M = 150, N = 40, K = 70;
  auto X = randn(M * K, 20), W = randn(N * K, 21), dY = randn(M * N, 22);
  std::vector<float> dX(M * K, 0.3f), dXr = dX, dW(N * K, 0.1f), dWr = dW, db(N, 0.2f), dbr = db;
  k::linear_backward(X.data(), W.data(), dY.data(), dX.data(), true, dW.data(), db.data(), M, N, K);
  k::ref::linear_backward(X.data(), W.data(), dY.data(), dXr.data(), true, dWr.data(), dbr.data(), M, N, K);
  mbtest::expect_allclose(dX, dXr, 1e-5, 1e-5, "linear dX");
  mbtest::expect_allclose(dW, dWr, 1e-4, 1e-5, "linear dW");
  mbtest::expect_allclose(db, dbr, 1e-5, 1e-6, "linear db");

  const int64_t R = 37, C = 51;
  auto x = randn(R * C, 23, 2.0f), g = randn(C, 24), dy = randn(R * C, 25);
  std::vector<float> y(R * C), mean(R), rstd(R);
  k::ref::layernorm(x.data(), g.data(), nullptr, y.data(), R, C, 1e-5f, mean.data(), rstd.data());
  std::vector<float> dx(R * C), dxr(R * C), dg(C, 0.0f), dgr(C, 0.0f), dbb(C, 0.0f), dbbr(C, 0.0f);
  k::layernorm_backward(dy.data(), x.data(), g.data(), mean.data(), rstd.data(), dx.data(), false, dg.data(),
                        dbb.data(), R, C);
  k::ref::layernorm_backward(dy.data(), x.data(), g.data(), mean.data(), rstd.data(), dxr.data(), false, dgr.data(),
                             dbbr.data(), R, C);
  mbtest::expect_allclose(dx, dxr, 2e-6, 1e-5, "layernorm dx");
  mbtest::expect_allclose(dg, dgr, 2e-5, 1e-5, "layernorm dg");
  mbtest::expect_allclose(dbb, dbbr, 2e-5, 1e-5, "layernorm db");

  const int64_t T = 9, I = 21;
  auto u = randn(T * 2 * I, 26, 1.5f), gy = randn(T * I, 27);
  for (k::Act act : {k::Act::kGelu, k::Act::kGeluTanh, k::Act::kSilu, k::Act::kRelu}) {
    std::vector<float> du(T * 2 * I), dur(T * 2 * I), da(T * I), dar(T * I);
    k::glu_backward(act, u.data(), gy.data(), du.data(), T, I);
    k::ref::glu_backward(act, u.data(), gy.data(), dur.data(), T, I);
    mbtest::expect_allclose(du, dur, 1e-6, 1e-5, "glu_backward");
    k::act_backward(act, u.data(), gy.data(), da.data(), T * I);
    k::ref::act_backward(act, u.data(), gy.data(), dar.data(), T * I);
    mbtest::expect_allclose(da, dar, 1e-7, 1e-6, "act_backward");
  }

  const int64_t nh = 2, d = 16, H = nh * d;
  const int64_t TT = kCu.back(), B = static_cast<int64_t>(kCu.size()) - 1;
  const auto table = k::make_rope_table(10000.0, d, 512);
  auto dq = randn(TT * 3 * H, 28), dqr = dq;
  k::rope_backward(dq.data(), kCu.data(), B, nh, table);
  k::ref::rope_backward(dqr.data(), kCu.data(), B, nh, table);
  mbtest::expect_allclose(dq, dqr, 1e-6, 1e-6, "rope_backward");

  for (int64_t hw : {int64_t{-1}, int64_t{8}}) {
    auto qkv = randn(TT * 3 * H, 29, 0.8f), dout = randn(TT * H, 30);
    std::vector<float> o(TT * H), lse(TT * nh), orf(TT * H), lser(TT * nh);
    k::attention_forward(qkv.data(), o.data(), lse.data(), kCu.data(), B, nh, d, hw);
    k::ref::attention(qkv.data(), orf.data(), kCu.data(), B, nh, d, hw, nullptr, nullptr, lser.data());
    mbtest::expect_allclose(lse, lser, 1e-5, 1e-6, "attention lse");
    std::vector<float> dqkv(TT * 3 * H, 9.0f), dqkvr(TT * 3 * H, -9.0f);
    k::attention_backward(qkv.data(), o.data(), dout.data(), lse.data(), dqkv.data(), kCu.data(), B, nh, d, hw);
    k::ref::attention_backward(qkv.data(), o.data(), dout.data(), lse.data(), dqkvr.data(), kCu.data(), B, nh, d, hw);
    mbtest::expect_allclose(dqkv, dqkvr, 2e-6, 1e-4, "attention_backward hw " + std::to_string(hw));
  }

  const int64_t RR = 7, CC = 300;
  auto logits = randn(RR * CC, 31, 3.0f);
  const std::vector<int32_t> labels = {3, -100, 0, 299, 150, 7, -1};
  std::vector<float> dl(RR * CC), dlr(RR * CC);
  int64_t n1 = 0, n2 = 0, c1 = 0, c2 = 0;
  const double l1 = k::cross_entropy(logits.data(), labels.data(), dl.data(), RR, CC, 0.25f, &n1, &c1);
  const double l2 = k::ref::cross_entropy(logits.data(), labels.data(), dlr.data(), RR, CC, 0.25f, &n2, &c2);
  EXPECT_NEAR(l1, l2, 1e-6 * std::abs(l2));
  EXPECT_EQ(n1, n2);
  EXPECT_EQ(c1, c2);
  mbtest::expect_allclose(dl, dlr, 1e-8, 1e-5, "cross_entropy grad");
  auto p = randn(40, 32), t = randn(40, 33);
  std::vector<float> dp(40), dpr(40);
  EXPECT_NEAR(k::mse_loss(p.data(), t.data(), dp.data(), 40, 0.5f),
              k::ref::mse_loss(p.data(), t.data(), dpr.data(), 40, 0.5f), 1e-9);
  mbtest::expect_allclose(dp, dpr, 1e-7, 1e-6, "mse grad");
  for (auto& v : t) v = v > 0 ? 1.0f : 0.0f;
  EXPECT_NEAR(k::bce_with_logits(p.data(), t.data(), dp.data(), 40, 0.5f),
              k::ref::bce_with_logits(p.data(), t.data(), dpr.data(), 40, 0.5f), 1e-9);
  mbtest::expect_allclose(dp, dpr, 1e-7, 1e-6, "bce grad");
}

// Pooling and L2-normalisation backward vs central differences of L = Σ w ⊙ op(x).
TEST_P(KernelOpsFd, PoolingAndL2NormBackwardFiniteDifferences) {
  const std::vector<int64_t> cu = {0, 1, 6, 13};
  const int64_t H = 9, B = 3, T = cu.back();
  for (k::PoolMode mode : {k::PoolMode::kCls, k::PoolMode::kMean}) {
    auto h = randn(T * H, 40), w = randn(B * H, 41);
    std::vector<float> out(B * H);
    auto f = [&] {
      k::pool(mode, h.data(), cu.data(), B, H, out.data());
      return dot(w, out.data(), out.size());
    };
    std::vector<float> dh(T * H, 0.0f);
    k::pool_backward(mode, w.data(), cu.data(), B, H, dh.data());
    check_fd(mode == k::PoolMode::kCls ? "pool cls" : "pool mean", h, dh.data(), f, 1e-2f, 2e-3, 200);
  }
  const int64_t rows = 6, D = 11;
  auto x = randn(rows * D, 42), w = randn(rows * D, 43);
  std::vector<float> y(rows * D), norms(rows);
  auto f = [&] {
    k::l2norm(x.data(), y.data(), norms.data(), rows, D);
    return dot(w, y.data(), y.size());
  };
  f();
  std::vector<float> dx(rows * D);
  k::l2norm_backward(y.data(), norms.data(), w.data(), dx.data(), rows, D);
  check_fd("l2norm", x, dx.data(), f, 1e-3f, 2e-3, 66);
}

// ---- Task heads and retrieval scoring (inference outputs: bit for bit with ref) -----------------

TEST_P(KernelOps, MaxPoolingMatchesReferenceAndLoop) {
  const int64_t H = 37, B = static_cast<int64_t>(kCu.size()) - 1, T = kCu.back();
  auto h = randn(T * H, 5);
  std::vector<float> p(B * H), pr(B * H), loop(B * H, -INFINITY);
  k::pool(k::PoolMode::kMax, h.data(), kCu.data(), B, H, p.data());
  k::ref::pool(k::PoolMode::kMax, h.data(), kCu.data(), B, H, pr.data());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = kCu[b]; t < kCu[b + 1]; ++t)
      for (int64_t c = 0; c < H; ++c) loop[b * H + c] = std::max(loop[b * H + c], h[t * H + c]);
  EXPECT_TRUE(same_bits(p, pr));
  EXPECT_TRUE(same_bits(p, loop));
  std::vector<float> dh(T * H);
  EXPECT_THROW(k::pool_backward(k::PoolMode::kMax, p.data(), kCu.data(), B, H, dh.data()), modernbert::Error);
  const std::vector<int64_t> empty = {0, 3, 3};
  EXPECT_THROW(k::pool(k::PoolMode::kMax, h.data(), empty.data(), 2, H, p.data()), modernbert::Error);
}

TEST_P(KernelOps, ScoringOpsMatchReferenceBitForBit) {
  // linear_f64 (with and without bias), tanh, sigmoid, softmax_f64, softmax_top_k.
  const int64_t M = 13, N = 19, K = 70;
  auto X = randn(M * K, 60), W = randn(N * K, 61), bias = randn(N, 62);
  for (const float* bp : {static_cast<const float*>(bias.data()), static_cast<const float*>(nullptr)}) {
    std::vector<float> y(M * N), yr(M * N);
    k::linear_f64(X.data(), W.data(), bp, y.data(), M, N, K);
    k::ref::linear_f64(X.data(), W.data(), bp, yr.data(), M, N, K);
    EXPECT_TRUE(same_bits(y, yr)) << (bp ? "bias" : "no bias");
  }
  auto x = randn(M * N, 63, 4.0f);
  std::vector<float> a(x.size()), ar(x.size());
  k::tanh_array(x.data(), a.data(), M * N);
  k::ref::tanh_array(x.data(), ar.data(), M * N);
  EXPECT_TRUE(same_bits(a, ar));
  k::sigmoid_array(x.data(), a.data(), M * N);
  k::ref::sigmoid_array(x.data(), ar.data(), M * N);
  EXPECT_TRUE(same_bits(a, ar));
  k::softmax_f64(x.data(), a.data(), M, N);
  k::ref::softmax_f64(x.data(), ar.data(), M, N);
  EXPECT_TRUE(same_bits(a, ar));
  const int64_t V = 1000, R = 3, topk = 7;
  auto l = randn(R * V, 64, 3.0f);
  l[5] = l[9] = l[1];  // ties resolve to the lower index
  std::vector<int64_t> idx(R * topk), idxr(R * topk);
  std::vector<float> pr(R * topk), prr(R * topk);
  k::softmax_top_k(l.data(), R, V, topk, idx.data(), pr.data());
  k::ref::softmax_top_k(l.data(), R, V, topk, idxr.data(), prr.data());
  EXPECT_EQ(idx, idxr);
  EXPECT_TRUE(same_bits(pr, prr));
}

TEST_P(KernelOps, MaxSimAndMaskedSoftmaxCeMatchReference) {
  const int64_t nq = 9, nd = 31, dim = 24;
  auto q = randn(nq * dim, 70), d = randn(nd * dim, 71);
  std::vector<float> best(nq), bestr(nq);
  std::vector<int64_t> arg(nq), argr(nq);
  const double s = k::maxsim_scores(q.data(), nq, d.data(), nd, dim, best.data(), arg.data());
  const double sr = k::ref::maxsim_scores(q.data(), nq, d.data(), nd, dim, bestr.data(), argr.data());
  EXPECT_EQ(s, sr);
  EXPECT_TRUE(same_bits(best, bestr));
  EXPECT_EQ(arg, argr);
  EXPECT_EQ(k::maxsim_scores(q.data(), nq, d.data(), nd, dim), s);  // best / argbest optional
  const int64_t R = 6, C = 11;
  std::vector<double> sc(R * C), scr;
  auto r = randn(R * C, 72, 3.0f);
  for (size_t i = 0; i < sc.size(); ++i) sc[i] = r[i];
  scr = sc;
  std::vector<int64_t> target = {0, 3, 10, 5, 5, 2};
  std::vector<uint8_t> ex(R * C, 0);
  ex[1] = ex[3 * C + 4] = ex[5 * C + 10] = 1;
  for (const uint8_t* e : {static_cast<const uint8_t*>(nullptr), static_cast<const uint8_t*>(ex.data())}) {
    auto a = sc, b = scr;
    EXPECT_EQ(k::masked_softmax_ce(a.data(), R, C, target.data(), e),
              k::ref::masked_softmax_ce(b.data(), R, C, target.data(), e));
    EXPECT_EQ(a, b);
  }
}

// The same ops against double-precision loops written here (every backend, ref included).
TEST_P(KernelOpsFd, ScoringOpsMatchDoubleLoops) {
  const int64_t M = 5, N = 7, K = 300;
  auto X = randn(M * K, 80), W = randn(N * K, 81), bias = randn(N, 82);
  std::vector<float> y(M * N);
  k::linear_f64(X.data(), W.data(), bias.data(), y.data(), M, N, K);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = 0; o < N; ++o) {
      double acc = bias[o];
      for (int64_t c = 0; c < K; ++c) acc += double(W[o * K + c]) * X[m * K + c];
      EXPECT_NEAR(y[m * N + o], acc, 1e-6 * std::abs(acc) + 1e-6) << m << "," << o;
    }
  auto x = randn(3 * 50, 83, 5.0f);
  std::vector<float> sm(x.size()), sg(x.size()), th(x.size());
  k::softmax_f64(x.data(), sm.data(), 3, 50);
  k::sigmoid_array(x.data(), sg.data(), 150);
  k::tanh_array(x.data(), th.data(), 150);
  for (int64_t r = 0; r < 3; ++r) {
    double z = 0;
    for (int64_t c = 0; c < 50; ++c) z += std::exp(double(x[r * 50 + c]));
    for (int64_t c = 0; c < 50; ++c) EXPECT_NEAR(sm[r * 50 + c], std::exp(double(x[r * 50 + c])) / z, 1e-7);
  }
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_NEAR(sg[i], 1.0 / (1.0 + std::exp(-double(x[i]))), 1e-7);
    EXPECT_NEAR(th[i], std::tanh(double(x[i])), 2e-7);
  }
  // softmax_top_k: the k largest in descending order with their probabilities.
  std::vector<int64_t> idx(5);
  std::vector<float> pr(5);
  k::softmax_top_k(x.data(), 1, 50, 5, idx.data(), pr.data());
  double z = 0;
  for (int64_t c = 0; c < 50; ++c) z += std::exp(double(x[c]));
  for (int64_t i = 0; i < 5; ++i) {
    for (int64_t c = 0; c < 50; ++c)
      if (c != idx[i] && (i == 0 || x[c] < x[idx[i - 1]])) {
        EXPECT_LE(x[c], x[idx[i]]) << i;
      }
    EXPECT_NEAR(pr[i], std::exp(double(x[idx[i]])) / z, 1e-7);
  }
  // maxsim_scores vs Σ_i max_j of double dot products.
  const int64_t nq = 4, nd = 9, dim = 32;
  auto q = randn(nq * dim, 84), d = randn(nd * dim, 85);
  double want = 0;
  for (int64_t i = 0; i < nq; ++i) {
    double best = -INFINITY;
    for (int64_t j = 0; j < nd; ++j) {
      double s = 0;
      for (int64_t c = 0; c < dim; ++c) s += double(q[i * dim + c]) * d[j * dim + c];
      best = std::max(best, s);
    }
    want += best;
  }
  EXPECT_NEAR(k::maxsim_scores(q.data(), nq, d.data(), nd, dim), want, 1e-4);
}

// masked_softmax_ce: the loss against log-sum-exp in double and its gradient against central
// differences of the loss.
TEST_P(KernelOpsFd, MaskedSoftmaxCeLossAndGradient) {
  const int64_t R = 4, C = 6;
  auto r = randn(R * C, 90, 2.0f);
  std::vector<double> s(r.begin(), r.end());
  const std::vector<int64_t> target = {1, 0, 5, 3};
  std::vector<uint8_t> ex(R * C, 0);
  ex[0 * C + 2] = ex[2 * C + 0] = ex[2 * C + 4] = 1;
  auto loss_of = [&](std::vector<double> v) { return k::masked_softmax_ce(v.data(), R, C, target.data(), ex.data()); };
  double want = 0;
  for (int64_t i = 0; i < R; ++i) {
    double z = 0;
    for (int64_t j = 0; j < C; ++j)
      if (!ex[i * C + j]) z += std::exp(s[i * C + j]);
    want += std::log(z) - s[i * C + target[i]];
  }
  want /= R;
  auto g = s;
  EXPECT_NEAR(k::masked_softmax_ce(g.data(), R, C, target.data(), ex.data()), want, 1e-12);
  const double h = 1e-5;
  for (int64_t i = 0; i < R * C; ++i) {
    auto p = s, m = s;
    p[i] += h;
    m[i] -= h;
    const double fd = (loss_of(p) - loss_of(m)) / (2 * h);
    EXPECT_NEAR(g[i], fd, 1e-8) << i;
    if (ex[i]) {
      EXPECT_EQ(g[i], 0.0) << i;
    }
  }
}

}  // namespace
