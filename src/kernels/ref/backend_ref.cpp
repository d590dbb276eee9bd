// The ref backend's table: one function per slot of kernels/backend.h.
#include "kernels/ref/ref.h"

namespace modernbert::kernels {

namespace detail {
extern const Backend kRefBackend;
const Backend kRefBackend = {
    "ref",
    &ref::gemm,
    &ref::matmul_nn,
    &ref::matmul_tn_acc,
    &ref::bias_grad_acc,
    &ref::linear_backward,
    &ref::linear,
    &ref::embedding_typed,
    &ref::quantize_rows_i8,
    &ref::gemm_i8,
    &ref::attention_bf16,
    &ref::attention_bf16_workspace_floats,
    &ref::linear_bf16_input,
    &ref::layernorm_bf16out,
    &ref::add_layernorm_bf16out,
    &ref::glu_bf16out,
    &ref::attention_bf16_bf16out,
    &ref::layernorm,
    &ref::add_layernorm,
    &ref::act_layernorm,
    &ref::layernorm_backward,
    &ref::activation,
    &ref::glu,
    &ref::act_backward,
    &ref::glu_backward,
    &ref::erf_array,
    &ref::rope_qkv,
    &ref::rope_backward,
    &ref::attention_workspace_floats,
    &ref::attention,
    &ref::attention_backward,
    &ref::softmax,
    &ref::log_softmax,
    &ref::top_k,
    &ref::embedding,
    &ref::embedding_backward,
    &ref::residual_add,
    &ref::copy,
    &ref::pool,
    &ref::pool_backward,
    &ref::l2norm,
    &ref::l2norm_backward,
    &ref::dropout,
    &ref::cross_entropy,
    &ref::mse_loss,
    &ref::bce_with_logits,
    &ref::grad_norm_sq,
    &ref::adam_moments_rms,
    &ref::adam_apply,
    &ref::adamw_update,
    &ref::linear_f64,
    &ref::tanh_array,
    &ref::sigmoid_array,
    &ref::softmax_f64,
    &ref::softmax_top_k,
    &ref::maxsim_scores,
    &ref::masked_softmax_ce,
};
}  // namespace detail

const Backend& ref_backend() { return detail::kRefBackend; }

}  // namespace modernbert::kernels
