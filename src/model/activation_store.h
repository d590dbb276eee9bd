// What the training backward needs from a forward pass. Encoder::forward and
// Encoder::head_transform fill it when given one (training mode); inference passes none and keeps
// only its arena. There is one forward: the training mode runs the same kernels in the same order
// on the same inputs and only copies (or writes directly) the intermediate tensors into the store,
// so its last_hidden_state equals inference's bit for bit (tests/test_one_forward.cpp).
//
// Shapes (T tokens, H hidden, I intermediate, nh heads), per layer l:
//   hs    [T, H]   residual stream entering layer l
//   a     [T, H]   LN(hs; attn_norm_l), the input of Wqkv (empty when layer l has no attn_norm:
//                  then Wqkv reads hs)                       a_mean / a_rstd [T]
//   qkv   [T, 3H]  after RoPE (the backward's Q, K, V)
//   o     [T, H]   attention output (heads concatenated), the input of Wo;  lse [T, nh]
//   hmid  [T, H]   hs + Dropout(o Woᵀ + bo)                 (the input of mlp_norm)
//   m     [T, H]   LN(hmid; mlp_norm_l), the input of Wi    m_mean / m_rstd [T]
//   u     [T, 2I]  m Wiᵀ + bi (GLU input; the GLU output is recomputed in the backward)
// and once: emb_x [T, H] = E[ids] (emb_mean / emb_rstd [T]), h_last [T, H] = residual stream
// after the last layer (final_norm's input; f_mean / f_rstd [T]).
//
// Buffers grow to the largest batch seen and are reused (no allocation per step once warm).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/types.h"

namespace modernbert {

struct LayerActivations {
  std::vector<float> hs, a, a_mean, a_rstd, qkv, o, lse, hmid, m, m_mean, m_rstd, u;
  const kernels::RopeTable* rope = nullptr;  // the table the forward rotated qkv with
};

struct ActivationStore {
  std::vector<LayerActivations> layers;
  std::vector<float> emb_x, emb_mean, emb_rstd, h_last, f_mean, f_rstd;
  // Attention-output dropout of this forward (spec §6.9): each element of a layer's Wo output is
  // dropped with probability p and the rest scaled by 1/(1-p); the mask is a pure function of
  // (seed, layer, element) (kernels::dropout), so the backward regenerates it. p = 0: off.
  double attn_dropout = 0;
  uint64_t dropout_seed = 0;
};

// The head transform's saved tensors: z1 [R, H] = x W_denseᵀ + b (pre-activation) and the
// statistics of the LayerNorm over act(z1) ([R] each).
struct HeadActivations {
  std::vector<float> z1, mean, rstd;
};

}  // namespace modernbert
