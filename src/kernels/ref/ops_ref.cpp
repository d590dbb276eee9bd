// Reference twins of the embedding, residual, pooling, L2-norm, dropout, loss and optimizer ops:
// plain loops, single thread. Contracts in kernels/backend.h.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/ref/ref.h"
#include "modernbert/error.h"

namespace modernbert::kernels::ref {

void embedding(const int32_t* ids, const float* E, float* x, int64_t T, int64_t H) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < H; ++c) x[t * H + c] = E[static_cast<int64_t>(ids[t]) * H + c];
}

void embedding_backward(const int32_t* ids, const float* dx, float* dE, int64_t T, int64_t H) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < H; ++c) dE[static_cast<int64_t>(ids[t]) * H + c] += dx[t * H + c];
}

void residual_add(float* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

void copy(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

void pool(PoolMode mode, const float* hidden, const int64_t* cu, int64_t B, int64_t H, float* out) {
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = cu[b], e = cu[b + 1];
    if (e <= s) throw Error("pool: sequence " + std::to_string(b) + " is empty");
    for (int64_t c = 0; c < H; ++c) {
      if (mode == PoolMode::kCls) {
        out[b * H + c] = hidden[s * H + c];
        continue;
      }
      if (mode == PoolMode::kMax) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t t = s; t < e; ++t) m = std::max(m, hidden[t * H + c]);
        out[b * H + c] = m;
        continue;
      }
      double acc = 0;
      for (int64_t t = s; t < e; ++t) acc += hidden[t * H + c];
      out[b * H + c] = static_cast<float>(acc / static_cast<double>(e - s));
    }
  }
}

void pool_backward(PoolMode mode, const float* dpooled, const int64_t* cu, int64_t B, int64_t H, float* dhidden) {
  if (mode == PoolMode::kMax) throw Error("pool_backward: max pooling has no backward (inference only)");
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = cu[b], e = cu[b + 1];
    if (e <= s) continue;
    const float inv = 1.0f / static_cast<float>(e - s);
    for (int64_t t = s; t < e; ++t)
      for (int64_t c = 0; c < H; ++c) {
        if (mode == PoolMode::kCls) {
          if (t == s) dhidden[t * H + c] += dpooled[b * H + c];
        } else {
          dhidden[t * H + c] += dpooled[b * H + c] * inv;
        }
      }
  }
}

void l2norm(const float* x, float* y, float* norms, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t c = 0; c < D; ++c) ss += static_cast<double>(x[r * D + c]) * x[r * D + c];
    const double nr = std::max(std::sqrt(ss), kL2NormEps);
    if (norms) norms[r] = static_cast<float>(nr);
    for (int64_t c = 0; c < D; ++c) y[r * D + c] = static_cast<float>(x[r * D + c] / nr);
  }
}

void l2norm_backward(const float* y, const float* norms, const float* dy, float* dx, int64_t rows, int64_t D) {
  for (int64_t r = 0; r < rows; ++r) {
    double dot = 0;
    for (int64_t c = 0; c < D; ++c) dot += static_cast<double>(y[r * D + c]) * dy[r * D + c];
    for (int64_t c = 0; c < D; ++c)
      dx[r * D + c] = static_cast<float>((dy[r * D + c] - y[r * D + c] * dot) / static_cast<double>(norms[r]));
  }
}

void dropout(const float* src, float* dst, int64_t n, double p, uint64_t seed, int64_t layer, bool accumulate) {
  for (int64_t i = 0; i < n; ++i) {
    const double u = counter_uniform(seed, static_cast<uint64_t>(layer + 1), static_cast<uint64_t>(i));
    const float y = src[i] * (u < p ? 0.0f : static_cast<float>(1.0 / (1.0 - p)));
    dst[i] = accumulate ? dst[i] + y : y;
  }
}

double cross_entropy(const float* logits, const int32_t* labels, float* dlogits, int64_t R, int64_t C, float dscale,
                     int64_t* counted, int64_t* correct) {
  double sum = 0;
  int64_t n = 0, ok = 0;
  std::vector<double> p(static_cast<size_t>(C));
  for (int64_t r = 0; r < R; ++r) {
    const float* x = logits + r * C;
    const int32_t y = labels[r];
    if (y < 0) {
      if (dlogits) std::fill(dlogits + r * C, dlogits + (r + 1) * C, 0.0f);
      continue;
    }
    if (y >= C) throw Error("cross_entropy: label " + std::to_string(y) + " outside [0, " + std::to_string(C) + ")");
    double m = -std::numeric_limits<double>::infinity();
    int64_t am = 0;
    bool nan = false;
    for (int64_t c = 0; c < C; ++c) {
      nan = nan || std::isnan(x[c]);
      if (x[c] > m) m = x[c], am = c;
    }
    double tot = 0;
    for (int64_t c = 0; c < C; ++c) tot += (p[static_cast<size_t>(c)] = std::exp(x[c] - m));
    const double xy = x[y];
    sum += nan ? std::nan("") : m + std::log(tot) - xy;
    ++n;
    ok += am == y;
    if (dlogits)
      for (int64_t c = 0; c < C; ++c)
        dlogits[r * C + c] = static_cast<float>((p[static_cast<size_t>(c)] / tot - (c == y ? 1.0 : 0.0)) * dscale);
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
    if (dpred) dpred[i] = static_cast<float>(2.0 * diff * dscale);
  }
  return s;
}

double bce_with_logits(const float* logits, const float* target, float* dlogits, int64_t n, float dscale) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = logits[i], t = target[i];
    s += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::abs(x)));
    if (dlogits) dlogits[i] = static_cast<float>((1.0 / (1.0 + std::exp(-x)) - t) * dscale);
  }
  return s;
}

double grad_norm_sq(const float* g, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += static_cast<double>(g[i]) * g[i];
  return s;
}

double adam_moments_rms(const float* g, float* m, float* v, int64_t n, float b1, float b2, float eps2) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * (g[i] * g[i]);
    s += static_cast<double>((g[i] * g[i]) / std::max(v[i], eps2));
  }
  return s;
}

void adam_apply(float* theta, const float* m, const float* v, int64_t n, float decay, float lr, float vscale,
                float eps) {
  for (int64_t i = 0; i < n; ++i) theta[i] = theta[i] * decay - (lr * m[i]) / (std::sqrt(v[i]) * vscale + eps);
}

void adamw_update(float* theta, const float* g, float* m, float* v, int64_t n, float b1, float b2, float decay,
                  float lr, float vscale, float eps) {
  for (int64_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * (g[i] * g[i]);
  }
  adam_apply(theta, m, v, n, decay, lr, vscale, eps);
}

}  // namespace modernbert::kernels::ref
