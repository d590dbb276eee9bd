// config.json: both key styles, the staged real config, defaults, aliases, and every invalid value.
#include <gtest/gtest.h>

#include <fstream>

#include "modernbert/config.h"
#include "modernbert/error.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;

namespace {
void expect_field_error(const json& j, const std::string& field) {
  try {
    ModelConfig::from_json(j, "cfg.json");
    FAIL() << "accepted invalid " << field << ": " << j.dump();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'" + field + "'"), std::string::npos) << "error does not name " << field << ": " << msg;
  }
}
}  // namespace

TEST(Config, LegacyKeysAsReleased) {
  // The key set the research->HF converter writes for ModernBERT-base (spec §2.1).
  json j = json::parse(R"({
    "architectures": ["ModernBertForMaskedLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 50281, "classifier_activation": "gelu", "classifier_bias": false, "classifier_dropout": 0.0,
    "classifier_pooling": "mean", "cls_token_id": 50281, "decoder_bias": true, "deterministic_flash_attn": false,
    "embedding_dropout": 0.0, "eos_token_id": 50282, "global_attn_every_n_layers": 3, "global_rope_theta": 160000.0,
    "gradient_checkpointing": false, "hidden_activation": "gelu", "hidden_size": 768, "initializer_cutoff_factor": 2.0,
    "initializer_range": 0.02, "intermediate_size": 1152, "layer_norm_eps": 1e-05, "local_attention": 128,
    "local_rope_theta": 10000.0, "max_position_embeddings": 8192, "mlp_bias": false, "mlp_dropout": 0.0,
    "model_type": "modernbert", "norm_bias": false, "norm_eps": 1e-05, "num_attention_heads": 12,
    "num_hidden_layers": 22, "pad_token_id": 50283, "position_embedding_type": "absolute", "sep_token_id": 50282,
    "tie_word_embeddings": true, "torch_dtype": "float32", "transformers_version": "4.48.0", "vocab_size": 50368})");
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.head_dim(), 64);
  EXPECT_EQ(c.num_hidden_layers, 22);
  ASSERT_EQ(c.layer_types.size(), 22u);
  for (int l = 0; l < 22; ++l) {
    EXPECT_EQ(c.is_global(l), l % 3 == 0) << l;
    EXPECT_EQ(c.rope_theta(l), l % 3 == 0 ? 160000.0 : 10000.0);
    EXPECT_EQ(c.half_window(l), l % 3 == 0 ? -1 : 64);
  }
  EXPECT_EQ(c.classifier_pooling, Pooling::kMean);
  EXPECT_TRUE(c.decoder_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.hidden_activation, Activation::kGelu);
  EXPECT_EQ(c.pad_token_id, 50283);
}

TEST(Config, StagedRealConfigNewStyle) {
  std::string path = mbtest::test_data() + "/modernbert-tokenizer/config_modernbert-base_seqcls-finetune.json";
  ASSERT_TRUE(std::ifstream(path).good()) << path << " missing from the checkout";
  ModelConfig c = ModelConfig::from_file(path);
  EXPECT_EQ(c.hidden_size, 768);
  EXPECT_EQ(c.intermediate_size, 1152);
  EXPECT_EQ(c.num_hidden_layers, 22);
  EXPECT_EQ(c.num_attention_heads, 12);
  EXPECT_EQ(c.vocab_size, 50368);
  EXPECT_EQ(c.local_attention, 128);
  EXPECT_EQ(c.global_rope_theta, 160000.0);
  EXPECT_EQ(c.local_rope_theta, 10000.0);
  EXPECT_EQ(c.problem_type, ProblemType::kSingleLabel);
  EXPECT_EQ(c.classifier_pooling, Pooling::kMean);
  EXPECT_EQ(c.architectures, std::vector<std::string>{"ModernBertForSequenceClassification"});
  for (int l = 0; l < 22; ++l) EXPECT_EQ(c.is_global(l), l % 3 == 0);
  EXPECT_EQ(c.torch_dtype, "float32");  // from "dtype"
}

TEST(Config, RopeParametersAndLayerTypesWin) {
  json j = {{"num_hidden_layers", 4}, {"hidden_size", 64}, {"num_attention_heads", 4},
            {"global_attn_every_n_layers", 3},
            {"layer_types", {"sliding_attention", "full_attention", "full_attention", "sliding_attention"}},
            {"rope_parameters", {{"full_attention", {{"rope_theta", 80000.0}, {"rope_type", "default"}}},
                                 {"sliding_attention", {{"rope_theta", 5000.0}, {"rope_type", "default"}}}}}};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_FALSE(c.is_global(0));
  EXPECT_TRUE(c.is_global(1));
  EXPECT_EQ(c.rope_theta(1), 80000.0);
  EXPECT_EQ(c.rope_theta(0), 5000.0);
}

TEST(Config, DefaultsAndAliases) {
  ModelConfig c = ModelConfig::from_json(json::object());  // HF class defaults
  EXPECT_EQ(c.vocab_size, 50368);
  EXPECT_EQ(c.classifier_pooling, Pooling::kCls);  // class default (released configs say mean)
  EXPECT_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.num_labels(), 2);
  EXPECT_EQ(ModelConfig::from_json({{"layer_norm_eps", 1e-6}}).norm_eps, 1e-6);
  EXPECT_EQ(ModelConfig::from_json({{"layer_norm_eps", 1e-6}, {"norm_eps", 1e-7}}).norm_eps, 1e-7);
  EXPECT_EQ(ModelConfig::from_json({{"hidden_activation", "gelu_pytorch_tanh"}}).hidden_activation, Activation::kGeluTanh);
  EXPECT_EQ(ModelConfig::from_json({{"hidden_activation", "silu"}}).hidden_activation, Activation::kSilu);
  EXPECT_EQ(ModelConfig::from_json({{"hidden_size", 768.0}}).hidden_size, 768);  // integral floats accepted
}

