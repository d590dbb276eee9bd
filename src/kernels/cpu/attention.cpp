// Varlen flash-style attention on the CPU (fp32, AVX2/FMA).
//
// Work item = (sequence, head, query block of Bq rows), spread over the pool. For each item we
// walk the key blocks of Bk = 64 keys that intersect the item's band, [q0 - hw, q0 + Bq - 1 + hw]
// for local layers (hw = half window) or the whole sequence for global layers, so a local layer
// costs O(n * (Bq + 2 hw)) instead of O(n^2). Inside a key block the item is processed one 6-row
// query tile at a time (row-tile-major, so the tile's S [6, 64] and O [6, dp] stay in L1 while the
// block's K^T and V panels, 2 x 16 KB, are reused from L1/L2 by every tile):
//   panels  = the 16-key panels of the block that intersect the TILE's band (local layers: a
//             6-row tile needs 6 + 2 hw keys, ~9 of the ~11 panels a 30-row block spans)
//   S[6, panels]  = Q[6, d] · K^T[d, panels]                  (micro-kernel, scores pre-scaled)
//   online softmax per row over the keys valid for that row (|i - j| <= hw, j < n); rows whose
//     valid range covers all the tile's panels skip the masking:
//     m' = max(m, max S), alpha = exp(m - m'), P = exp(S - m'), l = alpha l + sum P, O = alpha O
//   O[6, dp] += P[6, panels] · V[panels, dp]                  (same micro-kernel)
// and finally out = O / l. Nothing n x n is ever stored.
//
// Layout: Q, K and V are first repacked per head into the workspace (one token-major pass over
// qkv), K and V in 16-wide panels so that every micro-kernel B operand is a contiguous stream of
// 64-byte rows:
//   K^T [head][Tp/16][d][16]   (16 keys per panel, one 4 KB panel per 16 keys for d = 64)
//   V   [head][dp/16][Tp][16]  (16 of the dp = roundup(d, 16) channels per panel, zero-padded)
//   Q   [head][Tp][d]          (scaled by 1/sqrt(d), rotated when a RoPE table is given)
// Before, V was [head][Tp][dp] row-major and the P·V kernel read 64-byte pieces 256 bytes apart,
// which stalled on loads (perf annotate: ~12% of attention cycles on one load). Key blocks start on
// a global multiple of 16 (possibly up to 15 keys before the sequence start; those columns are
// masked like any invalid key, and their V rows, from the previous sequence, get P = 0). Tp >=
// T + 64 so a key block may run past the last token. Q is multiplied by 1/sqrt(d) (exact for
// d = 64, a power of two) so the scores need no scaling. When a RoPE table is given, Q and K are
// rotated during these copies (no separate rope_qkv pass). Workspace: ~3 H floats per token.
//
// The micro-kernel (kernels/cpu/microkernel.h) computes C[MR x 16] (+)= A[MR x K] · B[K x 16] with MR <= 6: 12 ymm
// accumulators, per k two B loads, MR broadcasts and 2 MR FMAs (FMA-bound on Zen3).
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/lowp.h"
#include "kernels/cpu/microkernel.h"
#include "kernels/cpu/simd.h"
#include "kernels/ref/ref.h"
#include "modernbert/error.h"

