// config.json parsing and writing (spec §1–2). Both key spellings are accepted; every invalid value
// is rejected with the name of its field.
#include "modernbert/config.h"

#include <cmath>
#include <sstream>

#include "modernbert/error.h"
#include "modernbert/file_io.h"

namespace modernbert {

using nlohmann::json;

const char* to_string(LayerType t) { return t == LayerType::kFullAttention ? "full_attention" : "sliding_attention"; }
const char* to_string(Activation a) {
  switch (a) {
    case Activation::kGelu: return "gelu";
    case Activation::kGeluTanh: return "gelu_pytorch_tanh";
    case Activation::kRelu: return "relu";
    case Activation::kSilu: return "silu";
  }
  return "?";
}
const char* to_string(Pooling p) { return p == Pooling::kCls ? "cls" : "mean"; }
const char* to_string(ProblemType p) {
  switch (p) {
    case ProblemType::kUnset: return "unset";
    case ProblemType::kRegression: return "regression";
    case ProblemType::kSingleLabel: return "single_label_classification";
    case ProblemType::kMultiLabel: return "multi_label_classification";
  }
  return "?";
}

Activation parse_activation(const std::string& s, const std::string& field) {
  // Names from transformers' ACT2CLS that ModernBERT configs use.
  if (s == "gelu" || s == "gelu_python") return Activation::kGelu;
  if (s == "gelu_pytorch_tanh" || s == "gelu_new" || s == "gelu_fast") return Activation::kGeluTanh;
  if (s == "relu") return Activation::kRelu;
  if (s == "silu" || s == "swish") return Activation::kSilu;
  throw Error("field '" + field + "': unknown activation '" + s +
              "' (supported: gelu, gelu_python, gelu_pytorch_tanh, gelu_new, gelu_fast, relu, silu, swish)");
}

namespace {

std::string type_name(const json& v) { return v.type_name(); }

struct Reader {
  const json& j;
  std::string src;
  [[noreturn]] void fail(const std::string& key, const std::string& msg) const {
    throw Error(src + ": field '" + key + "': " + msg);
  }
  bool present(const std::string& key) const { return j.contains(key) && !j.at(key).is_null(); }
  int64_t i64(const std::string& key, int64_t def) const {
    if (!present(key)) return def;
    const json& v = j.at(key);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
    }
    fail(key, "expected an integer, got " + type_name(v) + " " + v.dump());
  }
  double f64(const std::string& key, double def) const {
    if (!present(key)) return def;
    const json& v = j.at(key);
    if (!v.is_number()) fail(key, "expected a number, got " + type_name(v) + " " + v.dump());
    return v.get<double>();
  }
  bool boolean(const std::string& key, bool def) const {
    if (!present(key)) return def;
    const json& v = j.at(key);
    if (!v.is_boolean()) fail(key, "expected true/false, got " + v.dump());
    return v.get<bool>();
  }
  std::string str(const std::string& key, const std::string& def) const {
    if (!present(key)) return def;
    const json& v = j.at(key);
    if (!v.is_string()) fail(key, "expected a string, got " + type_name(v) + " " + v.dump());
    return v.get<std::string>();
  }
};

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": expected a JSON object at the top level");
  Reader r{j, source};
  ModelConfig c;
  c.raw = j;
  if (r.present("model_type")) {
    std::string mt = r.str("model_type", "modernbert");
    if (mt != "modernbert") r.fail("model_type", "expected \"modernbert\", got \"" + mt + "\"");
  }
  c.vocab_size = r.i64("vocab_size", c.vocab_size);
  c.hidden_size = r.i64("hidden_size", c.hidden_size);
  c.intermediate_size = r.i64("intermediate_size", c.intermediate_size);
  c.num_hidden_layers = r.i64("num_hidden_layers", c.num_hidden_layers);
  c.num_attention_heads = r.i64("num_attention_heads", c.num_attention_heads);
  c.max_position_embeddings = r.i64("max_position_embeddings", c.max_position_embeddings);
  c.global_attn_every_n_layers = r.i64("global_attn_every_n_layers", c.global_attn_every_n_layers);
  c.local_attention = r.i64("local_attention", c.local_attention);
  c.global_rope_theta = r.f64("global_rope_theta", c.global_rope_theta);
  c.local_rope_theta = r.f64("local_rope_theta", c.local_rope_theta);
  // norm_eps is what the model reads; layer_norm_eps is the vestigial alias.
  c.norm_eps = r.present("norm_eps") ? r.f64("norm_eps", c.norm_eps) : r.f64("layer_norm_eps", c.norm_eps);
  c.norm_bias = r.boolean("norm_bias", c.norm_bias);
  c.attention_bias = r.boolean("attention_bias", c.attention_bias);
  c.mlp_bias = r.boolean("mlp_bias", c.mlp_bias);
  c.classifier_bias = r.boolean("classifier_bias", c.classifier_bias);
  c.decoder_bias = r.boolean("decoder_bias", c.decoder_bias);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", c.tie_word_embeddings);
  try {
    c.hidden_activation = parse_activation(r.str("hidden_activation", "gelu"), "hidden_activation");
    c.classifier_activation = parse_activation(r.str("classifier_activation", "gelu"), "classifier_activation");
  } catch (const Error& e) {
    if (std::string(e.what()).rfind(source, 0) == 0) throw;
    throw Error(source + ": " + e.what());
  }
  {
    std::string p = r.str("classifier_pooling", "cls");
    if (p == "cls") c.classifier_pooling = Pooling::kCls;
    else if (p == "mean") c.classifier_pooling = Pooling::kMean;
    else r.fail("classifier_pooling", "expected \"cls\" or \"mean\", got \"" + p + "\"");
  }
  c.classifier_dropout = r.f64("classifier_dropout", 0.0);
  c.embedding_dropout = r.f64("embedding_dropout", 0.0);
  c.mlp_dropout = r.f64("mlp_dropout", 0.0);
  c.attention_dropout = r.f64("attention_dropout", 0.0);
  c.initializer_range = r.f64("initializer_range", c.initializer_range);
  // HF: a null cutoff factor means 3.0 when initialising.
  c.initializer_cutoff_factor =
      r.present("initializer_cutoff_factor") ? r.f64("initializer_cutoff_factor", 2.0) : (j.contains("initializer_cutoff_factor") ? 3.0 : 2.0);
  c.pad_token_id = r.i64("pad_token_id", c.pad_token_id);
  c.bos_token_id = r.i64("bos_token_id", c.bos_token_id);
  c.eos_token_id = r.i64("eos_token_id", c.eos_token_id);
  c.cls_token_id = r.i64("cls_token_id", c.cls_token_id);
  c.sep_token_id = r.i64("sep_token_id", c.sep_token_id);
  c.sparse_prediction = r.boolean("sparse_prediction", false);
  c.sparse_pred_ignore_index = r.i64("sparse_pred_ignore_index", -100);
  c.torch_dtype = r.present("dtype") ? r.str("dtype", "float32") : r.str("torch_dtype", "float32");

  if (r.present("architectures")) {
    if (!j["architectures"].is_array()) r.fail("architectures", "expected a list of strings");
    for (const auto& a : j["architectures"]) {
      if (!a.is_string()) r.fail("architectures", "expected a list of strings");
      c.architectures.push_back(a.get<std::string>());
    }
  }
  if (r.present("id2label")) {
    const json& m = j["id2label"];
    if (!m.is_object()) r.fail("id2label", "expected an object {\"0\": \"LABEL\", ...}");
    for (auto it = m.begin(); it != m.end(); ++it) {
      char* end = nullptr;
      long long id = std::strtoll(it.key().c_str(), &end, 10);
      if (it.key().empty() || *end || id < 0) r.fail("id2label", "key '" + it.key() + "' is not a non-negative integer");
      if (!it->is_string()) r.fail("id2label", "label for id " + it.key() + " is not a string");
      c.id2label[id] = it->get<std::string>();
    }
    for (int64_t i = 0; i < static_cast<int64_t>(c.id2label.size()); ++i)
      if (!c.id2label.count(i)) r.fail("id2label", "ids must be 0..N-1; id " + std::to_string(i) + " is missing");
  }
  if (r.present("label2id")) {
    const json& m = j["label2id"];
    if (!m.is_object()) r.fail("label2id", "expected an object {\"LABEL\": 0, ...}");
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it->is_number_integer()) r.fail("label2id", "id for label '" + it.key() + "' is not an integer");
      c.label2id[it.key()] = it->get<int64_t>();
    }
  }
  if (r.present("problem_type")) {
    std::string p = r.str("problem_type", "");
    if (p == "regression") c.problem_type = ProblemType::kRegression;
    else if (p == "single_label_classification") c.problem_type = ProblemType::kSingleLabel;
    else if (p == "multi_label_classification") c.problem_type = ProblemType::kMultiLabel;
    else r.fail("problem_type", "expected regression, single_label_classification or multi_label_classification, got \"" + p + "\"");
  }

  // Newer spelling: rope_parameters {full_attention: {rope_theta}, sliding_attention: {rope_theta}}.
  if (r.present("rope_parameters")) {
    const json& rp = j["rope_parameters"];
    if (!rp.is_object()) r.fail("rope_parameters", "expected an object");
    auto read_theta = [&](const char* kind, double* out) {
      if (!rp.contains(kind)) return;
      const json& e = rp[kind];
      if (!e.is_object()) r.fail(std::string("rope_parameters.") + kind, "expected an object");
      if (e.contains("rope_type") && !e["rope_type"].is_null() && e["rope_type"] != "default")
        r.fail(std::string("rope_parameters.") + kind + ".rope_type",
               "unsupported rope type " + e["rope_type"].dump() + " (only \"default\")");
      if (e.contains("rope_theta")) {
        if (!e["rope_theta"].is_number()) r.fail(std::string("rope_parameters.") + kind + ".rope_theta", "expected a number");
        *out = e["rope_theta"].get<double>();
      }
    };
    read_theta("full_attention", &c.global_rope_theta);
    read_theta("sliding_attention", &c.local_rope_theta);
    for (auto it = rp.begin(); it != rp.end(); ++it)
      if (it.key() != "full_attention" && it.key() != "sliding_attention")
        r.fail("rope_parameters", "unknown layer type '" + it.key() + "'");
  }
  if (r.present("layer_types")) {
    const json& lt = j["layer_types"];
    if (!lt.is_array()) r.fail("layer_types", "expected a list");
    for (const auto& t : lt) {
      if (t == "full_attention") c.layer_types.push_back(LayerType::kFullAttention);
      else if (t == "sliding_attention") c.layer_types.push_back(LayerType::kSlidingAttention);
      else r.fail("layer_types", "unknown layer type " + t.dump() + " (full_attention | sliding_attention)");
    }
    if (static_cast<int64_t>(c.layer_types.size()) != c.num_hidden_layers)
      r.fail("layer_types", "has " + std::to_string(c.layer_types.size()) + " entries but num_hidden_layers is " +
                                std::to_string(c.num_hidden_layers));
  } else if (c.global_attn_every_n_layers > 0 && c.num_hidden_layers > 0 && c.num_hidden_layers < 100000) {
    for (int64_t i = 0; i < c.num_hidden_layers; ++i)
      c.layer_types.push_back(i % c.global_attn_every_n_layers == 0 ? LayerType::kFullAttention
                                                                     : LayerType::kSlidingAttention);
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return c;
}

