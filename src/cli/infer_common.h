// Shared plumbing of the inference commands (encode, embed, classify, fill-mask): reading inputs
// (JSONL {"text"[, "text_pair"]} | {"input_ids"} | plain lines), turning them into token ids with the
// model's tokenizer, length checks, and running the encoder over token-budget batches.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/tokenizer.h"

namespace modernbert::cli {

struct InputRecord {
  size_t line = 0;  // 1-based line number in the input, for error messages
  std::string text, text_pair;
  bool has_pair = false;
  std::vector<int32_t> ids;  // when given as {"input_ids": [...]} (used exactly as given)
  bool has_ids = false;
  nlohmann::json extra;  // the whole JSON object (labels etc.), null for plain lines
};

// Reads every non-blank line. A line starting with '{' is JSON; anything else is plain text.
// Throws an error naming the line for malformed JSON, a record without text/input_ids, or empty text.
std::vector<InputRecord> read_inputs(std::istream& in, const std::string& label);
std::vector<InputRecord> read_inputs_from(const std::string& path);  // "-" = stdin

// Common flags: --model, --input, --output, --truncate, --max-batch-tokens, --threads.
void add_common_flags(ArgParser& a, bool with_output = true);
// Applies --threads (kernels' pool and BLAS) before any compute.
void apply_threads(const ArgParser& a);

struct InferenceContext {
  LoadedModel model;
  std::optional<Tokenizer> tokenizer;  // from DIR/tokenizer.json when present
  std::unique_ptr<Encoder> encoder;
};
InferenceContext load_inference(const std::string& dir);

// Token ids for each record: text is tokenized with special tokens (prefix prepended to text), ids
// are taken as given. Lengths above max_position_embeddings are an error naming the line unless
// `truncate` (then cut to the limit, keeping the final [SEP] for tokenized text). Ids outside the
// vocabulary are an error naming the line.
std::vector<std::vector<int32_t>> records_to_ids(const InferenceContext& ctx, const std::vector<InputRecord>& recs,
                                                 bool truncate, const std::string& prefix = "",
                                                 std::vector<Encoding>* encodings = nullptr);

// Runs the encoder over `seqs` in batches of at most max_batch_tokens tokens (a longer sequence goes
// alone), calling fn(batch, first_sequence_index, hidden[T_batch, H]) for each batch in order.
void for_each_batch(Encoder& enc, const std::vector<std::vector<int32_t>>& seqs, int64_t max_batch_tokens,
                    const std::function<void(const Batch&, size_t, const std::vector<float>&)>& fn);

// Writes to `path` (or stdout for "-"); files are written atomically.
void write_output(const std::string& path, const std::string& content);

void l2_normalize(float* v, int64_t n);

}  // namespace modernbert::cli
