// Model directories: init -> save -> load round trips, prefixes, shards, heads, dtypes, sentence-
// transformers files, and every kind of mismatch named in the error. Also the init statistics.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "modernbert/error.h"
#include "modernbert/model_dir.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;

namespace {

ModelConfig small_config(json extra = json::object()) {
  json j = {{"vocab_size", 512}, {"hidden_size", 32}, {"intermediate_size", 48}, {"num_hidden_layers", 3},
            {"num_attention_heads", 4}, {"local_attention", 8}, {"max_position_embeddings", 256},
            {"pad_token_id", 3}, {"cls_token_id", 1}, {"sep_token_id", 2}, {"bos_token_id", 1}, {"eos_token_id", 2}};
  j.update(extra);
  return ModelConfig::from_json(j);
}

void write_json(const std::string& path, const json& j) { std::ofstream(path) << j.dump(2); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ModelDir, SaveLoadRoundTripBitExactF32ZeroCopy) {
  mbtest::TempDir tmp("md");
  ModelConfig cfg = small_config();
  Weights w(cfg, HeadSet::parse("mlm"));
  init_weights(w, 7);
  save_model_dir(tmp.path(), cfg, w);
  LoadedModel m = load_model_dir(tmp.path());
  EXPECT_TRUE(m.weights.heads().mlm);
  EXPECT_EQ(m.stored_dtype, "F32");
  EXPECT_TRUE(m.has_prefix);
  EXPECT_FALSE(m.weights.is_contiguous());  // every F32 tensor is used in place from the mapping
  for (const auto& s : w.specs())
    EXPECT_EQ(0, std::memcmp(w.param(s.name), m.weights.param(s.name), sizeof(float) * s.numel())) << s.name;
  // Copy mode gives the same values in one contiguous buffer.
  LoadOptions copy;
  copy.zero_copy = false;
  LoadedModel c = load_model_dir(tmp.path(), copy);
  EXPECT_TRUE(c.weights.is_contiguous());
  EXPECT_EQ(0, std::memcmp(c.weights.data(), w.data(), sizeof(float) * w.num_params()));
  m.weights.make_contiguous();
  EXPECT_EQ(0, std::memcmp(m.weights.data(), w.data(), sizeof(float) * w.num_params()));
}

TEST(ModelDir, HalfPrecisionCheckpointsConvertOnLoad) {
  for (DType dt : {DType::kBF16, DType::kF16}) {
    mbtest::TempDir tmp("mdhalf");
    ModelConfig cfg = small_config();
    Weights w(cfg, HeadSet::parse("mlm"));
    init_weights(w, 3);
    save_model_dir(tmp.path(), cfg, w, dt);
    LoadedModel m = load_model_dir(tmp.path());
    EXPECT_EQ(m.stored_dtype, dtype_name(dt));
    EXPECT_EQ(m.config.torch_dtype, dt == DType::kBF16 ? "bfloat16" : "float16");
    for (const auto& s : w.specs()) {
      const float* a = w.param(s.name);
      const float* b = m.weights.param(s.name);
      for (int64_t i = 0; i < s.numel(); ++i) {
        float expect = dt == DType::kBF16 ? bf16_to_f32(f32_to_bf16(a[i])) : f16_to_f32(f32_to_f16(a[i]));
        ASSERT_EQ(b[i], expect) << s.name << "[" << i << "]";
      }
    }
  }
}

TEST(ModelDir, BareNamesShardsAndAllHeads) {
  mbtest::TempDir tmp("mdshard");
  ModelConfig cfg = small_config({{"tie_word_embeddings", false}, {"norm_bias", true}, {"attention_bias", true},
                                  {"mlp_bias", true}, {"classifier_bias", true}});
  HeadSet heads = HeadSet::parse("mlm,cls:3");
  Weights w(cfg, heads);
  init_weights(w, 11);
  // Two shards, bare encoder names (as a ModernBertModel save has), heads unprefixed.
  SafeTensorsWriter a, b;
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  size_t i = 0;
  for (const auto& s : w.specs()) {
    std::string name = s.name.rfind("model.", 0) == 0 ? s.name.substr(6) : s.name;
    bool first = (i++ % 2) == 0;
    (first ? a : b).add_f32(name, s.shape, w.param(s.name));
    index["weight_map"][name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  a.write(tmp / "model-00001-of-00002.safetensors");
  b.write(tmp / "model-00002-of-00002.safetensors");
  write_json(tmp / "model.safetensors.index.json", index);
  cfg.architectures = {"ModernBertForMaskedLM", "ModernBertForSequenceClassification"};
  cfg.save(tmp / "config.json");
  LoadedModel m = load_model_dir(tmp.path());
  EXPECT_FALSE(m.has_prefix);
  EXPECT_TRUE(m.weights.heads().mlm);
  EXPECT_EQ(m.weights.heads().classifier, HeadSet::Classifier::kSequence);
  EXPECT_EQ(m.weights.heads().num_labels, 3);
  WeightViews v = m.weights.views();
  EXPECT_NE(v.decoder_w.data, v.tok_embeddings.data);  // untied
  EXPECT_NE(v.head_dense_b, nullptr);
  EXPECT_NE(v.layers[1].attn_norm_b, nullptr);
  EXPECT_EQ(v.layers[0].attn_norm_w, nullptr);  // layer 0 has no attn_norm
  for (const auto& s : w.specs())
    EXPECT_EQ(0, std::memcmp(w.param(s.name), m.weights.param(s.name), sizeof(float) * s.numel())) << s.name;
}

TEST(ModelDir, TokenClassificationHeadFromArchitectures) {
  mbtest::TempDir tmp("mdtok");
  ModelConfig cfg = small_config();
  Weights w(cfg, HeadSet::parse("token:5"));
  init_weights(w, 1);
  save_model_dir(tmp.path(), cfg, w);
  LoadedModel m = load_model_dir(tmp.path());
  EXPECT_FALSE(m.weights.heads().mlm);
  EXPECT_EQ(m.weights.heads().classifier, HeadSet::Classifier::kToken);
  EXPECT_EQ(m.config.id2label.size(), 5u);
  EXPECT_EQ(m.config.architectures, std::vector<std::string>{"ModernBertForTokenClassification"});
}

TEST(ModelDir, MismatchesAreEachNamed) {
  mbtest::TempDir tmp("mdbad");
  ModelConfig cfg = small_config();
  Weights w(cfg, HeadSet::parse("mlm"));
  init_weights(w, 5);
  SafeTensorsWriter wr;
  for (const auto& s : w.specs()) {
    if (s.name == "model.layers.1.mlp.Wo.weight") continue;  // missing
    if (s.name == "model.layers.2.attn.Wqkv.weight") {       // wrong shape
      std::vector<float> z(96 * 31);
      wr.add_f32(s.name, {96, 31}, z.data());
      continue;
    }
    wr.add_f32(s.name, s.shape, w.param(s.name));
  }
  float x = 0;
  wr.add_f32("model.layers.9.extra.weight", {1}, &x);  // unexpected
  wr.write(tmp / "model.safetensors");
  cfg.save(tmp / "config.json");
  std::string msg = error_of([&] { load_model_dir(tmp.path()); });
  EXPECT_NE(msg.find("missing tensor 'model.layers.1.mlp.Wo.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'model.layers.2.attn.Wqkv.weight' has shape [96, 31], expected [96, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("unexpected tensor 'model.layers.9.extra.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("3 problems"), std::string::npos) << msg;
}

TEST(ModelDir, BadFilesGiveClearErrors) {
  mbtest::TempDir tmp("mdfiles");
  EXPECT_NE(error_of([&] { load_model_dir(tmp.path()); }).find("no config.json"), std::string::npos);
  small_config().save(tmp / "config.json");
  EXPECT_NE(error_of([&] { load_model_dir(tmp.path()); }).find("no model.safetensors"), std::string::npos);
  std::ofstream(tmp / "model.safetensors") << "garbage";
  EXPECT_NE(error_of([&] { load_model_dir(tmp.path()); }).find("model.safetensors: invalid safetensors"), std::string::npos);
  // NaN weights are rejected with the tensor named.
  ModelConfig cfg = small_config();
  Weights w(cfg, HeadSet::parse("mlm"));
  init_weights(w, 2);
  w.mutable_param("model.final_norm.weight")[3] = NAN;
  save_model_dir(tmp.path(), cfg, w);
  std::string msg = error_of([&] { load_model_dir(tmp.path()); });
  EXPECT_NE(msg.find("model.final_norm.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("NaN"), std::string::npos) << msg;
  // Mixed prefixed and bare names.
  SafeTensorsWriter wr;
  wr.add_f32("model.final_norm.weight", {32}, w.param("model.final_norm.weight"));
  wr.add_f32("embeddings.norm.weight", {32}, w.param("model.final_norm.weight"));
  wr.write(tmp / "model.safetensors");
  EXPECT_NE(error_of([&] { load_model_dir(tmp.path()); }).find("mix"), std::string::npos);
  // Classifier rows disagree with id2label.
  mbtest::TempDir t2("mdlabels");
  Weights wc(cfg, HeadSet::parse("cls:4"));
  ModelConfig c3 = small_config({{"id2label", {{"0", "a"}, {"1", "b"}, {"2", "c"}}}});
  SafeTensorsWriter w3;
  for (const auto& s : wc.specs()) w3.add_f32(s.name, s.shape, wc.param(s.name));
  w3.write(t2 / "model.safetensors");
  c3.save(t2 / "config.json");
  msg = error_of([&] { load_model_dir(t2.path()); });
  EXPECT_NE(msg.find("4 rows but config id2label has 3"), std::string::npos) << msg;
}

TEST(ModelDir, SentenceTransformersFiles) {
  mbtest::TempDir tmp("mdst");
  ModelConfig cfg = small_config();
  Weights w(cfg, HeadSet{});
  init_weights(w, 9);
  save_model_dir(tmp.path(), cfg, w);
  write_json(tmp / "modules.json", json::array({{{"idx", 0}, {"name", "0"}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
                                                {{"idx", 1}, {"name", "1"}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}},
                                                {{"idx", 2}, {"name", "2"}, {"path", "2_Dense"}, {"type", "sentence_transformers.models.Dense"}},
                                                {{"idx", 3}, {"name", "3"}, {"path", "3_Normalize"}, {"type", "sentence_transformers.models.Normalize"}}}));
  ::mkdir((tmp / "1_Pooling").c_str(), 0755);
  ::mkdir((tmp / "2_Dense").c_str(), 0755);
  write_json(tmp / "1_Pooling/config.json", {{"word_embedding_dimension", 32}, {"pooling_mode_cls_token", false}, {"pooling_mode_mean_tokens", true}});
  write_json(tmp / "2_Dense/config.json", {{"in_features", 32}, {"out_features", 16}, {"bias", false}, {"activation_function", "torch.nn.modules.linear.Identity"}});
  std::vector<float> dw(16 * 32, 0.5f);
  SafeTensorsWriter d;
  d.add_f32("linear.weight", {16, 32}, dw.data());
  d.write(tmp / "2_Dense/model.safetensors");
  write_json(tmp / "config_sentence_transformers.json", {{"prompts", {{"query", "search_query: "}, {"document", "search_document: "}}}, {"default_prompt_name", nullptr}});
  LoadedModel m = load_model_dir(tmp.path());
  const auto& st = m.sentence_transformers;
  EXPECT_TRUE(st.present);
  EXPECT_EQ(st.pooling_mode, "mean");
  EXPECT_TRUE(st.normalize);
  EXPECT_EQ(st.dense_out, 16);
  EXPECT_EQ(st.dense_weight.size(), 16u * 32u);
  EXPECT_EQ(st.prompts.at("query"), "search_query: ");
  EXPECT_FALSE(m.weights.heads().any());
  // A Dense whose weights disagree with its config is named.
  dw.resize(8 * 32);
  SafeTensorsWriter d2;
  d2.add_f32("linear.weight", {8, 32}, dw.data());
  d2.write(tmp / "2_Dense/model.safetensors");
  EXPECT_NE(error_of([&] { load_model_dir(tmp.path()); }).find("linear.weight has shape [8, 32]"), std::string::npos);
}

// Init statistics against the spec's rules (§6.6): truncated normal at +-2 sigma; sigma by rule.
TEST(Init, StatisticsFollowTheSpecRules) {
  ModelConfig cfg = small_config({{"tie_word_embeddings", false}, {"vocab_size", 4096}, {"hidden_size", 128},
                                  {"intermediate_size", 192}, {"num_attention_heads", 4}, {"num_hidden_layers", 6}});
  Weights w(cfg, HeadSet::parse("mlm,cls:7"));
  init_weights(w, 1234);
  const double cutoff = cfg.initializer_cutoff_factor;
  // std of a standard normal truncated at +-c: sqrt(1 - 2 c phi(c) / (2 Phi(c) - 1)).
  const double phi = std::exp(-0.5 * cutoff * cutoff) / std::sqrt(2 * M_PI);
  const double Z = std::erf(cutoff / std::sqrt(2.0));
  const double trunc_factor = std::sqrt(1 - 2 * cutoff * phi / Z);
  int checked = 0;
  for (const auto& s : w.specs()) {
    const float* p = w.param(s.name);
    int64_t n = s.numel();
    double sum = 0, sq = 0, mn = 1e30, mx = -1e30;
    for (int64_t i = 0; i < n; ++i) {
      sum += p[i];
      sq += double(p[i]) * p[i];
      mn = std::min(mn, double(p[i]));
      mx = std::max(mx, double(p[i]));
    }
    double mean = sum / n, sd = std::sqrt(std::max(0.0, sq / n - mean * mean));
    std::string suffix = s.name.substr(s.name.rfind('.') + 1);
    if (s.init == InitRule::kOnes) {
      EXPECT_EQ(mn, 1.0) << s.name;
      EXPECT_EQ(mx, 1.0) << s.name;
      continue;
    }
    if (s.init == InitRule::kZeros) {
      EXPECT_EQ(mn, 0.0) << s.name;
      EXPECT_EQ(mx, 0.0) << s.name;
      continue;
    }
    double sigma = 0;
    if (s.name.find("Wqkv") != std::string::npos || s.name.find("mlp.Wi") != std::string::npos || s.name == "head.dense.weight")
      sigma = 0.02;
    else if (s.name.find("attn.Wo") != std::string::npos || s.name.find("mlp.Wo") != std::string::npos)
      sigma = 0.02 / std::sqrt(2.0 * 6);
    else if (s.name == "model.embeddings.tok_embeddings.weight")
      sigma = 0.02;
    else if (s.name == "decoder.weight" || s.name == "classifier.weight")
      sigma = 1.0 / std::sqrt(128.0);
    ASSERT_GT(sigma, 0) << "no rule for " << s.name;
    EXPECT_NEAR(init_std(cfg, s.init), sigma, 1e-12) << s.name;
    double expect_sd = sigma * trunc_factor;
    EXPECT_NEAR(sd, expect_sd, expect_sd * (n > 10000 ? 0.02 : 0.15)) << s.name;
    EXPECT_LT(std::fabs(mean), 5 * sigma / std::sqrt(double(n))) << s.name;
    EXPECT_LE(mx, cutoff * sigma * (1 + 1e-6)) << s.name;
    EXPECT_GE(mn, -cutoff * sigma * (1 + 1e-6)) << s.name;
    if (n > 10000) {
      EXPECT_GT(mx, 0.97 * cutoff * sigma) << s.name;
      EXPECT_LT(mn, -0.97 * cutoff * sigma) << s.name;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 4 + 4 * 6);  // embeddings, decoder, head.dense, classifier + 4 matrices per layer
}

TEST(Init, SameSeedSameBytesDifferentSeedDifferent) {
  mbtest::TempDir tmp("initcli");
  auto init = [&](const std::string& out, int seed) {
    auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --out " + out + " --seed " + std::to_string(seed));
    ASSERT_EQ(r.status, 0) << r.output;
  };
  init(tmp / "a", 5);
  init(tmp / "b", 5);
  init(tmp / "c", 6);
  EXPECT_EQ(mbtest::run_command("cmp " + tmp / "a/model.safetensors " + tmp / "b/model.safetensors").status, 0);
  EXPECT_NE(mbtest::run_command("cmp " + tmp / "a/model.safetensors " + tmp / "c/model.safetensors").status, 0);
  EXPECT_EQ(mbtest::run_command("cmp " + tmp / "a/config.json " + tmp / "b/config.json").status, 0);
  auto info = mbtest::run_command(mbtest::cli() + " info " + tmp / "a");
  EXPECT_EQ(info.status, 0) << info.output;
  EXPECT_NE(info.output.find("global  theta 160000"), std::string::npos) << info.output;
  EXPECT_NE(info.output.find("local   theta 10000"), std::string::npos) << info.output;
  auto help = mbtest::run_command(mbtest::cli() + " init --help");
  for (const char* flag : {"--preset", "--config", "--out", "--seed", "--heads", "--dtype"})
    EXPECT_NE(help.output.find(flag), std::string::npos) << flag;
  auto bad = mbtest::run_command(mbtest::cli() + " init --preset tiny --out " + tmp / "d" + " --heads cls:0");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("cls:0"), std::string::npos) << bad.output;
  auto bad2 = mbtest::run_command(mbtest::cli() + " info " + tmp / "nope");
  EXPECT_NE(bad2.status, 0);
  EXPECT_NE(bad2.output.find("no config.json"), std::string::npos) << bad2.output;
}
