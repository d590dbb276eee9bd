// Growing a smaller model into a larger one by tiling its weights (spec §6.7).
#pragma once

#include <cstdint>
#include <vector>

#include "modernbert/weights.h"

namespace modernbert {

// ---- Tiling a smaller model into a larger one (spec §6.7) ----
// New layer k ← source layer round_half_even(k · L_src / L_dst).
std::vector<int64_t> tiling_layer_map(int64_t src_layers, int64_t dst_layers);
// New[r, c] = B[(r − r0) mod R, (c − c0) mod C], r0 = (R'−R)//2, c0 = (C'−C)//2 (1-D alike).
void tile_tensor(const float* src, const std::vector<int64_t>& src_shape, float* dst,
                 const std::vector<int64_t>& dst_shape);
// Fills dst from src per §6.7: Wqkv tiled per Q/K/V block, Wi per half, norms 1-D, decoder bias
// copied; final_norm and classifier keep dst's current (fresh) values.
void tile_weights(const Weights& src, Weights& dst);

}  // namespace modernbert
