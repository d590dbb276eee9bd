// Tiny model directories for the modernbert::Model tests (test_inference_api*.cpp), written once per
// test binary by `modernbert init` with the real tokenizer, and helpers that run the CLI on them:
// the CLI's outputs are the reference every Model result is compared with.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "modernbert/file_io.h"
#include "modernbert/safetensors.h"
#include "test_util.h"

namespace mbapi {

using nlohmann::json;

inline void write_file(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

// modules.json + 1_Pooling (+ 2_Dense in 64 -> 8 with bias) + Normalize + prompts.
inline void add_sentence_transformers(const std::string& dir, const std::string& pooling, bool dense,
                                      const std::string& default_prompt) {
  json modules = json::array({{{"idx", 0}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
                              {{"idx", 1}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}}});
  if (dense) modules.push_back({{"idx", 2}, {"path", "2_Dense"}, {"type", "sentence_transformers.models.Dense"}});
  modules.push_back({{"idx", 3}, {"path", "3_Normalize"}, {"type", "sentence_transformers.models.Normalize"}});
  write_file(dir + "/modules.json", modules.dump());
  mbtest::run_command("mkdir -p " + dir + "/1_Pooling " + dir + "/2_Dense");
  write_file(dir + "/1_Pooling/config.json",
             json({{"pooling_mode_" + pooling + "_token" + (pooling == "cls" ? "" : "s"), true}}).dump());
  if (dense) {
    write_file(
        dir + "/2_Dense/config.json",
        R"({"in_features": 64, "out_features": 8, "bias": true, "activation_function": "torch.nn.modules.linear.Identity"})");
    std::vector<float> W(8 * 64), bias(8);
    for (size_t i = 0; i < W.size(); ++i) W[i] = std::sin(0.1f * static_cast<float>(i));
    for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.01f * static_cast<float>(i);
    modernbert::SafeTensorsWriter d;
    d.add_f32("linear.weight", {8, 64}, W.data());
    d.add_f32("linear.bias", {8}, bias.data());
    d.write(dir + "/2_Dense/model.safetensors");
  }
  json st = {{"prompts", {{"query", "search_query: "}, {"document", "search_document: "}}}};
  st["default_prompt_name"] = default_prompt.empty() ? json() : json(default_prompt);
  write_file(dir + "/config_sentence_transformers.json", st.dump());
}

struct Models {
  mbtest::TempDir tmp{"api"};
  std::string mlm_cls3, cls1, tok, st, emb, shortm;  // model directories
  Models() {
    auto make = [&](const std::string& name, const std::string& heads, const std::string& extra = "") {
      const std::string dir = tmp / name;
      auto r = mbtest::run_command(mbtest::cli() + " init " + (extra.empty() ? "--preset tiny" : extra) +
                                   " --seed 21 --heads " + heads + " --out " + dir);
      EXPECT_EQ(r.status, 0) << r.output;
      mbtest::run_command("cp " + mbtest::tokenizer_json() + " " + dir + "/");
      return dir;
    };
    mlm_cls3 = make("mlm_cls3", "mlm,cls:3");  // fill-mask (with clean-up) and a 3-label classifier
    write_file(mlm_cls3 + "/tokenizer_config.json", R"({"clean_up_tokenization_spaces": true})");
    cls1 = make("cls1", "cls:1");  // a cross-encoder: one logit
    tok = make("tok", "token:5");
    st = make("st", "mlm");  // CLS pooling, Dense 64 -> 8, Normalize, a default prompt
    add_sentence_transformers(st, "cls", /*dense=*/true, "document");
    emb = make("emb", "mlm");  // mean pooling, Normalize, prompts without a default
    add_sentence_transformers(emb, "mean", /*dense=*/false, "");
    // max_position_embeddings 32, for the length errors and truncation.
    json cfg = json::parse(modernbert::read_file(cls1 + "/config.json"));
    cfg["max_position_embeddings"] = 32;
    write_file(tmp / "short.json", cfg.dump());
    shortm = make("short", "mlm", "--config " + tmp / "short.json");
  }
};

// One set per test binary, built on first use.
inline const Models& models() {
  static Models m;
  return m;
}

// JSONL {"text": ...} lines (plus "text_pair" when pairs is non-empty), written under the temp dir.
inline std::string input_file(const std::string& name, const std::vector<std::string>& texts,
                              const std::vector<std::string>& pairs = {}) {
  std::string s;
  for (size_t i = 0; i < texts.size(); ++i) {
    json j = {{"text", texts[i]}};
    if (!pairs.empty()) j["text_pair"] = pairs[i];
    s += j.dump() + "\n";
  }
  const std::string path = models().tmp / name;
  write_file(path, s);
  return path;
}

// The JSON lines of `modernbert ARGS` (which must succeed).
inline std::vector<json> cli_jsonl(const std::string& args) {
  auto r = mbtest::run_command(mbtest::cli() + " " + args + " 2>/dev/null");
  EXPECT_EQ(r.status, 0) << args << "\n" << r.output;
  return mbtest::jsonl(r.output);
}

// Batching may differ between the CLI and the API: |got - ref| <= 1e-5 + 1e-4 |ref|.
inline bool close(double got, double ref) { return std::fabs(got - ref) <= 1e-5 + 1e-4 * std::fabs(ref); }

template <class G, class R>
void expect_close(const G& got, const R& ref, const std::string& what) {
  ASSERT_EQ(std::size(got), std::size(ref)) << what;
  size_t i = 0;
  for (auto r = std::begin(ref); r != std::end(ref); ++r, ++i)
    EXPECT_TRUE(close(std::data(got)[i], static_cast<double>(*r)))
        << what << "[" << i << "]: got " << std::data(got)[i] << ", ref " << *r;
}

inline std::vector<double> floats(const json& a) { return a.get<std::vector<double>>(); }

}  // namespace mbapi
