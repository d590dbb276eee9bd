// Model directories as users have them from Hugging Face:
//   config.json, model.safetensors | model.safetensors.index.json + shards, tokenizer.json,
//   and optionally sentence-transformers files (modules.json, 1_Pooling/config.json,
//   config_sentence_transformers.json) and a PyLate/ST Dense projection (e.g. 1_Dense/).
//
// Layer: model (src/model/model_dir.cpp). Loading builds and fills Weights, a model concept, from
// the io layer's readers (ModelConfig, SafeTensorsFile), so it sits above io (model may use io;
// io knows nothing of Weights).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "modernbert/config.h"
#include "modernbert/precision.h"
#include "modernbert/safetensors.h"
#include "modernbert/weights.h"

namespace modernbert {

// PyLate ColBERT settings (pylate.models.ColBERT), from config_sentence_transformers.json of a PyLate
// model, with PyLate's defaults for a key the file lacks. GTE-ModernColBERT-v1 sets the prefixes,
// query_length 32, document_length 300, attend_to_expansion_tokens false and the punctuation skiplist.
struct ColbertSettings {
  bool present = false;  // the file carries query_prefix / document_prefix or model_type "ColBERT"
  // Added tokens (e.g. "[Q] ", trailing space included) whose id goes right after [CLS]; "" = none.
  std::string query_prefix = "[Q] ", document_prefix = "[D] ";
  int64_t query_length = 32;     // queries: truncated to (and, with expansion, [MASK]-padded to) this
  int64_t document_length = 180; // documents: truncated to this (prefix and specials included)
  bool do_query_expansion = true;
  bool attend_to_expansion_tokens = false;  // forced false without expansion, as PyLate does
  // Tokens whose document vectors are dropped (PyLate: string.punctuation when absent).
  std::vector<std::string> skiplist_words;
};

struct SentenceTransformersInfo {
  bool present = false;
  // From 1_Pooling/config.json: "cls", "mean", "max", "lasttoken", ...
  std::string pooling_mode;
  bool normalize = false;  // a Normalize module in modules.json
  std::map<std::string, std::string> prompts;  // config_sentence_transformers.json "prompts"
  std::string default_prompt_name;
  // Dense projection (PyLate ColBERT / ST Dense): weight [out, in], optional bias.
  std::vector<float> dense_weight, dense_bias;
  int64_t dense_in = 0, dense_out = 0;
  std::string dense_activation;  // e.g. "torch.nn.modules.linear.Identity"
  ColbertSettings colbert;        // PyLate (config_sentence_transformers.json)
};

struct LoadOptions {
  bool zero_copy = true;        // point at mmapped F32 tensors instead of copying
  bool allow_missing_heads = false;  // load encoder only even if config says otherwise
  // What the linear weights and the embedding table are held in (#15, modernbert/precision.h).
  // nullopt ("auto"): f32 for a float checkpoint (F32/BF16/F16/F64 tensors are widened, today's
  // behaviour), the checkpoint's own type for one written by `modernbert quantize`. A float
  // checkpoint is converted at load to bf16 / f16 / int8 (no fp32 copy kept); a quantized one
  // loads only as its own type (anything else is an Error naming both).
  std::optional<Precision> precision;
  // False for fp32-only users (training, fine-tuning, export): a quantized checkpoint is then an
  // Error saying it was written by `modernbert quantize` and which tools can load it.
  bool allow_quantized = true;
};

struct LoadedModel {
  ModelConfig config;
  Weights weights;
  SentenceTransformersInfo sentence_transformers;
  std::string dir;
  std::string stored_dtype;  // dtype of the encoder weights in the file(s): "F32", "BF16", ...
  bool has_prefix = true;    // tensor names carried "model."
  Precision precision = Precision::kF32;  // what the linear weights / embeddings are held in
  bool quantized_checkpoint = false;      // the files were written by `modernbert quantize`
};

// Reads config.json + weights. Heads are detected from the tensors present. Throws an error that
// names every missing, unexpected or wrong-shaped tensor.
LoadedModel load_model_dir(const std::string& dir, const LoadOptions& opts = {});

// Writes config.json + model.safetensors (atomically each), in HF layout with the "model." prefix.
void save_model_dir(const std::string& dir, const ModelConfig& cfg, const Weights& w,
                    DType dtype = DType::kF32);

// Writes config.json + model.safetensors (atomically each) of a model held in reduced precision
// (loaded with LoadOptions::precision = p, p != f32) in the quantized-checkpoint format of
// docs/quantized-checkpoints.md: the weights in their storage types (int8 as I8 `<name>` + F32
// `<name>_scale`), __metadata__ "modernbert.precision" / "modernbert.quantization", and
// config.json's "torch_dtype" and "quantization_config". load_model_dir reads it back as p.
void save_quantized_model_dir(const std::string& dir, const ModelConfig& cfg, const Weights& w, Precision p);

// Deterministic Megatron-style initialisation of every parameter (spec §6.6): truncated normal
// (cutoff initializer_cutoff_factor * std), std by rule; norms 1, biases 0. Same seed -> same values.
void init_weights(Weights& w, uint64_t seed);
double init_std(const ModelConfig& cfg, InitRule rule);

}  // namespace modernbert
