// Finite-difference helpers of the backward tests (test_backward.cpp, test_backward_kernels.cpp).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

namespace mbtest {

inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

inline double dot(const std::vector<float>& w, const float* y, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(w[i]) * y[i];
  return s;
}

// Central differences of f() w.r.t. x at `samples` coordinates (all if fewer); returns the max
// error relative to max |analytic| and fails above tol.
inline double check_fd(const char* what, std::vector<float>& x, const float* analytic, const std::function<double()>& f,
                       float eps, double tol, int samples = 48, uint64_t seed = 7) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> idx;
  if (x.size() <= static_cast<size_t>(samples)) {
    for (size_t i = 0; i < x.size(); ++i) idx.push_back(i);
  } else {
    std::uniform_int_distribution<size_t> u(0, x.size() - 1);
    for (int i = 0; i < samples; ++i) idx.push_back(u(rng));
  }
  double scale = 0;
  for (size_t i = 0; i < x.size(); ++i) scale = std::max(scale, std::abs(static_cast<double>(analytic[i])));
  double worst = 0;
  for (size_t i : idx) {
    const float x0 = x[i];
    x[i] = x0 + eps;
    const double fp = f();
    x[i] = x0 - eps;
    const double fm = f();
    x[i] = x0;
    const double fd = (fp - fm) / (2.0 * static_cast<double>(eps));
    worst = std::max(worst, std::abs(fd - analytic[i]) / std::max(scale, 1e-6));
  }
  EXPECT_LE(worst, tol) << what;
  std::printf("  [fd] %-28s max rel err %.2e (tol %.0e)\n", what, worst, tol);
  return worst;
}

}  // namespace mbtest
