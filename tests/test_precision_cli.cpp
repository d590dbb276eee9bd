// --dtype on the command line (#15): the flag reaches the loader of every inference command, a
// quantized checkpoint loads as its own type, bad values are refused, and `info --system` names the
// path of every dtype. The accuracy bounds per dtype are in test_precision.cpp; the kernels against
// their references in test_kernels_lowp.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "modernbert/safetensors.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;

namespace {

using mbtest::jsonl;

std::string write(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
  return path;
}

// One tiny model (real vocabulary and tokenizer, MLM + 3-way classifier) and one input file for
// the whole suite.
struct Fixture {
  mbtest::TempDir tmp{"precision_cli"};
  std::string model, input;
  Fixture() {
    model = tmp / "m";
    auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 21 --heads mlm,cls:3 --out " + model);
    EXPECT_EQ(r.status, 0) << r.output;
    mbtest::run_command("cp " + mbtest::tokenizer_json() + " " + model + "/");
    input = write(tmp / "in.jsonl",
                  "{\"text\": \"The quick brown fox jumps over the lazy dog.\"}\n"
                  "{\"text\": \"Reduced precision keeps the weights in sixteen or eight bits.\"}\n"
                  "{\"text\": \"short\"}\n");
  }
};
Fixture& fx() {
  static Fixture f;
  return f;
}

// last_hidden_state [T, H] of `encode` on the suite's input, with extra flags.
std::vector<float> encode_hidden(const std::string& model, const std::string& flags, const std::string& tag) {
  const std::string out = fx().tmp / ("enc_" + tag + ".safetensors");
  auto r = mbtest::run_command(mbtest::cli() + " encode --model " + model + " --input " + fx().input + " --output " +
                               out + " " + flags + " 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  if (r.status != 0) return {};
  return SafeTensorsFile::open(out)->to_f32("last_hidden_state");
}

// The smallest cosine between rows of a and b (rows of `width`).
double min_row_cosine(const std::vector<float>& a, const std::vector<float>& b, size_t width) {
  double worst = 1.0;
  for (size_t r = 0; r * width < a.size(); ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t c = 0; c < width; ++c) {
      const double x = a[r * width + c], y = b[r * width + c];
      ab += x * y, aa += x * x, bb += y * y;
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  return worst;
}

}  // namespace

TEST(PrecisionCli, UnknownDtypeIsRefusedByEveryInferenceCommand) {
  const std::string m = fx().model, in = fx().input;
  for (const std::string cmd : {"encode", "embed", "classify", "fill-mask", "eval", "bench", "serve"}) {
    SCOPED_TRACE(cmd);
    std::string line = mbtest::cli() + " " + cmd + " --model " + m + " --dtype f17";
    if (cmd == "eval")
      line += " --task classification --data " + fx().tmp.path();
    else if (cmd != "serve" && cmd != "fill-mask")
      line += " --input " + in;
    if (cmd == "encode")
      line += " --output " + fx().tmp / "never.safetensors";
    else if (cmd == "fill-mask")
      line += " 'a [MASK] b'";
    auto r = mbtest::run_command(line);
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("f17"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("bf16"), std::string::npos) << r.output;  // the message lists the choices
  }
}

TEST(PrecisionCli, InfoSystemNamesThePathOfEveryDtype) {
  auto r = mbtest::run_command(mbtest::cli() + " info --system --json");
  ASSERT_EQ(r.status, 0) << r.output;
  const json j = jsonl(r.output).at(0);
  EXPECT_FALSE(j.at("cpu").get<std::string>().empty());
  EXPECT_TRUE(j.at("isa").at("avx2").is_boolean());
  for (const char* d : {"f32", "bf16", "f16", "int8"}) {
    SCOPED_TRACE(d);
    const std::string path = j.at("linear_path").at(d).get<std::string>();
    EXPECT_FALSE(path.empty());
    EXPECT_EQ(path.find("not implemented"), std::string::npos) << path;
  }
  // The bf16 path rounds activations exactly when it runs on native bf16 dot products.
  const std::string bf16 = j.at("linear_path").at("bf16").get<std::string>();
  EXPECT_EQ(j.at("bf16_rounds_activations").get<bool>(), bf16.find("bf16 x bf16") != std::string::npos) << bf16;
  // Attention: fp32 for f32 and f16 weights; bf16 products for bf16 and int8 weights exactly when
  // the bf16 linears are native. 16-bit weights whose linears widen them (f16; bf16 when not
  // native) hold q, k, v and the output in their type (the widening activation stream).
  const bool native = j.at("bf16_rounds_activations").get<bool>();
  for (const char* d : {"f32", "bf16", "f16", "int8"}) {
    const std::string att = j.at("attention_path").at(d).get<std::string>();
    const std::string sd = d;
    const bool want_bf16 = native && (sd == "bf16" || sd == "int8");
    const bool widening = sd == "f16" || (sd == "bf16" && !native);
    EXPECT_EQ(att.rfind("bf16 products on ", 0) == 0, want_bf16) << d << ": " << att;
    if (widening) {
      EXPECT_EQ(att, "fp32 (q, k, v and the output held in " + sd + ")") << d;
    } else if (!want_bf16) {
      EXPECT_EQ(att, "fp32") << d;
    }
  }
  auto t = mbtest::run_command(mbtest::cli() + " info --system");
  ASSERT_EQ(t.status, 0) << t.output;
  EXPECT_NE(t.output.find("--dtype int8"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("; attention: "), std::string::npos) << t.output;
  EXPECT_NE(mbtest::run_command(mbtest::cli() + " info --system " + fx().model).status, 0);
}

TEST(PrecisionCli, EncodeRunsInTheRequestedDtype) {
  const std::string m = fx().model;
  const auto f32 = encode_hidden(m, "", "default");
  ASSERT_FALSE(f32.empty());
  EXPECT_EQ(encode_hidden(m, "--dtype f32", "f32"), f32);  // f32 is the default, exactly
  for (const char* d : {"bf16", "f16", "int8"}) {
    SCOPED_TRACE(d);
    const auto got = encode_hidden(m, std::string("--dtype ") + d, d);
    ASSERT_EQ(got.size(), f32.size());
    EXPECT_NE(got, f32);                            // the flag took effect: the arithmetic differs ...
    EXPECT_GT(min_row_cosine(got, f32, 64), 0.99);  // ... within a loose bound (tight ones: test_precision)
  }
}

TEST(PrecisionCli, QuantizedCheckpointLoadsAsItsOwnType) {
  const std::string m = fx().model;
  for (const char* d : {"int8", "bf16"}) {
    SCOPED_TRACE(d);
    const std::string q = fx().tmp / (std::string("q_") + d);
    auto r = mbtest::run_command(mbtest::cli() + " quantize --model " + m + " --out " + q + " --dtype " + d);
    ASSERT_EQ(r.status, 0) << r.output;
    // No --dtype: the checkpoint's type, bitwise the same as converting the float checkpoint at load.
    EXPECT_EQ(encode_hidden(q, "", std::string("q_") + d), encode_hidden(m, std::string("--dtype ") + d, d));
    // The commands read it too (tokenizer copied along).
    auto e = mbtest::run_command(mbtest::cli() + " embed --model " + q + " --input " + fx().input + " 2>/dev/null");
    ASSERT_EQ(e.status, 0) << e.output;
    EXPECT_EQ(jsonl(e.output).size(), 3u);
  }
  // An int8 checkpoint cannot be run as f32: a clear error naming the command that wrote it.
  auto bad = mbtest::run_command(mbtest::cli() + " encode --model " + fx().tmp / "q_int8" + " --input " + fx().input +
                                 " --output " + fx().tmp / "x.safetensors" + " --dtype f32");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("quantize"), std::string::npos) << bad.output;
}
