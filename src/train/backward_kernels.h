// Training kernels: forward ops that save what their backward needs, and the backward of every op
// of the encoder and heads, llm.c style (plain float arrays, no autograd). Inference-only kernels
// live in src/kernels/cpu (owned by the forward); these are separate so the two can evolve
// independently. Layout conventions are those of kernels/cpu/kernels.h:
//   activations [T, C] row-major, weights [N, K] = nn.Linear [out, in], qkv [T, 3H] = Q | K | V.
//
// Determinism: every reduction here has a fixed order that does not depend on the number of
// threads or on scheduling (outputs are split into fixed-size tiles; each tile is reduced by one
// thread in index order; partial sums over fixed row chunks are added in chunk order). A run is
// therefore bit-reproducible, which the resume test relies on.
//
// All gradient outputs named d* with an `accumulate` flag or "_acc" suffix ADD into the
// destination (parameter gradients always accumulate, so micro-batches simply sum).
#pragma once

#include <cstdint>

#include "kernels/cpu/kernels.h"

namespace modernbert::train {

using kernels::Act;

// ---- GEMMs (cblas, split over the pool in fixed tiles) ----------------------------------------
// C[M,N] (+)= A[M,K] · B[K,N]            (dX[M,K] = dY[M,N] · W[N,K]: matmul_nn(dY, W, dX, M, K, N))
void matmul_nn(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
               int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);
// C[N,K] += A[M,N]^T · B[M,K]            (dW += dY^T · X)
void matmul_tn_acc(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K,
                   int64_t lda = 0, int64_t ldb = 0);
// db[N] += Σ_m dY[m, :]
void bias_grad_acc(const float* dY, float* db, int64_t M, int64_t N);

// Linear layer Y[M,N] = X[M,K] · W[N,K]^T + b. Given dY: dX (+)= dY · W (skipped if dX null),
// dW += dY^T X, db += Σ rows dY (skipped if db null).
void linear_backward(const float* X, const float* W, const float* dY, float* dX, bool accumulate_dx, float* dW,
                     float* db, int64_t M, int64_t N, int64_t K);

// ---- LayerNorm (biased variance) --------------------------------------------------------------
// y = (x - mean) * rstd * g + b; saves mean[rows], rstd[rows]. g / b may be nullptr (1 / 0).
void layernorm_forward(const float* x, const float* g, const float* b, float* y, float* mean, float* rstd,
                       int64_t rows, int64_t C, float eps);
// dx (+)= rstd * (dy·g - mean(dy·g) - xhat · mean(dy·g·xhat));  dg += Σ dy·xhat;  db += Σ dy.
// dg / db may be nullptr. dx may not alias dy.
void layernorm_backward(const float* dy, const float* x, const float* g, const float* mean, const float* rstd,
                        float* dx, bool accumulate_dx, float* dg, float* db, int64_t rows, int64_t C);

// ---- Activations -------------------------------------------------------------------------------
float act_derivative(Act act, float x);  // d act(x) / dx (exact erf GELU, tanh GELU, ReLU, SiLU)
// dx = dy * act'(x) over n elements (dx may alias dy).
void act_backward(Act act, const float* x, const float* dy, float* dx, int64_t n);
// GeGLU: y[t,i] = act(u[t,i]) * u[t,I+i]. Given dy [T,I]: du [T,2I] (overwritten).
void glu_backward(Act act, const float* u, const float* dy, float* du, int64_t T, int64_t I);

// ---- RoPE ----------------------------------------------------------------------------------------
// Backward of kernels::rope_qkv: rotates the Q and K parts of dqkv [T,3H] by the negative angle
// (the rotation is orthogonal, so its transpose is its inverse). V is untouched.
void rope_backward(float* dqkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
                   const kernels::RopeTable& table);

// ---- Attention (varlen, optional local window |i-j| <= half_window) ------------------------------
// Blockwise: per (sequence, head, block of kQBlock queries) only the key band the block can see is
// visited, so the largest temporary is kQBlock x band (never n x n). Saves lse [T, n_heads]
// (log-sum-exp of the scaled scores of each query row), which the backward uses to recompute
// probabilities P = exp(s - lse) without a second softmax pass.
void attention_forward(const float* qkv, float* out, float* lse, const int64_t* cu_seqlens, int64_t num_seqs,
                       int64_t n_heads, int64_t head_dim, int64_t half_window);
// dqkv [T,3H] (overwritten) from dout [T,H], using the saved qkv (post-RoPE), out and lse:
//   P = exp(scale·QKᵀ - lse), dP = dO·Vᵀ, D = rowsum(dO ⊙ O), dS = P ⊙ (dP - D),
//   dQ = scale·dS·K, dK = scale·dSᵀ·Q, dV = Pᵀ·dO.
// One work item per (sequence, head) owns that head's dK/dV rows: no atomics, fixed order.
void attention_backward(const float* qkv, const float* out, const float* dout, const float* lse, float* dqkv,
                        const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads, int64_t head_dim,
                        int64_t half_window);

// ---- Embedding -----------------------------------------------------------------------------------
// dE[ids[t], :] += dx[t, :] (sparse: only the rows of ids present are touched). Split over column
// chunks, tokens in order, so repeated ids accumulate deterministically.
void embedding_backward(const int32_t* ids, const float* dx, float* dE, int64_t T, int64_t H);

// ---- Losses (forward + gradient in one pass) -----------------------------------------------------
// Cross-entropy rows [R, C] with labels [R] (label < 0 = ignored: zero gradient). Returns the SUM of
// -log softmax(logits)[label] over counted rows; dlogits (may alias logits) = (softmax - onehot) ·
// dscale for counted rows, 0 for ignored ones. counted / correct (argmax == label) if non-null.
double cross_entropy(const float* logits, const int32_t* labels, float* dlogits, int64_t R, int64_t C, float dscale,
                     int64_t* counted, int64_t* correct);
// Σ (p - t)²; dp = 2 (p - t) · dscale.
double mse_loss(const float* pred, const float* target, float* dpred, int64_t n, float dscale);
// Σ BCE-with-logits (stable form max(x,0) - x t + log1p(exp(-|x|))); dx = (σ(x) - t) · dscale.
double bce_with_logits(const float* logits, const float* target, float* dlogits, int64_t n, float dscale);

}  // namespace modernbert::train
