#include "modernbert/weights.h"

#include <cstring>
#include <sstream>

#include "modernbert/error.h"

namespace modernbert {

std::string HeadSet::describe() const {
  std::string s;
  if (mlm) s = "mlm";
  if (classifier != Classifier::kNone) {
    if (!s.empty()) s += "+";
    s += (classifier == Classifier::kSequence ? "cls:" : "token:") + std::to_string(num_labels);
  }
  return s.empty() ? "none" : s;
}

HeadSet HeadSet::parse(const std::string& spec) {
  HeadSet h;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    if (item == "mlm") {
      h.mlm = true;
      continue;
    }
    auto colon = item.find(':');
    std::string kind = item.substr(0, colon);
    if ((kind == "cls" || kind == "token") && colon != std::string::npos) {
      if (h.classifier != Classifier::kNone) throw Error("heads: only one of cls:N / token:N may be given");
      char* end = nullptr;
      long long n = std::strtoll(item.c_str() + colon + 1, &end, 10);
      if (*end || n <= 0) throw Error("heads: '" + item + "' needs a positive label count");
      h.classifier = kind == "cls" ? Classifier::kSequence : Classifier::kToken;
      h.num_labels = n;
      continue;
    }
    throw Error("heads: unknown head '" + item + "' (expected mlm, cls:N, token:N)");
  }
  return h;
}

int64_t ParamSpec::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::vector<ParamSpec> parameter_specs(const ModelConfig& c, const HeadSet& heads) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  std::vector<ParamSpec> s;
  auto add = [&](std::string name, std::vector<int64_t> shape, InitRule rule) {
    bool decay = shape.size() > 1 && !(name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0);
    s.push_back({std::move(name), std::move(shape), rule, decay});
  };
  auto norm = [&](const std::string& prefix) {
    add(prefix + ".weight", {H}, InitRule::kOnes);
    if (c.norm_bias) add(prefix + ".bias", {H}, InitRule::kZeros);
  };
  add("model.embeddings.tok_embeddings.weight", {V, H}, InitRule::kEmb);
  norm("model.embeddings.norm");
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    if (l != 0) norm(p + "attn_norm");  // layer 0's attn_norm is Identity
    add(p + "attn.Wqkv.weight", {3 * H, H}, InitRule::kIn);
    if (c.attention_bias) add(p + "attn.Wqkv.bias", {3 * H}, InitRule::kZeros);
    add(p + "attn.Wo.weight", {H, H}, InitRule::kOut);
    if (c.attention_bias) add(p + "attn.Wo.bias", {H}, InitRule::kZeros);
    norm(p + "mlp_norm");
    add(p + "mlp.Wi.weight", {2 * I, H}, InitRule::kIn);
    if (c.mlp_bias) add(p + "mlp.Wi.bias", {2 * I}, InitRule::kZeros);
    add(p + "mlp.Wo.weight", {H, I}, InitRule::kOut);
    if (c.mlp_bias) add(p + "mlp.Wo.bias", {H}, InitRule::kZeros);
  }
  norm("model.final_norm");
  if (heads.any()) {
    add("head.dense.weight", {H, H}, InitRule::kIn);
    if (c.classifier_bias) add("head.dense.bias", {H}, InitRule::kZeros);
    norm("head.norm");
  }
  if (heads.mlm) {
    if (!c.tie_word_embeddings) add("decoder.weight", {V, H}, InitRule::kFinalOut);
    if (c.decoder_bias) add("decoder.bias", {V}, InitRule::kZeros);
  }
  if (heads.classifier != HeadSet::Classifier::kNone) {
    add("classifier.weight", {heads.num_labels, H}, InitRule::kFinalOut);
    add("classifier.bias", {heads.num_labels}, InitRule::kZeros);  // nn.Linear: always a bias
  }
  return s;
}

