// Reduced-precision weights (#15) in the model layer: typed Weights storage, conversion of a float
// checkpoint at load (bf16 / f16 / int8), the quantized-checkpoint format written by
// save_quantized_model_dir / `modernbert quantize` (docs/quantized-checkpoints.md) and every way a
// malformed one is refused. The expected values are computed here independently of the loader.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "model/lowp_weights.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/model_dir.h"
#include "modernbert/safetensors.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

ModelConfig small_config(json extra = json::object()) {
  json j = {{"vocab_size", 512},
            {"hidden_size", 32},
            {"intermediate_size", 48},
            {"num_hidden_layers", 3},
            {"num_attention_heads", 4},
            {"local_attention", 8},
            {"max_position_embeddings", 256},
            {"pad_token_id", 3},
            {"cls_token_id", 1},
            {"sep_token_id", 2},
            {"bos_token_id", 1},
            {"eos_token_id", 2}};
  j.update(extra);
  return ModelConfig::from_json(j);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// The rule of docs/quantized-checkpoints.md, written out again.
Precision expected_type(const std::string& n, Precision p) {
  if (p == Precision::kF32) return p;
  const bool linear =
      (n.rfind("model.layers.", 0) == 0 && (ends_with(n, "attn.Wqkv.weight") || ends_with(n, "attn.Wo.weight") ||
                                            ends_with(n, "mlp.Wi.weight") || ends_with(n, "mlp.Wo.weight"))) ||
      n == "head.dense.weight";
  if (linear) return p;
  if (n == "model.embeddings.tok_embeddings.weight" || n == "decoder.weight")
    return p == Precision::kInt8 ? Precision::kBF16 : p;
  return Precision::kF32;
}

// The int8 scheme computed independently: scale = max|w| / 127, q = nearbyint(w / scale) clamped.
void reference_i8(const float* w, int64_t N, int64_t K, std::vector<int8_t>& q, std::vector<float>& scale) {
  q.assign(static_cast<size_t>(N * K), 0);
  scale.assign(static_cast<size_t>(N), 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    float a = 0;
    for (int64_t k = 0; k < K; ++k) a = std::max(a, std::fabs(w[n * K + k]));
    if (a == 0) continue;
    const float s = a / 127.0f;
    scale[static_cast<size_t>(n)] = s;
    for (int64_t k = 0; k < K; ++k) {
      float r = std::nearbyint(w[n * K + k] / s);
      q[static_cast<size_t>(n * K + k)] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, r)));
    }
  }
}

// Checks every parameter of `got` (held in p) against the float weights `src`.
void expect_converted(const Weights& src, const Weights& got, Precision p) {
  for (const auto& s : src.specs()) {
    const Precision t = expected_type(s.name, p);
    ASSERT_EQ(got.param_type(s.name), t) << s.name;
    const float* w = src.param(s.name);
    const WeightMatrix m = got.matrix(s.name);
    const int64_t n = s.numel();
    if (t == Precision::kF32) {
      EXPECT_EQ(0, std::memcmp(w, got.param(s.name), sizeof(float) * n)) << s.name;
    } else if (t == Precision::kInt8) {
      std::vector<int8_t> q;
      std::vector<float> sc;
      reference_i8(w, s.shape[0], s.shape[1], q, sc);
      EXPECT_EQ(0, std::memcmp(q.data(), m.data, static_cast<size_t>(n))) << s.name;
      EXPECT_EQ(0, std::memcmp(sc.data(), m.scale, sizeof(float) * sc.size())) << s.name;
    } else {
      const uint16_t* h = static_cast<const uint16_t*>(m.data);
      int64_t bad = 0;
      for (int64_t i = 0; i < n; ++i) bad += h[i] != (t == Precision::kBF16 ? f32_to_bf16(w[i]) : f32_to_f16(w[i]));
      EXPECT_EQ(bad, 0) << s.name;
    }
  }
}

// Same storage types and the same bytes in both.
void expect_same_bytes(const Weights& a, const Weights& b) {
  for (const auto& s : a.specs()) {
    ASSERT_EQ(a.param_type(s.name), b.param_type(s.name)) << s.name;
    const WeightMatrix x = a.matrix(s.name), y = b.matrix(s.name);
    EXPECT_EQ(0, std::memcmp(x.data, y.data, static_cast<size_t>(s.numel()) * precision_bytes(x.type))) << s.name;
    if (x.type == Precision::kInt8) {
      EXPECT_EQ(0, std::memcmp(x.scale, y.scale, sizeof(float) * static_cast<size_t>(s.shape[0]))) << s.name;
    }
  }
}

