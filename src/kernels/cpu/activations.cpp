// Activations and GLU. GELU is the exact erf form (HF "gelu", nn.GELU default) using the
// vectorised rational erf of simd.h; "gelu_pytorch_tanh"/"gelu_new" use the tanh form.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <type_traits>

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

// Prefetch of the line `ahead` floats past x (and g): the next row's while this one is computed.
// The hardware prefetchers alone leave GeGLU's two input streams well below the memory's rate
// (Zen 4, 16-bit GeGLU over 4096 x 2 x 1152 from memory: 0.86-0.91 ns per element without, 0.51-0.56
// with the next row prefetched). Prefetching past the end of an array is harmless (no fault).
inline void prefetch_ahead(const float* x, const float* g, int64_t ahead) {
  if (ahead == 0) return;
  _mm_prefetch(reinterpret_cast<const char*>(x + ahead), _MM_HINT_T0);
  if (g) _mm_prefetch(reinterpret_cast<const char*>(g + ahead), _MM_HINT_T0);
}

// GELU (* g) for a 16-bit output: erf in float (simd::erf_f32; |error| <= 4e-7, far below the
// output's rounding), 8 lanes. GeGLU was the one op of the bf16 stream no faster than in fp32: the
// double-evaluated erf made it compute-bound (Zen 4, one thread, in L1: 1.15 ns per element with
// it, 0.67 here, 0.36 in the AVX-512 twin below; in the bf16 model on workload (a): 0.143 s -> 0.105 s).
void gelu_span_erf_f32(const float* x, const float* g, float* y, int64_t n, int64_t ahead) {
  const __m256 rs2 = _mm256_set1_ps(0.70710678118654752f), half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  auto gelu = [&](__m256 v) {
    return _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, simd::erf_f32(_mm256_mul_ps(v, rs2))));
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (i % 16 == 0) prefetch_ahead(x + i, g ? g + i : nullptr, ahead);  // once per 64-byte line
    __m256 v = gelu(_mm256_loadu_ps(x + i));
    if (g) v = _mm256_mul_ps(v, _mm256_loadu_ps(g + i));
    _mm256_storeu_ps(y + i, v);
  }
  if (i < n) {
    const __m256i m = simd::tail_mask(n - i);
    __m256 v = gelu(_mm256_maskload_ps(x + i, m));
    if (g) v = _mm256_mul_ps(v, _mm256_maskload_ps(g + i, m));
    _mm256_maskstore_ps(y + i, m, v);
  }
}

// simd::erf_f32 in 16 lanes: the same operations in the same order, so the same bits. (The
// zero-masked min / max with a full mask stand for the plain intrinsics, whose undefined
// pass-through operand trips GCC 12's -Wmaybe-uninitialized in target("avx512...") functions.)
MB_AVX512 inline __m512 erf_f32x16(__m512 x) {
  constexpr __mmask16 kAll = 0xffff;
  x = _mm512_maskz_min_ps(kAll, x, _mm512_set1_ps(4.0f));
  x = _mm512_maskz_max_ps(kAll, x, _mm512_set1_ps(-4.0f));
  const __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(static_cast<float>(simd::kErfP[0])), q = _mm512_set1_ps(static_cast<float>(simd::kErfQ[0]));
  for (size_t i = 1; i < std::size(simd::kErfP); ++i)
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(static_cast<float>(simd::kErfP[i])));
  for (size_t i = 1; i < std::size(simd::kErfQ); ++i)
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(static_cast<float>(simd::kErfQ[i])));
  return _mm512_div_ps(_mm512_mul_ps(p, x), q);
}

// gelu_span_erf_f32 in 16 lanes (masked tail): the same bits.
MB_AVX512 void gelu_span_erf_f32_avx512(const float* x, const float* g, float* y, int64_t n, int64_t ahead) {
  const __m512 rs2 = _mm512_set1_ps(0.70710678118654752f), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << (n - i)) - 1);
    prefetch_ahead(x + i, g ? g + i : nullptr, ahead);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    __m512 r = _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, erf_f32x16(_mm512_mul_ps(v, rs2))));
    if (g) r = _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, g + i));
    _mm512_mask_storeu_ps(y + i, m, r);
  }
}

// A 16-bit output: the span through a row buffer in L1, then rounded (lowp::round_bf16 or
// round_f16). GELU takes the float erf there, so its bits may differ from rounding the fp32 op's
// output: by a step near a rounding boundary, by more only in GELU's tiny negative tail, where
// 1 + erf cancels (test_kernels_lowp's gelu16_close bounds the error). The other activations are
// the fp32 op's, rounded.
void act_dispatch(Act a, const float* x, const float* g, lowp::Out16 y, int64_t n, int64_t ahead) {
  float* row = lowp::row_buffer(n);
  if (a != Act::kGelu)
    act_dispatch(a, x, g, row, n);
  else if (lowp::avx512_usable())
    gelu_span_erf_f32_avx512(x, g, row, n, ahead);
  else
    gelu_span_erf_f32(x, g, row, n, ahead);
  y.round(row, y.p, n);
}

template <class Out>
void glu_rows(Act act, const float* u, Out y, int64_t T, int64_t I) {
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(I, 1));
  parallel_for(T, grain, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      if constexpr (std::is_same_v<Out, lowp::Out16>)
        act_dispatch(act, u + t * 2 * I, u + t * 2 * I + I, y + t * I, I, 2 * I);  // next row prefetched
      else
        act_dispatch(act, u + t * 2 * I, u + t * 2 * I + I, y + t * I, I);
    }
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
