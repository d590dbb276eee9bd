// The cpu backend's ops (AVX2/FMA intrinsics and/or BLAS, threaded on default_pool()), one
// function per Backend slot with the same signature: the contracts are in kernels/backend.h.
// Callers outside src/kernels use kernels::op (backend.h); this header is for the cpu backend's
// own files, its table and its benchmarks. It includes backend.h, so code that included this
// header for kernels::op keeps compiling.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"

namespace modernbert::kernels::cpu {

void gemm(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
          bool accumulate = false, int64_t ldx = 0, int64_t ldy = 0);
void matmul_nn(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, bool accumulate,
               int64_t lda = 0, int64_t ldb = 0, int64_t ldc = 0);
void matmul_tn_acc(const float* A, const float* B, float* C, int64_t M, int64_t N, int64_t K, int64_t lda = 0,
                   int64_t ldb = 0);
void bias_grad_acc(const float* dY, float* db, int64_t M, int64_t N);
void linear_backward(const float* X, const float* W, const float* dY, float* dX, bool accumulate_dx, float* dW,
                     float* db, int64_t M, int64_t N, int64_t K);
void linear(const float* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
            int64_t ldx = 0, int64_t ldy = 0);
void embedding_typed(const int32_t* ids, const WeightMatrix& E, float* x, int64_t T, int64_t H);
void quantize_rows_i8(const float* x, int64_t ldx, int64_t rows, int64_t K, int8_t* q, float* scale);
void gemm_i8(const int8_t* A, const int8_t* B, int32_t* C, int64_t M, int64_t N, int64_t K);
void attention_bf16(const float* qkv, float* out, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
                    int64_t head_dim, int64_t half_window, float* workspace = nullptr, const RopeTable* rope = nullptr);
size_t attention_bf16_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim);
void linear_bf16_input(const uint16_t* Xb, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N,
                       int64_t K);
void layernorm_bf16out(const float* x, const float* gamma, const float* beta, uint16_t* yb, int64_t rows, int64_t C,
                       float eps);
void add_layernorm_bf16out(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yb, int64_t rows,
                           int64_t C, float eps);
void glu_bf16out(Act act, const float* u, uint16_t* yb, int64_t T, int64_t I);
void linear_16in(Precision t, const uint16_t* X, const WeightMatrix& W, const float* bias, float* Y, uint16_t* Y16,
                 int64_t M, int64_t N, int64_t K, float* workspace, int64_t workspace_floats);
void linear_glu_16in(Precision t, Act act, const uint16_t* X, const WeightMatrix& W, const float* bias, uint16_t* G,
                     int64_t M, int64_t I, int64_t K, float* workspace, int64_t workspace_floats);
void layernorm_f16out(const float* x, const float* gamma, const float* beta, uint16_t* yh, int64_t rows, int64_t C,
                      float eps);
void add_layernorm_f16out(float* x, const float* r, const float* gamma, const float* beta, uint16_t* yh, int64_t rows,
                          int64_t C, float eps);
void glu_f16out(Act act, const float* u, uint16_t* yh, int64_t T, int64_t I);
void attention_16io(Precision t, const uint16_t* qkv, uint16_t* out, const int64_t* cu_seqlens, int64_t num_seqs,
                    int64_t n_heads, int64_t head_dim, int64_t half_window, float* workspace, const RopeTable* rope);
size_t attention_16io_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim);
void attention_bf16_bf16out(const float* qkv, uint16_t* outb, const int64_t* cu_seqlens, int64_t num_seqs,
                            int64_t n_heads, int64_t head_dim, int64_t half_window, float* workspace = nullptr,
                            const RopeTable* rope = nullptr);
void layernorm(const float* x, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C, float eps,
               float* mean = nullptr, float* rstd = nullptr);
void add_layernorm(float* x, const float* r, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C,
                   float eps, float* mean = nullptr, float* rstd = nullptr);
void act_layernorm(Act act, const float* x, const float* gamma, const float* beta, float* y, int64_t rows, int64_t C,
                   float eps, float* mean = nullptr, float* rstd = nullptr);
void layernorm_backward(const float* dy, const float* x, const float* g, const float* mean, const float* rstd,
                        float* dx, bool accumulate_dx, float* dg, float* db, int64_t rows, int64_t C);
