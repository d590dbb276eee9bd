// The kernel backend boundary: the complete list of tensor ops that model/, train/ and tasks/
// call, as one table of function pointers per backend (ggml's backend interface, gemma.cpp's
// dispatch). Callers write kernels::op(...) (the inline forwarders at the end of this file); the
// process-wide backend() decides who runs it. A new backend (CUDA, ...) is a sibling folder of
// src/kernels/cpu that fills a Backend with its own functions; tests/test_kernels.cpp and
// tests/test_backward.cpp run every op of every registered backend against ref_backend().
//
// Backends today:
//   cpu_backend()  src/kernels/cpu   AVX2/FMA intrinsics and BLAS, threaded on default_pool()
//   ref_backend()  src/kernels/ref   plain loops, obviously correct, single-threaded (tests only;
//                                    the existing ref:: twins, see kernels/ref/ref.h)
//
// Buffer ownership (every op):
//   - Every pointer is caller-owned memory of the backend in use (host memory for cpu/ref); an op
//     never allocates what it returns, keeps no pointer after it returns and frees nothing. Ops
//     may keep reusable scratch of their own (thread-local, grown, never shrunk).
//   - Weights (W, gamma, beta, bias, E, tables) are read-only.
//   - Outputs are OVERWRITTEN unless the contract says "accumulates" / "+=" or the op has an
//     `accumulate` flag (or the _acc suffix): those ADD into the destination, so parameter
//     gradients of micro-batches simply sum.
//   - Batch metadata (token ids, labels, cu_seqlens) is host memory: a device backend reads it on
//     the host to plan its launches and copies what it needs.
//   - Aliasing is allowed only where stated.
//
// Layout conventions (all row-major, no padding between rows unless a stride says so):
//   activations  [T, C]      T = tokens of all sequences concatenated (unpadded), C = channels
//   weights      [N, K]      PyTorch nn.Linear layout [out_features, in_features]
//   qkv          [T, 3H]     per token: Q (H) | K (H) | V (H); head h owns [h*d, h*d+d) in each
//   cu_seqlens   [B+1]       sequence b is tokens [cu[b], cu[b+1]); positions restart at 0
//
// Determinism: every reduction of the cpu backend has a fixed order that does not depend on the
// number of threads or on scheduling (outputs split into fixed-size tiles, each reduced by one
// thread in index order; partial sums over fixed chunks added in chunk order), except the forward
// gemm, whose split follows the pool size. A training run with a fixed thread count is therefore
// bit-reproducible (the resume test relies on it); the backward ops are also thread-count
// independent. A new backend states its own rule.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/types.h"

namespace modernbert::kernels {

struct Backend {
  const char* name;

  // ---- GEMM ------------------------------------------------------------------------------------
  // Y[M,N] = X[M,K] · W[N,K]^T (+ bias[N]) (+ Y if accumulate). ldx / ldy are row strides of X and
  // Y (0 means K and N).
  void (*gemm)(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
               bool accumulate, int64_t ldx, int64_t ldy);
  // C[M,N] (+)= A[M,K] · B[K,N]   (dX[M,K] = dY[M,N] · W[N,K]: matmul_nn(dY, W, dX, M, K, N)).
  // Strides 0 = dense (K, N, N).
  void (*matmul_nn)(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
                    int64_t lda, int64_t ldb, int64_t ldc);
  // C[N,K] += A[M,N]^T · B[M,K]   (dW += dY^T · X); accumulates. Strides 0 = dense (N, K).
  void (*matmul_tn_acc)(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, int64_t lda,
                        int64_t ldb);
  // db[N] += Σ_m dY[m, :]; accumulates.
  void (*bias_grad_acc)(const float* dY, float* db, int64_t M, int64_t N);
  // Backward of Y[M,N] = X[M,K] · W[N,K]^T + b. Given dY: dX (+)= dY · W (skipped if dX null;
  // accumulates if accumulate_dx), dW += dY^T X (skipped if null), db += Σ rows dY (skipped if
  // null).
  void (*linear_backward)(const float* X, const float* W, const float* dY, float* dX, bool accumulate_dx, float* dW,
                          float* db, int64_t M, int64_t N, int64_t K);