namespace modernbert::kernels {

namespace cpu {

namespace {

constexpr int kBk = 64;  // keys per block (S columns)
constexpr int kMr = 6;   // rows per micro-tile
constexpr int kMaxBq = 192;
std::atomic<int> g_bq_global{AttentionTiles{}.q_block_global}, g_bq_local{AttentionTiles{}.q_block_local};

int64_t padded_dim(int64_t d) { return (d + 15) / 16 * 16; }
int64_t padded_tokens(int64_t T) { return (T + kBk + 15) / 16 * 16; }

struct Scratch {
  std::vector<float> S, O, m, l, Q;  // Q [bq, d]: the per-item Q of attention_16io
  void ensure(int64_t bq, int64_t dp) {
    if (S.size() < static_cast<size_t>(kMr * kBk)) S.resize(static_cast<size_t>(kMr * kBk));
    if (Q.size() < static_cast<size_t>(bq * dp)) Q.resize(static_cast<size_t>(bq * dp));
    if (O.size() < static_cast<size_t>(bq * dp)) O.resize(static_cast<size_t>(bq * dp));
    if (m.size() < static_cast<size_t>(bq)) {
      m.resize(static_cast<size_t>(bq));
      l.resize(static_cast<size_t>(bq));
    }
  }
};

void check_args(const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t head_dim) {
  if (n_heads <= 0 || head_dim <= 0) throw Error("attention: n_heads and head_dim must be positive");
  if (cu[0] != 0) throw Error("attention: cu_seqlens[0] must be 0");
  for (int64_t b = 0; b < num_seqs; ++b)
    if (cu[b + 1] < cu[b]) throw Error("attention: cu_seqlens must be non-decreasing");
}

// dst[0..d) = src rotated by the RoPE row (c, s) (rotate-half; the arithmetic of rope_qkv:
// x1 c - x2 s as fnmadd(x2, s, x1 c)), or copied when c is nullptr; then multiplied by `mul`.
inline void load_head(const float* src, const float* c, const float* s, int64_t d, float mul, float* dst) {
  const int64_t half = d / 2;
  const __m256 vmul = _mm256_set1_ps(mul);
  if (!c) {
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_loadu_ps(src + j), vmul));
    for (; j < d; ++j) dst[j] = src[j] * mul;
    return;
  }
  int64_t j = 0;
  for (; j + 8 <= half; j += 8) {
    const __m256 x1 = _mm256_loadu_ps(src + j), x2 = _mm256_loadu_ps(src + half + j);
    const __m256 vc = _mm256_loadu_ps(c + j), vs = _mm256_loadu_ps(s + j);
    _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_fnmadd_ps(x2, vs, _mm256_mul_ps(x1, vc)), vmul));
    _mm256_storeu_ps(dst + half + j, _mm256_mul_ps(_mm256_fmadd_ps(x1, vs, _mm256_mul_ps(x2, vc)), vmul));
  }
  for (; j < half; ++j) {
    const float x1 = src[j], x2 = src[half + j];
    dst[j] = (x1 * c[j] - x2 * s[j]) * mul;
    dst[half + j] = (x2 * c[j] + x1 * s[j]) * mul;
  }
}

// load_head of a 16-bit row: dst[0..d) = widen(src) rotated and scaled, the same arithmetic on the
// same widened values (attention_16io reads qkv this way, with no fp32 copy of the rows).
inline void load_head_16(const uint16_t* src, bool f16, const float* c, const float* s, int64_t d, float mul,
                         float* dst) {
  const int64_t half = d / 2;
  const __m256 vmul = _mm256_set1_ps(mul);
  if (!c) {
    int64_t j = 0;
    for (; j + 8 <= d; j += 8) _mm256_storeu_ps(dst + j, _mm256_mul_ps(lowp::widen8(src + j, f16), vmul));
    for (; j < d; ++j) dst[j] = lowp::widen1(src[j], f16) * mul;
    return;
  }
  int64_t j = 0;
  for (; j + 8 <= half; j += 8) {
    const __m256 x1 = lowp::widen8(src + j, f16), x2 = lowp::widen8(src + half + j, f16);
    const __m256 vc = _mm256_loadu_ps(c + j), vs = _mm256_loadu_ps(s + j);
    _mm256_storeu_ps(dst + j, _mm256_mul_ps(_mm256_fnmadd_ps(x2, vs, _mm256_mul_ps(x1, vc)), vmul));
    _mm256_storeu_ps(dst + half + j, _mm256_mul_ps(_mm256_fmadd_ps(x1, vs, _mm256_mul_ps(x2, vc)), vmul));
  }
  for (; j < half; ++j) {
    const float x1 = lowp::widen1(src[j], f16), x2 = lowp::widen1(src[half + j], f16);
    dst[j] = (x1 * c[j] - x2 * s[j]) * mul;
    dst[half + j] = (x2 * c[j] + x1 * s[j]) * mul;
  }
}