// A float model with MLM + a sequence classifier, one all-zero row in a linear (the scale-0 case).
Weights make_model(const ModelConfig& cfg) {
  Weights w(cfg, HeadSet::parse("mlm,cls:3"));
  init_weights(w, 11);
  std::fill_n(w.mutable_param("model.layers.1.mlp.Wo.weight") + 5 * cfg.intermediate_size, cfg.intermediate_size, 0.0f);
  return w;
}

LoadOptions as(Precision p) {
  LoadOptions o;
  o.precision = p;
  return o;
}

// Rewrites DIR/model.safetensors through `edit` (which may add, drop or change tensors and metadata).
struct Rewriter {
  std::vector<std::tuple<std::string, DType, std::vector<int64_t>, std::string>> tensors;
  std::map<std::string, std::string> meta;
  explicit Rewriter(const std::string& dir) {
    auto f = SafeTensorsFile::open(dir + "/model.safetensors");
    meta = f->metadata();
    for (const auto& t : f->tensors())
      tensors.emplace_back(
          t.name, t.dtype, t.shape,
          std::string(reinterpret_cast<const char*>(f->data(t)), static_cast<size_t>(t.end - t.begin)));
  }
  std::tuple<std::string, DType, std::vector<int64_t>, std::string>* find(const std::string& name) {
    for (auto& t : tensors)
      if (std::get<0>(t) == name) return &t;
    return nullptr;
  }
  void drop(const std::string& name) {
    tensors.erase(std::remove_if(tensors.begin(), tensors.end(), [&](const auto& t) { return std::get<0>(t) == name; }),
                  tensors.end());
  }
  void write(const std::string& dir) const {
    SafeTensorsWriter wr;
    for (const auto& [k, v] : meta) wr.set_metadata(k, v);
    for (const auto& [name, dt, shape, bytes] : tensors) wr.add(name, dt, shape, bytes.data());
    wr.write(dir + "/model.safetensors");
  }
};

void copy_dir(const std::string& from, const std::string& to) {
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

}  // namespace

// ---- typed Weights storage ----

TEST(TypedWeights, HeldParametersAndFloatOnlyAccessors) {
  ModelConfig cfg = small_config();
  Weights w(cfg, HeadSet::parse("mlm"));
  const std::string name = "model.layers.0.attn.Wqkv.weight";
  float* scale = nullptr;
  int8_t* q = static_cast<int8_t*>(w.hold(name, Precision::kInt8, &scale));
  ASSERT_NE(q, nullptr);
  ASSERT_NE(scale, nullptr);
  q[0] = 5;
  scale[0] = 0.5f;
  EXPECT_EQ(w.param_type(name), Precision::kInt8);
  EXPECT_FALSE(w.all_f32());
  const WeightMatrix m = w.matrix(name);
  EXPECT_EQ(m.type, Precision::kInt8);
  EXPECT_EQ(static_cast<const int8_t*>(m.data)[0], 5);
  EXPECT_EQ(m.scale[0], 0.5f);
  // float-only accessors name the parameter and its type
  std::string msg = error_of([&] { w.param(name); });
  EXPECT_NE(msg.find(name), std::string::npos) << msg;
  EXPECT_NE(msg.find("int8"), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { w.mutable_param(name); }).find("int8"), std::string::npos);
  EXPECT_NE(error_of([&] { w.make_contiguous(); }).find("int8"), std::string::npos);
  EXPECT_NE(error_of([&] { w.matrix(name).f32(); }).find("int8"), std::string::npos);
  // vectors (norms, biases) stay float32
  EXPECT_NE(error_of([&] { w.hold("model.final_norm.weight", Precision::kBF16); }).find("float32"), std::string::npos);
  // a view carries the type; the model is no longer one contiguous float buffer
  EXPECT_EQ(w.views().layers[0].wqkv.type, Precision::kInt8);
  EXPECT_FALSE(w.is_contiguous());
  // a model whose every parameter has its own storage never allocates the float buffer
  Weights all(cfg, HeadSet::parse("mlm"), /*allocate=*/false);
  for (const auto& s : all.specs()) all.hold(s.name, s.shape.size() == 2 ? Precision::kBF16 : Precision::kF32);
  EXPECT_EQ(all.data(), nullptr);
  EXPECT_EQ(all.views().tok_embeddings.type, Precision::kBF16);
  // storage: 3H*H int8 + 3H scales instead of 3H*H floats
  const size_t f32_bytes = w.num_params() * sizeof(float);
  const int64_t H = cfg.hidden_size;
  EXPECT_EQ(w.storage_bytes(), f32_bytes - static_cast<size_t>(3 * H * H) * 3 + static_cast<size_t>(3 * H) * 4);
}