  // ---- Reduced-precision inference (#15; contracts of the types in modernbert/precision.h) -------
  // Y[M,N] = X[M,K] · W[N,K]^T (+ bias[N]), W in any Precision, Y overwritten (no accumulate):
  //   kF32: exactly gemm(X, W, bias, Y, M, N, K, false, ldx, ldy) (same bits).
  //   kBF16: fp32 accumulation; X rounded to bf16 (RNE) first iff linear_rounds_x_bf16() (native
  //          bf16 dot products), otherwise X stays fp32 and W is widened exactly.
  //   kF16: W widened exactly to fp32, X fp32, fp32 accumulation.
  //   kInt8: X quantized per row as quantize_rows_i8, integer products summed exactly in int32
  //          (gemm_i8), then y = float(acc) * (s_x[m] * W.scale[n]) + bias[n]. A row of X holding a
  //          non-finite value gives a row of NaN.
  // ldx / ldy are row strides (0 = K / N). Y may not alias X. Inference only (no backward).
  void (*linear)(const float* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
                 int64_t ldx, int64_t ldy);
  // x[t, :] = E[ids[t], :] widened to fp32 (kInt8: q * scale[row]), E [V, H] in any Precision. As
  // embedding() for kF32 (same bits).
  void (*embedding_typed)(const int32_t* ids, const WeightMatrix& E, float* x, int64_t T, int64_t H);
  // Per-row symmetric int8 quantization (precision.h): for each row m of x [rows, K] (row stride
  // ldx, 0 = K): a = max |x|, scale[m] = a / 127, q[m, k] = nearbyint(x * (127 / a)) (float ops,
  // round half to even), q [rows, K] dense. a == 0 gives scale 0 and q 0; a non-finite a gives
  // scale NaN and q 0; an a so small that 127 / a overflows float gives q = nearbyint(x * 127.0 / a)
  // in double. Bit-exact with ref.
  void (*quantize_rows_i8)(const float* x, int64_t ldx, int64_t rows, int64_t K, int8_t* q, float* scale);
  // C[M,N] = A[M,K] · B[N,K]^T in int32, exact (|A|, |B| <= 127 and K < 2^17, so no overflow).
  // Dense row-major. Bit-exact with ref.
  void (*gemm_i8)(const int8_t* A, const int8_t* B, int32_t* C, int64_t M, int64_t N, int64_t K);
  // attention() (no lse, inference) in bf16: Q = bf16(rot(q) * (1/sqrt(d))), K = bf16(rot(k)), V = bf16(v) (RNE;
  // rot = RoPE in fp32 as rope_qkv), S = Q·Kᵀ in fp32, softmax in fp32 against the row max, P = bf16(p), O = P·V in
  // fp32, out = O / Σp (unrounded p). Dot products add per bf16 pair the odd product first (vdpbf16ps; the exact
  // order in ref/attention_bf16_ref.cpp). Without native bf16 the same operations run in fp32 (same roundings).
  // `workspace` may be nullptr (internal thread-local buffer) or hold attention_bf16_workspace_floats(...) floats
  // (bf16 operands: about half of attention_workspace_floats).
  void (*attention_bf16)(const float* qkv, float* out, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
                         int64_t head_dim, int64_t half_window, float* workspace, const RopeTable* rope);
  size_t (*attention_bf16_workspace_floats)(int64_t T, int64_t n_heads, int64_t head_dim);
  // ---- The bf16 activation stream (#15): inference with kBF16 weights where linear_rounds_x_bf16() ----
  // The op that writes a linear's input writes it already rounded to bf16 (RNE), the very bits
  // linear() would round it to: linear_bf16_input(bf16(X)) == linear(X) bit for bit, with no
  // rounding pass and half the bytes of X in memory. Each *_bf16out op is its fp32 op with the
  // output rounded to bf16 (same fp32 values, then RNE; on the cpu backend with AVX512-BF16 fp32
  // denormals become +-0, as in linear()'s own rounding, and as the bf16 dot products treat them
  // anyway); the residual stream x stays fp32. One exception: GELU in glu_bf16out / glu_f16out may
  // evaluate its erf with less precision than the fp32 op (the cpu backend: in float, |error| <=
  // 4e-7, far below the output's rounding), so those outputs may differ from the fp32 op's rounded
  // (by more than one step only in GELU's tiny negative tail; test_kernels_lowp's gelu16_close).
  // Y[M,N] = float(Xb[M,K]) · W[N,K]^T (+ bias[N]), W kBF16 (anything else throws), fp32
  // accumulation as linear(); Xb dense bf16 bits, Y dense, overwritten. Where the CPU has no
  // native bf16 the same sums run through the widening path (X widened exactly).
  void (*linear_bf16_input)(const uint16_t* Xb, const WeightMatrix& W, const float* bias, float* Y, int64_t M,
                            int64_t N, int64_t K);
  // yb = bf16(layernorm(x)) (no statistics). yb [rows, C] may not alias x.
  void (*layernorm_bf16out)(const float* x, const float* gamma, const float* beta, uint16_t* yb, int64_t rows,
                            int64_t C, float eps);
  // x += r (written back), yb = bf16(LN(x)). yb may not alias x or r.
  void (*add_layernorm_bf16out)(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yb,
                                int64_t rows, int64_t C, float eps);
  // yb [T, I] = bf16(glu(act, u)) (GELU: see above). yb may not alias u.
  void (*glu_bf16out)(Act act, const float* u, uint16_t* yb, int64_t T, int64_t I);
  // outb [T, H] = bf16(attention_bf16(qkv, ...)); workspace and the rest as attention_bf16. outb
  // may alias qkv (all of qkv is read before any output is written); not the workspace.
  void (*attention_bf16_bf16out)(const float* qkv, uint16_t* outb, const int64_t* cu_seqlens, int64_t num_seqs,
                                 int64_t n_heads, int64_t head_dim, int64_t half_window, float* workspace,
                                 const RopeTable* rope);
  // ---- The widening activation stream (#15): f16 weights, and bf16 weights without native bf16 ----
  // The GEMMs run in fp32 on widened weights, but the tensors between ops that are not the residual
  // stream (each linear's input, and qkv) are held in 16 bits of type t (kBF16 or kF16, as the
  // weights), written rounded (RNE) by the op that produces them and widened exactly by the op that
  // reads them: half the activation memory of fp32. *_f16out are the f16 twins of *_bf16out (the
  // fp32 op, its output rounded with F16C's vcvtps2ph: |y| >= 65520 becomes inf, subnormals kept).
  // Y = widen_t(X) · W^T (+ bias) as linear() computes it from the widened fp32 X (any W), X [M, K]
  // dense bits of type t. The output goes to exactly one of Y [M, N] fp32 or Y16 [M, N] (rounded to
  // t); both dense, overwritten, not aliasing X. The cpu backend widens X a tile of rows at a time
  // (one GEMM call per tile, so the sum order may differ from one linear() over all M rows).
  // `workspace` (workspace_floats floats, not aliasing X / Y / Y16; may be nullptr) is lent for its
  // scratch, else thread-local scratch is used. Where oneDNN's fp32 brgemm reads packed weights
  // (AVX-512), 16-bit W from 256 rows is widened once into that layout (packed_floats(N, K), in the
  // workspace when it fits) and each pool thread widens and multiplies pieces of up to 128 rows
  // (their count a multiple of the threads) in its own L2-sized scratch; elsewhere the tiles, and
  // 16-bit W widened whole, go to the workspace when it holds 256 rows' worth (the encoder lends the
  // free part of its arena).
  void (*linear_16in)(Precision t, const uint16_t* X, const WeightMatrix& W, const float* bias, float* Y, uint16_t* Y16,
                      int64_t M, int64_t N, int64_t K, float* workspace, int64_t workspace_floats);
  // G [M, I] = t(glu(act, u)), u [M, 2I] = widen_t(X) · W^T (+ bias), W [2I, K]: the MLP's Wi and
  // GeGLU fused, so the fp32 u never exists whole (base at 8192 tokens: 72 MiB less). Tiles,
  // workspace and the sum order as linear_16in with a 16-bit output (u's tile goes where Y16's
  // fp32 tile would); each tile's G rows are glu_bf16out / glu_f16out of it, so G is bit for bit
  // glu_*out(linear_16in(..., Y, ...)) when one tile holds all rows. G dense, overwritten, not
  // aliasing X or the workspace.
  void (*linear_glu_16in)(Precision t, Act act, const uint16_t* X, const WeightMatrix& W, const float* bias,
                          uint16_t* G, int64_t M, int64_t I, int64_t K, float* workspace, int64_t workspace_floats);
  void (*layernorm_f16out)(const float* x, const float* gamma, const float* beta, uint16_t* yh, int64_t rows, int64_t C,
                           float eps);
  void (*add_layernorm_f16out)(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yh,
                               int64_t rows, int64_t C, float eps);
  void (*glu_f16out)(Act act, const float* u, uint16_t* yh, int64_t T, int64_t I);
  // out [T, H] = t(attention(widen_t(qkv), ...)): the fp32 attention() (no lse) on qkv [T, 3H] held
  // in 16 bits of type t, its output rounded to t. `workspace`: nullptr or
  // attention_16io_workspace_floats(...) floats (K and V packed, for all heads up to 1024 tokens and
  // for a third of them at a time beyond: 2/3 and 2/9 of attention_workspace_floats; each work
  // item forms its own Q rows). out may not alias qkv (the query rows are read while outputs are
  // written) nor the workspace.
  void (*attention_16io)(Precision t, const uint16_t* qkv, uint16_t* out, const int64_t* cu_seqlens, int64_t num_seqs,
                         int64_t n_heads, int64_t head_dim, int64_t half_window, float* workspace,
                         const RopeTable* rope);
  size_t (*attention_16io_workspace_floats)(int64_t T, int64_t n_heads, int64_t head_dim);