// Online-softmax update of one score row over block columns [c_begin, c_end) (multiples of 8),
// valid columns [v0, v1) (v0 < v1). Writes P in place (0 for invalid columns) and returns alpha.
inline float softmax_row(float* srow, int64_t c_begin, int64_t c_end, int64_t v0, int64_t v1, float& m, float& l) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const float ninf = -std::numeric_limits<float>::infinity();
  __m256 vmax = _mm256_set1_ps(ninf);
  const bool full = v0 <= c_begin && v1 >= c_end;
  const __m256i vc0 = _mm256_set1_epi32(static_cast<int>(v0)), vc1 = _mm256_set1_epi32(static_cast<int>(v1));
  auto valid = [&](int64_t c) {
    const __m256i idx = _mm256_add_epi32(lane, _mm256_set1_epi32(static_cast<int>(c)));
    return _mm256_castsi256_ps(_mm256_andnot_si256(_mm256_cmpgt_epi32(vc0, idx), _mm256_cmpgt_epi32(vc1, idx)));
  };
  if (full) {
    for (int64_t c = c_begin; c < c_end; c += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(srow + c));
  } else {
    for (int64_t c = c_begin; c < c_end; c += 8)
      vmax = _mm256_max_ps(vmax, _mm256_blendv_ps(vmax, _mm256_loadu_ps(srow + c), valid(c)));
  }
  const float mnew = std::max(m, simd::hmax(vmax));
  const float alpha = std::exp(m - mnew);  // 0 when m = -inf
  const __m256 vm = _mm256_set1_ps(mnew);
  __m256 vsum = _mm256_setzero_ps();
  if (full) {
    for (int64_t c = c_begin; c < c_end; c += 8) {
      const __m256 p = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(srow + c), vm));
      vsum = _mm256_add_ps(vsum, p);
      _mm256_storeu_ps(srow + c, p);
    }
  } else {
    for (int64_t c = c_begin; c < c_end; c += 8) {
      const __m256 p = _mm256_and_ps(simd::exp(_mm256_sub_ps(_mm256_loadu_ps(srow + c), vm)), valid(c));
      vsum = _mm256_add_ps(vsum, p);
      _mm256_storeu_ps(srow + c, p);
    }
  }
  l = l * alpha + simd::hsum(vsum);
  m = mnew;
  return alpha;
}

}  // namespace

size_t attention_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim) {
  const int64_t tp = padded_tokens(T);
  return static_cast<size_t>(n_heads * tp * (2 * head_dim + padded_dim(head_dim)));
}

// Heads packed at a time by attention_16io: all of them up to 1024 tokens; beyond, a third
// (rounded up), so K^T and V of 4 of base's 12 heads at a time: at 8192 tokens 16 MiB of
// workspace instead of 48 MiB (the encoder's widening stream sizes its arena by this phase). Pack
// reads only the group's K and V columns, widened in registers (load_head_16): with an fp32 copy
// of each panel's rows first, the groups made base's attention 10-20% slower on (a) (Zen 4);
// reading in registers, it took 0.67-0.81 s per pass against 0.79 s for all heads at once.
static int64_t heads_per_group_16io(int64_t T, int64_t n_heads) { return T <= 1024 ? n_heads : (n_heads + 2) / 3; }

size_t attention_16io_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim) {
  const int64_t tp = padded_tokens(T), hg = heads_per_group_16io(T, std::max<int64_t>(n_heads, 1));
  return static_cast<size_t>(hg * tp * (head_dim + padded_dim(head_dim)));  // K^T and V of a group; Q per item
}

}  // namespace cpu

