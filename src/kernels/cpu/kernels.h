// CPU compute kernels for ModernBERT: ops over raw float arrays, knowing nothing of the model.
//
// Every op exists twice with the same signature:
//   modernbert::kernels::ref::op   plain loops, obviously correct, single-threaded (tests only)
//   modernbert::kernels::op        fast: AVX2/FMA intrinsics and/or BLAS, threaded on default_pool()
// tests/test_kernels.cpp compares the two on random inputs.
//
// Layout conventions (all row-major, no padding between rows unless a stride says so):
//   activations  [T, C]      T = tokens of all sequences concatenated (unpadded), C = channels
//   weights      [N, K]      PyTorch nn.Linear layout [out_features, in_features]
//   qkv          [T, 3H]     per token: Q (H) | K (H) | V (H); head h owns [h*d, h*d+d) in each
//   cu_seqlens   [B+1]       sequence b is tokens [cu[b], cu[b+1]); positions restart at 0
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace modernbert::kernels {

enum class Act { kGelu, kGeluTanh, kRelu, kSilu };

// ---------------------------------------------------------------------------------------------
// GEMM: Y[M,N] = X[M,K] · W[N,K]^T (+ bias[N]) (+ Y if accumulate).
// ldx / ldy are row strides of X and Y (0 means K and N). The single place where the BLAS choice
// lives (OpenBLAS cblas_sgemm, single-threaded inside, split over our pool; see gemm.cpp).
void gemm(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N,
          int64_t K, bool accumulate = false, int64_t ldx = 0, int64_t ldy = 0);

// One row-major C[M,N] = alpha op(A) op(B) + beta C on the calling thread, through the selected
// backend (oneDNN or OpenBLAS; see gemm.cpp). The training GEMM helpers tile over the pool with it.
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// How the fast gemm uses threads (benchmarks compare both; default kPool).
//   kPool:   OpenBLAS pinned to 1 thread; the [M,N] output is split into tiles over our pool.
//   kNative: one cblas_sgemm call from the calling thread, OpenBLAS threads it (size() threads).
enum class GemmThreading { kPool, kNative };
void set_gemm_threading(GemmThreading t);
GemmThreading gemm_threading();
// The sgemm library in use: "onednn" or "openblas" (fixed for the process; results differ between
// them in the last bits, so a bit-exact resume records it).
const char* gemm_backend_name();

// ---------------------------------------------------------------------------------------------
// LayerNorm over the last dim (biased variance): y = (x - mean) / sqrt(var + eps) * gamma + beta.
// gamma / beta may be nullptr (1 / 0). y may alias x. With mean / rstd (each [rows]) the row's
// mean and 1/sqrt(var + eps) are stored too: what layernorm_backward needs (training).
void layernorm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
               int64_t C, float eps, float* mean = nullptr, float* rstd = nullptr);
// Pre-norm residual step: x += r (written back), y = LN(x). y may alias r (not x). mean / rstd
// as layernorm (statistics of the updated x).
void add_layernorm(float* x, const float* r, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps, float* mean = nullptr, float* rstd = nullptr);

// Head transform epilogue: y = LN(act(x)) per row, one pass (the MLM / classifier head's
// dense -> act -> LayerNorm without a second sweep over the rows). y may alias x. mean / rstd as
// layernorm (statistics of act(x)).
void act_layernorm(Act act, const float* x, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps, float* mean = nullptr, float* rstd = nullptr);

// ---------------------------------------------------------------------------------------------
// Elementwise activations, y may alias x. kGelu is exact (erf); kGeluTanh the tanh approximation.
void activation(Act act, const float* x, float* y, int64_t n);
// GeGLU / GLU: u [T, 2I] -> y[t, i] = act(u[t, i]) * u[t, I + i], y [T, I].
void glu(Act act, const float* u, float* y, int64_t T, int64_t I);
// Vectorised erf (the building block of exact GELU), exposed for tests.
void erf_array(const float* x, float* y, int64_t n);
// Single-threaded activation of one span (building block of fused kernels; y may alias x).
void activation_serial(Act act, const float* x, float* y, int64_t n);

