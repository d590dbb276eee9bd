// attention_bf16 of the ref backend (#15): attention with both products in bf16 (contract in
// kernels/backend.h), in plain loops. The fp32 operations before each rounding to bf16 are spelled
// out in the order the cpu kernels perform them (RoPE with the same fma, the scale, the dot products
// pair by pair, the exp polynomial), because a value that differs by one fp32 ulp before rounding
// can round to a neighbouring bf16 (2^-8 apart): with the same pre-rounding values the cpu backend
// matches this reference up to the summation order of the row sums.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/ref/ref.h"
#include "modernbert/error.h"

namespace modernbert::kernels::ref {

namespace {

// Round to the nearest bf16, ties to even (NaN stays NaN), returned as the fp32 it represents.
float round_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    u |= 0x400000u;
  } else {
    u += 0x7fffu + ((u >> 16) & 1u);
  }
  u &= 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}

// exp(x) as the cpu kernels evaluate it (simd::exp in kernels/cpu/simd.h, Cephes: x = k ln2 + r,
// a degree-5 polynomial for e^r, times 2^k; within ~2 ulp of exp), step for step in scalar.
float exp_poly(float x) {
  x = std::min(x, 88.3762626647949f);
  x = std::max(x, -88.3762626647949f);
  const float fx = std::floor(std::fma(x, 1.44269504088896341f, 0.5f));
  x = std::fma(-fx, 0.693359375f, x);
  x = std::fma(-fx, -2.12194440e-4f, x);
  float y = 1.9875691500E-4f;
  y = std::fma(y, x, 1.3981999507E-3f);
  y = std::fma(y, x, 8.3334519073E-3f);
  y = std::fma(y, x, 4.1665795894E-2f);
  y = std::fma(y, x, 1.6666665459E-1f);
  y = std::fma(y, x, 5.0000001201E-1f);
  const float x2 = x * x, x1 = x + 1.0f;
  y = std::fma(y, x2, x1);
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(fx) + 127) << 23;
  float two_k;
  std::memcpy(&two_k, &bits, 4);
  return y * two_k;
}

}  // namespace

// The reference needs no workspace (the one it is given is not touched).
size_t attention_bf16_workspace_floats(int64_t, int64_t, int64_t) { return 0; }

void attention_bf16(const float* qkv, float* out, const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t d,
                    int64_t hw, float*, const RopeTable* rope) {
  if (n_heads <= 0 || d <= 0) throw Error("attention_bf16: n_heads and head_dim must be positive");
  if (num_seqs < 0 || cu[0] != 0) throw Error("attention_bf16: cu_seqlens[0] must be 0");
  for (int64_t b = 0; b < num_seqs; ++b)
    if (cu[b + 1] < cu[b]) throw Error("attention_bf16: cu_seqlens must be non-decreasing");
  if (rope) {
    if (rope->head_dim != d) throw Error("attention_bf16: RoPE table head_dim differs from the heads'");
    for (int64_t b = 0; b < num_seqs; ++b)
      if (cu[b + 1] - cu[b] > rope->max_len) throw Error("attention_bf16: sequence longer than the rotary table");
  }
  const int64_t H = n_heads * d, half = d / 2;
  hw = std::min(hw, cu[num_seqs]);  // a wider window sees the same keys (and i + hw cannot overflow)
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t base = cu[b], n = cu[b + 1] - cu[b];
    std::vector<float> q(static_cast<size_t>(n * d)), k(q.size()), v(q.size()), s(static_cast<size_t>(n));
    std::vector<float> p(s.size());
    for (int64_t h = 0; h < n_heads; ++h) {
      // The head's rounded operands: Q = bf16(rot(q) * scale), K = bf16(rot(k)), V = bf16(v), where
      // rot is rope_qkv's rotation with x1 c - x2 s as fma(-x2, s, x1 c) (and x2 c + x1 s as
      // fma(x1, s, x2 c)), and the identity without a table.
      for (int64_t i = 0; i < n; ++i) {
        const float* row = qkv + (base + i) * 3 * H + h * d;
        for (int64_t part = 0; part < 2; ++part) {
          const float* x = row + part * H;
          float* dst = (part == 0 ? q.data() : k.data()) + i * d;
          const float mul = part == 0 ? scale : 1.0f;
          for (int64_t c = 0; c < d; ++c) dst[c] = x[c];
          if (rope)
            for (int64_t j = 0; j < half; ++j) {
              const float cs = rope->cos[static_cast<size_t>(i * half + j)];
              const float sn = rope->sin[static_cast<size_t>(i * half + j)];
              dst[j] = std::fma(-x[half + j], sn, x[j] * cs);
              dst[half + j] = std::fma(x[j], sn, x[half + j] * cs);
            }
          for (int64_t c = 0; c < d; ++c) dst[c] = round_bf16(dst[c] * mul);
        }
        for (int64_t c = 0; c < d; ++c) v[static_cast<size_t>(i * d + c)] = round_bf16(row[2 * H + c]);
      }
      for (int64_t i = 0; i < n; ++i) {
        const int64_t lo = hw < 0 ? 0 : std::max<int64_t>(0, i - hw);
        const int64_t hi = hw < 0 ? n : std::min<int64_t>(n, i + hw + 1);
        // s_j = Q_i · K_j in fp32, by channel pairs (2c, 2c + 1), the odd channel first (the order
        // of vdpbf16ps); each product of two bf16 is exact in fp32, so only the adds round.
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = lo; j < hi; ++j) {
          const float* qi = q.data() + i * d;
          const float* kj = k.data() + j * d;
          float acc = 0.0f;
          for (int64_t c = 0; c < d; c += 2) {
            if (c + 1 < d) acc += qi[c + 1] * kj[c + 1];
            acc += qi[c] * kj[c];
          }
          s[static_cast<size_t>(j)] = acc;
          mx = std::max(mx, acc);
        }
        // Softmax in fp32 against the row max; the sum of the unrounded p; P = bf16(p).
        float l = 0.0f;
        for (int64_t j = lo; j < hi; ++j) {
          const float e = exp_poly(s[static_cast<size_t>(j)] - mx);
          l += e;
          p[static_cast<size_t>(j)] = round_bf16(e);
        }
        // O = P · V in fp32 by pairs of keys whose global token indices are (2u, 2u + 1), the odd
        // one first (vdpbf16ps again); then divided by the row sum.
        const int64_t u0 = (base + lo) / 2, u1 = (base + hi - 1) / 2;
        float* o = out + (base + i) * H + h * d;
        for (int64_t c = 0; c < d; ++c) {
          float acc = 0.0f;
          for (int64_t u = u0; u <= u1; ++u)
            for (int64_t g : {2 * u + 1, 2 * u}) {
              const int64_t j = g - base;
              if (j >= lo && j < hi) acc += p[static_cast<size_t>(j)] * v[static_cast<size_t>(j * d + c)];
            }
          o[c] = acc / l;
        }
      }
    }
  }
}

}  // namespace modernbert::kernels::ref