  // ---- LayerNorm (biased variance) -------------------------------------------------------------
  // y = (x - mean) * rstd * gamma + beta over the last dim; gamma / beta may be nullptr (1 / 0).
  // y may alias x. mean / rstd [rows] (both or neither, may be nullptr): the row statistics the
  // backward needs, written.
  void (*layernorm)(const float* x, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C, float eps,
                    float* mean, float* rstd);
  // Pre-norm residual step: x += r (written back), y = LN(x). y may alias r (not x). mean / rstd
  // as layernorm.
  void (*add_layernorm)(float* x, const float* r, const float* gamma, const float* beta, float* y, int64_t rows,
                        int64_t C, float eps, float* mean, float* rstd);
  // Head transform epilogue: y = LN(act(x)) per row, one pass. y may alias x. mean / rstd as
  // layernorm (the statistics of act(x)).
  void (*act_layernorm)(Act act, const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                        int64_t C, float eps, float* mean, float* rstd);
  // dx (+)= rstd * (dy·g - mean(dy·g) - xhat · mean(dy·g·xhat)); dg += Σ dy·xhat; db += Σ dy
  // (dg / db accumulate, may be nullptr). mean / rstd as saved by layernorm. dx may not alias dy.
  void (*layernorm_backward)(const float* dy, const float* x, const float* g, const float* mean, const float* rstd,
                             float* dx, bool accumulate_dx, float* dg, float* db, int64_t rows, int64_t C);

  // ---- Activations -----------------------------------------------------------------------------
  // y = act(x) elementwise, y may alias x. kGelu is exact (erf); kGeluTanh the tanh approximation.
  void (*activation)(Act act, const float* x, float* y, int64_t n);
  // GeGLU / GLU: u [T, 2I] -> y[t, i] = act(u[t, i]) * u[t, I + i], y [T, I].
  void (*glu)(Act act, const float* u, float* y, int64_t T, int64_t I);
  // dx = dy * act'(x) over n elements (dx may alias dy).
  void (*act_backward)(Act act, const float* x, const float* dy, float* dx, int64_t n);
  // Backward of glu: given dy [T,I], du [T,2I] (overwritten).
  void (*glu_backward)(Act act, const float* u, const float* dy, float* du, int64_t T, int64_t I);
  // Vectorised erf (the building block of exact GELU), exposed for tests. y may alias x.
  void (*erf_array)(const float* x, float* y, int64_t n);