TEST(Config, BiasFlagsLabelsProblemType) {
  json j = {{"attention_bias", true}, {"mlp_bias", true}, {"norm_bias", true}, {"classifier_bias", true},
            {"decoder_bias", false}, {"tie_word_embeddings", false}, {"classifier_pooling", "cls"},
            {"id2label", {{"0", "neg"}, {"1", "neu"}, {"2", "pos"}}},
            {"label2id", {{"neg", 0}, {"neu", 1}, {"pos", 2}}}, {"problem_type", "multi_label_classification"}};
  ModelConfig c = ModelConfig::from_json(j);
  EXPECT_TRUE(c.attention_bias && c.mlp_bias && c.norm_bias && c.classifier_bias);
  EXPECT_FALSE(c.decoder_bias);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_EQ(c.num_labels(), 3);
  EXPECT_EQ(c.id2label.at(2), "pos");
  EXPECT_EQ(c.label2id.at("neu"), 1);
  EXPECT_EQ(c.problem_type, ProblemType::kMultiLabel);
  EXPECT_EQ(c.classifier_pooling, Pooling::kCls);
}

TEST(Config, InvalidValuesNameTheField) {
  expect_field_error({{"hidden_size", 100}, {"num_attention_heads", 12}}, "num_attention_heads");
  expect_field_error({{"hidden_size", 36}, {"num_attention_heads", 12}}, "num_attention_heads");  // head dim 3: odd
  expect_field_error({{"local_attention", 0}}, "local_attention");
  expect_field_error({{"local_attention", -128}}, "local_attention");
  expect_field_error({{"hidden_activation", "gelu_magic"}}, "hidden_activation");
  expect_field_error({{"classifier_activation", 3}}, "classifier_activation");
  expect_field_error({{"num_hidden_layers", 3}, {"layer_types", {"full_attention"}}}, "layer_types");
  expect_field_error({{"layer_types", {"full_attention", "banana"}}, {"num_hidden_layers", 2}}, "layer_types");
  expect_field_error({{"hidden_size", "768"}}, "hidden_size");
  expect_field_error({{"vocab_size", 0}}, "vocab_size");
  expect_field_error({{"norm_eps", -1.0}}, "norm_eps");
  expect_field_error({{"classifier_pooling", "max"}}, "classifier_pooling");
  expect_field_error({{"problem_type", "ranking"}}, "problem_type");
  expect_field_error({{"id2label", {{"zero", "a"}}}}, "id2label");
  expect_field_error({{"id2label", {{"0", "a"}, {"2", "b"}}}}, "id2label");
  expect_field_error({{"model_type", "bert"}}, "model_type");
  expect_field_error({{"pad_token_id", 99999}}, "pad_token_id");
  expect_field_error({{"rope_parameters", {{"full_attention", {{"rope_type", "yarn"}}}}}}, "rope_parameters.full_attention.rope_type");
  expect_field_error({{"tie_word_embeddings", "yes"}}, "tie_word_embeddings");
  EXPECT_THROW(ModelConfig::from_file("/nonexistent/config.json"), Error);
}

TEST(Config, SaveKeepsUnknownKeysAndRoundTrips) {
  mbtest::TempDir tmp("cfg");
  json j = {{"hidden_size", 128}, {"num_attention_heads", 4}, {"num_hidden_layers", 2}, {"my_custom_key", {{"a", 1}}},
            {"transformers_version", "4.48.0"}, {"id2label", {{"0", "x"}, {"1", "y"}}}, {"local_attention", 32}};
  ModelConfig c = ModelConfig::from_json(j);
  c.save(tmp / "config.json");
  ModelConfig back = ModelConfig::from_file(tmp / "config.json");
  EXPECT_EQ(back.raw["my_custom_key"]["a"], 1);
  EXPECT_EQ(back.raw["transformers_version"], "4.48.0");
  EXPECT_EQ(back.hidden_size, 128);
  EXPECT_EQ(back.local_attention, 32);
  EXPECT_EQ(back.id2label, c.id2label);
  EXPECT_EQ(back.layer_types, c.layer_types);
  // Both spellings are written so old and new transformers read the same model.
  EXPECT_EQ(back.raw["global_rope_theta"], 160000.0);
  EXPECT_EQ(back.raw["rope_parameters"]["sliding_attention"]["rope_theta"], 10000.0);
  EXPECT_EQ(back.raw["layer_types"].size(), 2u);
  EXPECT_EQ(back.to_json(), c.to_json());
  // An invalid config is never written.
  c.num_attention_heads = 5;
  EXPECT_THROW(c.save(tmp / "bad.json"), Error);
  EXPECT_FALSE(std::ifstream(tmp / "bad.json").good());
}

TEST(Config, Presets) {
  EXPECT_EQ(ModelConfig::preset("large").hidden_size, 1024);
  EXPECT_EQ(ModelConfig::preset("large").num_hidden_layers, 28);
  EXPECT_EQ(ModelConfig::preset("large").intermediate_size, 2624);
  EXPECT_EQ(ModelConfig::preset("base").num_attention_heads, 12);
  EXPECT_EQ(ModelConfig::preset("tiny").local_attention, 16);
  EXPECT_THROW(ModelConfig::preset("huge"), Error);
}
