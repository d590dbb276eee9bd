// `modernbert bench --dtype` (#15): the JSON line names the dtype the weights are held in, the GEMM
// path it runs on this CPU and the bytes the weights occupy as held; a reduced-precision run
// holds fewer bytes than f32 and its hidden states stay close to f32's; a bad --dtype is a clear
// error; a list of dtypes gives a line each, the later ones paired with the first. No timing
// assertions (a speedup is only checked to be a positive, ordered summary of the rounds).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "modernbert/safetensors.h"
#include "test_util.h"

namespace {

using mbtest::cli;
using mbtest::run_command;

using mbtest::last_json_line;

// Minimum over tokens of the cosine between two [T, H] hidden states.
double min_token_cosine(const std::vector<float>& a, const std::vector<float>& b, size_t H) {
  double worst = 1.0;
  for (size_t t = 0; t * H < a.size(); ++t) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t h = 0; h < H; ++h) {
      const double x = a[t * H + h], y = b[t * H + h];
      ab += x * y;
      aa += x * x;
      bb += y * y;
    }
    worst = std::min(worst, ab / std::sqrt(aa * bb));
  }
  return worst;
}

class BenchDtype : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(tmp_.path().empty());
    auto r = run_command(cli() + " init --preset tiny --seed 21 --out " + (tmp_ / "model"));
    ASSERT_EQ(r.status, 0) << r.output;
    std::ofstream f(tmp_ / "in.jsonl");
    for (int s = 0; s < 3; ++s) {
      f << "{\"input_ids\": [";
      for (int k = 0; k < 20 + 7 * s; ++k) f << (k ? ", " : "") << (k * 37 + s * 11 + 5) % 50000;
      f << "]}\n";
    }
  }
  // Runs bench with `flags`, returns the JSON line; the hidden states go to h_<tag>.safetensors.
  nlohmann::json bench(const std::string& flags, const std::string& tag, int* status = nullptr,
                       std::string* output = nullptr) {
    auto r = run_command(cli() + " bench --model " + (tmp_ / "model") + " --input " + (tmp_ / "in.jsonl") +
                         " --threads 2 --warmup 0 --repeat 1 --dump-hidden " + (tmp_ / ("h_" + tag + ".safetensors")) +
                         " " + flags);
    if (status) *status = r.status;
    if (output) *output = r.output;
    if (r.status != 0) return {};
    return last_json_line(r.output);
  }
  std::vector<float> hidden(const std::string& tag) {
    auto st = modernbert::SafeTensorsFile::open(tmp_ / ("h_" + tag + ".safetensors"));
    return st->to_f32("last_hidden_state");
  }
  mbtest::TempDir tmp_{"bench_dtype"};
};

TEST_F(BenchDtype, HelpListsDtype) {
  auto r = run_command(cli() + " bench --help");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("--dtype"), std::string::npos);
}

TEST_F(BenchDtype, DefaultIsF32AndNamesItsPath) {
  nlohmann::json d = bench("", "default");
  nlohmann::json f = bench("--dtype f32", "f32");
  ASSERT_FALSE(d.is_null());
  ASSERT_FALSE(f.is_null());
  for (const auto* j : {&d, &f}) {
    EXPECT_EQ((*j)["dtype"], "f32");
    EXPECT_EQ((*j)["quantized_checkpoint"], false);
    ASSERT_TRUE((*j)["linear_path"].is_string());
    EXPECT_FALSE((*j)["linear_path"].get<std::string>().empty());
    EXPECT_GT((*j)["weights_mib"].get<double>(), 0);
  }
  EXPECT_EQ(hidden("default"), hidden("f32"));  // the default is f32, exactly
}

TEST_F(BenchDtype, RejectsUnknownDtype) {
  int status = 0;
  std::string out;
  bench("--dtype int4", "bad", &status, &out);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("--dtype must be f32, bf16, f16 or int8"), std::string::npos) << out;
  EXPECT_NE(out.find("int4"), std::string::npos) << out;
}