void set_attention_tiles(AttentionTiles t) {
  cpu::g_bq_global.store(std::clamp(t.q_block_global, 1, cpu::kMaxBq));
  cpu::g_bq_local.store(std::clamp(t.q_block_local, 1, cpu::kMaxBq));
}

namespace cpu {

// The packed operands of one attention call (see attention_workspace_floats): Q scaled (and
// rotated) [n_heads][Tp][d], K^T in 16-token panels [n_heads][Tp/16][d][16], V in 16-channel
// panels [n_heads][dp/16][Tp][16]; T tokens, Tp = T rounded up to 16, dp = d rounded up to 16.
// Qp nullptr (attention_16io): each work item rotates and scales its own query rows from the 16-bit
// qkv into thread-local scratch instead, the same values (a third less workspace). The packed heads
// are heads h0 .. h0 + n_heads - 1 of the H / d in qkv (attention_16io packs a group at a time).
struct Packed {
  const int64_t* cu;
  int64_t num_seqs, n_heads, d, T, Tp, H, dp, np, h0;
  float *KT, *Vp, *Qp;
  const RopeTable* rope = nullptr;
  float scale = 1.0f;
};

namespace {

// 16-bit storage of the activation stream (attention_16io): qkv16 [T, 3H] of type t16 instead of
// the fp32 qkv (then nullptr), out16 [T, H] instead of the fp32 out.
struct Io16 {
  const uint16_t* qkv16 = nullptr;
  uint16_t* out16 = nullptr;
  Precision t16 = Precision::kF32;
};

void pack_qkv(const float* qkv, const Io16& io, const Packed& P, const RopeTable* rope, float scale) {
  const int64_t* cu = P.cu;
  const int64_t num_seqs = P.num_seqs, n_heads = P.n_heads, d = P.d, T = P.T, Tp = P.Tp, H = P.H, np = P.np;
  const int64_t ld_qkv = 3 * H, half = d / 2, h0 = P.h0;
  float *KT = P.KT, *Vp = P.Vp, *Qp = P.Qp;
  auto rope_row = [&](int64_t pos, const float*& c, const float*& s) {
    if (rope) {
      c = rope->cos.data() + pos * half;
      s = rope->sin.data() + pos * half;
    } else {
      c = s = nullptr;
    }
  };
  // Pack Q, K^T and V, parallel over 16-token panels; each work item reads its 16 qkv rows
  // (9 KB apart) once, front to back, and loops over the heads inside. (Head-major packing read
  // 256-byte pieces of every row once per head: a TLB / cache miss per piece, and cost as much as
  // the attention itself at n = 128.) Per head: Q rows are scaled (and rotated) into Qp; the 16 K
  // rows are gathered (rotated) into a [16, d] scratch, then transposed 8x8 at a time into the
  // [d][16] panel; V rows are copied as dp/16 pieces of 16 floats. Pads are zeroed.
  // With 16-bit qkv (io.qkv16) K and V are widened in registers as they are read.
  const bool f16 = io.t16 == Precision::kF16;
  parallel_for(Tp / 16, 4, [&](int64_t b, int64_t e, int) {
    thread_local std::vector<float> kbuf_own;  // [16, d] gathered (rotated) K rows
    if (kbuf_own.size() < static_cast<size_t>(16 * d)) kbuf_own.resize(static_cast<size_t>(16 * d));
    float* kbuf = kbuf_own.data();
    int64_t sq = std::upper_bound(cu, cu + num_seqs + 1, std::min(b * 16, T - 1)) - cu - 1;
    for (int64_t g = b; g < e; ++g) {
      const int64_t g0 = g * 16;
      int64_t pos[16];  // position of each token of the panel in its sequence
      for (int64_t r = 0; r < 16 && g0 + r < T; ++r) {
        while (g0 + r >= cu[sq + 1]) ++sq;
        pos[r] = g0 + r - cu[sq];
      }
      for (int64_t h = 0; h < n_heads; ++h) {
        float* vh = Vp + h * np * Tp * 16;
        for (int64_t r = 0; r < 16; ++r) {
          const int64_t t = g0 + r;
          float* krow = kbuf + r * d;
          if (t < T) {
            const float *c, *sn;
            rope_row(pos[r], c, sn);
            if (io.qkv16) {
              const uint16_t* row = io.qkv16 + t * ld_qkv + (h0 + h) * d;
              load_head_16(row + H, f16, c, sn, d, 1.0f, krow);
              const uint16_t* vsrc = row + 2 * H;
              for (int64_t pn = 0; pn < np; ++pn) {
                float* dst = vh + (pn * Tp + t) * 16;
                const int64_t c0 = pn * 16, nc = std::min<int64_t>(16, d - c0);
                if (nc == 16) {
                  _mm256_storeu_ps(dst, lowp::widen8(vsrc + c0, f16));
                  _mm256_storeu_ps(dst + 8, lowp::widen8(vsrc + c0 + 8, f16));
                } else {
                  for (int64_t j = 0; j < 16; ++j) dst[j] = j < nc ? lowp::widen1(vsrc[c0 + j], f16) : 0.0f;
                }
              }
              continue;
            }
            const float* row = qkv + t * ld_qkv + (h0 + h) * d;
            if (Qp) load_head(row, c, sn, d, scale, Qp + (h * Tp + t) * d);
            load_head(row + H, c, sn, d, 1.0f, krow);
            const float* vsrc = row + 2 * H;
            for (int64_t pn = 0; pn < np; ++pn) {
              float* dst = vh + (pn * Tp + t) * 16;
              const int64_t c0 = pn * 16, nc = std::min<int64_t>(16, d - c0);
              if (nc == 16) {
                _mm256_storeu_ps(dst, _mm256_loadu_ps(vsrc + c0));
                _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(vsrc + c0 + 8));
              } else {
                for (int64_t j = 0; j < 16; ++j) dst[j] = j < nc ? vsrc[c0 + j] : 0.0f;
              }
            }
          } else {
            std::fill(krow, krow + d, 0.0f);
            for (int64_t pn = 0; pn < np; ++pn) std::fill(vh + (pn * Tp + t) * 16, vh + (pn * Tp + t) * 16 + 16, 0.0f);
          }
        }
        float* panel = KT + h * d * Tp + g0 * d;  // [d][16]
        int64_t c = 0;
        for (; c + 8 <= d; c += 8)
          for (int64_t hf = 0; hf < 2; ++hf) {
            __m256 rows[8];
            for (int r = 0; r < 8; ++r) rows[r] = _mm256_loadu_ps(kbuf + (hf * 8 + r) * d + c);
            simd::transpose8(rows);
            for (int r = 0; r < 8; ++r) _mm256_storeu_ps(panel + (c + r) * 16 + hf * 8, rows[r]);
          }
        for (; c < d; ++c)
          for (int64_t r = 0; r < 16; ++r) panel[c * 16 + r] = kbuf[r * d + c];
      }
    }
  });
}

// Flash-style attention over the packed operands: one work item per (sequence, head, query
// block), visiting only the key blocks of the block's band; online softmax per row.
void attend(const Packed& P, int64_t hw, float* out, const Io16& io, float* lse) {
  const int64_t* cu = P.cu;
  const int64_t num_seqs = P.num_seqs, n_heads = P.n_heads, d = P.d, Tp = P.Tp, H = P.H, dp = P.dp, np = P.np;
  const int64_t h0 = P.h0, n_heads_all = H / d;
  const float *KT = P.KT, *Vp = P.Vp, *Qp = P.Qp;
  // Query block size: at most Bq_max rows, evened out over the blocks of a sequence and rounded
  // up to the 6-row tile (n = 128 with Bq_max 60: 3 blocks of 48/48/32 instead of 60/60/8).
  const int64_t bq_max = hw < 0 ? g_bq_global.load() : g_bq_local.load();
  auto q_block = [&](int64_t n) {
    const int64_t nb = (n + bq_max - 1) / bq_max;
    const int64_t bq = (n + nb - 1) / nb;
    return bq_max >= kMr ? std::min<int64_t>((bq + kMr - 1) / kMr * kMr, kMaxBq) : bq;
  };
  // Items: sequence-major, then head, then query block. item_start[b] = first item of seq b.
  thread_local std::vector<int64_t> item_start;
  item_start.assign(static_cast<size_t>(num_seqs + 1), 0);
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t n = cu[b + 1] - cu[b];
    const int64_t nqb = n == 0 ? 0 : (n + q_block(n) - 1) / q_block(n);
    item_start[static_cast<size_t>(b + 1)] = item_start[static_cast<size_t>(b)] + n_heads * nqb;
  }
  const int64_t n_items = item_start.back();
  const int64_t* starts = item_start.data();

