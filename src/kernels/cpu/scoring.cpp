// The task-head and retrieval-scoring ops of the cpu backend (Dense module, tanh / sigmoid,
// double-precision softmax and its top-k, ColBERT MaxSim, masked softmax cross-entropy rows).
// Contracts in kernels/backend.h. These are small (a few rows of a classifier or a query against a
// document) and their numbers are compared with PyTorch references, so each keeps the exact
// arithmetic of the reference (same order, same precision) and threads over rows only: results
// are bit-identical to ref and independent of the thread count.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"

namespace modernbert::kernels::cpu {

void linear_f64(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K) {
  parallel_for(M * N, 64, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t m = i / N, o = i % N;
      const float* x = X + m * K;
      const float* w = W + o * K;
      double acc = bias ? bias[o] : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double(w[k]) * x[k];
      Y[i] = static_cast<float>(acc);
    }
  });
}

void tanh_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void sigmoid_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(1.0 / (1.0 + std::exp(-double(x[i]))));
}

namespace {
// max and Σ exp(x - max) of one row, in double (the max of floats is exact in either precision).
void row_max_sum(const float* x, int64_t C, double* mx, double* sum) {
  float m = x[0];
  for (int64_t c = 1; c < C; ++c) m = std::max(m, x[c]);
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += std::exp(double(x[c]) - m);
  *mx = m;
  *sum = s;
}
}  // namespace

void softmax_f64(const float* x, float* y, int64_t rows, int64_t C) {
  parallel_for(rows, 1, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      double mx, sum;
      row_max_sum(x + r * C, C, &mx, &sum);
      for (int64_t c = 0; c < C; ++c) y[r * C + c] = static_cast<float>(std::exp(double(x[r * C + c]) - mx) / sum);
    }
  });
}

void softmax_top_k(const float* logits, int64_t rows, int64_t C, int64_t k, int64_t* idx, float* prob) {
  // Rows run one after another: top_k and the row sum are each one pass over the vocabulary.
  for (int64_t r = 0; r < rows; ++r) {
    const float* l = logits + r * C;
    int64_t* ir = idx + r * k;
    top_k(l, C, k, ir, nullptr);
    if (!prob) continue;
    double mx, sum;
    row_max_sum(l, C, &mx, &sum);
    for (int64_t i = 0; i < k; ++i) prob[r * k + i] = static_cast<float>(std::exp(double(l[ir[i]]) - mx) / sum);
  }
}

double maxsim_scores(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim, float* best,
                     int64_t* argbest) {
  std::vector<float> b(static_cast<size_t>(nq));
  parallel_for(nq, 4, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      float m = -std::numeric_limits<float>::infinity();
      int64_t am = 0;
      for (int64_t j = 0; j < nd; ++j) {
        float s = 0;
        for (int64_t c = 0; c < dim; ++c) s += q[i * dim + c] * d[j * dim + c];
        if (s > m) m = s, am = j;
      }
      b[static_cast<size_t>(i)] = m;
      if (argbest) argbest[i] = am;
    }
  });
  double total = 0;
  for (int64_t i = 0; i < nq; ++i) {
    total += b[static_cast<size_t>(i)];
    if (best) best[i] = b[static_cast<size_t>(i)];
  }
  return total;
}

double masked_softmax_ce(double* s, int64_t R, int64_t C, const int64_t* target, const uint8_t* exclude) {
  std::vector<double> row_loss(static_cast<size_t>(R));
  parallel_for(R, 1, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) {
      double* row = s + i * C;
      auto excluded = [&](int64_t j) { return exclude && exclude[i * C + j]; };
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t j = 0; j < C; ++j)
        if (!excluded(j)) mx = std::max(mx, row[j]);
      double z = 0;
      for (int64_t j = 0; j < C; ++j)
        if (!excluded(j)) z += std::exp(row[j] - mx);
      const int64_t t = target[i];
      row_loss[static_cast<size_t>(i)] = mx + std::log(z) - row[t];
      for (int64_t j = 0; j < C; ++j) {
        const double p = excluded(j) ? 0.0 : std::exp(row[j] - mx) / z;
        row[j] = (p - (j == t ? 1.0 : 0.0)) / static_cast<double>(R);
      }
    }
  });
  double loss = 0;
  for (double l : row_loss) loss += l;  // rows in order, as the reference
  return loss / static_cast<double>(R);
}

}  // namespace modernbert::kernels::cpu