void activation(Act act, const float* x, float* y, int64_t n);
void glu(Act act, const float* u, float* y, int64_t T, int64_t I);
void act_backward(Act act, const float* x, const float* dy, float* dx, int64_t n);
void glu_backward(Act act, const float* u, const float* dy, float* du, int64_t T, int64_t I);
void erf_array(const float* x, float* y, int64_t n);
void rope_qkv(float* qkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads, const RopeTable& table);
void rope_backward(float* dqkv, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads, const RopeTable& table);
size_t attention_workspace_floats(int64_t T, int64_t n_heads, int64_t head_dim);
void attention(const float* qkv, float* out, const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads,
               int64_t head_dim, int64_t half_window, float* workspace = nullptr, const RopeTable* rope = nullptr,
               float* lse = nullptr);
void attention_backward(const float* qkv, const float* out, const float* dout, const float* lse, float* dqkv,
                        const int64_t* cu_seqlens, int64_t num_seqs, int64_t n_heads, int64_t head_dim,
                        int64_t half_window);
void softmax(const float* x, float* y, int64_t rows, int64_t C);
void log_softmax(const float* x, float* y, int64_t rows, int64_t C);
void top_k(const float* x, int64_t n, int64_t k, int64_t* idx, float* val);
void embedding(const int32_t* ids, const float* E, float* x, int64_t T, int64_t H);
void embedding_backward(const int32_t* ids, const float* dx, float* dE, int64_t T, int64_t H);
void residual_add(float* dst, const float* src, int64_t n);
void copy(const float* src, float* dst, int64_t n);
void pool(PoolMode mode, const float* hidden, const int64_t* cu_seqlens, int64_t num_seqs, int64_t H, float* out);
void pool_backward(PoolMode mode, const float* dpooled, const int64_t* cu_seqlens, int64_t num_seqs, int64_t H,
                   float* dhidden);
void l2norm(const float* x, float* y, float* norms, int64_t rows, int64_t D);
void l2norm_backward(const float* y, const float* norms, const float* dy, float* dx, int64_t rows, int64_t D);
void dropout(const float* src, float* dst, int64_t n, double p, uint64_t seed, int64_t layer, bool accumulate);
double cross_entropy(const float* logits, const int32_t* labels, float* dlogits, int64_t R, int64_t C, float dscale,
                     int64_t* counted, int64_t* correct);
double mse_loss(const float* pred, const float* target, float* dpred, int64_t n, float dscale);
double bce_with_logits(const float* logits, const float* target, float* dlogits, int64_t n, float dscale);
double grad_norm_sq(const float* g, size_t n);
double adam_moments_rms(const float* g, float* m, float* v, int64_t n, float b1, float b2, float eps2);
void adam_apply(float* theta, const float* m, const float* v, int64_t n, float decay, float lr, float vscale,
                float eps);
void adamw_update(float* theta, const float* g, float* m, float* v, int64_t n, float b1, float b2, float decay,
                  float lr, float vscale, float eps);

// ---- Task heads and retrieval scoring (scoring.cpp) --------------------------------------------
void linear_f64(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K);
void tanh_array(const float* x, float* y, int64_t n);
void sigmoid_array(const float* x, float* y, int64_t n);
void softmax_f64(const float* x, float* y, int64_t rows, int64_t C);
void softmax_top_k(const float* logits, int64_t rows, int64_t C, int64_t k, int64_t* idx, float* prob);
double maxsim_scores(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim, float* best,
                     int64_t* argbest);
double masked_softmax_ce(double* s, int64_t R, int64_t C, const int64_t* target, const uint8_t* exclude);

// ---- Internal building blocks of the cpu backend -----------------------------------------------
// One row-major C[M,N] = alpha op(A) op(B) + beta C on the calling thread, through the selected
// sgemm library (oneDNN or OpenBLAS; see gemm.cpp). The training GEMM helpers tile over the pool
// with it.
void sgemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Single-threaded activation of one span (building block of fused kernels; y may alias x).
void activation_serial(Act act, const float* x, float* y, int64_t n);

}  // namespace modernbert::kernels::cpu
