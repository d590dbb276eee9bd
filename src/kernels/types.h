// Types shared by every kernel backend and its callers (no backend code here).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "modernbert/precision.h"

namespace modernbert::kernels {

using modernbert::Precision;
using modernbert::WeightMatrix;

enum class Act { kGelu, kGeluTanh, kRelu, kSilu };

// How a sequence's hidden states [n, H] become one vector [H]: its first token (CLS), the mean
// over its n tokens (the unpadded form of Hugging Face's attention-mask-weighted mean) or the
// per-channel max over its tokens (sentence-transformers' max pooling; inference only).
enum class PoolMode { kCls, kMean, kMax };

// RoPE (rotate-half / GPT-NeoX, non-interleaved) as Hugging Face computes it:
//   inv_freq[j] = float32(1 / float32(theta ^ float32(2j / d)))   j < d/2
//   angle[p, j] = float32(float32(p) * inv_freq[j]);  cos/sin of that float angle.
// The table stores cos and sin for positions [0, max_len) as [max_len, d/2] each. Host memory,
// built once per (theta, length) by the caller (a device backend uploads it on first use).
struct RopeTable {
  double theta = 0;
  int64_t head_dim = 0, max_len = 0;
  std::vector<float> cos, sin;  // [max_len, head_dim/2]
};
RopeTable make_rope_table(double theta, int64_t head_dim, int64_t max_len);

// Host-side scalar derivative of an activation, d act(x) / dx (exact erf GELU, tanh GELU, ReLU,
// SiLU; double precision math, float result). The scalar activation itself is ref::act_scalar.
float act_derivative(Act act, float x);

}  // namespace modernbert::kernels