// Every reduced precision: named in the JSON, at most about half the bytes of f32 held (2 bytes a
// linear weight / embedding for bf16 and f16; int8 linears 1 byte + a row scale, embeddings bf16 —
// the tiny model is mostly its embedding table), hidden states close to f32's.
TEST_F(BenchDtype, ReducedPrecisionHoldsLessAndStaysClose) {
  nlohmann::json f = bench("--dtype f32", "f32");
  ASSERT_FALSE(f.is_null());
  const double f32_mib = f["weights_mib"].get<double>();
  const std::vector<float> ref = hidden("f32");
  auto st = modernbert::SafeTensorsFile::open(tmp_ / "h_f32.safetensors");
  const size_t H = static_cast<size_t>(st->at("last_hidden_state").shape[1]);
  for (const char* dt : {"bf16", "f16", "int8"}) {
    SCOPED_TRACE(dt);
    int status = 0;
    std::string out;
    nlohmann::json j = bench(std::string("--dtype ") + dt, dt, &status, &out);
    ASSERT_EQ(status, 0) << out;
    EXPECT_EQ(j["dtype"].get<std::string>(), std::string(dt));
    ASSERT_TRUE(j["linear_path"].is_string());
    EXPECT_FALSE(j["linear_path"].get<std::string>().empty());
    const double mib = j["weights_mib"].get<double>();
    EXPECT_LT(mib, 0.55 * f32_mib) << mib << " vs f32 " << f32_mib;
    EXPECT_GT(min_token_cosine(ref, hidden(dt), H), 0.99);
  }
}

// --dtype f32,bf16,f32: one line per entry in the given order, each with its own passes; the later
// ones carry "paired" over the first (an A/A pair included); lists that cannot run are clear errors.
TEST_F(BenchDtype, ListTimesEachInterleavedAndPairsWithTheFirst) {
  const std::string base = cli() + " bench --model " + (tmp_ / "model") + " --input " + (tmp_ / "in.jsonl") +
                           " --threads 2 --warmup 0 --repeat 3";
  auto r = run_command(base + " --dtype f32,bf16,f32");
  ASSERT_EQ(r.status, 0) << r.output;
  std::vector<nlohmann::json> lines;
  std::istringstream in(r.output);
  for (std::string l; std::getline(in, l);)
    if (!l.empty() && l.front() == '{') lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 3u) << r.output;
  const char* want[] = {"f32", "bf16", "f32"};
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    const nlohmann::json& j = lines[i];
    EXPECT_EQ(j["dtype"], want[i]);
    EXPECT_EQ(j["models_loaded"], 3);
    EXPECT_EQ(j["seconds_all"].size(), 3u);
    EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
    EXPECT_EQ(j["peak_rss_mib"], lines[0]["peak_rss_mib"]);  // the process's, every model loaded
    if (i == 0) {
      EXPECT_FALSE(j.contains("paired"));
      continue;
    }
    ASSERT_TRUE(j.contains("paired"));
    const nlohmann::json& p = j["paired"];
    EXPECT_EQ(p["over"], "f32");
    EXPECT_EQ(p["rounds"], 3);
    const double lo = p["speedup_min"], mid = p["speedup_median"], hi = p["speedup_max"];
    EXPECT_GT(lo, 0.0);
    EXPECT_LE(lo, mid);
    EXPECT_LE(mid, hi);
    // The median of the per-round ratios lies within the ratios' range computed here from the passes.
    std::vector<double> ratio;
    for (size_t k = 0; k < 3; ++k)
      ratio.push_back(lines[0]["seconds_all"][k].get<double>() / j["seconds_all"][k].get<double>());
    std::sort(ratio.begin(), ratio.end());
    EXPECT_DOUBLE_EQ(mid, ratio[1]);
    EXPECT_DOUBLE_EQ(lo, ratio[0]);
    EXPECT_DOUBLE_EQ(hi, ratio[2]);
  }
  // A single dtype prints one line without the list's fields.
  auto one = run_command(base + " --dtype bf16");
  ASSERT_EQ(one.status, 0) << one.output;
  const nlohmann::json j = last_json_line(one.output);
  EXPECT_FALSE(j.contains("models_loaded"));
  EXPECT_FALSE(j.contains("paired"));
  // Errors: an empty entry, an unknown one, and a dump of the hidden states (whose dtype's?).
  for (const std::string& bad :
       {std::string("--dtype f32,"), std::string("--dtype ,bf16"), std::string("--dtype f32,int4"),
        "--dtype f32,bf16 --dump-hidden " + (tmp_ / "h_list.safetensors")}) {
    SCOPED_TRACE(bad);
    auto e = run_command(base + " " + bad);
    EXPECT_NE(e.status, 0) << e.output;
    EXPECT_NE(e.output.find("--dtype"), std::string::npos) << e.output;
  }
  EXPECT_FALSE(std::filesystem::exists(tmp_ / "h_list.safetensors"));
}

}  // namespace
