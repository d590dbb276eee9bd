// LayerNorm and the fused residual-add + LayerNorm of the pre-norm block.
// Rows are independent: parallel over rows; within a row two passes (mean, then centred
// variance) with 8-lane float accumulators — the centred second pass avoids the cancellation of
// E[x^2] - E[x]^2, and 8 partial sums keep the rounding error of a 768..1024-long sum ~1e-7.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/lowp.h"
#include "kernels/cpu/simd.h"
#include "kernels/ref/ref.h"

namespace modernbert::kernels {

namespace cpu {

namespace {

// LN of one row x[0..C) into y (may alias x).
// Saves the row's mean and rstd into *mean_out / *rstd_out when given.
inline void ln_row(const float* x, const float* gamma, const float* beta, float* y, int64_t C, float eps,
                   float* mean_out = nullptr, float* rstd_out = nullptr) {
  const int64_t C8 = C / 8 * 8;
  __m256 acc = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c < C8; c += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + c));
  float sum = simd::hsum(acc);
  for (; c < C; ++c) sum += x[c];
  const float mean = sum / static_cast<float>(C);
  const __m256 vmean = _mm256_set1_ps(mean);
  acc = _mm256_setzero_ps();
  for (c = 0; c < C8; c += 8) {
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + c), vmean);
    acc = _mm256_fmadd_ps(d, d, acc);
  }
  float sq = simd::hsum(acc);
  for (; c < C; ++c) sq += (x[c] - mean) * (x[c] - mean);
  const float rstd = 1.0f / std::sqrt(sq / static_cast<float>(C) + eps);
  if (mean_out) {
    *mean_out = mean;
    *rstd_out = rstd;
  }
  const __m256 vr = _mm256_set1_ps(rstd);
  for (c = 0; c < C8; c += 8) {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vmean), vr);
    if (gamma) v = _mm256_mul_ps(v, _mm256_loadu_ps(gamma + c));
    if (beta) v = _mm256_add_ps(v, _mm256_loadu_ps(beta + c));
    _mm256_storeu_ps(y + c, v);
  }
  for (; c < C; ++c) {
    float v = (x[c] - mean) * rstd;
    if (gamma) v *= gamma[c];
    if (beta) v += beta[c];
    y[c] = v;
  }
}

// A 16-bit output: the row through a row buffer in L1, then rounded (lowp::round_bf16 or
// round_f16): the bits of rounding ln_row's fp32 output.
inline void ln_row(const float* x, const float* gamma, const float* beta, lowp::Out16 y, int64_t C, float eps,
                   float* mean_out = nullptr, float* rstd_out = nullptr) {
  float* row = lowp::row_buffer(C);
  ln_row(x, gamma, beta, row, C, eps, mean_out, rstd_out);
  y.round(row, y.p, C);
}

// Rows per task: enough work (~32K elements) to amortise the scheduling.
int64_t row_grain(int64_t C) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(C, 1)); }

// layernorm / add_layernorm for an fp32 (Out = float*) or 16-bit (Out = lowp::Out16) output.
template <class Out>
void layernorm_rows(const float* x, const float* gamma, const float* beta, Out y, int64_t rows, int64_t C, float eps,
                    float* mean, float* rstd) {
  parallel_for(rows, row_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r)
      ln_row(x + r * C, gamma, beta, y + r * C, C, eps, mean ? mean + r : nullptr, rstd ? rstd + r : nullptr);
  });
}

template <class Out>
void add_layernorm_rows(float* x, const float* r, const float* gamma, const float* beta, Out y, int64_t rows, int64_t C,
                        float eps, float* mean, float* rstd) {
  parallel_for(rows, row_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) {
      float* xr = x + i * C;
      const float* rr = r + i * C;
      int64_t c = 0;
      for (; c + 8 <= C; c += 8)
        _mm256_storeu_ps(xr + c, _mm256_add_ps(_mm256_loadu_ps(xr + c), _mm256_loadu_ps(rr + c)));
      for (; c < C; ++c) xr[c] += rr[c];
      // r's row is fully read before y is written
      ln_row(xr, gamma, beta, y + i * C, C, eps, mean ? mean + i : nullptr, rstd ? rstd + i : nullptr);
    }
  });
}

}  // namespace

