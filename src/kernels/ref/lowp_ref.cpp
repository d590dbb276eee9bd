// Reduced-precision inference ops of the reference backend (#15): plain loops, double
// accumulation, the int8 integer core exact. Linear over bf16 / f16 / int8 weights, the typed
// embedding gather, per-row int8 quantization and the exact int8 GEMM.
// STUBS: the f32 cases forward to the fp32 ops; the others are being written.
#include <string>

#include "kernels/ref/ref.h"
#include "modernbert/error.h"

namespace modernbert::kernels {

namespace ref {

void linear(const float* X, const WeightMatrix& W, const float* bias, float* Y, int64_t M, int64_t N, int64_t K,
            int64_t ldx, int64_t ldy) {
  if (W.type == Precision::kF32) return gemm(X, static_cast<const float*>(W.data), bias, Y, M, N, K, false, ldx, ldy);
  throw Error(std::string("ref linear: ") + precision_name(W.type) + " not implemented yet");
}

void embedding_typed(const int32_t* ids, const WeightMatrix& E, float* x, int64_t T, int64_t H) {
  if (E.type == Precision::kF32) return embedding(ids, static_cast<const float*>(E.data), x, T, H);
  throw Error(std::string("ref embedding: ") + precision_name(E.type) + " not implemented yet");
}

void quantize_rows_i8(const float*, int64_t, int64_t, int64_t, int8_t*, float*) {
  throw Error("ref quantize_rows_i8: not implemented yet");
}

void gemm_i8(const int8_t*, const int8_t*, int32_t*, int64_t, int64_t, int64_t) {
  throw Error("ref gemm_i8: not implemented yet");
}


}  // namespace ref
}  // namespace modernbert::kernels