// ---------------------------------------------------------------------------------------------
// RoPE (rotate-half / GPT-NeoX, non-interleaved) as Hugging Face computes it:
//   inv_freq[j] = float32(1 / float32(theta ^ float32(2j / d)))   j < d/2
//   angle[p, j] = float32(float32(p) * inv_freq[j]);  cos/sin of that float angle.
// The table stores cos and sin for positions [0, max_len) as [max_len, d/2] each.
struct RopeTable {
  double theta = 0;
  int64_t head_dim = 0, max_len = 0;
  std::vector<float> cos, sin;  // [max_len, head_dim/2]
};
RopeTable make_rope_table(double theta, int64_t head_dim, int64_t max_len);
// In place on the Q and K parts of qkv [T, 3*n_heads*d] (V untouched); the position of token t
// is t - cu_seqlens[b] for the sequence b containing it. Sequences must fit in table.max_len.
void rope_qkv(float* qkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
              const RopeTable& table);

// ---------------------------------------------------------------------------------------------
// Varlen multi-head attention reading the packed qkv [T, 3H] and writing out [T, H]
// (heads concatenated). Query i of a sequence attends to keys j of the same sequence with
// |i - j| <= half_window (half_window < 0: all keys). Scale 1/sqrt(head_dim).
// Memory is O(T*H) (never an n x n matrix). `workspace` may be nullptr (then an internal
// thread-local buffer is used) or must hold attention_workspace_floats(...) floats.
// With `rope`, Q and K are rotated on the fly (as rope_qkv would, qkv itself is not modified):
// the encoder fuses RoPE into attention's Q/K repack this way instead of a separate pass.
// With `lse` [T, n_heads], each query row's log-sum-exp of its scaled scores is stored too
// (max + log Σ exp(s - max)): what the training backward needs to recompute the probabilities.
size_t attention_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim);
void attention(const float* qkv, float* out, const int64_t* cu_seqlens, int64_t num_seqs,
               int64_t n_heads, int64_t head_dim, int64_t half_window, float* workspace = nullptr,
               const RopeTable* rope = nullptr, float* lse = nullptr);
// Tile sizes of the fast attention: the most query rows per work item for global / local layers
// (evened out over a sequence's blocks and rounded up to the 6-row micro-tile; at most 192).
struct AttentionTiles { int q_block_global = 60; int q_block_local = 30; };
void set_attention_tiles(AttentionTiles t);

// ---------------------------------------------------------------------------------------------
// Row-wise softmax / log-softmax over [rows, C]; y may alias x.
void softmax(const float* x, float* y, int64_t rows, int64_t C);
void log_softmax(const float* x, float* y, int64_t rows, int64_t C);
// The k largest of x[0..n) in descending order (ties: lower index first); k is clamped to n.
void top_k(const float* x, int64_t n, int64_t k, int64_t* idx, float* val);

// ---------------------------------------------------------------------------------------------
// Dropout y = x * mask / (1 - p) with a counter-based mask: element i of `stream` is dropped iff
// hash(seed, stream, i) < p, so forward and backward (the same call on the gradient) agree without
// storing the mask, whatever the threads. y may alias x.
void dropout(const float* x, float* y, int64_t n, double p, uint64_t seed, int64_t stream);
// dst[i] += src[i] (the residual stream's gradient), n elements.
void add_inplace(float* dst, const float* src, int64_t n);

// ---------------------------------------------------------------------------------------------
// Reference implementations (same contracts, plain loops, single thread).
namespace ref {
void gemm(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N,
          int64_t K, bool accumulate = false, int64_t ldx = 0, int64_t ldy = 0);
void layernorm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
               int64_t C, float eps);
void add_layernorm(float* x, const float* r, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps);
void act_layernorm(Act act, const float* x, const float* gamma, const float* beta, float* y,
                   int64_t rows, int64_t C, float eps);
void activation(Act act, const float* x, float* y, int64_t n);
void glu(Act act, const float* u, float* y, int64_t T, int64_t I);
void erf_array(const float* x, float* y, int64_t n);
void rope_qkv(float* qkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
              const RopeTable& table);
void attention(const float* qkv, float* out, const int64_t* cu_seqlens, int64_t num_seqs,
               int64_t n_heads, int64_t head_dim, int64_t half_window, float* workspace = nullptr,
               const RopeTable* rope = nullptr);
void softmax(const float* x, float* y, int64_t rows, int64_t C);
void log_softmax(const float* x, float* y, int64_t rows, int64_t C);
void top_k(const float* x, int64_t n, int64_t k, int64_t* idx, float* val);
// Scalar activation used by the reference paths (double precision math, float result).
float act_scalar(Act act, float x);
void dropout(const float* x, float* y, int64_t n, double p, uint64_t seed, int64_t stream);
}  // namespace ref

}  // namespace modernbert::kernels