  parallel_for(n_items, 1, [&](int64_t ib, int64_t ie, int) {
    thread_local Scratch sc;
    sc.ensure(kMaxBq, dp);
    float* S = sc.S.data();  // [6, kBk]: the current tile's scores / probabilities
    float* O = sc.O.data();
    float* m = sc.m.data();
    float* l = sc.l.data();
    for (int64_t item = ib; item < ie; ++item) {
      const int64_t b = std::upper_bound(starts, starts + num_seqs + 1, item) - starts - 1;
      const int64_t n = cu[b + 1] - cu[b], base = cu[b];
      const int64_t Bq = q_block(n), nqb = (n + Bq - 1) / Bq, local = item - starts[b];
      const int64_t h = local / nqb, q0 = (local % nqb) * Bq, bq = std::min(Bq, n - q0);
      // Keys any row of this block may see: [klo, khi).
      const int64_t klo = hw < 0 ? 0 : std::max<int64_t>(0, q0 - hw);
      const int64_t khi = hw < 0 ? n : std::min<int64_t>(n, q0 + bq + hw);
      const float* Q = Qp ? Qp + (h * Tp + base + q0) * d : sc.Q.data();  // [bq, d] contiguous
      if (!Qp)  // this item's query rows, rotated and scaled as pack_qkv would have
        for (int64_t i = 0; i < bq; ++i) {
          const uint16_t* src = io.qkv16 + (base + q0 + i) * 3 * H + (h0 + h) * d;
          const int64_t half = d / 2, pos = q0 + i;
          load_head_16(src, io.t16 == Precision::kF16, P.rope ? P.rope->cos.data() + pos * half : nullptr,
                       P.rope ? P.rope->sin.data() + pos * half : nullptr, d, P.scale, sc.Q.data() + i * d);
        }
      const float* kt = KT + h * d * Tp;        // K^T panels of this head
      const float* vh = Vp + h * np * Tp * 16;  // V panels of this head
      std::fill(O, O + bq * dp, 0.0f);
      std::fill(m, m + bq, -std::numeric_limits<float>::infinity());
      std::fill(l, l + bq, 0.0f);
      // First key block starts at the global multiple of 16 at or below the band start.
      const int64_t kfirst = (base + klo) / 16 * 16 - base;
      for (int64_t k0 = kfirst; k0 < khi; k0 += kBk) {
        const int64_t bk = std::min<int64_t>(kBk, khi - k0);
        const float* kt_blk = kt + (base + k0) / 16 * d * 16;
        for (int64_t i = 0; i < bq; i += kMr) {
          const int64_t mr = std::min<int64_t>(kMr, bq - i);
          // Keys the tile's rows may see, as block columns, widened to whole 16-key panels.
          const int64_t tlo = hw < 0 ? 0 : std::max<int64_t>(0, q0 + i - hw);
          const int64_t thi = hw < 0 ? n : std::min<int64_t>(n, q0 + i + mr + hw);
          const int64_t c_lo = std::max(tlo, k0) - k0, c_hi = std::min(thi, k0 + bk) - k0;
          if (c_lo >= c_hi) continue;  // this block holds no key of the tile's band
          const int64_t p_lo = c_lo / 16, p_hi = (c_hi + 15) / 16;
          for (int64_t p = p_lo; p < p_hi; ++p)
            tile_kernel<false>(mr, Q + i * d, d, kt_blk + p * d * 16, S + p * 16, kBk, d);
          for (int64_t r = 0; r < mr; ++r) {
            const int64_t qi = q0 + i + r;
            const int64_t lo = hw < 0 ? 0 : std::max<int64_t>(0, qi - hw);
            const int64_t hi = hw < 0 ? n : std::min<int64_t>(n, qi + hw + 1);
            const int64_t v0 = std::max(lo, k0) - k0, v1 = std::min(hi, k0 + bk) - k0;
            float* srow = S + r * kBk;
            if (v0 >= v1) {  // no valid key in this block for the row: P = 0
              std::fill(srow + p_lo * 16, srow + p_hi * 16, 0.0f);
              continue;
            }
            const float alpha = softmax_row(srow, p_lo * 16, p_hi * 16, v0, v1, m[i + r], l[i + r]);
            if (alpha != 1.0f) {
              const __m256 va = _mm256_set1_ps(alpha);
              float* orow = O + (i + r) * dp;
              for (int64_t c = 0; c < dp; c += 8)
                _mm256_storeu_ps(orow + c, _mm256_mul_ps(_mm256_loadu_ps(orow + c), va));
            }
          }
          // O[tile] += P[:, panels] · V[keys of the panels, :]
          const int64_t klen = (p_hi - p_lo) * 16;
          for (int64_t pn = 0; pn < np; ++pn)
            tile_kernel<true>(mr, S + p_lo * 16, kBk, vh + (pn * Tp + base + k0 + p_lo * 16) * 16, O + i * dp + pn * 16,
                              dp, klen);
        }
      }
      for (int64_t i = 0; i < bq; ++i) {
        const float inv = 1.0f / l[i];  // l >= 1: the row's own key is always valid
        const float* orow = O + i * dp;
        float* dst = io.out16 ? lowp::row_buffer(d) : out + (base + q0 + i) * H + (h0 + h) * d;
        for (int64_t c = 0; c < d; ++c) dst[c] = orow[c] * inv;
        if (io.out16) {  // the same fp32 values, rounded
          uint16_t* d16 = io.out16 + (base + q0 + i) * H + (h0 + h) * d;
          lowp::round_16(io.t16, dst, d16, d);
        }
        if (lse) lse[(base + q0 + i) * n_heads_all + h0 + h] = m[i] + std::log(l[i]);
      }
    }
  });
}

}  // namespace

