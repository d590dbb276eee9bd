// The serving engine: one loaded model, a bounded request queue and one scheduler thread that packs
// the sequences of concurrent requests into unpadded token-budget batches (the encoder's Batch), runs
// Encoder::forward on the kernels' thread pool and routes each sequence's result back to its request.
//
//   HTTP handler thread                          scheduler thread (one)
//   -------------------                          ----------------------
//   tokenize(text) -> ids   (single-threaded)
//   submit(Request) -> Job  ---- queue ----->    take sequences FIFO while tokens <= max_batch_tokens
//   job->wait_for(...)                           forward(batch) -> hidden [T, H]
//     (cancel() when the client is gone or       per sequence: post-process (pool / heads / top-k)
//      the request timed out)                    exactly as the CLI does for one input alone
//   job->results()          <---- done ------    job complete when its last sequence is done
//
// Post-processing runs per sequence on that sequence's hidden rows only, so a sequence's result
// depends on the batch it rode in only through the forward (see tests/test_serve_engine.cpp for
// the equality we guarantee against running the input alone).
//
// Layer: serve (src/serve/) -> tasks and below. No HTTP here: http_server.cpp uses this.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/tasks.h"
#include "modernbert/tokenizer.h"

namespace modernbert::serve {

// What a request asks for. Each sequence of a request gets one SequenceResult.
enum class Task {
  kEmbed,     // sentence embedding [D] (pooling, Dense, normalise, Matryoshka dims): /embed, /v1/embeddings
  kEmbedAll,  // per-token vectors [len, D]: hidden states, or ColBERT vectors when the model has a projection
  kClassify,  // sequence-classification logits [num_labels] (single text or pair): /predict, /rerank
  kFillMask,  // top-k fills of every [MASK] token: /fill-mask
};

// Why input was refused; the HTTP layer maps each to a status code and error body.
enum class InputErrorKind {
  kEmpty,        // no inputs, or an input with no tokens
  kValidation,   // wrong shape/values, too many inputs, unsupported by the model, dims out of range
  kTooLong,      // more tokens than the model's max_position_embeddings and truncation off
  kIdOutOfRange, // a token id outside [0, vocab_size)
  kTokenizer,    // the tokenizer failed (e.g. invalid UTF-8)
};
class InputError : public std::runtime_error {
 public:
  InputError(InputErrorKind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
  InputErrorKind kind;
};
// The queue holds max_queued_requests requests: submit() throws this (HTTP 429).
class QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// submit() after shutdown() began (HTTP 503).
class ShuttingDown : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct EngineOptions {
  std::string model_dir;
  std::optional<Precision> precision;  // weights and compute (nullopt: f32, or a quantized checkpoint's type)
  int threads = 0;                   // kernels' pool and BLAS (0 = all cores); process-wide
  int64_t max_batch_tokens = 16384;  // token budget of one forward (>= max_input_length; longer: alone)
  size_t max_queued_requests = 512;  // requests waiting or running (TEI --max-concurrent-requests)
  std::string pooling;               // "" = the model's (sentence-transformers, else config.json), else cls|mean|max
  std::string default_prompt_name;   // "" = the model's default_prompt_name, if any
  bool warmup = true;                // run one short embedding before ready() turns true (its failure
                                     // makes the constructor throw; its batch is not observed)
};

// What the loaded model can do (for /info and for refusing routes it cannot serve).
struct Capabilities {
  std::string model_dir;
  int64_t hidden_size = 0, vocab_size = 0, max_input_length = 0;
  int64_t embedding_dim = 0;         // after the ST Dense module, before Matryoshka truncation
  int64_t token_vector_dim = 0;      // kEmbedAll vector size (ColBERT projection out, else hidden)
  bool has_colbert_projection = false;
  bool normalize_by_default = false; // the sentence-transformers Normalize module
  EmbedPooling pooling = EmbedPooling::kMean;
  bool has_mlm = false;
  bool has_classifier = false;
  int64_t num_labels = 0;
  ProblemType problem_type = ProblemType::kUnset;  // config.json's (kUnset when it names none)
  std::vector<std::string> labels;   // id2label in id order ("LABEL_i" where absent)
  std::map<std::string, std::string> prompts;
  std::string default_prompt_name;
  int32_t mask_token_id = -1;        // -1: no [MASK] in the vocabulary
  std::string stored_dtype;
  std::string precision;  // what the weights are held in and computed with: "f32", "bf16", ...
};

// A request: token ids per sequence (from tokenize() or from the client) and the task's knobs.
struct Request {
  Task task = Task::kEmbed;
  std::vector<std::vector<int32_t>> seqs;  // validated by make_ids(); each 1..max_input_length ids
  // kEmbed
  bool normalize = true;
  int64_t dims = 0;  // Matryoshka: first `dims` dimensions (re-normalised when normalize); 0 = all
  // kFillMask
  int64_t top_k = 5;
};

struct SequenceResult {
  std::vector<float> values;  // kEmbed [D]; kEmbedAll [rows, cols]; kClassify logits [num_labels]
  int64_t rows = 1, cols = 0;
  std::vector<std::vector<MaskPrediction>> masks;  // kFillMask: one list per [MASK], in order
  std::vector<int64_t> mask_positions;             // kFillMask: token index of each [MASK]
};

// One submitted request. Thread-safe: the handler waits and may cancel; the scheduler fills it.
class Job {
 public:
  // Blocks until the job is done (true) or `timeout` passed (false).
  bool wait_for(std::chrono::milliseconds timeout);
  bool done() const;
  // Drops the job's sequences that are not yet in a batch (a batch already running finishes). The
  // job is done at once when none of it is running, else after that batch; results() then throws.
  void cancel();
  bool cancelled() const;
  // Valid once done(): one result per Request::seqs entry, in order. Throws the engine's error when
  // the forward (or this job's post-processing) failed, std::runtime_error when cancelled, and
  // std::logic_error before done().
  const std::vector<SequenceResult>& results() const;
  // Timings (seconds) for metrics: enqueue -> first sequence in a batch; first batch start -> done.
  double queue_seconds() const;
  double inference_seconds() const;
  size_t num_tokens() const;

