// Rotary position embedding, rotate-half (GPT-NeoX) form, applied in place to Q and K of the
// packed qkv buffer. Dims j and j + d/2 of each head form a rotation pair with angle
// angle[pos, j]:  x'_j = x_j cos - x_{j+d/2} sin,   x'_{j+d/2} = x_{j+d/2} cos + x_j sin.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/ref/ref.h"
#include "modernbert/error.h"

namespace modernbert::kernels {

RopeTable make_rope_table(double theta, int64_t head_dim, int64_t max_len) {
  if (head_dim <= 0 || head_dim % 2 != 0) throw Error("rope: head_dim must be even and positive");
  RopeTable t;
  t.theta = theta;
  t.head_dim = head_dim;
  t.max_len = max_len;
  const int64_t half = head_dim / 2;
  // inv_freq exactly as HF builds it in float32: base ** (arange(0, d, 2).float() / d), then 1/x.
  // pow is evaluated in double and rounded once (torch's float pow is within 1 ulp of that).
  std::vector<float> inv_freq(static_cast<size_t>(half));
  const float base = static_cast<float>(theta);
  for (int64_t j = 0; j < half; ++j) {
    const float ex = static_cast<float>(2 * j) / static_cast<float>(head_dim);
    const float p = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(ex)));
    inv_freq[static_cast<size_t>(j)] = 1.0f / p;
  }
  t.cos.resize(static_cast<size_t>(max_len * half));
  t.sin.resize(static_cast<size_t>(max_len * half));
  for (int64_t p = 0; p < max_len; ++p)
    for (int64_t j = 0; j < half; ++j) {
      const float ang = static_cast<float>(p) * inv_freq[static_cast<size_t>(j)];  // float32 product
      t.cos[static_cast<size_t>(p * half + j)] = static_cast<float>(std::cos(static_cast<double>(ang)));
      t.sin[static_cast<size_t>(p * half + j)] = static_cast<float>(std::sin(static_cast<double>(ang)));
    }
  return t;
}

namespace cpu {

namespace {
void check_lengths(const int64_t* cu, int64_t num_seqs, const RopeTable& table) {
  for (int64_t b = 0; b < num_seqs; ++b)
    if (cu[b + 1] - cu[b] > table.max_len)
      throw Error("rope: sequence longer than the rotary table (" + std::to_string(cu[b + 1] - cu[b]) +
                  " > " + std::to_string(table.max_len) + ")");
}

// Rotates one head vector v[0..d) with the table row (c, s) of length half.
inline void rotate(float* v, const float* c, const float* s, int64_t half) {
  int64_t j = 0;
  for (; j + 8 <= half; j += 8) {
    const __m256 x1 = _mm256_loadu_ps(v + j), x2 = _mm256_loadu_ps(v + half + j);
    const __m256 vc = _mm256_loadu_ps(c + j), vs = _mm256_loadu_ps(s + j);
    _mm256_storeu_ps(v + j, _mm256_fnmadd_ps(x2, vs, _mm256_mul_ps(x1, vc)));
    _mm256_storeu_ps(v + half + j, _mm256_fmadd_ps(x1, vs, _mm256_mul_ps(x2, vc)));
  }
  for (; j < half; ++j) {
    const float x1 = v[j], x2 = v[half + j];
    v[j] = x1 * c[j] - x2 * s[j];
    v[half + j] = x2 * c[j] + x1 * s[j];
  }
}
}  // namespace

void rope_qkv(float* qkv, const int64_t* cu, int64_t num_seqs, int64_t n_heads, const RopeTable& table) {
  check_lengths(cu, num_seqs, table);
  const int64_t d = table.head_dim, half = d / 2, H = n_heads * d, T = cu[num_seqs];
  parallel_for(T, 256, [&](int64_t b, int64_t e, int) {
    // Sequence containing token b (cu is non-decreasing; upper_bound skips empty sequences).
    int64_t s = std::upper_bound(cu, cu + num_seqs + 1, b) - cu - 1;
    for (int64_t t = b; t < e; ++t) {
      while (t >= cu[s + 1]) ++s;
      const int64_t pos = t - cu[s];
      const float* c = table.cos.data() + pos * half;
      const float* sn = table.sin.data() + pos * half;
      float* row = qkv + t * 3 * H;
      for (int64_t h = 0; h < 2 * n_heads; ++h) rotate(row + h * d, c, sn, half);  // Q heads, K heads
    }
  });
}

void rope_backward(float* dqkv, const int64_t* cu, int64_t num_seqs, int64_t n_heads, const RopeTable& table) {
  const int64_t d = table.head_dim, half = d / 2, H = n_heads * d;
  for (int64_t b = 0; b < num_seqs; ++b)
    if (cu[b + 1] - cu[b] > table.max_len) throw Error("rope_backward: sequence longer than the rotary table");
  parallel_for(num_seqs, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t t = cu[b]; t < cu[b + 1]; ++t) {
        const float* c = table.cos.data() + (t - cu[b]) * half;
        const float* s = table.sin.data() + (t - cu[b]) * half;
        for (int64_t part = 0; part < 2; ++part)  // Q, then K
          for (int64_t h = 0; h < n_heads; ++h) {
            float* v = dqkv + t * 3 * H + part * H + h * d;
            // forward: y1 = x1 c - x2 s, y2 = x2 c + x1 s  =>  dx1 = dy1 c + dy2 s, dx2 = dy2 c - dy1 s
            for (int64_t j = 0; j < half; ++j) {
              const float dy1 = v[j], dy2 = v[half + j];
              v[j] = dy1 * c[j] + dy2 * s[j];
              v[half + j] = dy2 * c[j] - dy1 * s[j];
            }
          }
      }
  });
}

}  // namespace cpu

namespace ref {
void rope_qkv(float* qkv, const int64_t* cu, int64_t num_seqs, int64_t n_heads, const RopeTable& table) {
  cpu::check_lengths(cu, num_seqs, table);
  const int64_t d = table.head_dim, half = d / 2, H = n_heads * d;
  for (int64_t b = 0; b < num_seqs; ++b)
    for (int64_t t = cu[b]; t < cu[b + 1]; ++t) {
      const int64_t pos = t - cu[b];
      for (int64_t part = 0; part < 2; ++part)
        for (int64_t h = 0; h < n_heads; ++h) {
          float* v = qkv + t * 3 * H + part * H + h * d;
          for (int64_t j = 0; j < half; ++j) {
            const float c = table.cos[static_cast<size_t>(pos * half + j)];
            const float s = table.sin[static_cast<size_t>(pos * half + j)];
            const float x1 = v[j], x2 = v[j + half];
            v[j] = x1 * c - x2 * s;
            v[j + half] = x2 * c + x1 * s;
          }
        }
    }
}
}  // namespace ref

}  // namespace modernbert::kernels
