// Reduced-precision weights at load (#15): see lowp_weights.h and docs/quantized-checkpoints.md.
#include "model/lowp_weights.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "modernbert/error.h"

namespace modernbert::lowp {

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_layer_linear(const std::string& n) {
  return n.rfind("model.layers.", 0) == 0 && (ends_with(n, ".attn.Wqkv.weight") || ends_with(n, ".attn.Wo.weight") ||
                                              ends_with(n, ".mlp.Wi.weight") || ends_with(n, ".mlp.Wo.weight"));
}

bool is_16bit_finite(uint16_t h, Precision t) {
  // Exponent all ones = Inf / NaN: bf16 has 8 exponent bits (0x7f80), f16 has 5 (0x7c00).
  const uint16_t e = t == Precision::kBF16 ? 0x7f80 : 0x7c00;
  return (h & e) != e;
}

// Rows [r0, r0 + nr) of a [N, K] tensor as a TensorInfo of its own (shape [nr, K]), so the io
// layer's converter and release() work on one chunk at a time.
TensorInfo row_chunk(const TensorInfo& t, int64_t r0, int64_t nr) {
  const int64_t K = t.shape[1];
  const uint64_t es = dtype_size(t.dtype);
  TensorInfo c = t;
  c.shape = {nr, K};
  c.begin = t.begin + static_cast<uint64_t>(r0 * K) * es;
  c.end = c.begin + static_cast<uint64_t>(nr * K) * es;
  return c;
}

bool aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

}  // namespace

void to_bf16(const float* x, uint16_t* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    h[i] = static_cast<uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
  }
}

void to_f16(const float* x, uint16_t* h, int64_t n) {
  // Maratos' branch-free float -> half (FP16 library, fp16_ieee_from_fp32_value): the float
  // additions do the round to nearest even, including into the subnormal range.
  for (int64_t i = 0; i < n; ++i) {
    uint32_t w;
    std::memcpy(&w, x + i, 4);
    const uint32_t shl1_w = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xff000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    float base = (std::fabs(x[i]) * 0x1.0p+112f) * 0x1.0p-110f;
    const uint32_t bb = (bias >> 1) + 0x07800000u;
    float bf;
    std::memcpy(&bf, &bb, 4);
    base = bf + base;
    uint32_t bits;
    std::memcpy(&bits, &base, 4);
    const uint32_t nonsign = ((bits >> 13) & 0x00007c00u) + (bits & 0x00000fffu);
    h[i] = static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
  }
}

Precision storage_precision(const std::string& n, Precision p) {
  if (p == Precision::kF32) return p;
  if (is_layer_linear(n) || n == "head.dense.weight") return p;
  if (n == "model.embeddings.tok_embeddings.weight" || n == "decoder.weight")
    return p == Precision::kInt8 ? Precision::kBF16 : p;
  return Precision::kF32;
}

DType storage_dtype(Precision p) {
  switch (p) {
    case Precision::kBF16:
      return DType::kBF16;
    case Precision::kF16:
      return DType::kF16;
    case Precision::kInt8:
      return DType::kI8;
    case Precision::kF32:
      break;
  }
  return DType::kF32;
}

std::string scheme_line(Precision p) {
  switch (p) {
    case Precision::kInt8:
      return "int8: linear weights int8 symmetric per output channel (I8 <name> [N,K] + F32 <name>_scale [N], "
             "w = q * scale), activations int8 symmetric per token at run time; embeddings bf16; norms, biases, "
             "classifier f32";
    case Precision::kBF16:
      return "bf16: linear weights and embeddings bfloat16 (round to nearest even); norms, biases, classifier f32";
    case Precision::kF16:
      return "f16: linear weights and embeddings IEEE half (round to nearest even); norms, biases, classifier f32";
    case Precision::kF32:
      break;
  }
  return "f32";
}

nlohmann::json quantization_config(Precision p) {
  nlohmann::json q = {{"quant_method", kQuantMethod}, {"precision", precision_name(p)}};
  if (p == Precision::kInt8) {
    q["weights"] = "int8 symmetric per output channel";
    q["activations"] = "int8 symmetric per token, dynamic";
  } else {
    q["weights"] = std::string(p == Precision::kBF16 ? "bfloat16" : "float16");
    q["activations"] = "float32";
  }
  return q;
}

std::string torch_dtype_for(Precision p) {
  // int8 checkpoints compute in fp32 between the int8 GEMMs; the 16-bit ones are named by their type.
  return p == Precision::kBF16 ? "bfloat16" : p == Precision::kF16 ? "float16" : "float32";
}

void quantize_row_i8(const float* w, int64_t K, int8_t* q, float* scale) {
  float a = 0.0f;
  for (int64_t k = 0; k < K; ++k) a = std::max(a, std::fabs(w[k]));
  if (a == 0.0f) {
    *scale = 0.0f;
    std::fill_n(q, K, int8_t{0});
    return;
  }
  const float s = a / 127.0f;
  if (s == 0.0f) {  // max|w| of a few subnormal ulps: w / s would be 0/0; q · 0 = 0 is what it dequantizes to
    *scale = 0.0f;
    std::fill_n(q, K, int8_t{0});
    return;
  }
  for (int64_t k = 0; k < K; ++k) {
    const float r = std::nearbyint(w[k] / s);  // default rounding mode: half to even
    q[k] = static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f));
  }
  *scale = s;
}