namespace {

void attention_into(const float* qkv, float* out, const Io16& io, const int64_t* cu, int64_t num_seqs, int64_t n_heads,
                    int64_t d, int64_t hw, float* workspace, const RopeTable* rope, float* lse) {
  check_args(cu, num_seqs, n_heads, d);
  const int64_t T = cu[num_seqs];
  if (T == 0) return;
  if (rope) {
    if (rope->head_dim != d) throw Error("attention: RoPE table head_dim differs from the heads'");
    for (int64_t b = 0; b < num_seqs; ++b)
      if (cu[b + 1] - cu[b] > rope->max_len) throw Error("attention: sequence longer than the rotary table");
  }
  const int64_t H = n_heads * d, dp = padded_dim(d), np = dp / 16, Tp = padded_tokens(T);
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  thread_local std::vector<float> own_ws;
  if (!workspace) {
    const size_t need =
        io.qkv16 ? attention_16io_workspace_floats(T, n_heads, d) : attention_workspace_floats(T, n_heads, d);
    if (own_ws.size() < need) own_ws.resize(need);
    workspace = own_ws.data();
  }
  // The fp32 path packs every head at once; the 16-bit one a group of heads at a time.
  const int64_t hg = io.qkv16 ? heads_per_group_16io(T, n_heads) : n_heads;
  for (int64_t h0 = 0; h0 < n_heads; h0 += hg) {
    const int64_t nhg = std::min(hg, n_heads - h0);
    float* KT = workspace;                                // [nhg][Tp/16][d][16]
    float* Vp = KT + nhg * d * Tp;                        // [nhg][dp/16][Tp][16]
    float* Qp = io.qkv16 ? nullptr : Vp + nhg * dp * Tp;  // [nhg][Tp][d], scaled (and rotated)
    const Packed packed{cu, num_seqs, nhg, d, T, Tp, H, dp, np, h0, KT, Vp, Qp, rope, scale};
    pack_qkv(qkv, io, packed, rope, scale);
    attend(packed, hw, out, io, lse);
  }
}

}  // namespace