void ModelConfig::validate() const {
  auto fail = [](const std::string& field, const std::string& msg) { throw Error("field '" + field + "': " + msg); };
  auto positive = [&](const char* field, int64_t v) {
    if (v <= 0) fail(field, "must be positive, got " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("max_position_embeddings", max_position_embeddings);
  positive("global_attn_every_n_layers", global_attn_every_n_layers);
  positive("local_attention", local_attention);
  if (hidden_size % num_attention_heads != 0)
    fail("num_attention_heads", "hidden_size " + std::to_string(hidden_size) + " is not divisible by " +
                                    std::to_string(num_attention_heads) + " heads");
  if (head_dim() % 2 != 0) fail("num_attention_heads", "head dim " + std::to_string(head_dim()) + " is odd (RoPE needs an even head dim)");
  if (local_attention < 2) fail("local_attention", "window must be at least 2, got " + std::to_string(local_attention));
  if (!(global_rope_theta > 0) || !std::isfinite(global_rope_theta)) fail("global_rope_theta", "must be a positive number");
  if (!(local_rope_theta > 0) || !std::isfinite(local_rope_theta)) fail("local_rope_theta", "must be a positive number");
  if (!(norm_eps > 0) || !std::isfinite(norm_eps)) fail("norm_eps", "must be a positive number");
  if (!(initializer_range > 0)) fail("initializer_range", "must be positive");
  if (!(initializer_cutoff_factor > 0)) fail("initializer_cutoff_factor", "must be positive");
  if (static_cast<int64_t>(layer_types.size()) != num_hidden_layers)
    fail("layer_types", "has " + std::to_string(layer_types.size()) + " entries but num_hidden_layers is " +
                            std::to_string(num_hidden_layers));
  for (auto [name, p] : {std::pair{"classifier_dropout", classifier_dropout}, {"embedding_dropout", embedding_dropout},
                         {"mlp_dropout", mlp_dropout}, {"attention_dropout", attention_dropout}})
    if (!(p >= 0 && p < 1)) fail(name, "must be in [0, 1)");
  for (auto [name, id] : {std::pair{"pad_token_id", pad_token_id}, {"cls_token_id", cls_token_id}, {"sep_token_id", sep_token_id}})
    if (id < 0 || id >= vocab_size) fail(name, std::to_string(id) + " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
  for (const auto& [label, id] : label2id)
    if (!id2label.empty() && !id2label.count(id)) fail("label2id", "label '" + label + "' maps to id " + std::to_string(id) + " which id2label lacks");
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  std::string text = read_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  return from_json(j, path);
}

ModelConfig ModelConfig::preset(const std::string& name) {
  json j = json::object();
  if (name == "base") {
    // defaults are ModernBERT-base
  } else if (name == "large") {
    j = {{"hidden_size", 1024}, {"intermediate_size", 2624}, {"num_hidden_layers", 28}, {"num_attention_heads", 16}};
  } else if (name == "tiny") {
    // Small enough for tests, with a window (16) shorter than typical test inputs and both layer types.
    j = {{"hidden_size", 64}, {"intermediate_size", 96}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
         {"local_attention", 16}};
  } else {
    throw Error("unknown preset '" + name + "' (tiny | base | large)");
  }
  j["architectures"] = json::array({"ModernBertForMaskedLM"});
  j["model_type"] = "modernbert";
  j["classifier_pooling"] = "mean";  // as the released configs
  return from_json(j, "preset " + name);
}

json ModelConfig::to_json() const {
  json j = raw.is_object() ? raw : json::object();
  j["model_type"] = "modernbert";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["max_position_embeddings"] = max_position_embeddings;
  j["global_attn_every_n_layers"] = global_attn_every_n_layers;
  j["local_attention"] = local_attention;
  j["global_rope_theta"] = global_rope_theta;
  j["local_rope_theta"] = local_rope_theta;
  json lt = json::array();
  for (auto t : layer_types) lt.push_back(to_string(t));
  j["layer_types"] = lt;
  j["rope_parameters"] = {{"full_attention", {{"rope_theta", global_rope_theta}, {"rope_type", "default"}}},
                          {"sliding_attention", {{"rope_theta", local_rope_theta}, {"rope_type", "default"}}}};
  j["norm_eps"] = norm_eps;
  j["layer_norm_eps"] = norm_eps;
  j["norm_bias"] = norm_bias;
  j["attention_bias"] = attention_bias;
  j["mlp_bias"] = mlp_bias;
  j["classifier_bias"] = classifier_bias;
  j["decoder_bias"] = decoder_bias;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["hidden_activation"] = to_string(hidden_activation);
  j["classifier_activation"] = to_string(classifier_activation);
  j["classifier_pooling"] = to_string(classifier_pooling);
  j["classifier_dropout"] = classifier_dropout;
  j["embedding_dropout"] = embedding_dropout;
  j["mlp_dropout"] = mlp_dropout;
  j["attention_dropout"] = attention_dropout;
  j["initializer_range"] = initializer_range;
  j["initializer_cutoff_factor"] = initializer_cutoff_factor;
  j["pad_token_id"] = pad_token_id;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["cls_token_id"] = cls_token_id;
  j["sep_token_id"] = sep_token_id;
  j["sparse_prediction"] = sparse_prediction;
  j["sparse_pred_ignore_index"] = sparse_pred_ignore_index;
  if (!architectures.empty()) j["architectures"] = architectures;
  if (!id2label.empty()) {
    json m = json::object();
    for (const auto& [id, l] : id2label) m[std::to_string(id)] = l;
    j["id2label"] = m;
  }
  if (!label2id.empty()) j["label2id"] = label2id;
  if (problem_type != ProblemType::kUnset) j["problem_type"] = to_string(problem_type);
  j["torch_dtype"] = torch_dtype;
  return j;
}

void ModelConfig::save(const std::string& path) const {
  validate();
  write_file_atomic(path, to_json().dump(2) + "\n");
}

}  // namespace modernbert
