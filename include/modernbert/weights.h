// Parameters of a ModernBERT model with its heads, laid out llm.c-style: every parameter is a view
// into ONE contiguous float buffer (so an optimizer or all-reduce sees a flat array), or, for
// inference from an F32 checkpoint, a zero-copy pointer into the mmapped safetensors file.
//
// Names are the Hugging Face names of ModernBertForMaskedLM / ...ForSequenceClassification
// (spec §3): "model.embeddings.tok_embeddings.weight", "model.layers.3.attn.Wqkv.weight",
// "head.dense.weight", "decoder.bias", "classifier.weight", ...
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "modernbert/config.h"

namespace modernbert {

class SafeTensorsFile;

// Which heads a checkpoint carries. `head.dense`/`head.norm` are shared by the MLM head and the
// classification heads (HF names them the same), so they are present whenever any head is.
struct HeadSet {
  bool mlm = false;             // head.* + decoder.bias (+ decoder.weight when untied)
  enum class Classifier { kNone, kSequence, kToken } classifier = Classifier::kNone;
  int64_t num_labels = 0;       // rows of classifier.weight
  bool any() const { return mlm || classifier != Classifier::kNone; }
  std::string describe() const;  // "mlm", "mlm+cls:3", "token:9", "none"
  // Parses "mlm,cls:N,token:N" (comma separated; cls and token are exclusive).
  static HeadSet parse(const std::string& spec);
};

// How a parameter is initialised (spec §6.6, research-code "full_megatron").
enum class InitRule { kIn, kOut, kEmb, kFinalOut, kOnes, kZeros };

struct ParamSpec {
  std::string name;            // HF name
  std::vector<int64_t> shape;
  InitRule init;
  bool weight_decay;           // false for norms and biases (ndim <= 1)
  int64_t numel() const;
};

// The ordered list of parameters a config + head set has (the canonical layout).
std::vector<ParamSpec> parameter_specs(const ModelConfig& cfg, const HeadSet& heads);

// Typed views into the parameters. Pointers are nullptr for absent parameters (biases that are
// off, layer 0's attn_norm, heads not present).
struct LayerWeights {
  const float* attn_norm_w = nullptr; const float* attn_norm_b = nullptr;  // [H] (nullptr in layer 0)
  const float* wqkv = nullptr;        const float* bqkv = nullptr;         // [3H, H], [3H]
  const float* wo = nullptr;          const float* bo = nullptr;           // [H, H], [H]
  const float* mlp_norm_w = nullptr;  const float* mlp_norm_b = nullptr;   // [H]
  const float* wi = nullptr;          const float* bi = nullptr;           // [2I, H], [2I]
  const float* wo_mlp = nullptr;      const float* bo_mlp = nullptr;       // [H, I], [H]
};

struct WeightViews {
  const float* tok_embeddings = nullptr;                                   // [V, H]
  const float* emb_norm_w = nullptr;  const float* emb_norm_b = nullptr;   // [H]
  std::vector<LayerWeights> layers;
  const float* final_norm_w = nullptr; const float* final_norm_b = nullptr;
  const float* head_dense_w = nullptr; const float* head_dense_b = nullptr;  // [H, H], [H]
  const float* head_norm_w = nullptr;  const float* head_norm_b = nullptr;   // [H]
  const float* decoder_w = nullptr;    // [V, H]; == tok_embeddings when tied
  const float* decoder_b = nullptr;    // [V]
  const float* classifier_w = nullptr; const float* classifier_b = nullptr;  // [L, H], [L]
};

class Weights {
 public:
  // Fresh, zero-filled contiguous buffer for cfg + heads. With allocate=false the buffer is created
  // on first need (a zero-copy load binds every tensor to the mapping and never allocates it).
  Weights(const ModelConfig& cfg, const HeadSet& heads, bool allocate = true);
  ~Weights();
  Weights(Weights&&) noexcept;
  Weights& operator=(Weights&&) noexcept;

  const ModelConfig& config() const { return cfg_; }
  const HeadSet& heads() const { return heads_; }
  const std::vector<ParamSpec>& specs() const { return specs_; }
  size_t num_params() const { return total_; }

  // The contiguous buffer (size num_params()). For a zero-copy load it is empty until
  // make_contiguous() is called.
  float* data() { return buffer_.data(); }
  const float* data() const { return buffer_.data(); }
  bool is_contiguous() const;
  // Copies mmapped parameters into the contiguous buffer (needed before training).
  void make_contiguous();

  // Pointer to the parameter's values (in the buffer or in the mapping); throws if unknown.
  float* mutable_param(const std::string& name);
  const float* param(const std::string& name) const;
  const ParamSpec& spec(const std::string& name) const;
  size_t offset(const std::string& name) const;  // offset in the contiguous layout
  bool has(const std::string& name) const;

  WeightViews views() const;

  // Keeps a safetensors mapping alive and points `name` at data inside it (zero copy).
  void bind_external(const std::string& name, const float* ptr, std::shared_ptr<const void> keep_alive);

 private:
  ModelConfig cfg_;
  HeadSet heads_;
  std::vector<ParamSpec> specs_;
  std::vector<size_t> offsets_;
  std::vector<const float*> external_;  // per spec; nullptr when in buffer_
  std::vector<std::shared_ptr<const void>> keep_alive_;
  std::vector<float> buffer_;
  size_t total_ = 0;
  size_t index_of(const std::string& name) const;
  void ensure_buffer();
};

}  // namespace modernbert