void load_from_float(Weights& w, const std::string& name, Precision t, const std::shared_ptr<SafeTensorsFile>& file,
                     const TensorInfo& info, bool zero_copy, const std::string& label) {
  const ParamSpec& spec = w.spec(name);
  const uint8_t* src = file->data(info);
  if (t == Precision::kF32) {
    const float* in_place = zero_copy ? file->f32_in_place(info) : nullptr;
    if (in_place) return w.bind_external(name, in_place, file);
    file->to_f32(info, static_cast<float*>(w.hold(name, Precision::kF32)));
    file->release(info);
    return;
  }
  // A checkpoint already in the target 16-bit type: use its bytes in place (a BF16 checkpoint
  // loaded as bf16 is zero-copy). Finite values are checked as the float path checks them.
  if (t != Precision::kInt8 && info.dtype == storage_dtype(t) && zero_copy && aligned(src, 2)) {
    const uint16_t* h = reinterpret_cast<const uint16_t*>(src);
    for (int64_t i = 0, n = info.numel(); i < n; ++i)
      if (!is_16bit_finite(h[i], t)) throw Error(label + " contains NaN or Inf at element " + std::to_string(i));
    return w.bind_external(name, WeightMatrix(t, src), file);
  }
  if (spec.shape.size() != 2) throw Error(label + ": only matrices are held in " + precision_name(t));
  const int64_t N = spec.shape[0], K = spec.shape[1];
  float* scale = nullptr;
  void* dst = w.hold(name, t, &scale);
  // Chunks of about 1 Mi floats (4 MiB of scratch): the fp32 copy never exceeds one chunk.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / std::max<int64_t>(K, 1));
  std::vector<float> buf(static_cast<size_t>(std::min(N, chunk) * K));
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t nr = std::min(chunk, N - r0);
    const TensorInfo c = row_chunk(info, r0, nr);
    file->to_f32(c, buf.data());
    for (int64_t i = 0; i < nr * K; ++i)
      if (!std::isfinite(buf[static_cast<size_t>(i)]))
        throw Error(label + " contains NaN or Inf at element " + std::to_string(r0 * K + i));
    if (t == Precision::kInt8) {
      int8_t* q = static_cast<int8_t*>(dst) + r0 * K;
      for (int64_t r = 0; r < nr; ++r) quantize_row_i8(buf.data() + r * K, K, q + r * K, scale + r0 + r);
    } else {
      uint16_t* h = static_cast<uint16_t*>(dst) + r0 * K;
      if (t == Precision::kBF16)
        to_bf16(buf.data(), h, nr * K);
      else
        to_f16(buf.data(), h, nr * K);
      for (int64_t i = 0; i < nr * K; ++i)  // |w| > 65504 has no f16 value: refuse, do not store Inf
        if (!is_16bit_finite(h[i], t))
          throw Error(label + ": element " + std::to_string(r0 * K + i) + " (" +
                      std::to_string(buf[static_cast<size_t>(i)]) + ") is outside the range of " + precision_name(t) +
                      (t == Precision::kF16 ? " (|x| <= 65504): load it as bf16 or f32" : ""));
    }
    file->release(c);  // the source pages are not needed again: keep them out of the RSS
  }
}

void load_stored(Weights& w, const std::string& name, Precision t, const std::shared_ptr<SafeTensorsFile>& file,
                 const TensorInfo& info, const TensorInfo* scale_info, bool zero_copy, const std::string& label) {
  const ParamSpec& spec = w.spec(name);
  const uint8_t* src = file->data(info);
  const int64_t n = info.numel();
  if (t == Precision::kInt8) {
    if (!scale_info) throw Error(label + ": int8 tensor without its scale tensor");
    const int64_t N = spec.shape[0];
    const int8_t* q = reinterpret_cast<const int8_t*>(src);
    for (int64_t i = 0; i < n; ++i)
      if (q[i] == -128)
        throw Error(label + ": value -128 at element " + std::to_string(i) +
                    " is outside the symmetric int8 range [-127, 127] of the scheme");
    const std::string slabel = file->path() + ": tensor '" + scale_info->name + "'";
    std::vector<float> sc = file->to_f32(scale_info->name);
    for (int64_t r = 0; r < N; ++r) {
      const float s = sc[static_cast<size_t>(r)];
      if (!std::isfinite(s)) throw Error(slabel + ": scale of row " + std::to_string(r) + " is NaN or Inf");
      if (s < 0.0f)
        throw Error(slabel + ": scale of row " + std::to_string(r) + " is negative (" + std::to_string(s) +
                    "); scales are max|w| / 127 >= 0");
      // max|w| / 127 of a finite float is at most FLT_MAX / 127; a larger scale makes 127 · scale
      // (a weight, and every product with it) overflow to Inf and the outputs NaN.
      if (s > std::numeric_limits<float>::max() / 127.0f)
        throw Error(slabel + ": scale of row " + std::to_string(r) + " is " + std::to_string(s) +
                    ", beyond FLT_MAX / 127 (127 x scale would overflow float); scales are max|w| / 127 of finite "
                    "float weights");
    }
    const float* s_in_place = zero_copy ? file->f32_in_place(*scale_info) : nullptr;
    if (zero_copy && s_in_place) return w.bind_external(name, WeightMatrix(t, src, s_in_place), file);
    float* scale = nullptr;
    void* dst = w.hold(name, t, &scale);
    std::memcpy(dst, src, static_cast<size_t>(n));
    std::copy(sc.begin(), sc.end(), scale);
    return;
  }
  // 16-bit: every value finite (as the float path requires).
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    if (!is_16bit_finite(h, t)) throw Error(label + " contains NaN or Inf at element " + std::to_string(i));
  }
  if (zero_copy && aligned(src, 2)) return w.bind_external(name, WeightMatrix(t, src), file);
  std::memcpy(w.hold(name, t), src, static_cast<size_t>(n) * 2);
}

}  // namespace modernbert::lowp