  // ---- RoPE ------------------------------------------------------------------------------------
  // In place on the Q and K parts of qkv [T, 3*n_heads*d] (V untouched); the position of token t
  // is t - cu_seqlens[b] for the sequence b containing it. Sequences must fit in table.max_len.
  void (*rope_qkv)(float* qkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads, const RopeTable& table);
  // Backward of rope_qkv: rotates the Q and K parts of dqkv [T,3H] by the negative angle (the
  // rotation is orthogonal, so its transpose is its inverse), in place. V is untouched.
  void (*rope_backward)(float* dqkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
                        const RopeTable& table);

  // ---- Attention (varlen, optional local window |i-j| <= half_window) --------------------------
  // Floats of the workspace attention() may be given (0: it uses none).
  size_t (*attention_workspace_floats)(int64_t T, int64_t n_heads, int64_t head_dim);
  // Multi-head attention reading the packed qkv [T, 3H] and writing out [T, H] (heads
  // concatenated). Query i of a sequence attends to keys j of the same sequence with
  // |i - j| <= half_window (half_window < 0: all keys). Scale 1/sqrt(head_dim). Memory O(T*H),
  // never n x n. `workspace` may be nullptr (internal thread-local buffer) or hold
  // attention_workspace_floats(...) floats. With `rope`, Q and K are rotated on the fly (as
  // rope_qkv would; qkv itself is not modified). With `lse` [T, n_heads], each query row's
  // log-sum-exp of its scaled scores is written too (what the backward needs).
  void (*attention)(const float* qkv, float* out, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
                    int64_t head_dim, int64_t half_window, float* workspace, const RopeTable* rope, float* lse);
  // dqkv [T,3H] (overwritten) from dout [T,H], using the saved qkv (post-RoPE), out and lse:
  //   P = exp(scale·QKᵀ - lse), dP = dO·Vᵀ, D = rowsum(dO ⊙ O), dS = P ⊙ (dP - D),
  //   dQ = scale·dS·K, dK = scale·dSᵀ·Q, dV = Pᵀ·dO.
  void (*attention_backward)(const float* qkv, const float* out, const float* dout, const float* lse, float* dqkv,
                             const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads, int64_t head_dim,
                             int64_t half_window);

  // ---- Softmax / selection ---------------------------------------------------------------------
  // Row-wise softmax / log-softmax over [rows, C]; y may alias x.
  void (*softmax)(const float* x, float* y, int64_t rows, int64_t C);
  void (*log_softmax)(const float* x, float* y, int64_t rows, int64_t C);
  // The k largest of x[0..n) in descending order (ties: lower index first; NaN ranks last); k is
  // clamped to n. idx / val [k] written (val may be nullptr).
  void (*top_k)(const float* x, int64_t n, int64_t k, int64_t* idx, float* val);

  // ---- Embedding, residual, pooling, normalisation, dropout ------------------------------------
  // x[t, :] = E[ids[t], :] for t < T (E [V, H], ids host memory, each in [0, V): the caller checks).
  void (*embedding)(const int32_t* ids, const float* E, float* x, int64_t T, int64_t H);
  // dE[ids[t], :] += dx[t, :]; accumulates (only the rows of ids present are touched; repeated
  // ids add in token order, deterministically).
  void (*embedding_backward)(const int32_t* ids, const float* dx, float* dE, int64_t T, int64_t H);
  // dst[i] += src[i] over n elements (dst may not partially overlap src).
  void (*residual_add)(float* dst, const float* src, int64_t n);
  // dst[i] = src[i] over n elements (activation copies the training forward keeps; no overlap).
  void (*copy)(const float* src, float* dst, int64_t n);
  // out[b, :] [B, H] (overwritten) from hidden [T, H]: kCls = the row of token cu[b]; kMean = the
  // mean of rows cu[b] .. cu[b+1]-1, summed in double in token order; kMax = the per-channel max
  // of those rows (NaN-free inputs assumed). Every sequence non-empty.
  void (*pool)(PoolMode mode, const float* hidden, const int64_t* cu_seqlens, int64_t num_seqs, int64_t H, float* out);
  // Backward of pool: dhidden [T, H] += the share of dpooled [B, H] of each token (kCls: the CLS
  // row gets dpooled[b]; kMean: every row of sequence b gets dpooled[b] * (1/n) in float);
  // accumulates (rows of other tokens untouched). kMax has no backward (it needs the forward's
  // argmax; inference only): throws Error.
  void (*pool_backward)(PoolMode mode, const float* dpooled, const int64_t* cu_seqlens, int64_t num_seqs, int64_t H,
                        float* dhidden);
  // Row L2 normalisation as torch.nn.functional.normalize: y = x / max(‖x‖, kL2NormEps) per row
  // of D, the norm and the division in double. norms [rows] (may be nullptr) receives
  // max(‖x‖, eps) in float. y may alias x.
  void (*l2norm)(const float* x, float* y, float* norms, int64_t rows, int64_t D);
  // Backward of l2norm from its output y and norms: dx = (dy - y (y · dy)) / norm per row
  // (overwritten; dx may alias dy).
  void (*l2norm_backward)(const float* y, const float* norms, const float* dy, float* dx, int64_t rows, int64_t D);
  // Inverted dropout with a counter-based mask: dst[i] (+)= src[i] * s(i), s(i) = 0 with
  // probability p else 1/(1-p), s a pure function of (seed, layer, i) (rng.h counter_uniform with
  // a = layer + 1), so forward and backward regenerate the same mask without storing it. The
  // backward of dropout is the same call on the upstream gradient. dst may alias src.
  void (*dropout)(const float* src, float* dst, int64_t n, double p, uint64_t seed, int64_t layer, bool accumulate);

