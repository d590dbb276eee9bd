// The inference API (#17): one loaded model directory and every task on it, synchronous, for
// programs that embed the engine (the C API in modernbert.h and the Python module wrap this).
//
//   Model m("path/to/ModernBERT-dir", {.precision = Precision::kBF16, .threads = 4});
//   Matrix e = m.embed({"search_query: what is X?", ...});      // [N, D], like sentence-transformers
//   auto ranked = m.rerank("query", {"doc a", "doc b"});           // best first
//
// Every task resolves its knobs exactly as the matching CLI command does (pooling, Dense,
// Normalize, prompts, Matryoshka, problem type, label names, fill-mask decoding), so a result equals
// the CLI's for the same input (tests/test_inference_api.cpp compares them).
//
// Texts are tokenized with special tokens; a text longer than max_position_embeddings tokens is an
// Error unless ModelOptions::truncate. Inputs run in unpadded token-budget batches
// (max_batch_tokens, and at most batch_size sequences when batch_size > 0).
//
// The option structs have a default for every member, so designated initializers may name any
// subset of them ({.precision = ..., .threads = 4}) without -Wmissing-field-initializers.
//
// Errors: every failure is a modernbert::Error (error.h) whose message says what and where; an
// input's failure is an InputError naming the input's index. Nothing aborts on bad input.
//
// Thread safety: a Model may be shared by threads; calls on one Model are serialised by an
// internal mutex (each call uses every core already). Use one Model per thread for concurrent
// forwards (the weights are then loaded once per Model). ModelOptions::threads is process-wide.
//
// Layer: tasks (src/tasks/inference.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "modernbert/error.h"
#include "modernbert/precision.h"
#include "modernbert/tasks.h"
#include "modernbert/tokenizer.h"

