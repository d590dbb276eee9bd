// Activations and GLU. GELU is the exact erf form (HF "gelu", nn.GELU default) using the
// vectorised rational erf of simd.h; "gelu_pytorch_tanh"/"gelu_new" use the tanh form.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/lowp.h"
#include "kernels/cpu/simd.h"
#include "kernels/ref/ref.h"

namespace modernbert::kernels {

namespace cpu {

namespace {

template <Act A>
inline __m256 act8(__m256 x) {
  if constexpr (A == Act::kGelu) {
    const __m256 e = simd::erf(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
  } else if constexpr (A == Act::kGeluTanh) {
    const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    const __m256 z = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                   _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x),
                         _mm256_add_ps(_mm256_set1_ps(1.0f), simd::tanh(z)));
  } else if constexpr (A == Act::kRelu) {
    return _mm256_max_ps(x, _mm256_setzero_ps());
  } else {  // SiLU: x * sigmoid(x)
    const __m256 e = simd::exp(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
  }
}

// y[i] = act(x[i]) (* g[i] if g): full vectors, then a masked tail.
template <Act A>
void act_span(const float* x, const float* g, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = act8<A>(_mm256_loadu_ps(x + i));
    if (g) v = _mm256_mul_ps(v, _mm256_loadu_ps(g + i));
    _mm256_storeu_ps(y + i, v);
  }
  if (i < n) {
    const __m256i m = simd::tail_mask(n - i);
    __m256 v = act8<A>(_mm256_maskload_ps(x + i, m));
    if (g) v = _mm256_mul_ps(v, _mm256_maskload_ps(g + i, m));
    _mm256_maskstore_ps(y + i, m, v);
  }
}

void act_dispatch(Act a, const float* x, const float* g, float* y, int64_t n) {
  switch (a) {
    case Act::kGelu: act_span<Act::kGelu>(x, g, y, n); break;
    case Act::kGeluTanh: act_span<Act::kGeluTanh>(x, g, y, n); break;
    case Act::kRelu: act_span<Act::kRelu>(x, g, y, n); break;
    case Act::kSilu: act_span<Act::kSilu>(x, g, y, n); break;
  }
}

// A 16-bit output: the span through a row buffer in L1, then rounded (lowp::round_bf16 or
// round_f16).
void act_dispatch(Act a, const float* x, const float* g, lowp::Out16 y, int64_t n) {
  float* row = lowp::row_buffer(n);
  act_dispatch(a, x, g, row, n);
  y.round(row, y.p, n);
}

template <class Out>
void glu_rows(Act act, const float* u, Out y, int64_t T, int64_t I) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(I, 1));
  parallel_for(T, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) act_dispatch(act, u + t * 2 * I, u + t * 2 * I + I, y + t * I, I);
  });
}

}  // namespace

void activation_serial(Act act, const float* x, float* y, int64_t n) { act_dispatch(act, x, nullptr, y, n); }

void activation(Act act, const float* x, float* y, int64_t n) {
  constexpr int64_t kChunk = 16384;
  parallel_for((n + kChunk - 1) / kChunk, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t c = b; c < e; ++c) {
      const int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
      act_dispatch(act, x + i0, nullptr, y + i0, len);
    }
  });
}

void glu(Act act, const float* u, float* y, int64_t T, int64_t I) { glu_rows(act, u, y, T, I); }

// The bits of rounding glu's output with lowp::round_bf16 / round_f16.
void glu_bf16out(Act act, const float* u, uint16_t* yb, int64_t T, int64_t I) {
  glu_rows(act, u, lowp::Out16{yb, &lowp::round_bf16}, T, I);
}
void glu_f16out(Act act, const float* u, uint16_t* yh, int64_t T, int64_t I) {
  glu_rows(act, u, lowp::Out16{yh, &lowp::round_f16}, T, I);
}

void erf_array(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, simd::erf(_mm256_loadu_ps(x + i)));
  if (i < n) {
    const __m256i m = simd::tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, simd::erf(_mm256_maskload_ps(x + i, m)));
  }
}

