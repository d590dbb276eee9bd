// The cpu backend's table: one function per slot of kernels/backend.h.
#include "kernels/cpu/kernels.h"

namespace modernbert::kernels {

namespace detail {
extern const Backend kCpuBackend;
const Backend kCpuBackend = {
    "cpu",
    &cpu::gemm,
    &cpu::matmul_nn,
    &cpu::matmul_tn_acc,
    &cpu::bias_grad_acc,
    &cpu::linear_backward,
    &cpu::linear,
    &cpu::embedding_typed,
    &cpu::quantize_rows_i8,
    &cpu::gemm_i8,
    &cpu::attention_bf16,
    &cpu::attention_bf16_workspace_floats,
    &cpu::linear_bf16_input,
    &cpu::layernorm_bf16out,
    &cpu::add_layernorm_bf16out,
    &cpu::glu_bf16out,
    &cpu::attention_bf16_bf16out,
    &cpu::layernorm,
    &cpu::add_layernorm,
    &cpu::act_layernorm,
    &cpu::layernorm_backward,
    &cpu::activation,
    &cpu::glu,
    &cpu::act_backward,
    &cpu::glu_backward,
    &cpu::erf_array,
    &cpu::rope_qkv,
    &cpu::rope_backward,
    &cpu::attention_workspace_floats,
    &cpu::attention,
    &cpu::attention_backward,
    &cpu::softmax,
    &cpu::log_softmax,
    &cpu::top_k,
    &cpu::embedding,
    &cpu::embedding_backward,
    &cpu::residual_add,
    &cpu::copy,
    &cpu::pool,
    &cpu::pool_backward,
    &cpu::l2norm,
    &cpu::l2norm_backward,
    &cpu::dropout,
    &cpu::cross_entropy,
    &cpu::mse_loss,
    &cpu::bce_with_logits,
    &cpu::grad_norm_sq,
    &cpu::adam_moments_rms,
    &cpu::adam_apply,
    &cpu::adamw_update,
    &cpu::linear_f64,
    &cpu::tanh_array,
    &cpu::sigmoid_array,
    &cpu::softmax_f64,
    &cpu::softmax_top_k,
    &cpu::maxsim_scores,
    &cpu::masked_softmax_ce,
};
}  // namespace detail

const Backend& cpu_backend() { return detail::kCpuBackend; }

}  // namespace modernbert::kernels