namespace modernbert {

struct ModelOptions {
  // What the weights are held in and computed with; nullopt: f32 for a float checkpoint, the
  // checkpoint's own type for a quantized one (LoadOptions::precision).
  std::optional<Precision> precision{};
  int threads = 0;                   // kernels' pool and BLAS; 0 = all cores. Process-wide.
  int64_t max_batch_tokens = 16384;  // token budget of one forward (a longer input runs alone)
  int64_t batch_size = 0;            // > 0: at most this many sequences per forward as well
  bool truncate = false;             // cut over-long inputs (keeping the final [SEP]) instead of an error
  bool lossy_utf8 = false;           // invalid UTF-8 becomes U+FFFD instead of an error
};

// Why an input was refused (index = position in the call's input list).
enum class InputIssue { kEmpty, kTooLong, kTokenizer, kIdOutOfRange, kNoMask, kInvalid };
class InputError : public BatchItemError {
 public:
  InputError(InputIssue k, std::size_t index, const std::string& detail)
      : BatchItemError(index, detail), kind(k) {}
  InputIssue kind;
};

// What the loaded model is and can do.
struct ModelInfo {
  std::string dir;
  int64_t hidden_size = 0, num_layers = 0, vocab_size = 0, max_length = 0;
  std::string stored_dtype;  // "F32", "BF16", ... (the files)
  Precision precision = Precision::kF32;  // held and computed in
  bool has_tokenizer = false;
  bool has_mlm = false;
  bool has_classifier = false;        // sequence classification (incl. cross-encoder rerankers)
  bool has_token_classifier = false;  // token classification
  bool has_colbert = false;           // a PyLate/ST Dense projection: per-token ColBERT vectors
  int64_t num_labels = 0;
  ProblemType problem_type = ProblemType::kUnset;  // resolved: unset + 1 label = regression
  std::vector<std::string> labels;                 // id2label in id order ("LABEL_i" where absent)
  EmbedPooling pooling = EmbedPooling::kMean;      // sentence-transformers', else config.json's
  bool normalize = false;                          // a Normalize module (embeddings always normalised)
  int64_t embedding_dim = 0;                       // after Dense (ColBERT) / hidden_size
  std::map<std::string, std::string> prompts;      // config_sentence_transformers.json
  std::string default_prompt_name;
  std::string query_prefix, document_prefix;  // PyLate ColBERT ("[Q] ", "[D] "); "" otherwise
};

// A row-major float matrix.
struct Matrix {
  std::vector<float> data;
  int64_t rows = 0, cols = 0;
  const float* row(int64_t r) const { return data.data() + r * cols; }
};

// Options of embed(): as `modernbert embed` and sentence-transformers' encode().
struct EmbedParams {
  // A prompt of config_sentence_transformers.json by name ("" = the model's default prompt, if any;
  // an unknown name is an Error), then `prefix`, are prepended to every text.
  std::string prompt_name{};
  std::string prefix{};
  // With prompt_name "": whether the model's default prompt applies. False gives sentence-
  // transformers' encode(prompt=...) semantics, where a literal prompt replaces the default one.
  bool use_default_prompt = true;
  bool normalize = false;  // also L2-normalise (a model with a Normalize module always does)
  int64_t dim = 0;         // Matryoshka: keep the first `dim` dims (normalised after the cut); 0 = all
  std::optional<EmbedPooling> pooling{};  // override the model's pooling
  int64_t batch_size = 0;  // > 0: at most this many sequences per forward (else ModelOptions')
};

// Options of embed_tokens(). A PyLate ColBERT model (config_sentence_transformers.json with
// query_prefix / document_prefix) gets its query or document treatment: the prefix token after
// [CLS], and for queries its query expansion ([MASK] padding to query_length) when configured.
struct TokenParams {
  bool is_query = false;
  std::string prefix{};  // prepended to every text (after any PyLate prefix)
};

// Per-token vectors of each text: ColBERT vectors (L2-normalised Dense projection) when the model
// has one, else the L2-normalised final hidden states (as `modernbert embed --colbert`; the raw
// ones: hidden_states()). Text i owns rows offsets[i] .. offsets[i+1] of `vectors`.
struct TokenVectors {
  Matrix vectors;                // [sum of lengths, D]
  std::vector<int64_t> offsets;  // [N + 1]
};

// Sequence classification of one input (a text or a text pair).
struct Classification {
  std::vector<float> logits;  // [num_labels]
  std::vector<float> scores;  // softmax (single label), sigmoid (multi label), identity (regression)
  int64_t label = -1;         // argmax of scores (single label), -1 otherwise
  std::vector<int64_t> labels;  // multi label: indices with score > 0.5
};

struct TokenLabel {
  int64_t index = 0;   // token position in the sequence
  int32_t id = 0;      // token id
  std::string token;   // the token decoded alone
  size_t start = 0, end = 0;  // UTF-8 byte offsets into the text
  int64_t label = 0;   // argmax
  float score = 0;     // its softmax probability
};

struct MaskFill {
  int32_t token = 0;
  std::string token_str;  // decoded as Hugging Face decodes it (a leading space included)
  float score = 0;        // softmax probability
  std::string sequence;   // the text with this fill, special tokens skipped
};
struct MaskResult {
  int64_t position = 0;  // token index of the [MASK] in the sequence
  std::vector<MaskFill> predictions;  // top_k, best first
};

// How rerank() scores a (query, text) pair: a cross-encoder's classifier (sigmoid of its one logit,
// or of the last logit's softmax probability with several labels), ColBERT MaxSim of the query's and
// the text's token vectors, or the cosine of their sentence embeddings.
enum class RerankMode { kAuto, kCrossEncoder, kColBERT, kEmbedding };
struct RerankParams {
  RerankMode mode = RerankMode::kAuto;  // auto: cross-encoder if the model has a classifier,
                                        // else ColBERT if it has a projection, else embeddings
  // Embedding mode only (e.g. nomic's search_query / search_document); "" = the default prompt.
  // Naming one when the mode resolves to cross-encoder or ColBERT is an Error.
  std::string query_prompt_name{}, document_prompt_name{};
  int64_t top_n = 0;                    // keep the best top_n (0 = all)
};
struct RerankHit {
  int64_t index = 0;  // into the texts given
  float score = 0;
};

class Model {
 public:
  // Loads DIR (config.json, safetensors, tokenizer.json, sentence-transformers files). Throws Error.
  explicit Model(const std::string& dir, const ModelOptions& options = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  const ModelInfo& info() const;
  const Tokenizer* tokenizer() const;  // null when DIR has no tokenizer.json

  // Token ids etc. (with [CLS]/[SEP] when add_special_tokens). Needs tokenizer.json.
  Encoding tokenize(const std::string& text, bool add_special_tokens = true) const;

  // The final hidden states of each text (after final_norm): rows offsets[i]..offsets[i+1].
  TokenVectors hidden_states(const std::vector<std::string>& texts);
  // Sentence embeddings [N, D].
  Matrix embed(const std::vector<std::string>& texts, const EmbedParams& p = {});
  // ColBERT / per-token vectors (see TokenVectors); `prefix` is prepended to every text.
  TokenVectors embed_tokens(const std::vector<std::string>& texts, const TokenParams& p = {});
  // Sequence classification of texts, or of (texts[i], pairs[i]) when `pairs` is non-empty (same size).
  std::vector<Classification> classify(const std::vector<std::string>& texts,
                                        const std::vector<std::string>& pairs = {});
  // Token classification: the non-special tokens of each text with their labels.
  std::vector<std::vector<TokenLabel>> classify_tokens(const std::vector<std::string>& texts);
  // Every [MASK] of each text (a text without one is InputError kNoMask).
  std::vector<std::vector<MaskResult>> fill_mask(const std::vector<std::string>& texts, int64_t top_k = 5);
  // The texts ordered by relevance to `query`, best first (ties: input order).
  std::vector<RerankHit> rerank(const std::string& query, const std::vector<std::string>& texts,
                                const RerankParams& p = {});

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace modernbert