TEST(TypedWeights, F32ModelUnchanged) {
  ModelConfig cfg = small_config();
  Weights w = make_model(cfg);
  EXPECT_TRUE(w.all_f32());
  EXPECT_TRUE(w.is_contiguous());
  const WeightViews v = w.views();
  EXPECT_TRUE(v.layers[2].wi.is_f32());
  EXPECT_EQ(v.layers[2].wi.f32(), w.param("model.layers.2.mlp.Wi.weight"));
  EXPECT_EQ(v.decoder_w.data, v.tok_embeddings.data);  // tied
  EXPECT_EQ(w.storage_bytes(), w.num_params() * sizeof(float));
}

// ---- conversion at load and the quantized format, per dtype ----

TEST(QuantizeConvert, VectorisedRoundingEqualsIoConversions) {
  // Every 61st float bit pattern (70 M values: all exponents, subnormals, both signs, Inf), NaN
  // skipped (the loader refuses it before converting).
  std::vector<float> x;
  std::vector<uint16_t> h(1 << 20), b(1 << 20);
  x.reserve(1 << 20);
  int64_t bad16 = 0, badb = 0;
  auto flush = [&] {
    lowp::to_f16(x.data(), h.data(), static_cast<int64_t>(x.size()));
    lowp::to_bf16(x.data(), b.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      bad16 += h[i] != f32_to_f16(x[i]);
      badb += b[i] != f32_to_bf16(x[i]);
    }
    x.clear();
  };
  for (uint64_t u = 0; u <= 0xffffffffull; u += 61) {
    uint32_t bits = static_cast<uint32_t>(u);
    float f;
    std::memcpy(&f, &bits, 4);
    if (std::isnan(f)) continue;
    x.push_back(f);
    if (x.size() == (1u << 20)) flush();
  }
  for (float f : {0.0f, -0.0f, 65504.0f, 65520.0f, -65519.99f, 5.96e-8f, 2.98e-8f, 2.9802326e-8f, 1e-45f, 3.4028235e38f,
                  -INFINITY, INFINITY})
    x.push_back(f);
  flush();
  EXPECT_EQ(bad16, 0);
  EXPECT_EQ(badb, 0);
}

TEST(QuantizeConvert, WeightRowQuantizationAgainstDoubleReference) {
  // q = round_half_even(w / s), s = max|w| / 127 (float division, as the scheme states), in
  // [-127, 127]; max|w| taken in double here. A row whose
  // max|w| / 127 underflows to 0 (a few subnormal ulps) and an all-zero row are stored as zeros
  // with scale 0 (what q · scale gives anyway), never 0/0.
  const float sub = std::numeric_limits<float>::denorm_min();
  const std::vector<std::vector<float>> rows = {{0.5f, -1.0f, 0.25f, 0.0f, 1.0f / 254.0f, -3.0f / 254.0f},
                                                {3e38f, -3e38f, 1.0f, 0.0f},
                                                {0.0f, 0.0f, 0.0f},
                                                {sub, -sub, 0.0f, 63 * sub},
                                                {1e-40f, -2e-40f, 0.0f}};
  for (const auto& w : rows) {
    const int64_t K = static_cast<int64_t>(w.size());
    std::vector<int8_t> q(w.size(), 99);
    float scale = -1.0f;
    lowp::quantize_row_i8(w.data(), K, q.data(), &scale);
    double a = 0;
    for (float v : w) a = std::max(a, std::fabs(static_cast<double>(v)));
    const float s_ref = static_cast<float>(a) / 127.0f;
    EXPECT_EQ(scale, s_ref) << w[0];
    for (int64_t k = 0; k < K; ++k) {
      const float r = s_ref == 0.0f ? 0.0f : std::nearbyint(w[k] / s_ref);
      EXPECT_EQ(q[k], static_cast<int8_t>(std::clamp(r, -127.0f, 127.0f))) << "row " << w[0] << " k " << k;
    }
  }
}