  // ---- Losses (forward + gradient in one pass) -------------------------------------------------
  // Cross-entropy rows [R, C] with labels [R] (label < 0 = ignored: zero gradient). Returns the
  // SUM of -log softmax(logits)[label] over counted rows; dlogits (may alias logits, may be
  // nullptr) = (softmax - onehot) · dscale for counted rows, 0 for ignored ones. counted /
  // correct (argmax == label) written if non-null.
  double (*cross_entropy)(const float* logits, const int32_t* labels, float* dlogits, int64_t R, int64_t C,
                          float dscale, int64_t* counted, int64_t* correct);
  // Σ (p - t)²; dpred (may be nullptr) = 2 (p - t) · dscale.
  double (*mse_loss)(const float* pred, const float* target, float* dpred, int64_t n, float dscale);
  // Σ BCE-with-logits (stable max(x,0) - x t + log1p(exp(-|x|))); dlogits = (σ(x) - t) · dscale.
  double (*bce_with_logits)(const float* logits, const float* target, float* dlogits, int64_t n, float dscale);

  // ---- Optimizer -------------------------------------------------------------------------------
  // Σ g[i]² over n, in double, over fixed chunks of 2^14 added in chunk order.
  double (*grad_norm_sq)(const float* g, size_t n);
  // StableAdamW moments of one tensor: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g² (in place);
  // returns Σ g² / max(v, eps2) (ratio in float, sum in double over fixed 2^14 chunks in order).
  double (*adam_moments_rms)(const float* g, float* m, float* v, int64_t n, float b1, float b2, float eps2);
  // θ = θ · decay - lr · m / (sqrt(v) · vscale + eps) in place.
  void (*adam_apply)(float* theta, const float* m, const float* v, int64_t n, float decay, float lr, float vscale,
                     float eps);
  // AdamW of one tensor in one sweep: the moments as adam_moments_rms (without the sum), then
  // adam_apply.
  void (*adamw_update)(float* theta, const float* g, float* m, float* v, int64_t n, float b1, float b2, float decay,
                       float lr, float vscale, float eps);

