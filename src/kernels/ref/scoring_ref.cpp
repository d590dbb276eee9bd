// Reference twins of the task-head and retrieval-scoring ops: plain loops, single thread, in
// double where the contract says so. Contracts in kernels/backend.h.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/ref/ref.h"

namespace modernbert::kernels::ref {

void linear_f64(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = 0; o < N; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double(W[o * K + k]) * X[m * K + k];
      Y[m * N + o] = static_cast<float>(acc);
    }
}

void tanh_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void sigmoid_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(1.0 / (1.0 + std::exp(-double(x[i]))));
}

void softmax_f64(const float* x, float* y, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = x + r * C;
    const float mx = *std::max_element(l, l + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(double(l[c]) - mx);
    for (int64_t c = 0; c < C; ++c) y[r * C + c] = static_cast<float>(std::exp(double(l[c]) - mx) / sum);
  }
}

void softmax_top_k(const float* logits, int64_t rows, int64_t C, int64_t k, int64_t* idx, float* prob) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits + r * C;
    top_k(l, C, k, idx + r * k, nullptr);
    if (!prob) continue;
    const float mx = *std::max_element(l, l + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(double(l[c]) - mx);
    for (int64_t i = 0; i < k; ++i)
      prob[r * k + i] = static_cast<float>(std::exp(double(l[idx[r * k + i]]) - mx) / sum);
  }
}

double maxsim_scores(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim, float* best,
                     int64_t* argbest) {
  double total = 0;
  for (int64_t i = 0; i < nq; ++i) {
    float m = -std::numeric_limits<float>::infinity();
    int64_t am = 0;
    for (int64_t j = 0; j < nd; ++j) {
      float s = 0;
      for (int64_t c = 0; c < dim; ++c) s += q[i * dim + c] * d[j * dim + c];
      if (s > m) m = s, am = j;
    }
    if (best) best[i] = m;
    if (argbest) argbest[i] = am;
    total += m;
  }
  return total;
}

double masked_softmax_ce(double* s, int64_t R, int64_t C, const int64_t* target, const uint8_t* exclude) {
  double loss = 0;
  for (int64_t i = 0; i < R; ++i) {
    double* row = s + i * C;
    auto excluded = [&](int64_t j) { return exclude && exclude[i * C + j]; };
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t j = 0; j < C; ++j)
      if (!excluded(j)) mx = std::max(mx, row[j]);
    double z = 0;
    for (int64_t j = 0; j < C; ++j)
      if (!excluded(j)) z += std::exp(row[j] - mx);
    const int64_t t = target[i];
    loss += mx + std::log(z) - row[t];
    for (int64_t j = 0; j < C; ++j) {
      const double p = excluded(j) ? 0.0 : std::exp(row[j] - mx) / z;
      row[j] = (p - (j == t ? 1.0 : 0.0)) / static_cast<double>(R);
    }
  }
  return loss / static_cast<double>(R);
}

}  // namespace modernbert::kernels::ref
