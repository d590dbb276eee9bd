// Parameters of a ModernBERT model with its heads, laid out llm.c-style: every parameter is a view
// into ONE contiguous float buffer (so an optimizer or all-reduce sees a flat array), or, for
// inference from an F32 checkpoint, a zero-copy pointer into the mmapped safetensors file.
//
// Reduced precision (#15, modernbert/precision.h): for inference a parameter may instead be held
// as bf16 / f16 / int8 (+ a float scale per row), either zero-copy inside a mapping (a checkpoint
// already in that type) or in a byte buffer owned by the parameter (converted at load). Only the
// linear weights and the embedding table are ever held so; the rest stays float32. param() and
// mutable_param() are float-only and throw for such a parameter; matrix() gives the typed view.
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
#include "modernbert/precision.h"

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
// off, layer 0's attn_norm, heads not present). The linear weights and the embedding table are
// WeightMatrix (any Precision; `.f32()` where float32 is required); norms and biases are float32.
struct LayerWeights {
  const float* attn_norm_w = nullptr; const float* attn_norm_b = nullptr;  // [H] (nullptr in layer 0)
  WeightMatrix wqkv;                  const float* bqkv = nullptr;         // [3H, H], [3H]
  WeightMatrix wo;                    const float* bo = nullptr;           // [H, H], [H]
  const float* mlp_norm_w = nullptr;  const float* mlp_norm_b = nullptr;   // [H]
  WeightMatrix wi;                    const float* bi = nullptr;           // [2I, H], [2I]
  WeightMatrix wo_mlp;                const float* bo_mlp = nullptr;       // [H, I], [H]
};

struct WeightViews {
  WeightMatrix tok_embeddings;                                             // [V, H]
  const float* emb_norm_w = nullptr;  const float* emb_norm_b = nullptr;   // [H]
  std::vector<LayerWeights> layers;
  const float* final_norm_w = nullptr; const float* final_norm_b = nullptr;
  WeightMatrix head_dense_w;           const float* head_dense_b = nullptr;  // [H, H], [H]
  const float* head_norm_w = nullptr;  const float* head_norm_b = nullptr;   // [H]
  WeightMatrix decoder_w;              // [V, H]; == tok_embeddings when tied
  const float* decoder_b = nullptr;    // [V]
  WeightMatrix classifier_w;           const float* classifier_b = nullptr;  // [L, H], [L]
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
  // Copies mmapped / separately held float32 parameters into the contiguous buffer (needed before
  // training). Throws when a parameter is held in reduced precision (training is fp32-only).
  void make_contiguous();

  // Pointer to the parameter's float32 values (in the buffer, the mapping or its own storage);
  // throws if unknown, or (naming the type) if the parameter is held as bf16 / f16 / int8.
  float* mutable_param(const std::string& name);
  const float* param(const std::string& name) const;
  // The typed view of any parameter (float32 ones too). Shape: spec(name).shape.
  WeightMatrix matrix(const std::string& name) const;
  Precision param_type(const std::string& name) const;
  // True when every parameter is float32 (the state of every model but a reduced-precision load).
  bool all_f32() const;
  // Bytes the parameters occupy in their storage types (scales included), wherever they live.
  size_t storage_bytes() const;
  const ParamSpec& spec(const std::string& name) const;
  size_t offset(const std::string& name) const;  // offset in the contiguous layout
  bool has(const std::string& name) const;

  WeightViews views() const;

  // Keeps a safetensors mapping alive and points `name` at data inside it (zero copy).
  void bind_external(const std::string& name, const float* ptr, std::shared_ptr<const void> keep_alive);
  // The same for a parameter of any type: `m.data` (and `m.scale` for kInt8, [rows]) point into
  // memory `keep_alive` keeps valid. kInt8 needs a scale; the other types take none.
  void bind_external(const std::string& name, const WeightMatrix& m, std::shared_ptr<const void> keep_alive);
  // Gives `name` its own storage of type `t` (numel * precision_bytes(t) bytes, zero-filled) and
  // returns it for the caller to fill; for kInt8 *scale (if given) receives the [rows] float scale
  // to fill. The contiguous buffer is not used (nor allocated) for such a parameter.
  void* hold(const std::string& name, Precision t, float** scale = nullptr);

 private:
  // Where a parameter lives when not in buffer_: a mapping (kept alive by keep_alive_) or its own
  // `owned` bytes. data == nullptr: in buffer_ at offsets_[i] (always float32).
  struct Slot {
    Precision type = Precision::kF32;
    const void* data = nullptr;
    const float* scale = nullptr;
    std::vector<uint8_t> owned;
    std::vector<float> owned_scale;
  };
  ModelConfig cfg_;
  HeadSet heads_;
  std::vector<ParamSpec> specs_;
  std::vector<size_t> offsets_;
  std::vector<Slot> slots_;  // per spec
  std::vector<std::shared_ptr<const void>> keep_alive_;
  std::vector<float> buffer_;
  size_t total_ = 0;
  size_t index_of(const std::string& name) const;
  void ensure_buffer();
  void drop_buffer_if_unused();
};

}  // namespace modernbert
