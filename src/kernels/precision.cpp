// Names and parsing of modernbert/precision.h.
#include "modernbert/precision.h"

#include "modernbert/error.h"

namespace modernbert {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::kF32:
      return "f32";
    case Precision::kBF16:
      return "bf16";
    case Precision::kF16:
      return "f16";
    case Precision::kInt8:
      return "int8";
  }
  return "?";
}

bool parse_precision(const std::string& s, Precision* out) {
  Precision p;
  if (s == "f32" || s == "fp32" || s == "float32")
    p = Precision::kF32;
  else if (s == "bf16" || s == "bfloat16")
    p = Precision::kBF16;
  else if (s == "f16" || s == "fp16" || s == "float16")
    p = Precision::kF16;
  else if (s == "int8" || s == "i8")
    p = Precision::kInt8;
  else
    return false;
  *out = p;
  return true;
}

size_t precision_bytes(Precision p) {
  switch (p) {
    case Precision::kF32:
      return 4;
    case Precision::kBF16:
    case Precision::kF16:
      return 2;
    case Precision::kInt8:
      return 1;
  }
  return 4;
}

const float* WeightMatrix::f32() const {
  if (data && type != Precision::kF32)
    throw Error(std::string("this operation needs float32 weights, but the weight is stored as ") +
                precision_name(type) + " (load the model with --dtype f32, from a float checkpoint)");
  return static_cast<const float*>(data);
}

}  // namespace modernbert
