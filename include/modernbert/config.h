// ModernBERT configuration: the fields of a Hugging Face `config.json` (spec §1–2), in both the
// legacy spelling (global_attn_every_n_layers, global_rope_theta, local_rope_theta) and the newer one
// (layer_types, rope_parameters). Unknown keys are kept in `raw` and written back on save.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modernbert {

enum class LayerType { kFullAttention, kSlidingAttention };
enum class Activation { kGelu, kGeluTanh, kRelu, kSilu };  // hidden_activation / classifier_activation
enum class Pooling { kCls, kMean };
enum class ProblemType { kUnset, kRegression, kSingleLabel, kMultiLabel };

const char* to_string(LayerType t);
const char* to_string(Activation a);
const char* to_string(Pooling p);
const char* to_string(ProblemType p);
Activation parse_activation(const std::string& s, const std::string& field);  // throws naming field

struct ModelConfig {
  // Architecture.
  int64_t vocab_size = 50368;
  int64_t hidden_size = 768;
  int64_t intermediate_size = 1152;
  int64_t num_hidden_layers = 22;
  int64_t num_attention_heads = 12;
  int64_t max_position_embeddings = 8192;
  int64_t global_attn_every_n_layers = 3;
  int64_t local_attention = 128;  // total window; a query sees keys with |i-j| <= local_attention/2
  double global_rope_theta = 160000.0;
  double local_rope_theta = 10000.0;
  std::vector<LayerType> layer_types;  // always num_hidden_layers long after parsing
  double norm_eps = 1e-5;
  bool norm_bias = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  bool classifier_bias = false;  // bias of head.dense
  bool decoder_bias = true;
  bool tie_word_embeddings = true;
  Activation hidden_activation = Activation::kGelu;
  Activation classifier_activation = Activation::kGelu;
  Pooling classifier_pooling = Pooling::kCls;  // HF class default; released configs say "mean"
  double classifier_dropout = 0.0, embedding_dropout = 0.0, mlp_dropout = 0.0, attention_dropout = 0.0;
  double initializer_range = 0.02;
  double initializer_cutoff_factor = 2.0;
  // Special token ids.
  int64_t pad_token_id = 50283, bos_token_id = 50281, eos_token_id = 50282;
  int64_t cls_token_id = 50281, sep_token_id = 50282;
  bool sparse_prediction = false;
  int64_t sparse_pred_ignore_index = -100;
  // Task heads.
  std::vector<std::string> architectures;
  std::map<int64_t, std::string> id2label;  // empty when absent
  std::map<std::string, int64_t> label2id;
  ProblemType problem_type = ProblemType::kUnset;
  std::string torch_dtype = "float32";

  // Every key of the file as read; save() writes these back with known fields overwritten.
  nlohmann::json raw = nlohmann::json::object();

  // Derived.
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  int64_t num_labels() const { return id2label.empty() ? 2 : static_cast<int64_t>(id2label.size()); }
  bool is_global(int64_t layer) const { return layer_types.at(layer) == LayerType::kFullAttention; }
  double rope_theta(int64_t layer) const { return is_global(layer) ? global_rope_theta : local_rope_theta; }
  // -1 for global layers (no limit), else local_attention/2.
  int64_t half_window(int64_t layer) const { return is_global(layer) ? -1 : local_attention / 2; }

  // Throws modernbert::Error naming the field on any invalid value.
  void validate() const;

  static ModelConfig from_json(const nlohmann::json& j, const std::string& source = "config.json");
  static ModelConfig from_file(const std::string& path);
  static ModelConfig preset(const std::string& name);  // "tiny" | "base" | "large"
  nlohmann::json to_json() const;
  // Atomic write (temp file + fsync + rename).
  void save(const std::string& path) const;
};

}  // namespace modernbert
