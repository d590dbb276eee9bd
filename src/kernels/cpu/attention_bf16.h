// Internal header of the cpu attention_bf16 (kernels/cpu/attention_bf16*.cpp): the packed bf16
// operand layouts, the per-path kernel table, and the dispatch knobs the tests use.
//
// Packed operands (bf16 as uint16_t; Tp = tokens rounded up to 16, plus 16; d2 = ceil(d / 2)
// channel pairs, dq = 2 d2; dv = d rounded up to 16; pads are zero):
//   Q  [head][Tp][dq]               rotated, times 1/sqrt(d), rounded (RNE)
//   K  [head][Tp/16][d2][16][2]     16-key panels; per channel pair, 16 keys x (c even, c odd)
//   V  [head][Tp/2][dv][2]          per key pair (2u, 2u+1): dv channels x (key 2u, key 2u+1)
// Every product operand is thus a stream of 64-byte rows of (even, odd) bf16 pairs: the operand
// layout of vdpbf16ps, which adds, per fp32 lane, the odd product of a pair and then the even one
// (each add rounded; both products are exact in fp32). The emulated path reads the same buffers and
// performs the same two adds per pair with fp32 FMAs, so both paths give the same bits (up to
// vdpbf16ps's flushing of denormal inputs and outputs to zero).
#pragma once

#include <cstdint>

namespace modernbert::kernels::cpu::bf16attn {

// The three steps of one query tile (mr <= 6 rows), implemented once per path.
struct Ops {
  // dst[0..d) = bf16(rot(src) * mul), zeros in dst[d..npad): rot is RoPE by the table row (c, s)
  // with attention.cpp's arithmetic (x1 c - x2 s as fma(-x2, s, x1 c), x2 c + x1 s as
  // fma(x1, s, x2 c)), or the identity when c is nullptr. (The native path's vcvtneps2bf16 flushes
  // denormals to zero, which its vdpbf16ps would do with them anyway.)
  void (*convert)(const float* src, const float* c, const float* s, int64_t d, float mul, uint16_t* dst, int64_t npad);
  // S[r, j] = Q[r, :] · K[j, :] for r < mr and the 16 * npanels keys of npanels consecutive
  // panels starting at K (each panel d2 * 32 bf16): Q rows at stride ldq, S rows at stride lds.
  void (*qk)(int mr, const uint16_t* Q, int64_t ldq, const uint16_t* K, int64_t npanels, int64_t d2, float* S,
             int64_t lds);
  // One softmax row over columns [0, L) (L a multiple of 16), valid columns [v0, v1) (v0 < v1):
  // m = max of the valid S, p = exp(S - m) (0 outside [v0, v1)) written to P[0, L) rounded to
  // bf16; returns the fp32 sum of the unrounded p.
  float (*softmax)(const float* S, int64_t L, int64_t v0, int64_t v1, uint16_t* P);
  // O[r, 0..dv) = Σ_u P[r, 2u..2u+1] · V[pair u] over npairs key pairs (V rows 2 dv bf16 apart),
  // overwritten: P rows at stride ldp (even), O rows at stride ldo.
  void (*pv)(int mr, const uint16_t* P, int64_t ldp, const uint16_t* V, int64_t npairs, int64_t dv, float* O,
             int64_t ldo);
};

// The AVX512-BF16 kernels (attention_bf16_avx512.cpp; only called where the CPU has them).
const Ops& native_ops();
// The fp32-FMA emulation (AVX2), same results.
const Ops& emulated_ops();

}  // namespace modernbert::kernels::cpu::bf16attn

namespace modernbert::kernels::cpu {

// True when this CPU (and OS) runs AVX512-F/BW/VL/BF16 code: attention_bf16 then uses vdpbf16ps.
bool attention_bf16_native_supported();
// Test hook: true forces the fp32 emulation even where the native path exists; false restores
// the automatic choice. Not while attention_bf16 runs on other threads.
void set_attention_bf16_force_emulated(bool force);
// The path attention_bf16 takes now, for reports: "avx512_bf16 (vdpbf16ps)" or
// "fp32 fma emulation".
const char* attention_bf16_path();

}  // namespace modernbert::kernels::cpu
