// Reduced-precision inference ops of the cpu backend (#15): linear over bf16 / f16 / int8 weights,
// the typed embedding gather, per-row int8 quantization and the exact int8 GEMM.
// STUBS: the f32 cases forward to the fp32 ops; the others are being written.
#include <string>

#include "kernels/cpu/kernels.h"
#include "modernbert/error.h"

namespace modernbert::kernels {

bool linear_rounds_x_bf16() { return false; }
std::string linear_path(Precision p) { return p == Precision::kF32 ? "sgemm" : "not implemented"; }

namespace cpu {

void linear(const float* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
            int64_t ldx, int64_t ldy) {
  if (W.type == Precision::kF32) return gemm(X, static_cast<const float*>(W.data), bias, Y, M, N, K, false, ldx, ldy);
  throw Error(std::string("cpu linear: ") + precision_name(W.type) + " not implemented yet");
}

void embedding_typed(const int32_t* ids, const WeightMatrix& E, float* x, int64_t T, int64_t H) {
  if (E.type == Precision::kF32) return embedding(ids, static_cast<const float*>(E.data), x, T, H);
  throw Error(std::string("cpu embedding: ") + precision_name(E.type) + " not implemented yet");
}

void quantize_rows_i8(const float*, int64_t, int64_t, int64_t, int8_t*, float*) {
  throw Error("cpu quantize_rows_i8: not implemented yet");
}

void gemm_i8(const int8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t) {
  throw Error("cpu gemm_i8: not implemented yet");
}


}  // namespace cpu
}  // namespace modernbert::kernels