void attention(const float* qkv, float* out, const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t d,
               int64_t hw, float* workspace, const RopeTable* rope, float* lse) {
  attention_into(qkv, out, Io16{}, cu, num_seqs, n_heads, d, hw, workspace, rope, lse);
}

void attention_16io(Precision t, const uint16_t* qkv, uint16_t* out, const int64_t* cu, int64_t num_seqs,
                    int64_t n_heads, int64_t d, int64_t hw, float* workspace, const RopeTable* rope) {
  if (t != Precision::kBF16 && t != Precision::kF16) throw Error("attention_16io: the type must be bf16 or f16");
  attention_into(nullptr, nullptr, Io16{qkv, out, t}, cu, num_seqs, n_heads, d, hw, workspace, rope, nullptr);
}

}  // namespace cpu

namespace ref {
void attention(const float* qkv, float* out, const int64_t* cu, int64_t num_seqs, int64_t n_heads, int64_t d,
               int64_t hw, float*, const RopeTable* rope, float* lse) {
  cpu::check_args(cu, num_seqs, n_heads, d);
  const int64_t H = n_heads * d;
  std::vector<float> rotated;
  if (rope) {  // the fused form equals rope_qkv on a copy, then attention
    rotated.assign(qkv, qkv + cu[num_seqs] * 3 * H);
    ref::rope_qkv(rotated.data(), cu, num_seqs, n_heads, *rope);
    qkv = rotated.data();
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (int64_t b = 0; b < num_seqs; ++b) {
    const int64_t base = cu[b], n = cu[b + 1] - cu[b];
    std::vector<double> p(static_cast<size_t>(n));
    for (int64_t h = 0; h < n_heads; ++h)
      for (int64_t i = 0; i < n; ++i) {
        const float* q = qkv + (base + i) * 3 * H + h * d;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n; ++j) {
          const bool ok = hw < 0 || std::abs(i - j) <= hw;
          double s = -std::numeric_limits<double>::infinity();
          if (ok) {
            const float* k = qkv + (base + j) * 3 * H + H + h * d;
            s = 0;
            for (int64_t c = 0; c < d; ++c) s += static_cast<double>(q[c]) * k[c];
            s *= scale;
          }
          p[static_cast<size_t>(j)] = s;
          mx = std::max(mx, s);
        }
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) sum += (p[static_cast<size_t>(j)] = std::exp(p[static_cast<size_t>(j)] - mx));
        if (lse) lse[(base + i) * n_heads + h] = static_cast<float>(mx + std::log(sum));
        for (int64_t c = 0; c < d; ++c) {
          double o = 0;
          for (int64_t j = 0; j < n; ++j) o += p[static_cast<size_t>(j)] * qkv[(base + j) * 3 * H + 2 * H + h * d + c];
          out[(base + i) * H + h * d + c] = static_cast<float>(o / sum);
        }
      }
  }
}
}  // namespace ref

}  // namespace modernbert::kernels