void layernorm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C, float eps,
               float* mean, float* rstd) {
  layernorm_rows(x, gamma, beta, y, rows, C, eps, mean, rstd);
}

void add_layernorm(float* x, const float* r, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C,
                   float eps, float* mean, float* rstd) {
  add_layernorm_rows(x, r, gamma, beta, y, rows, C, eps, mean, rstd);
}

// The 16-bit-output twins (the activation streams of backend.h): the bits of rounding layernorm's
// output with lowp::round_bf16 / round_f16.
void layernorm_bf16out(const float* x, const float* gamma, const float* beta, uint16_t* yb, int64_t rows, int64_t C,
                       float eps) {
  layernorm_rows(x, gamma, beta, lowp::Out16{yb, &lowp::round_bf16}, rows, C, eps, nullptr, nullptr);
}

void add_layernorm_bf16out(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yb, int64_t rows,
                           int64_t C, float eps) {
  add_layernorm_rows(x, r, gamma, beta, lowp::Out16{yb, &lowp::round_bf16}, rows, C, eps, nullptr, nullptr);
}

void layernorm_f16out(const float* x, const float* gamma, const float* beta, uint16_t* yh, int64_t rows, int64_t C,
                      float eps) {
  layernorm_rows(x, gamma, beta, lowp::Out16{yh, &lowp::round_f16}, rows, C, eps, nullptr, nullptr);
}

void add_layernorm_f16out(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yh, int64_t rows,
                          int64_t C, float eps) {
  add_layernorm_rows(x, r, gamma, beta, lowp::Out16{yh, &lowp::round_f16}, rows, C, eps, nullptr, nullptr);
}

void act_layernorm(Act act, const float* x, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps, float* mean, float* rstd) {
  parallel_for(rows, row_grain(C), [&](int64_t b, int64_t e, int) {
    for (int64_t r = b; r < e; ++r) {
      activation_serial(act, x + r * C, y + r * C, C);  // row still in L1 for the LN below
      ln_row(y + r * C, gamma, beta, y + r * C, C, eps, mean ? mean + r : nullptr, rstd ? rstd + r : nullptr);
    }
  });
}