void act_backward(Act act, const float* x, const float* dy, float* dx, int64_t n) {
  parallel_for(n, 4096, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) dx[i] = dy[i] * act_derivative(act, x[i]);
  });
}

void glu_backward(Act act, const float* u, const float* dy, float* du, int64_t T, int64_t I) {
  parallel_for(T, 16, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      const float* ut = u + t * 2 * I;
      const float* dyt = dy + t * I;
      float* dut = du + t * 2 * I;
      int64_t i = 0;
      if (act == Act::kGelu) {
        // Exact GELU, 8 lanes: Φ = 0.5 (1 + erf(x/√2)), φ = exp(-x²/2)/√(2π);
        // gelu = x Φ, gelu' = Φ + x φ (simd erf / exp of the forward kernels, ~1e-7 error).
        const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
        const __m256 rs2 = _mm256_set1_ps(0.70710678118654752f), rs2pi = _mm256_set1_ps(0.39894228040143268f);
        const __m256 mhalf = _mm256_set1_ps(-0.5f);
        for (; i + 8 <= I; i += 8) {
          const __m256 x = _mm256_loadu_ps(ut + i), gate = _mm256_loadu_ps(ut + I + i);
          const __m256 g = _mm256_loadu_ps(dyt + i);
          const __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, simd::erf(_mm256_mul_ps(x, rs2))));
          const __m256 pdf = _mm256_mul_ps(rs2pi, simd::exp(_mm256_mul_ps(mhalf, _mm256_mul_ps(x, x))));
          const __m256 dact = _mm256_fmadd_ps(x, pdf, cdf);
          _mm256_storeu_ps(dut + i, _mm256_mul_ps(_mm256_mul_ps(g, gate), dact));
          _mm256_storeu_ps(dut + I + i, _mm256_mul_ps(g, _mm256_mul_ps(x, cdf)));
        }
      }
      for (; i < I; ++i) {
        const float a = ut[i], gate = ut[I + i];
        dut[i] = dyt[i] * gate * act_derivative(act, a);
        dut[I + i] = dyt[i] * ref::act_scalar(act, a);
      }
    }
  });
}

}  // namespace cpu

float act_derivative(Act act, float xf) {
  const double x = xf;
  switch (act) {
    case Act::kGelu: {
      // d/dx [x Φ(x)] = Φ(x) + x φ(x)
      const double cdf = 0.5 * (1.0 + std::erf(x / std::sqrt(2.0)));
      const double pdf = std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
      return static_cast<float>(cdf + x * pdf);
    }
    case Act::kGeluTanh: {
      const double kk = std::sqrt(2.0 / M_PI);
      const double inner = kk * (x + 0.044715 * x * x * x);
      const double t = std::tanh(inner);
      return static_cast<float>(0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kk * (1.0 + 3.0 * 0.044715 * x * x));
    }
    case Act::kRelu:
      return x > 0 ? 1.0f : 0.0f;
    case Act::kSilu: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return static_cast<float>(s * (1.0 + x * (1.0 - s)));
    }
  }
  return 0.0f;
}

namespace ref {
float act_scalar(Act act, float xf) {
  const double x = xf;
  switch (act) {
    case Act::kGelu: return static_cast<float>(0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))));
    case Act::kGeluTanh:
      return static_cast<float>(
          0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))));
    case Act::kRelu: return x > 0 ? xf : 0.0f;
    case Act::kSilu: return static_cast<float>(x / (1.0 + std::exp(-x)));
  }
  return 0.0f;
}
void activation(Act act, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = act_scalar(act, x[i]);
}
void glu(Act act, const float* u, float* y, int64_t T, int64_t I) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < I; ++i)
      y[t * I + i] = static_cast<float>(static_cast<double>(act_scalar(act, u[t * 2 * I + i])) *
                                        u[t * 2 * I + I + i]);
}
void erf_array(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(std::erf(static_cast<double>(x[i])));
}
}  // namespace ref

}  // namespace modernbert::kernels
