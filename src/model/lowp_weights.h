// Reduced-precision weights in the model layer (#15): which parameters take a reduced type, the
// int8 weight scheme, the quantized-checkpoint format (docs/quantized-checkpoints.md) and the two
// ways a reduced-precision parameter is filled at load:
//   - converted from a float checkpoint (any float dtype), row chunk by row chunk, with the source
//     pages of the mapping dropped as they are consumed (no fp32 copy stays in memory);
//   - taken from a checkpoint written by `modernbert quantize` (zero copy where aligned).
// Internal to src/model (model_dir.cpp and the writer use it).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "modernbert/precision.h"
#include "modernbert/safetensors.h"
#include "modernbert/weights.h"

namespace modernbert::lowp {

// safetensors __metadata__ keys and the suffix of an int8 tensor's scale tensor.
inline constexpr const char* kPrecisionKey = "modernbert.precision";
inline constexpr const char* kSchemeKey = "modernbert.quantization";
inline constexpr const char* kScaleSuffix = "_scale";
inline constexpr const char* kQuantMethod = "modernbert";

// The type parameter `hf_name` is held in when the model is held in `p`:
//   kBF16 / kF16: the four linears of every layer, head.dense.weight, tok_embeddings and an untied
//                 decoder.weight take p;
//   kInt8:        the four linears and head.dense.weight are int8, tok_embeddings / decoder bf16;
//   everything else (norms, biases, classifier.weight) and every parameter of an f32 model: f32.
Precision storage_precision(const std::string& hf_name, Precision p);
// The safetensors dtype of a reduced type (kBF16 -> BF16, kF16 -> F16, kInt8 -> I8, kF32 -> F32).
DType storage_dtype(Precision p);
// The one-line scheme of __metadata__["modernbert.quantization"] and config.json's
// "quantization_config" object, for a checkpoint held in p.
std::string scheme_line(Precision p);
nlohmann::json quantization_config(Precision p);
// The torch_dtype config.json carries for a checkpoint of precision p.
std::string torch_dtype_for(Precision p);

// One row w[0..K) -> q[0..K), *scale (precision.h): scale = max|w| / 127, q = nearbyint(w / scale)
// clamped to [-127, 127]; an all-zero row gives scale 0 and q 0. w must be finite.
void quantize_row_i8(const float* w, int64_t K, int8_t* q, float* scale);

// float -> bf16 / IEEE half, round to nearest even, bit-equal to the io layer's f32_to_bf16 /
// f32_to_f16 for every non-NaN input (NaN: callers refuse it first), as loops the compiler
// vectorises (load-time conversion of a whole model).
void to_bf16(const float* x, uint16_t* h, int64_t n);
void to_f16(const float* x, uint16_t* h, int64_t n);

// Fills parameter `name` (shape [N, K] in spec) of w, held in `t`, from the float tensor `info`
// of `file` (F32 / F64 / F16 / BF16): zero copy when the file already stores it in t (and
// zero_copy, and aligned), otherwise converted into the parameter's own storage, chunk by chunk,
// releasing the consumed pages of the mapping. Throws naming `label` (file and tensor) on NaN/Inf.
void load_from_float(Weights& w, const std::string& name, Precision t, const std::shared_ptr<SafeTensorsFile>& file,
                     const TensorInfo& info, bool zero_copy, const std::string& label);

// Fills parameter `name` held in `t` (kBF16 / kF16 / kInt8) from a quantized checkpoint's tensor
// `info` (already checked: dtype storage_dtype(t), shape = spec) and, for kInt8, its scale tensor
// (checked: F32, shape [N]). Validates the values (finite 16-bit values; int8 q in [-127, 127];
// scales finite and >= 0) with errors naming `label`.
void load_stored(Weights& w, const std::string& name, Precision t, const std::shared_ptr<SafeTensorsFile>& file,
                 const TensorInfo& info, const TensorInfo* scale, bool zero_copy, const std::string& label);

}  // namespace modernbert::lowp