  struct State;  // engine.cpp
  explicit Job(std::shared_ptr<State> s) : s_(std::move(s)) {}

 private:
  std::shared_ptr<State> s_;
};

// Called by the scheduler after every batch (metrics). Must be cheap and thread-safe.
struct BatchStats {
  int64_t seqs = 0, tokens = 0;
  double seconds = 0;        // forward + post-processing
  size_t queued_after = 0;   // requests still waiting
};

class Engine {
 public:
  // Loads DIR (model, tokenizer, sentence-transformers files), starts the scheduler, warms up.
  // Throws modernbert::Error on a bad directory or bad options.
  explicit Engine(const EngineOptions& o);
  ~Engine();  // shutdown() then join
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const Capabilities& capabilities() const;
  const Tokenizer* tokenizer() const;  // null when DIR has no tokenizer.json
  bool ready() const;                  // loaded and warmed up

  // Text -> ids with special tokens, on the calling thread (single-threaded tokenizer). `prefix`
  // (a prompt) is prepended to `text`. When `truncate` is on, an over-long input is cut to
  // max_input_length keeping [CLS] and the final [SEP]; `truncate_left` keeps the end of the text
  // instead of the start (TEI truncation_direction "Left"; single texts only: with `pair` and
  // `truncate` it is InputError kValidation). No tokenizer.json: kValidation. Throws InputError.
  std::vector<int32_t> tokenize(const std::string& text, const std::string* pair, const std::string& prefix,
                                bool truncate, bool truncate_left = false) const;
  // Client-given ids: checked against the vocabulary and the length limit (truncated when
  // `truncate`: cut at the end). Throws InputError.
  std::vector<int32_t> check_ids(std::vector<int32_t> ids, bool truncate) const;
  // The prompt text for a prompt name ("" -> the default prompt, or "" when none). Throws InputError
  // (kValidation) for an unknown name.
  std::string prompt_text(const std::string& prompt_name) const;

  // Queues a request. Throws InputError (task unsupported by the model, empty, dims out of range,
  // top_k < 1, a kFillMask sequence without [MASK]; every id and length is checked again: kTooLong,
  // kIdOutOfRange), then ShuttingDown, then QueueFull. Never blocks on the forward.
  std::shared_ptr<Job> submit(Request r);

  // Stop accepting, finish every queued job, stop the scheduler. Idempotent; returns when drained.
  void shutdown();

  size_t queue_size() const;  // requests submitted and not done
  void set_batch_observer(std::function<void(const BatchStats&)> fn);  // before the first submit

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace modernbert::serve