TEST(QuantizeLoad, F16OverflowIsRefusedNotStoredAsInf) {
  mbtest::TempDir tmp("quant");
  ModelConfig cfg = small_config();
  Weights w = make_model(cfg);
  w.mutable_param("model.layers.0.attn.Wo.weight")[3] = 70000.0f;
  save_model_dir(tmp.path(), cfg, w);
  std::string msg = error_of([&] { load_model_dir(tmp.path(), as(Precision::kF16)); });
  EXPECT_NE(msg.find("model.layers.0.attn.Wo.weight': element 3 (70000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("load it as bf16 or f32"), std::string::npos) << msg;
  EXPECT_EQ(load_model_dir(tmp.path(), as(Precision::kBF16)).precision, Precision::kBF16);
}

class QuantizeRoundTrip : public ::testing::TestWithParam<std::tuple<Precision, bool>> {};

TEST_P(QuantizeRoundTrip, ConvertAtLoadEqualsQuantizedCheckpoint) {
  const auto [p, tied] = GetParam();
  mbtest::TempDir tmp("quant");
  ModelConfig cfg = small_config({{"tie_word_embeddings", tied}});
  Weights w = make_model(cfg);
  save_model_dir(tmp / "f32", cfg, w);

  // float checkpoint converted at load
  LoadedModel conv = load_model_dir(tmp / "f32", as(p));
  EXPECT_EQ(conv.precision, p);
  EXPECT_FALSE(conv.quantized_checkpoint);
  expect_converted(w, conv.weights, p);
  if (!tied) {
    EXPECT_EQ(conv.weights.param_type("decoder.weight"), p == Precision::kInt8 ? Precision::kBF16 : p);
  }

  // the same from a BF16 / F16 source checkpoint: rounding of the rounded values
  save_model_dir(tmp / "b16", cfg, w, DType::kBF16);
  LoadedModel from16 = load_model_dir(tmp / "b16", as(p));
  Weights wb(cfg, w.heads());
  {
    LoadOptions copy;
    copy.zero_copy = false;
    LoadedModel f = load_model_dir(tmp / "b16", copy);  // the bf16 values widened
    std::memcpy(wb.data(), f.weights.data(), wb.num_params() * sizeof(float));
  }
  expect_converted(wb, from16.weights, p);

  // written and read back: the quantized checkpoint loads as p (auto), with the same bytes
  save_quantized_model_dir(tmp / "q", conv.config, conv.weights, p);
  LoadedModel q = load_model_dir(tmp / "q");
  EXPECT_EQ(q.precision, p);
  EXPECT_TRUE(q.quantized_checkpoint);
  EXPECT_EQ(q.weights.heads().describe(), "mlm+cls:3");
  expect_same_bytes(conv.weights, q.weights);
  // also copied instead of mapped
  LoadOptions copy = as(p);
  copy.zero_copy = false;
  expect_same_bytes(conv.weights, load_model_dir(tmp / "q", copy).weights);

  // the file carries the documented metadata and config
  auto f = SafeTensorsFile::open(tmp / "q/model.safetensors");
  EXPECT_EQ(f->metadata().at("modernbert.precision"), precision_name(p));
  EXPECT_FALSE(f->metadata().at("modernbert.quantization").empty());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const TensorInfo& wqkv = f->at("model.layers.0.attn.Wqkv.weight");
  EXPECT_EQ(wqkv.dtype, p == Precision::kInt8 ? DType::kI8 : p == Precision::kBF16 ? DType::kBF16 : DType::kF16);
  if (p == Precision::kInt8) {
    const TensorInfo& s = f->at("model.layers.0.attn.Wqkv.weight_scale");
    EXPECT_EQ(s.dtype, DType::kF32);
    EXPECT_EQ(s.shape, (std::vector<int64_t>{3 * cfg.hidden_size}));
    EXPECT_EQ(f->at("model.embeddings.tok_embeddings.weight").dtype, DType::kBF16);
  } else {
    EXPECT_EQ(f->find("model.layers.0.attn.Wqkv.weight_scale"), nullptr);
  }
  EXPECT_EQ(f->at("classifier.weight").dtype, DType::kF32);
  EXPECT_EQ(f->at("model.final_norm.weight").dtype, DType::kF32);
  EXPECT_EQ(f->find("decoder.weight") != nullptr, !tied);
  json c = json::parse(read_file(tmp / "q/config.json"));
  EXPECT_EQ(c["quantization_config"]["quant_method"], "modernbert");
  EXPECT_EQ(c["quantization_config"]["precision"], precision_name(p));
  EXPECT_EQ(c["torch_dtype"], p == Precision::kBF16 ? "bfloat16" : p == Precision::kF16 ? "float16" : "float32");
  if (p == Precision::kInt8) {
    EXPECT_EQ(c["quantization_config"]["weights"], "int8 symmetric per output channel");
    EXPECT_EQ(c["quantization_config"]["activations"], "int8 symmetric per token, dynamic");
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, QuantizeRoundTrip,
                         ::testing::Combine(::testing::Values(Precision::kBF16, Precision::kF16, Precision::kInt8),
                                            ::testing::Bool()),
                         [](const auto& param_info) {
                           return std::string(precision_name(std::get<0>(param_info.param))) +
                                  (std::get<1>(param_info.param) ? "_tied" : "_untied");
                         });

TEST(QuantizeLoad, F32PrecisionKeepsTodaysPath) {
  mbtest::TempDir tmp("quant");
  ModelConfig cfg = small_config();
  Weights w = make_model(cfg);
  save_model_dir(tmp.path(), cfg, w);
  LoadedModel m = load_model_dir(tmp.path(), as(Precision::kF32));
  EXPECT_EQ(m.precision, Precision::kF32);
  EXPECT_TRUE(m.weights.all_f32());
  for (const auto& s : w.specs())
    EXPECT_EQ(0, std::memcmp(w.param(s.name), m.weights.param(s.name), sizeof(float) * s.numel())) << s.name;
}

TEST(QuantizeLoad, Int8RefusesLinearsTooWideForExactInt32Sums) {
  // intermediate_size 2^17 (Wo_mlp's K): int32 sums of 127^2 K could overflow, so int8 refuses the
  // model before reading a tensor, naming the other dtypes; bf16 goes on to the tensors (whose
  // shapes no longer match the edited config).
  mbtest::TempDir tmp("quantk");
  ModelConfig cfg = small_config();
  save_model_dir(tmp.path(), cfg, make_model(cfg));
  json c = json::parse(read_file(tmp / "config.json"));
  c["intermediate_size"] = int64_t{1} << 17;
  std::ofstream(tmp / "config.json") << c.dump(2);
  std::string msg = error_of([&] { load_model_dir(tmp.path(), as(Precision::kInt8)); });
  EXPECT_NE(msg.find("intermediate_size 131072 exceed what int8 computes exactly"), std::string::npos) << msg;
  EXPECT_NE(msg.find("load it as bf16, f16 or f32"), std::string::npos) << msg;
  msg = error_of([&] { load_model_dir(tmp.path(), as(Precision::kBF16)); });
  EXPECT_EQ(msg.find("int8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("shape"), std::string::npos) << msg;
}

TEST(QuantizeLoad, NanInFloatCheckpointNamedWhenConverting) {
  mbtest::TempDir tmp("quant");
  ModelConfig cfg = small_config();
  Weights w = make_model(cfg);
  w.mutable_param("model.layers.2.mlp.Wi.weight")[7] = NAN;
  save_model_dir(tmp.path(), cfg, w);
  for (Precision p : {Precision::kBF16, Precision::kInt8}) {
    std::string msg = error_of([&] { load_model_dir(tmp.path(), as(p)); });
    EXPECT_NE(msg.find("model.layers.2.mlp.Wi.weight' contains NaN or Inf at element 7"), std::string::npos) << msg;
  }
}

// ---- refusals: fp32-only users, precision mismatches, malformed files ----

class QuantizedFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    cfg_ = small_config();
    Weights w = make_model(cfg_);
    save_model_dir(tmp_ / "f32", cfg_, w);
    LoadedModel m = load_model_dir(tmp_ / "f32", as(Precision::kInt8));
    save_quantized_model_dir(tmp_ / "int8", m.config, m.weights, Precision::kInt8);
  }
  // A copy of the int8 checkpoint with `edit` applied to its tensors; returns the load error.
  std::string broken(const std::function<void(Rewriter&)>& edit, const LoadOptions& o = {}) {
    const std::string dir = tmp_ / ("bad" + std::to_string(n_++));
    copy_dir(tmp_ / "int8", dir);
    Rewriter r(dir);
    edit(r);
    r.write(dir);
    return error_of([&] { load_model_dir(dir, o); });
  }
  std::string broken_config(const std::function<void(json&)>& edit) {
    const std::string dir = tmp_ / ("badc" + std::to_string(n_++));
    copy_dir(tmp_ / "int8", dir);
    json c = json::parse(read_file(dir + "/config.json"));
    edit(c);
    std::ofstream(dir + "/config.json") << c.dump(2);
    return error_of([&] { load_model_dir(dir); });
  }
  mbtest::TempDir tmp_{"quantf"};
  ModelConfig cfg_;
  int n_ = 0;
};

TEST_F(QuantizedFiles, Fp32OnlyUsersGetAClearError) {
  LoadOptions o;
  o.allow_quantized = false;
  o.zero_copy = false;
  std::string msg = error_of([&] { load_model_dir(tmp_ / "int8", o); });
  EXPECT_NE(msg.find(tmp_ / "int8/model.safetensors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("int8 checkpoint written by `modernbert quantize`"), std::string::npos) << msg;
  EXPECT_NE(msg.find("I8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("original float checkpoint"), std::string::npos) << msg;
}

TEST_F(QuantizedFiles, LoadsOnlyAsItsOwnPrecision) {
  EXPECT_EQ(load_model_dir(tmp_ / "int8", as(Precision::kInt8)).precision, Precision::kInt8);
  for (Precision p : {Precision::kF32, Precision::kBF16, Precision::kF16}) {
    std::string msg = error_of([&] { load_model_dir(tmp_ / "int8", as(p)); });
    EXPECT_NE(msg.find("loads only as int8, not as " + std::string(precision_name(p))), std::string::npos) << msg;
    EXPECT_NE(msg.find("is an int8 checkpoint written by `modernbert quantize`"), std::string::npos) << msg;
    EXPECT_NE(msg.find("original float checkpoint"), std::string::npos) << msg;
    // quantize writes no f32 checkpoint, so the advice for f32 must not name one.
    const std::string advice = "`modernbert quantize --dtype " + std::string(precision_name(p)) + "`";
    if (p == Precision::kF32)
      EXPECT_EQ(msg.find(advice), std::string::npos) << msg;
    else
      EXPECT_NE(msg.find(advice), std::string::npos) << msg;
  }
}

TEST_F(QuantizedFiles, MalformedScalesAndValues) {
  const std::string w0 = "model.layers.0.attn.Wqkv.weight", s0 = w0 + "_scale";
  const int64_t N = 3 * cfg_.hidden_size;
  std::string msg = broken([&](Rewriter& r) { r.drop(s0); });
  EXPECT_NE(msg.find("missing tensor '" + s0 + "'"), std::string::npos) << msg;

  msg = broken([&](Rewriter& r) {
    auto* t = r.find(s0);
    std::get<2>(*t) = {N / 2, 2};
  });
  EXPECT_NE(msg.find("tensor '" + s0 + "' has shape [" + std::to_string(N / 2) + ", 2], expected [" +
                     std::to_string(N) + "]"),
            std::string::npos)
      << msg;

  msg = broken([&](Rewriter& r) {
    auto* t = r.find(s0);
    std::get<1>(*t) = DType::kF16;
    std::get<3>(*t).resize(static_cast<size_t>(N) * 2);
  });
  EXPECT_NE(msg.find("tensor '" + s0 + "' has dtype F16, expected F32"), std::string::npos) << msg;

  for (float bad : {-0.25f, NAN, INFINITY}) {
    msg = broken([&](Rewriter& r) { std::memcpy(std::get<3>(*r.find(s0)).data() + 4 * 9, &bad, 4); });
    EXPECT_NE(msg.find(s0 + "': scale of row 9 is " + std::string(bad < 0 ? "negative" : "NaN or Inf")),
              std::string::npos)
        << msg;
  }
  // Finite, but 127 x scale overflows: every output would be NaN. Just below the bound loads.
  const float huge = 3e38f, largest = std::numeric_limits<float>::max() / 127.0f;
  msg = broken([&](Rewriter& r) { std::memcpy(std::get<3>(*r.find(s0)).data() + 4 * 3, &huge, 4); });
  EXPECT_NE(msg.find(s0 + "': scale of row 3 is "), std::string::npos) << msg;
  EXPECT_NE(msg.find("beyond FLT_MAX / 127"), std::string::npos) << msg;
  EXPECT_EQ(broken([&](Rewriter& r) { std::memcpy(std::get<3>(*r.find(s0)).data() + 4 * 3, &largest, 4); }), "");

  msg = broken([&](Rewriter& r) { std::get<3>(*r.find(w0))[17] = static_cast<char>(-128); });
  EXPECT_NE(msg.find("value -128 at element 17"), std::string::npos) << msg;

  // a scale without an I8 weight
  msg = broken([&](Rewriter& r) {
    std::vector<float> s(static_cast<size_t>(cfg_.vocab_size), 1.0f);
    r.tensors.emplace_back("model.embeddings.tok_embeddings.weight_scale", DType::kF32,
                           std::vector<int64_t>{cfg_.vocab_size},
                           std::string(reinterpret_cast<char*>(s.data()), s.size() * 4));
  });
  EXPECT_NE(msg.find("unexpected tensor 'model.embeddings.tok_embeddings.weight_scale'"), std::string::npos) << msg;

  // norms, biases and the classifier are F32 in a quantized file (docs/quantized-checkpoints.md),
  // never a 16-bit float, though an F32 checkpoint may hold them so
  for (const auto& [name, dt] :
       {std::pair<std::string, DType>{"model.final_norm.weight", DType::kF16}, {"classifier.weight", DType::kBF16}}) {
    msg = broken([&, name = name, dt = dt](Rewriter& r) {
      auto* t = r.find(name);
      std::string& bytes = std::get<3>(*t);
      std::vector<float> v(bytes.size() / 4);
      std::memcpy(v.data(), bytes.data(), bytes.size());
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) h[i] = dt == DType::kF16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
      bytes.assign(reinterpret_cast<const char*>(h.data()), h.size() * 2);
      std::get<1>(*t) = dt;
    });
    EXPECT_NE(msg.find("tensor '" + name + "' has dtype " + dtype_name(dt) +
                       ", expected F32 (an int8 checkpoint stores it so)"),
              std::string::npos)
        << msg;
  }

  // a weight in the wrong dtype for the checkpoint's precision
  msg = broken([&](Rewriter& r) {
    auto* t = r.find(w0);
    std::get<1>(*t) = DType::kU8;
  });
  EXPECT_NE(msg.find("tensor '" + w0 + "' has dtype U8, expected I8"), std::string::npos) << msg;
}

TEST_F(QuantizedFiles, MalformedMetadataAndConfig) {
  std::string msg = broken([&](Rewriter& r) { r.meta.erase("modernbert.precision"); });
  EXPECT_NE(msg.find("is I8, but the file has no 'modernbert.precision' metadata"), std::string::npos) << msg;
  msg = broken([&](Rewriter& r) { r.meta["modernbert.precision"] = "int4"; });
  EXPECT_NE(msg.find("metadata 'modernbert.precision' is 'int4', expected int8, bf16 or f16"), std::string::npos)
      << msg;
  msg = broken([&](Rewriter& r) { r.meta.erase("modernbert.quantization"); });
  EXPECT_NE(msg.find("'modernbert.quantization' is missing"), std::string::npos) << msg;

  msg = broken_config([](json& c) { c.erase("quantization_config"); });
  EXPECT_NE(msg.find("has no \"quantization_config\""), std::string::npos) << msg;
  msg = broken_config([](json& c) { c["quantization_config"]["precision"] = "bf16"; });
  EXPECT_NE(msg.find("quantization_config.precision is 'bf16'"), std::string::npos) << msg;
  msg = broken_config([](json& c) { c["quantization_config"]["quant_method"] = "gptq"; });
  EXPECT_NE(msg.find("quant_method is 'gptq'"), std::string::npos) << msg;
  msg = broken_config([](json& c) { c["quantization_config"] = 3; });
  EXPECT_NE(msg.find("\"quantization_config\" must be an object"), std::string::npos) << msg;

  // a float checkpoint whose config claims quantization
  const std::string dir = tmp_ / "f32claims";
  copy_dir(tmp_ / "f32", dir);
  json c = json::parse(read_file(dir + "/config.json"));
  c["quantization_config"] = {{"quant_method", "modernbert"}, {"precision", "int8"}};
  std::ofstream(dir + "/config.json") << c.dump(2);
  msg = error_of([&] { load_model_dir(dir); });
  EXPECT_NE(msg.find("declares a modernbert quantization_config"), std::string::npos) << msg;
}

TEST_F(QuantizedFiles, TruncatedOrGarbageFileNeverCrashes) {
  const std::string dir = tmp_ / "trunc";
  copy_dir(tmp_ / "int8", dir);
  fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") / 2);
  EXPECT_NE(error_of([&] { load_model_dir(dir); }).find("invalid safetensors"), std::string::npos);
}

// ---- the CLI command ----

TEST(QuantizeCli, WritesCompleteDirectoryAndRefusesExistingOut) {
  mbtest::TempDir tmp("quantcli");
  const std::string src = tmp / "src";
  auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 21 --heads mlm --out " + src);
  ASSERT_EQ(r.status, 0) << r.output;
  fs::copy_file(mbtest::tokenizer_json(), src + "/tokenizer.json");
  std::ofstream(src + "/modules.json")
      << R"([{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},)"
      << R"({"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}])";
  fs::create_directory(src + "/1_Pooling");
  std::ofstream(src + "/1_Pooling/config.json") << R"({"pooling_mode_mean_tokens": true})";
  std::ofstream(src + "/config_sentence_transformers.json") << R"({"prompts": {"query": "q: "}})";
  fs::create_directory(src + "/onnx");
  std::ofstream(src + "/onnx/model.onnx") << "x";
  std::ofstream(src + "/pytorch_model.bin") << "x";

  const std::string out = tmp / "out";
  r = mbtest::run_command(mbtest::cli() + " quantize --model " + src + " --out " + out + " --dtype int8");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("MiB"), std::string::npos) << r.output;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "modules.json", "1_Pooling/config.json",
                        "config_sentence_transformers.json"})
    EXPECT_TRUE(fs::exists(out + "/" + f)) << f;
  EXPECT_FALSE(fs::exists(out + "/onnx"));
  EXPECT_FALSE(fs::exists(out + "/pytorch_model.bin"));
  EXPECT_LT(fs::file_size(out + "/model.safetensors"), fs::file_size(src + "/model.safetensors") / 2);
  LoadedModel m = load_model_dir(out);
  EXPECT_EQ(m.precision, Precision::kInt8);
  EXPECT_TRUE(m.quantized_checkpoint);
  EXPECT_EQ(m.sentence_transformers.pooling_mode, "mean");
  // the same bytes as converting at load
  expect_same_bytes(load_model_dir(src, as(Precision::kInt8)).weights, m.weights);

  // an existing, non-empty --out is refused and left alone; no temporary directory stays behind
  r = mbtest::run_command(mbtest::cli() + " quantize --model " + src + " --out " + out + " --dtype bf16");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("exists and is not empty"), std::string::npos) << r.output;
  EXPECT_EQ(load_model_dir(out).precision, Precision::kInt8);
  // an empty one is fine
  fs::create_directory(tmp / "empty");
  r = mbtest::run_command(mbtest::cli() + " quantize --model " + src + " --out " + (tmp / "empty") + " --dtype f16");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(load_model_dir(tmp / "empty").precision, Precision::kF16);

  // a quantized input is refused (the command reads float checkpoints)
  r = mbtest::run_command(mbtest::cli() + " quantize --model " + out + " --out " + (tmp / "again") + " --dtype bf16");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("written by `modernbert quantize`"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "again"));
  // a bad dtype
  r = mbtest::run_command(mbtest::cli() + " quantize --model " + src + " --out " + (tmp / "x") + " --dtype f32");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--dtype must be int8, bf16 or f16"), std::string::npos) << r.output;
  // --out that rename(2) cannot replace is refused before any work: empty, ".", a link (to an
  // empty directory, or dangling); the link and its target are left as they were
  fs::create_directory(tmp / "cwd");
  fs::create_directory(tmp / "target");
  fs::create_directory_symlink(tmp / "target", tmp / "link");
  fs::create_directory_symlink(tmp / "nowhere", tmp / "dangling");
  const std::pair<std::string, std::string> bad_outs[] = {{"''", "--out is empty"},
                                                          {".", "names the current, parent or root directory"},
                                                          {tmp / "link", "is a symbolic link"},
                                                          {tmp / "dangling", "is a symbolic link"}};
  for (const auto& [bad, why] : bad_outs) {
    r = mbtest::run_command("cd " + (tmp / "cwd") + " && " + mbtest::cli() + " quantize --model " + src + " --out " +
                            bad + " --dtype int8");
    EXPECT_NE(r.status, 0) << bad;
    EXPECT_NE(r.output.find(why), std::string::npos) << bad << ": " << r.output;
  }
  EXPECT_TRUE(fs::is_empty(tmp / "cwd"));
  EXPECT_TRUE(fs::is_symlink(tmp / "link"));
  EXPECT_TRUE(fs::is_empty(tmp / "target"));
  EXPECT_TRUE(fs::is_symlink(fs::symlink_status(tmp / "dangling")));
  for (const auto& e : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST(QuantizeCli, InterruptLeavesNoTemporaryDirectory) {
  // SIGINT / SIGTERM at several moments of a conversion (a 31 M-parameter model: ~0.1-0.5 s): the
  // run either ends complete (status 0, --out loads) or interrupted (status 128 + signal, no --out),
  // and never leaves its temporary .<out>.tmp-* directory behind.
  mbtest::TempDir tmp("quantsig");
  const std::string src = tmp / "src";
  std::ofstream(tmp / "cfg.json") << R"({"hidden_size": 512, "num_hidden_layers": 12, "num_attention_heads": 8,
    "intermediate_size": 768, "vocab_size": 8192, "max_position_embeddings": 1024, "pad_token_id": 0,
    "bos_token_id": 1, "eos_token_id": 2, "cls_token_id": 1, "sep_token_id": 2, "mask_token_id": 3})";
  auto r = mbtest::run_command(mbtest::cli() + " init --config " + (tmp / "cfg.json") + " --heads mlm --out " + src);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* sig : {"INT", "TERM"}) {
    int interrupted = 0;
    for (const char* delay : {"0.02", "0.05", "0.1", "0.15", "0.25", "0.4"}) {
      const std::string out = tmp / "q";
      // The shell reports the command's status; a process the signal killed outright (before the
      // handler was installed) also shows as 128 + signal.
      // (set -m: a non-interactive shell starts background jobs with SIGINT ignored, and quantize
      // keeps an ignored signal ignored, as `nohup` users expect)
      r = mbtest::run_command("bash -c 'set -m; " + mbtest::cli() + " quantize --model " + src + " --out " + out +
                              " --dtype int8 & p=$!; sleep " + delay + "; kill -" + sig + " $p 2>/dev/null; wait $p'");
      const int want = std::string(sig) == "INT" ? 130 : 143;
      if (r.status == 0) {
        EXPECT_EQ(load_model_dir(out).precision, Precision::kInt8) << sig << " " << delay;
      } else {
        EXPECT_EQ(r.status, want) << sig << " " << delay << ": " << r.output;
        EXPECT_FALSE(fs::exists(out)) << sig << " " << delay;
        ++interrupted;
      }
      for (const auto& e : fs::directory_iterator(tmp.path()))
        EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos)
            << sig << " " << delay << ": " << e.path();
      fs::remove_all(out);
    }
    EXPECT_GT(interrupted, 0) << "SIG" << sig << " interrupted no run: the conversion outran every signal";
  }
}