Weights::Weights(const ModelConfig& cfg, const HeadSet& heads, bool allocate)
    : cfg_(cfg), heads_(heads), specs_(parameter_specs(cfg, heads)) {
  // Every path that builds weights (load, init, fine-tuning) ends here: a classifier head must
  // have at least one label, or its logits would be empty and readers of them out of bounds.
  if (heads.classifier != HeadSet::Classifier::kNone && heads.num_labels <= 0)
    throw Error("classifier head with " + std::to_string(heads.num_labels) +
                " labels: tensor 'classifier.weight' needs at least one row");
  for (const auto& s : specs_) {
    offsets_.push_back(total_);
    total_ += static_cast<size_t>(s.numel());
  }
  slots_.resize(specs_.size());
  if (allocate) buffer_.assign(total_, 0.0f);
}

bool Weights::is_contiguous() const {
  if (buffer_.size() != total_) return false;
  for (const auto& s : slots_)
    if (s.data) return false;
  return true;
}

void Weights::ensure_buffer() {
  if (buffer_.size() != total_) buffer_.assign(total_, 0.0f);
}

Weights::~Weights() = default;
Weights::Weights(Weights&&) noexcept = default;
Weights& Weights::operator=(Weights&&) noexcept = default;

size_t Weights::index_of(const std::string& name) const {
  for (size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].name == name) return i;
  throw Error("model has no parameter '" + name + "'");
}

bool Weights::has(const std::string& name) const {
  for (const auto& s : specs_)
    if (s.name == name) return true;
  return false;
}

const ParamSpec& Weights::spec(const std::string& name) const { return specs_[index_of(name)]; }
size_t Weights::offset(const std::string& name) const { return offsets_[index_of(name)]; }

namespace {

[[noreturn]] void throw_not_f32(const std::string& name, Precision t) {
  throw Error("parameter '" + name + "' is held as " + precision_name(t) +
              ", but this operation needs float32 weights (load the model with --dtype f32, from a float "
              "checkpoint)");
}

}  // namespace

float* Weights::mutable_param(const std::string& name) {
  size_t i = index_of(name);
  if (slots_[i].type != Precision::kF32) throw_not_f32(name, slots_[i].type);
  if (slots_[i].data) make_contiguous();
  ensure_buffer();
  return buffer_.data() + offsets_[i];
}

const float* Weights::param(const std::string& name) const {
  size_t i = index_of(name);
  const Slot& s = slots_[i];
  if (s.type != Precision::kF32) throw_not_f32(name, s.type);
  if (s.data) return static_cast<const float*>(s.data);
  if (buffer_.size() != total_) throw Error("parameter '" + name + "' has not been loaded");
  return buffer_.data() + offsets_[i];
}

WeightMatrix Weights::matrix(const std::string& name) const {
  size_t i = index_of(name);
  const Slot& s = slots_[i];
  if (s.type == Precision::kF32) return WeightMatrix(param(name));
  return WeightMatrix(s.type, s.data, s.scale);
}

Precision Weights::param_type(const std::string& name) const { return slots_[index_of(name)].type; }

bool Weights::all_f32() const {
  for (const auto& s : slots_)
    if (s.type != Precision::kF32) return false;
  return true;
}

size_t Weights::storage_bytes() const {
  size_t n = 0;
  for (size_t i = 0; i < specs_.size(); ++i) {
    n += static_cast<size_t>(specs_[i].numel()) * precision_bytes(slots_[i].type);
    if (slots_[i].type == Precision::kInt8) n += static_cast<size_t>(specs_[i].shape[0]) * sizeof(float);
  }
  return n;
}

void Weights::drop_buffer_if_unused() {
  // Drop the buffer once every parameter lives elsewhere: no copy of the weights in memory.
  for (const auto& s : slots_)
    if (!s.data) return;
  std::vector<float>().swap(buffer_);
}

void Weights::bind_external(const std::string& name, const float* ptr, std::shared_ptr<const void> keep_alive) {
  bind_external(name, WeightMatrix(ptr), std::move(keep_alive));
}

