// Reduced precision (#15): the storage / compute types of weights, and a typed view of one weight
// matrix. Belongs to the kernels layer (the kernel boundary is where dtype dispatch happens); the
// model layer's WeightViews hold these views, the CLI parses --dtype into Precision.
//
//   kF32   float32 weights, fp32 GEMMs (the default; exact).
//   kBF16  bfloat16 weights (2 bytes, no fp32 copy). GEMMs accumulate in fp32. Where the CPU has
//          native bf16 dot products (AVX512-BF16, AMX) the activations are rounded to bf16 (RNE) and
//          both operands are multiplied as bf16; elsewhere the weights are widened to fp32 while the
//          GEMM packs them and the activations stay fp32. kernels::linear_path() says which.
//   kF16   IEEE half weights, widened to fp32 inside the GEMM (activations stay fp32).
//   kInt8  int8 weights, symmetric per output channel (w[n,k] = q[n,k] * scale[n], q in [-127, 127]);
//          activations quantized per token (row) at run time, symmetric, int32 accumulation:
//            a = max_k |x[m,k]|;  s_x[m] = a / 127;  q_x[m,k] = nearbyint(x[m,k] * (127 / a))
//            (round half to even, in float; a row of zeros gives s_x = 0, q_x = 0)
//            y[m,n] = float(Σ_k q_x[m,k] q_w[n,k]) * (s_x[m] * scale[n]) + bias[n]
//          Attention, normalisations and the residual stream stay fp32 (bf16 products where native).
#pragma once

#include <cstdint>
#include <string>

namespace modernbert {

enum class Precision { kF32, kBF16, kF16, kInt8 };

// int8 sums K products of |q| <= 127 in int32: exact for K < kInt8KLimit (127^2 K < 2^31; the int32
// accumulators would wrap silently beyond K = 133144). Models with wider linears do not load as int8.
constexpr int64_t kInt8KLimit = int64_t{1} << 17;

const char* precision_name(Precision p);  // "f32", "bf16", "f16", "int8"
// Parses "f32" | "bf16" | "f16" | "int8" (also "float32", "bfloat16", "float16", "fp32", "fp16");
// false for anything else.
bool parse_precision(const std::string& s, Precision* out);
// Bytes per element of a weight stored in `p` (4, 2, 2, 1).
size_t precision_bytes(Precision p);

// A read-only weight matrix [N, K] (PyTorch nn.Linear layout [out, in]) in one storage type. The
// shape is given by the op that reads it. Implicitly constructible from a float pointer (fp32), so
// f32 call sites read as before.
struct WeightMatrix {
  Precision type = Precision::kF32;
  const void* data = nullptr;    // [N, K] row-major: float | uint16 (bf16 bits) | uint16 (f16 bits) | int8
  const float* scale = nullptr;  // kInt8 only: [N], per output channel (row)

  WeightMatrix() = default;
  WeightMatrix(const float* p) : data(p) {}  // NOLINT(google-explicit-constructor): fp32 view
  WeightMatrix(Precision t, const void* d, const float* s = nullptr) : type(t), data(d), scale(s) {}

  explicit operator bool() const { return data != nullptr; }
  bool is_f32() const { return type == Precision::kF32; }
  // The float32 data; throws modernbert::Error naming the stored type when the matrix is not fp32
  // (training and the other fp32-only paths call this). nullptr stays nullptr.
  const float* f32() const;
};

}  // namespace modernbert
