// Row L2 normalisation (torch.nn.functional.normalize, eps kL2NormEps) and its backward.
// Contracts in kernels/backend.h. Norms and the division in double (the rows are short: embedding
// dimensions), parallel over rows.
#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"

namespace modernbert::kernels::cpu {

void l2norm(const float* x, float* y, float* norms, int64_t rows, int64_t D) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = x + r * D;
      float* yr = y + r * D;
      double ss = 0;
      for (int64_t c = 0; c < D; ++c) ss += static_cast<double>(xr[c]) * xr[c];
      const double nr = std::max(std::sqrt(ss), kL2NormEps);
      if (norms) norms[r] = static_cast<float>(nr);
      for (int64_t c = 0; c < D; ++c) yr[c] = static_cast<float>(xr[c] / nr);
    }
  });
}

void l2norm_backward(const float* y, const float* norms, const float* dy, float* dx, int64_t rows, int64_t D) {
  parallel_for(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(D, 1)), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      const float* yr = y + r * D;
      const float* gr = dy + r * D;
      float* dr = dx + r * D;
      double dot = 0;
      for (int64_t c = 0; c < D; ++c) dot += static_cast<double>(yr[c]) * gr[c];
      const double inv = 1.0 / static_cast<double>(norms[r]);
      for (int64_t c = 0; c < D; ++c) dr[c] = static_cast<float>((gr[c] - yr[c] * dot) * inv);
    }
  });
}

}  // namespace modernbert::kernels::cpu