  // ---- Task heads and retrieval scoring (inference outputs; small, exact) ----------------------
  // These produce the numbers the CLI prints and the tests compare with PyTorch references, so
  // their reductions are in double with one rounding to float at the end, in a fixed order (the
  // cpu backend threads over rows only): every backend must match ref bit for bit.
  //
  // Y[M,N] = X[M,K] · W[N,K]^T (+ bias[N]) with each dot product accumulated in double (the bias
  // first, then k in order), rounded once (sentence-transformers' Dense module). bias may be
  // nullptr. Y may not alias X or W.
  void (*linear_f64)(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K);
  // y = tanh(x) elementwise (std::tanh in float, as PyTorch's float tanh); y may alias x.
  void (*tanh_array)(const float* x, float* y, int64_t n);
  // y = 1 / (1 + exp(-x)) elementwise, in double, rounded once; y may alias x.
  void (*sigmoid_array)(const float* x, float* y, int64_t n);
  // Row-wise softmax over [rows, C] with the row max, exp and sum in double (p = exp(x - max) /
  // Σ exp(x - max), rounded once); y may alias x.
  void (*softmax_f64)(const float* x, float* y, int64_t rows, int64_t C);
  // Per row r of logits [rows, C]: the k most likely classes in descending order (ties: lower
  // index first; NaN ranks last, as top_k) into idx[r*k .. r*k+k), and their softmax
  // probabilities (as softmax_f64 computes them) into prob[r*k ..] (prob may be nullptr). k must be
  // in [1, C] (the caller clamps).
  void (*softmax_top_k)(const float* logits, int64_t rows, int64_t C, int64_t k, int64_t* idx, float* prob);
  // ColBERT MaxSim of one query q [nq, dim] against one document d [nd, dim] (nd >= 1): for each
  // query token i, best[i] = max_j q_i · d_j (each dot in float, c in order, as the reference
  // implementation); returns Σ_i best[i] summed in double in i order. best [nq] may be nullptr,
  // argbest [nq] (the first j reaching the max) may be nullptr.
  double (*maxsim_scores)(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim, float* best,
                          int64_t* argbest);
  // Masked softmax cross-entropy rows in double (InfoNCE / MaxSim contrastive losses): s [R, C]
  // holds scores (already / temperature); for each row i, loss_i = logsumexp_j s_ij - s_i,target[i]
  // over the j with exclude[i*C + j] == 0 (exclude may be nullptr: none excluded; the target is
  // never excluded: the caller checks). Returns the mean over rows of loss_i and OVERWRITES s with
  // d mean / d s (p - onehot) / R (0 for excluded entries).
  double (*masked_softmax_ce)(double* s, int64_t R, int64_t C, const int64_t* target, const uint8_t* exclude);
};

// The L2 normalisation floor (torch.nn.functional.normalize's default eps), the one eps of the
// project's L2 normalisations.
inline constexpr double kL2NormEps = 1e-12;

const Backend& cpu_backend();
const Backend& ref_backend();
// The backend every kernels::op call below uses (cpu_backend() unless set_backend was called).
// set_backend is for start-up and tests; not while ops run on other threads.
namespace detail {
extern const Backend* g_backend;  // constant-initialised to the cpu table (usable before main)
}
inline const Backend& backend() { return *detail::g_backend; }
void set_backend(const Backend& b);

// ---- CPU-only tuning knobs (not part of the interface; other backends ignore them) --------------
// How the cpu gemm uses threads (benchmarks compare both; default kPool).
//   kPool:   OpenBLAS pinned to 1 thread; the [M,N] output is split into tiles over our pool.
//   kNative: one cblas_sgemm call from the calling thread, OpenBLAS threads it (size() threads).
enum class GemmThreading { kPool, kNative };
void set_gemm_threading(GemmThreading t);
GemmThreading gemm_threading();
// The sgemm library in use: "onednn" or "openblas" (fixed for the process; results differ between
// them in the last bits, so a bit-exact resume records it).
const char* gemm_backend_name();
// Compute threads: default_pool() gets n threads (0 = hardware_concurrency) and the BLAS library
// is re-pinned accordingly. The explicit setting every command uses (core/thread_pool.h).
void set_num_threads(int n);
// Tile sizes of the cpu attention: the most query rows per work item for global / local layers
// (evened out over a sequence's blocks and rounded up to the 6-row micro-tile; at most 192).
struct AttentionTiles {
  int q_block_global = 60;
  int q_block_local = 30;
};
void set_attention_tiles(AttentionTiles t);

// ---- Reduced precision: which path each weight type takes on this CPU (cpu backend) ------------
// True when kBF16 linears round X to bf16 and use native bf16 dot products (AVX512-BF16 / AMX via
// oneDNN); false when bf16 weights are widened to fp32 inside the GEMM.
bool linear_rounds_x_bf16();
// One line naming the ISA and GEMM implementation `p` runs on here, e.g.
// "oneDNN matmul brg:avx512_core_bf16 (bf16 x bf16 -> f32)" (for `info --system` and bench JSON).
std::string linear_path(Precision p);
// True when the encoder's inference forward runs attention_bf16 (bf16 Q/K/V and P, fp32 softmax)
// for a model whose layer weights are `p`: bf16 and int8 weights where linear_rounds_x_bf16()
// (#15 lets int8 models keep fp32 or bf16 attention; bf16 is the faster one there). Otherwise, and
// always in training, fp32 attention.
bool attention_runs_bf16(Precision p);
// One line naming the attention `p` runs here, e.g. "bf16 products on avx512_bf16 (vdpbf16ps),
// fp32 softmax" (for `info --system` and bench JSON).
std::string attention_path(Precision p);
// True when the encoder's inference forward for layer weights `p` runs the bf16 activation
// stream (the *_bf16out ops feeding linear_bf16_input; see the Backend slots): kBF16 weights where
// linear_rounds_x_bf16(), unless a test turned it off. Same bits as without it; faster and a
// smaller arena.
bool bf16_activation_stream(Precision p);
// True when the encoder's inference forward for layer weights `p` runs the widening activation
// stream of type p (the *_bf16out / *_f16out ops, attention_16io and linear_16in; see the Backend
// slots): kF16 weights, and kBF16 weights where !linear_rounds_x_bf16(), unless a test turned it
// off. Unlike the bf16 stream this changes the numbers (the activations are rounded to 16 bits,
// the weights' type), in exchange for half the activation memory.
bool widening_activation_stream(Precision p);
// Test hook: false makes bf16_activation_stream() and widening_activation_stream() false (the
// encoder then keeps fp32 activations and rounds X inside each linear where it rounds at all), true
// restores them. Not while forwards run on other threads.
void set_activation_streams(bool enabled);

// ---- The ops, as callers write them (forward to backend()) --------------------------------------
inline void gemm(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
                 bool accumulate = false, int64_t ldx = 0, int64_t ldy = 0) {
  backend().gemm(X, W, bias, Y, M, N, K, accumulate, ldx, ldy);
}
inline void matmul_nn(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
                      int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0) {
  backend().matmul_nn(A, B, C, M, N, K, accumulate, lda, ldb, ldc);
}
inline void matmul_tn_acc(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, int64_t lda = 0,
                          int64_t ldb = 0) {
  backend().matmul_tn_acc(A, B, C, M, N, K, lda, ldb);
}
inline void bias_grad_acc(const float* dY, float* db, int64_t M, int64_t N) { backend().bias_grad_acc(dY, db, M, N); }
inline void linear_backward(const float* X, const float* W, const float* dY, float* dX, bool accumulate_dx, float* dW,
                            float* db, int64_t M, int64_t N, int64_t K) {
  backend().linear_backward(X, W, dY, dX, accumulate_dx, dW, db, M, N, K);
}
inline void linear(const float* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
                   int64_t ldx = 0, int64_t ldy = 0) {
  backend().linear(X, W, bias, Y, M, N, K, ldx, ldy);
}
inline void embedding(const int32_t* ids, const WeightMatrix& E, float* x, int64_t T, int64_t H) {
  backend().embedding_typed(ids, E, x, T, H);
}
inline void quantize_rows_i8(const float* x, int64_t ldx, int64_t rows, int64_t K, int8_t* q, float* scale) {
  backend().quantize_rows_i8(x, ldx, rows, K, q, scale);
}
inline void gemm_i8(const int8_t* A, const int8_t* B, int32_t* C, int64_t M, int64_t N, int64_t K) {
  backend().gemm_i8(A, B, C, M, N, K);
}
inline void attention_bf16(const float* qkv, float* out, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
                           int64_t head_dim, int64_t half_window, float* workspace = nullptr,
                           const RopeTable* rope = nullptr) {
  backend().attention_bf16(qkv, out, cu_seqlens, num_seqs, n_heads, head_dim, half_window, workspace, rope);
}
inline void layernorm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C,
                      float eps, float* mean = nullptr, float* rstd = nullptr) {
  backend().layernorm(x, gamma, beta, y, rows, C, eps, mean, rstd);
}
inline void add_layernorm(float* x, const float* r, const float* gamma, const float* beta, float* y, int64_t rows,
                          int64_t C, float eps, float* mean = nullptr, float* rstd = nullptr) {
  backend().add_layernorm(x, r, gamma, beta, y, rows, C, eps, mean, rstd);
}
inline void act_layernorm(Act act, const float* x, const float* gamma, const float* beta, float* y, int64_t rows,
                          int64_t C, float eps, float* mean = nullptr, float* rstd = nullptr) {
  backend().act_layernorm(act, x, gamma, beta, y, rows, C, eps, mean, rstd);
}
inline void layernorm_backward(const float* dy, const float* x, const float* g, const float* mean, const float* rstd,
                               float* dx, bool accumulate_dx, float* dg, float* db, int64_t rows, int64_t C) {
  backend().layernorm_backward(dy, x, g, mean, rstd, dx, accumulate_dx, dg, db, rows, C);
}
inline void activation(Act act, const float* x, float* y, int64_t n) { backend().activation(act, x, y, n); }
inline void glu(Act act, const float* u, float* y, int64_t T, int64_t I) { backend().glu(act, u, y, T, I); }
inline void act_backward(Act act, const float* x, const float* dy, float* dx, int64_t n) {
  backend().act_backward(act, x, dy, dx, n);
}
inline void glu_backward(Act act, const float* u, const float* dy, float* du, int64_t T, int64_t I) {
  backend().glu_backward(act, u, dy, du, T, I);
}
inline void erf_array(const float* x, float* y, int64_t n) { backend().erf_array(x, y, n); }
inline void rope_qkv(float* qkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads, const RopeTable& table) {
  backend().rope_qkv(qkv, cu_seqlens, num_seqs, n_heads, table);
}
inline void rope_backward(float* dqkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
                          const RopeTable& table) {
  backend().rope_backward(dqkv, cu_seqlens, num_seqs, n_heads, table);
}
inline size_t attention_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim) {
  return backend().attention_workspace_floats(T, n_heads, head_dim);
}
inline size_t attention_bf16_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim) {
  return backend().attention_bf16_workspace_floats(T, n_heads, head_dim);
}
inline void linear_bf16_input(const uint16_t* Xb, const WeightMatrix& W, const float* bias, float* Y, int64_t M,
                              int64_t N, int64_t K) {
  backend().linear_bf16_input(Xb, W, bias, Y, M, N, K);
}
inline void layernorm_bf16out(const float* x, const float* gamma, const float* beta, uint16_t* yb, int64_t rows,
                              int64_t C, float eps) {
  backend().layernorm_bf16out(x, gamma, beta, yb, rows, C, eps);
}
inline void add_layernorm_bf16out(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yb,
                                  int64_t rows, int64_t C, float eps) {
  backend().add_layernorm_bf16out(x, r, gamma, beta, yb, rows, C, eps);
}
inline void glu_bf16out(Act act, const float* u, uint16_t* yb, int64_t T, int64_t I) {
  backend().glu_bf16out(act, u, yb, T, I);
}
inline void linear_16in(Precision t, const uint16_t* X, const WeightMatrix& W, const float* bias, float* Y,
                        uint16_t* Y16, int64_t M, int64_t N, int64_t K, float* workspace = nullptr,
                        int64_t workspace_floats = 0) {
  backend().linear_16in(t, X, W, bias, Y, Y16, M, N, K, workspace, workspace_floats);
}
inline void linear_glu_16in(Precision t, Act act, const uint16_t* X, const WeightMatrix& W, const float* bias,
                            uint16_t* G, int64_t M, int64_t I, int64_t K, float* workspace = nullptr,
                            int64_t workspace_floats = 0) {
  backend().linear_glu_16in(t, act, X, W, bias, G, M, I, K, workspace, workspace_floats);
}
inline void layernorm_f16out(const float* x, const float* gamma, const float* beta, uint16_t* yh, int64_t rows,
                             int64_t C, float eps) {
  backend().layernorm_f16out(x, gamma, beta, yh, rows, C, eps);
}
inline void add_layernorm_f16out(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yh,
                                 int64_t rows, int64_t C, float eps) {
  backend().add_layernorm_f16out(x, r, gamma, beta, yh, rows, C, eps);
}
inline void glu_f16out(Act act, const float* u, uint16_t* yh, int64_t T, int64_t I) {
  backend().glu_f16out(act, u, yh, T, I);
}
inline void attention_16io(Precision t, const uint16_t* qkv, uint16_t* out, const int64_t* cu_seqlens, int64_t num_seqs,
                           int64_t n_heads, int64_t head_dim, int64_t half_window, float* workspace,
                           const RopeTable* rope) {
  backend().attention_16io(t, qkv, out, cu_seqlens, num_seqs, n_heads, head_dim, half_window, workspace, rope);
}
inline size_t attention_16io_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim) {
  return backend().attention_16io_workspace_floats(T, n_heads, head_dim);
}
inline void attention_bf16_bf16out(const float* qkv, uint16_t* outb, const int64_t* cu_seqlens, int64_t num_seqs,
                                   int64_t n_heads, int64_t head_dim, int64_t half_window, float* workspace = nullptr,
                                   const RopeTable* rope = nullptr) {
  backend().attention_bf16_bf16out(qkv, outb, cu_seqlens, num_seqs, n_heads, head_dim, half_window, workspace, rope);
}
inline void attention(const float* qkv, float* out, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
                      int64_t head_dim, int64_t half_window, float* workspace = nullptr,
                      const RopeTable* rope = nullptr, float* lse = nullptr) {
  backend().attention(qkv, out, cu_seqlens, num_seqs, n_heads, head_dim, half_window, workspace, rope, lse);
}
// The training forward of attention: attention() on post-RoPE qkv with its lse [T, n_heads] saved.
inline void attention_forward(const float* qkv, float* out, float* lse, const int64_t* cu_seqlens, int64_t num_seqs,
                              int64_t n_heads, int64_t head_dim, int64_t half_window) {
  backend().attention(qkv, out, cu_seqlens, num_seqs, n_heads, head_dim, half_window, nullptr, nullptr, lse);
}
inline void attention_backward(const float* qkv, const float* out, const float* dout, const float* lse, float* dqkv,
                               const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads, int64_t head_dim,
                               int64_t half_window) {
  backend().attention_backward(qkv, out, dout, lse, dqkv, cu_seqlens, num_seqs, n_heads, head_dim, half_window);
}
inline void softmax(const float* x, float* y, int64_t rows, int64_t C) { backend().softmax(x, y, rows, C); }
inline void log_softmax(const float* x, float* y, int64_t rows, int64_t C) { backend().log_softmax(x, y, rows, C); }
inline void top_k(const float* x, int64_t n, int64_t k, int64_t* idx, float* val) {
  backend().top_k(x, n, k, idx, val);
}
inline void embedding(const int32_t* ids, const float* E, float* x, int64_t T, int64_t H) {
  backend().embedding(ids, E, x, T, H);
}
inline void embedding_backward(const int32_t* ids, const float* dx, float* dE, int64_t T, int64_t H) {
  backend().embedding_backward(ids, dx, dE, T, H);
}
inline void residual_add(float* dst, const float* src, int64_t n) { backend().residual_add(dst, src, n); }
inline void copy(const float* src, float* dst, int64_t n) { backend().copy(src, dst, n); }
inline void pool(PoolMode mode, const float* hidden, const int64_t* cu_seqlens, int64_t num_seqs, int64_t H,
                 float* out) {
  backend().pool(mode, hidden, cu_seqlens, num_seqs, H, out);
}
inline void pool_backward(PoolMode mode, const float* dpooled, const int64_t* cu_seqlens, int64_t num_seqs, int64_t H,
                          float* dhidden) {
  backend().pool_backward(mode, dpooled, cu_seqlens, num_seqs, H, dhidden);
}
inline void l2norm(const float* x, float* y, float* norms, int64_t rows, int64_t D) {
  backend().l2norm(x, y, norms, rows, D);
}
inline void l2norm_backward(const float* y, const float* norms, const float* dy, float* dx, int64_t rows, int64_t D) {
  backend().l2norm_backward(y, norms, dy, dx, rows, D);
}
inline void dropout(const float* src, float* dst, int64_t n, double p, uint64_t seed, int64_t layer, bool accumulate) {
  backend().dropout(src, dst, n, p, seed, layer, accumulate);
}
inline double cross_entropy(const float* logits, const int32_t* labels, float* dlogits, int64_t R, int64_t C,
                            float dscale, int64_t* counted, int64_t* correct) {
  return backend().cross_entropy(logits, labels, dlogits, R, C, dscale, counted, correct);
}
inline double mse_loss(const float* pred, const float* target, float* dpred, int64_t n, float dscale) {
  return backend().mse_loss(pred, target, dpred, n, dscale);
}
inline double bce_with_logits(const float* logits, const float* target, float* dlogits, int64_t n, float dscale) {
  return backend().bce_with_logits(logits, target, dlogits, n, dscale);
}
inline double grad_norm_sq(const float* g, size_t n) { return backend().grad_norm_sq(g, n); }
inline double adam_moments_rms(const float* g, float* m, float* v, int64_t n, float b1, float b2, float eps2) {
  return backend().adam_moments_rms(g, m, v, n, b1, b2, eps2);
}
inline void adam_apply(float* theta, const float* m, const float* v, int64_t n, float decay, float lr, float vscale,
                       float eps) {
  backend().adam_apply(theta, m, v, n, decay, lr, vscale, eps);
}
inline void adamw_update(float* theta, const float* g, float* m, float* v, int64_t n, float b1, float b2, float decay,
                         float lr, float vscale, float eps) {
  backend().adamw_update(theta, g, m, v, n, b1, b2, decay, lr, vscale, eps);
}
inline void linear_f64(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K) {
  backend().linear_f64(X, W, bias, Y, M, N, K);
}
inline void tanh_array(const float* x, float* y, int64_t n) { backend().tanh_array(x, y, n); }
inline void sigmoid_array(const float* x, float* y, int64_t n) { backend().sigmoid_array(x, y, n); }
inline void softmax_f64(const float* x, float* y, int64_t rows, int64_t C) { backend().softmax_f64(x, y, rows, C); }
inline void softmax_top_k(const float* logits, int64_t rows, int64_t C, int64_t k, int64_t* idx, float* prob) {
  backend().softmax_top_k(logits, rows, C, k, idx, prob);
}
inline double maxsim_scores(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim, float* best = nullptr,
                            int64_t* argbest = nullptr) {
  return backend().maxsim_scores(q, nq, d, nd, dim, best, argbest);
}
inline double masked_softmax_ce(double* s, int64_t R, int64_t C, const int64_t* target, const uint8_t* exclude) {
  return backend().masked_softmax_ce(s, R, C, target, exclude);
}

}  // namespace modernbert::kernels
