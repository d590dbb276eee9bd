// The reference backend: every op of kernels/backend.h as plain loops, obviously correct,
// single-threaded, double accumulators where it matters (tests only). Same signatures and
// contracts as the Backend slots. tests/test_kernels.cpp and tests/test_backward.cpp compare every
// other backend against these, and these against float64 / PyTorch references.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/backend.h"

namespace modernbert::kernels::ref {

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
// kBF16 linear with the X rounding explicit (linear() passes the cpu backend's choice,
// linear_rounds_x_bf16()): X rounded to bf16 first iff round_x, sums in double, one rounding.
void linear_bf16(const float* X, const uint16_t* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
                 int64_t ldx, int64_t ldy, bool round_x);
// Scalar conversions: bf16 / f16 bits from a float (round to nearest even; NaN stays NaN, f16
// overflows to inf) and back (exact).
uint16_t bf16_from_float(float f);
float bf16_to_float(uint16_t h);
uint16_t f16_from_float(float f);
float f16_to_float(uint16_t h);
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

// ---- Task heads and retrieval scoring (scoring_ref.cpp) --------------------------------------------
void linear_f64(const float* X, const float* W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K);
void tanh_array(const float* x, float* y, int64_t n);
void sigmoid_array(const float* x, float* y, int64_t n);
void softmax_f64(const float* x, float* y, int64_t rows, int64_t C);
void softmax_top_k(const float* logits, int64_t rows, int64_t C, int64_t k, int64_t* idx, float* prob);
double maxsim_scores(const float* q, int64_t nq, const float* d, int64_t nd, int64_t dim, float* best,
                     int64_t* argbest);
double masked_softmax_ce(double* s, int64_t R, int64_t C, const int64_t* target, const uint8_t* exclude);

// Scalar activation used by the reference paths (double precision math, float result).
float act_scalar(Act act, float x);

}  // namespace modernbert::kernels::ref
