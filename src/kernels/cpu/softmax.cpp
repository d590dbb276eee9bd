// Row-wise softmax / log-softmax (MLM head, fill-mask) and top-k.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/simd.h"
#include "kernels/ref/ref.h"

namespace modernbert::kernels {

namespace cpu {

namespace {
float row_max(const float* x, int64_t C) {
  __m256 vm = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + c));
  float mx = simd::hmax(vm);
  for (; c < C; ++c) mx = std::max(mx, x[c]);
  return mx;
}
// y = exp(x - mx) (if store), returns the sum in double (vocab rows are 50K long).
double exp_sum(const float* x, float* y, int64_t C, float mx, bool store) {
  const __m256 vm = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  double total = 0;
  int64_t c = 0;
  for (; c + 8 <= C; c += 8) {
    const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm));
    if (store) _mm256_storeu_ps(y + c, e);
    acc = _mm256_add_ps(acc, e);
    if ((c & 1023) == 1016) {  // flush the float partial sums every 1024 elements
      total += simd::hsum(acc);
      acc = _mm256_setzero_ps();
    }
  }
  total += simd::hsum(acc);
  for (; c < C; ++c) {
    const float e = std::exp(x[c] - mx);
    if (store) y[c] = e;
    total += e;
  }
  return total;
}
}  // namespace

void softmax(const float* x, float* y, int64_t rows, int64_t C) {
  parallel_for(rows, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = x + r * C;
      float* yr = y + r * C;
      const float mx = row_max(xr, C);
      const float inv = static_cast<float>(1.0 / exp_sum(xr, yr, C, mx, true));
      for (int64_t c = 0; c < C; ++c) yr[c] *= inv;
    }
  });
}

void log_softmax(const float* x, float* y, int64_t rows, int64_t C) {
  parallel_for(rows, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = x + r * C;
      float* yr = y + r * C;
      const float mx = row_max(xr, C);
      const float lse = mx + static_cast<float>(std::log(exp_sum(xr, nullptr, C, mx, false)));
      for (int64_t c = 0; c < C; ++c) yr[c] = xr[c] - lse;
    }
  });
}

void top_k(const float* x, int64_t n, int64_t k, int64_t* idx, float* val) {
  k = std::clamp<int64_t>(k, 0, n);
  if (k == 0) return;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  // Descending, ties by lower index, NaN after every number (a strict weak order even with NaN).
  auto better = [x](int64_t a, int64_t b) {
    const float sa = x[a], sb = x[b];
    if (sa != sb) {
      if (std::isnan(sa)) return false;
      if (std::isnan(sb)) return true;
      return sa > sb;
    }
    return a < b;
  };
  std::partial_sort(order.begin(), order.begin() + k, order.end(), better);
  for (int64_t i = 0; i < k; ++i) {
    idx[i] = order[static_cast<size_t>(i)];
    if (val) val[i] = x[idx[i]];
  }
}

}  // namespace cpu

namespace ref {
void softmax(const float* x, float* y, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -std::numeric_limits<double>::infinity(), s = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max<double>(mx, x[r * C + c]);
    for (int64_t c = 0; c < C; ++c) s += std::exp(x[r * C + c] - mx);
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = static_cast<float>(std::exp(x[r * C + c] - mx) / s);
  }
}
void log_softmax(const float* x, float* y, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -std::numeric_limits<double>::infinity(), s = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max<double>(mx, x[r * C + c]);
    for (int64_t c = 0; c < C; ++c) s += std::exp(x[r * C + c] - mx);
    const double lse = mx + std::log(s);
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = static_cast<float>(x[r * C + c] - lse);
  }
}
void top_k(const float* x, int64_t n, int64_t k, int64_t* idx, float* val) {
  k = std::clamp<int64_t>(k, 0, n);
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  // NaN ranks after every number; stable: ties keep the lower index first.
  auto key = [x](int64_t a) { return std::isnan(x[a]) ? -std::numeric_limits<double>::infinity() : double(x[a]); };
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    if (std::isnan(x[a]) != std::isnan(x[b])) return std::isnan(x[b]);
    return key(a) > key(b);
  });
  for (int64_t i = 0; i < k; ++i) {
    idx[i] = order[static_cast<size_t>(i)];
    if (val) val[i] = x[idx[i]];
  }
}
}  // namespace ref

}  // namespace modernbert::kernels