void Weights::bind_external(const std::string& name, const WeightMatrix& m, std::shared_ptr<const void> keep_alive) {
  size_t i = index_of(name);
  if (!m.data) throw Error("bind_external: parameter '" + name + "' bound to null data");
  if ((m.type == Precision::kInt8) != (m.scale != nullptr))
    throw Error("bind_external: parameter '" + name + "': int8 needs a scale, other types take none");
  if (m.type != Precision::kF32 && specs_[i].shape.size() != 2)
    throw Error("bind_external: parameter '" + name + "' is not a matrix and must stay float32");
  Slot& s = slots_[i];
  s = Slot{};
  s.type = m.type;
  s.data = m.data;
  s.scale = m.scale;
  keep_alive_.push_back(std::move(keep_alive));
  drop_buffer_if_unused();
}

void* Weights::hold(const std::string& name, Precision t, float** scale) {
  size_t i = index_of(name);
  const ParamSpec& sp = specs_[i];
  if (t != Precision::kF32 && sp.shape.size() != 2)
    throw Error("parameter '" + name + "' is not a matrix and must stay float32");
  Slot& s = slots_[i];
  s = Slot{};
  s.type = t;
  s.owned.assign(static_cast<size_t>(sp.numel()) * precision_bytes(t), 0);
  s.data = s.owned.data();
  if (t == Precision::kInt8) {
    s.owned_scale.assign(static_cast<size_t>(sp.shape[0]), 0.0f);
    s.scale = s.owned_scale.data();
    if (scale) *scale = s.owned_scale.data();
  }
  drop_buffer_if_unused();
  return s.owned.data();
}

void Weights::make_contiguous() {
  for (size_t i = 0; i < specs_.size(); ++i)
    if (slots_[i].type != Precision::kF32) throw_not_f32(specs_[i].name, slots_[i].type);
  ensure_buffer();
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (slots_[i].data) {
      std::memcpy(buffer_.data() + offsets_[i], slots_[i].data, specs_[i].numel() * sizeof(float));
      slots_[i] = Slot{};
    }
  }
  keep_alive_.clear();
}

WeightViews Weights::views() const {
  WeightViews v;
  auto get = [&](const std::string& name) -> const float* { return has(name) ? param(name) : nullptr; };
  auto mat = [&](const std::string& name) -> WeightMatrix { return has(name) ? matrix(name) : WeightMatrix(); };
  v.tok_embeddings = mat("model.embeddings.tok_embeddings.weight");
  v.emb_norm_w = get("model.embeddings.norm.weight");
  v.emb_norm_b = get("model.embeddings.norm.bias");
  for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
    std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights lw;
    lw.attn_norm_w = get(p + "attn_norm.weight");
    lw.attn_norm_b = get(p + "attn_norm.bias");
    lw.wqkv = mat(p + "attn.Wqkv.weight");
    lw.bqkv = get(p + "attn.Wqkv.bias");
    lw.wo = mat(p + "attn.Wo.weight");
    lw.bo = get(p + "attn.Wo.bias");
    lw.mlp_norm_w = get(p + "mlp_norm.weight");
    lw.mlp_norm_b = get(p + "mlp_norm.bias");
    lw.wi = mat(p + "mlp.Wi.weight");
    lw.bi = get(p + "mlp.Wi.bias");
    lw.wo_mlp = mat(p + "mlp.Wo.weight");
    lw.bo_mlp = get(p + "mlp.Wo.bias");
    v.layers.push_back(lw);
  }
  v.final_norm_w = get("model.final_norm.weight");
  v.final_norm_b = get("model.final_norm.bias");
  v.head_dense_w = mat("head.dense.weight");
  v.head_dense_b = get("head.dense.bias");
  v.head_norm_w = get("head.norm.weight");
  v.head_norm_b = get("head.norm.bias");
  if (heads_.mlm) v.decoder_w = cfg_.tie_word_embeddings ? v.tok_embeddings : mat("decoder.weight");
  v.decoder_b = get("decoder.bias");
  v.classifier_w = mat("classifier.weight");
  v.classifier_b = get("classifier.bias");
  return v;
}

}  // namespace modernbert
