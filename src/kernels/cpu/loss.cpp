// Losses, forward and gradient in one pass. Contracts in kernels/backend.h.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/simd.h"
#include "modernbert/error.h"

namespace modernbert::kernels::cpu {

double cross_entropy(const float* logits, const int32_t* labels, float* dlogits, int64_t R, int64_t C, float dscale,
                     int64_t* counted, int64_t* correct) {
  // Per row, AVX2: max (and a NaN check), exp(x - max) with the forward kernels' simd::exp stored
  // into dlogits (or scratch), their sum in double; lse = max + log(sum), nll = lse - x[label]
  // (read before the row may be overwritten: dlogits may alias logits), grad = p · dscale - onehot.
  std::vector<double> nll(static_cast<size_t>(R), 0.0);
  std::vector<uint8_t> hit(static_cast<size_t>(R), 0);
  const int nt = default_pool().size();
  std::vector<std::vector<float>> scratch(dlogits ? 0 : static_cast<size_t>(nt));
  parallel_for(R, 1, [&](int64_t b, int64_t e, int tid) {
    for (int64_t r = b; r < e; ++r) {
      const float* x = logits + r * C;
      const int32_t y = labels[r];
      float* out;
      if (dlogits) {
        out = dlogits + r * C;
      } else {
        auto& sc = scratch[static_cast<size_t>(tid)];
        sc.resize(static_cast<size_t>(C));
        out = sc.data();
      }
      if (y < 0) {
        if (dlogits) std::fill(out, out + C, 0.0f);
        continue;
      }
      if (y >= C) throw Error("cross_entropy: label " + std::to_string(y) + " outside [0, " + std::to_string(C) + ")");
      __m256 vm = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
      __m256 vnan = _mm256_setzero_ps();
      int64_t c = 0;
      for (; c + 8 <= C; c += 8) {
        const __m256 v = _mm256_loadu_ps(x + c);
        vm = _mm256_max_ps(vm, v);
        vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
      }
      float m = simd::hmax(vm);
      bool has_nan = _mm256_movemask_ps(vnan) != 0;
      for (; c < C; ++c) {
        m = std::max(m, x[c]);
        has_nan = has_nan || std::isnan(x[c]);
      }
      const float xy = x[y];
      int64_t am = 0;  // argmax (first maximum)
      while (x[am] != m && am + 1 < C) ++am;
      const __m256 vmax = _mm256_set1_ps(m);
      double total = 0;
      __m256 acc = _mm256_setzero_ps();
      for (c = 0; c + 8 <= C; c += 8) {
        const __m256 ex = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(x + c), vmax));
        _mm256_storeu_ps(out + c, ex);
        acc = _mm256_add_ps(acc, ex);
        if ((c & 1023) == 1016) {  // flush float partials every 1024 elements
          total += simd::hsum(acc);
          acc = _mm256_setzero_ps();
        }
      }
      total += simd::hsum(acc);
      for (; c < C; ++c) {
        out[c] = std::exp(x[c] - m);
        total += out[c];
      }
      const double lse = static_cast<double>(m) + std::log(total);
      nll[static_cast<size_t>(r)] = has_nan ? std::nan("") : lse - static_cast<double>(xy);
      hit[static_cast<size_t>(r)] = am == y;
      if (dlogits) {
        const __m256 sc = _mm256_set1_ps(static_cast<float>(dscale / total));
        for (c = 0; c + 8 <= C; c += 8) _mm256_storeu_ps(out + c, _mm256_mul_ps(_mm256_loadu_ps(out + c), sc));
        for (; c < C; ++c) out[c] = static_cast<float>(out[c] * (dscale / total));
        out[y] -= dscale;
      }
    }
  });
  double sum = 0;
  int64_t n = 0, ok = 0;
  for (int64_t r = 0; r < R; ++r)
    if (labels[r] >= 0) {
      sum += nll[static_cast<size_t>(r)];
      ++n;
      ok += hit[static_cast<size_t>(r)];
    }
  if (counted) *counted = n;
  if (correct) *correct = ok;
  return sum;
}

double mse_loss(const float* pred, const float* target, float* dpred, int64_t n, float dscale) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = static_cast<double>(pred[i]) - target[i];
    s += diff * diff;
    if (dpred) dpred[i] = static_cast<float>(2.0 * diff) * dscale;
  }
  return s;
}

double bce_with_logits(const float* logits, const float* target, float* dlogits, int64_t n, float dscale) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = logits[i], t = target[i];
    s += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x)));
    if (dlogits) dlogits[i] = static_cast<float>(1.0 / (1.0 + std::exp(-x)) - t) * dscale;
  }
  return s;
}

}  // namespace modernbert::kernels::cpu