// Backward: rows in fixed chunks of 32, each chunk's dg/db partial reduced in chunk order (thread
// count independent).
void layernorm_backward(const float* dy, const float* x, const float* g, const float* mean, const float* rstd,
                        float* dx, bool accumulate_dx, float* dg, float* db, int64_t rows, int64_t C) {
  // Rows in fixed chunks; each chunk writes its own dg/db partial, reduced in chunk order below.
  constexpr int64_t kChunk = 32;
  const int64_t nchunks = (rows + kChunk - 1) / kChunk;
  const bool need_params = dg || db;
  std::vector<float> pg(need_params ? static_cast<size_t>(nchunks * C) : 0),
      pb(need_params ? static_cast<size_t>(nchunks * C) : 0);
  parallel_for(nchunks, 1, [&](int64_t c0, int64_t c1, int) {
    for (int64_t ch = c0; ch < c1; ++ch) {
      float* pgc = need_params ? pg.data() + ch * C : nullptr;
      float* pbc = need_params ? pb.data() + ch * C : nullptr;
      for (int64_t r = ch * kChunk; r < std::min(rows, (ch + 1) * kChunk); ++r) {
        const float* dyr = dy + r * C;
        const float* xr = x + r * C;
        float* dxr = dx + r * C;
        const float m = mean[r], rs = rstd[r];
        // s1 = Σ dy·g, s2 = Σ dy·g·xhat (8 float lanes, then the lanes and the tail in double).
        const __m256 vm = _mm256_set1_ps(m), vrs = _mm256_set1_ps(rs);
        __m256 v1 = _mm256_setzero_ps(), v2 = _mm256_setzero_ps();
        int64_t c = 0;
        for (; c + 8 <= C; c += 8) {
          const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm), vrs);
          const __m256 d8 = _mm256_loadu_ps(dyr + c);
          const __m256 dyg = g ? _mm256_mul_ps(d8, _mm256_loadu_ps(g + c)) : d8;
          v1 = _mm256_add_ps(v1, dyg);
          v2 = _mm256_fmadd_ps(dyg, xh, v2);
          if (pgc) {
            _mm256_storeu_ps(pgc + c, _mm256_fmadd_ps(d8, xh, _mm256_loadu_ps(pgc + c)));
            _mm256_storeu_ps(pbc + c, _mm256_add_ps(d8, _mm256_loadu_ps(pbc + c)));
          }
        }
        double s1 = simd::hsum(v1), s2 = simd::hsum(v2);
        for (; c < C; ++c) {
          const float xh = (xr[c] - m) * rs;
          const float dyg = g ? dyr[c] * g[c] : dyr[c];
          s1 += dyg;
          s2 += static_cast<double>(dyg) * xh;
          if (pgc) {
            pgc[c] += dyr[c] * xh;
            pbc[c] += dyr[c];
          }
        }
        const float a1 = static_cast<float>(s1 / static_cast<double>(C));
        const float a2 = static_cast<float>(s2 / static_cast<double>(C));
        const __m256 va1 = _mm256_set1_ps(a1), va2 = _mm256_set1_ps(a2);
        for (c = 0; c + 8 <= C; c += 8) {
          const __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + c), vm), vrs);
          const __m256 d8 = _mm256_loadu_ps(dyr + c);
          const __m256 dyg = g ? _mm256_mul_ps(d8, _mm256_loadu_ps(g + c)) : d8;
          __m256 v = _mm256_mul_ps(vrs, _mm256_sub_ps(_mm256_sub_ps(dyg, va1), _mm256_mul_ps(xh, va2)));
          if (accumulate_dx) v = _mm256_add_ps(v, _mm256_loadu_ps(dxr + c));
          _mm256_storeu_ps(dxr + c, v);
        }
        for (; c < C; ++c) {
          const float xh = (xr[c] - m) * rs;
          const float dyg = g ? dyr[c] * g[c] : dyr[c];
          const float v = rs * (dyg - a1 - xh * a2);
          dxr[c] = accumulate_dx ? dxr[c] + v : v;
        }
      }
    }
  });
  if (!need_params) return;
  parallel_for(C, 64, [&](int64_t b0, int64_t b1, int) {
    for (int64_t c = b0; c < b1; ++c) {
      double sg = 0, sb = 0;
      for (int64_t ch = 0; ch < nchunks; ++ch) {
        sg += pg[static_cast<size_t>(ch * C + c)];
        sb += pb[static_cast<size_t>(ch * C + c)];
      }
      if (dg) dg[c] += static_cast<float>(sg);
      if (db) db[c] += static_cast<float>(sb);
    }
  });
}

}  // namespace cpu

namespace ref {
void act_layernorm(Act act, const float* x, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps, float* mean, float* rstd) {
  ref::activation(act, x, y, rows * C);
  ref::layernorm(y, gamma, beta, y, rows, C, eps, mean, rstd);
}
void layernorm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C, float eps,
               float* mean_out, float* rstd_out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += xr[c];
    mean /= static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= static_cast<double>(C);
    const double rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
    if (mean_out) {
      mean_out[r] = static_cast<float>(mean);
      rstd_out[r] = static_cast<float>(rstd);
    }
    for (int64_t c = 0; c < C; ++c) {
      double v = (xr[c] - mean) * rstd;
      if (gamma) v *= gamma[c];
      if (beta) v += beta[c];
      y[r * C + c] = static_cast<float>(v);
    }
  }
}
void add_layernorm(float* x, const float* r, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C,
                   float eps, float* mean, float* rstd) {
  for (int64_t i = 0; i < rows * C; ++i) x[i] += r[i];
  layernorm(x, gamma, beta, y, rows, C, eps, mean, rstd);
}
}  // namespace ref

}  // namespace modernbert::kernels
