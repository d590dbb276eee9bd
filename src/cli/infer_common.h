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
#include "modernbert/batching.h"
#include "modernbert/file_io.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/precision.h"
#include "modernbert/tokenizer.h"

namespace modernbert::cli {

struct InputRecord {
  std::string source;  // the input file ("<stdin>", "argument" for command-line texts)
  size_t line = 0;     // 1-based line number in the input, for error messages
  std::string where() const { return source + ":" + std::to_string(line); }
  std::string text, text_pair;
  bool has_pair = false;
  std::vector<int32_t> ids;  // when given as {"input_ids": [...]} (used exactly as given)
  bool has_ids = false;
  nlohmann::json extra;  // the whole JSON object (labels etc.), null for plain lines
};

// Reads every non-blank line. A line starting with '{' is JSON; anything else is plain text.
// Throws an error naming FILE:LINE for malformed JSON, a record without text/input_ids, empty text,
// or input_ids outside [0, vocab_size) (parse_token_ids). With lossy_utf8, invalid UTF-8 in a JSON
// line is replaced by U+FFFD before parsing (JSON cannot carry it); plain lines are kept as bytes
// and the tokenizer replaces it (records_to_ids), so offsets still point into the original line.
std::vector<InputRecord> read_inputs(std::istream& in, const std::string& label, int64_t vocab_size,
                                     bool lossy_utf8 = false);
// The parts of read_inputs, for a caller that splits the lines itself (embed under MPI parses only
// its rank's share): whether a line (without its '\n' and trailing '\r') is skipped as blank, and
// one non-blank line as a record, LINENO (1-based) naming it in errors.
bool is_blank_input_line(const std::string& line);
InputRecord parse_input_line(std::string line, const std::string& label, size_t lineno, int64_t vocab_size,
                             bool lossy_utf8 = false);
// "-" = stdin, named "<stdin>" in errors.
std::vector<InputRecord> read_inputs_from(const std::string& path, int64_t vocab_size, bool lossy_utf8 = false);

// Turns an error of Tokenizer::encode_batch ("text K: ...", K an index into the batch) into one
// naming the input: "<where_of(K)>: ...".
[[noreturn]] void rethrow_tokenizer_error(const std::exception& e, const std::function<std::string(size_t)>& where_of);

// Common flags: --model, --input, --output, --truncate, --lossy-utf8, --max-batch-tokens, --threads,
// --dtype.
void add_common_flags(ArgParser& a, bool with_output = true);
// --dtype as given (nullopt when absent: the loader's "auto", LoadOptions::precision). Throws
// Error for a value other than f32 | bf16 | f16 | int8.
std::optional<Precision> dtype_option(const ArgParser& a);
// Applies --threads (kernels' pool and BLAS) before any compute.
void apply_threads(const ArgParser& a);

struct InferenceContext {
  LoadedModel model;
  std::optional<Tokenizer> tokenizer;  // from DIR/tokenizer.json when present
  std::unique_ptr<Encoder> encoder;
};
// Loads DIR with its weights held in `precision` (nullopt: f32, or the type of a quantized
// checkpoint; see LoadOptions::precision) and the tokenizer when DIR has one.
InferenceContext load_inference(const std::string& dir, std::optional<Precision> precision = std::nullopt);

// Token ids for each record (inputs_to_ids, batching.h): text is tokenized with special tokens
// (prefix prepended to text), ids are taken as given. Lengths above max_position_embeddings are an
// error naming FILE:LINE unless `truncate` (then cut to the limit, keeping the final [SEP] for
// tokenized text); so is a tokenizer error (invalid UTF-8 unless lossy_utf8). The commands then
// run the encoder with for_each_batch (batching.h).
std::vector<std::vector<int32_t>> records_to_ids(const InferenceContext& ctx, const std::vector<InputRecord>& recs,
                                                 bool truncate, bool lossy_utf8, const std::string& prefix = "",
                                                 std::vector<Encoding>* encodings = nullptr);

// Where a command's output goes: "-" = stdout, written as it comes (a pipe sees partial output on
// an error, as from any streaming tool); otherwise an AtomicOutputFile, so the file appears only
// when commit() is reached and an error on a later input leaves no file and any old one unchanged.
class Output {
 public:
  explicit Output(const std::string& path);
  void write(const void* data, size_t n);
  void write(const std::string& s) { write(s.data(), s.size()); }
  void commit();  // flushes stdout, or fsyncs and renames the file into place

 private:
  std::unique_ptr<AtomicOutputFile> file_;
};

// Writes to `path` (or stdout for "-"); files are written atomically (write_file_atomic).
void write_output(const std::string& path, const std::string& content);

// v[0..n) /= max(‖v‖, 1e-12) in place (kernels::l2norm).
void l2_normalize(float* v, int64_t n);

}  // namespace modernbert::cli
