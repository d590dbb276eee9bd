// Text -> token ids -> token-budget batches: the one path by which every inference command (embed,
// encode, classify, fill-mask, bench) and evaluate() feed inputs to the encoder.
//
//   inputs[N] (text, text pair or ids) --inputs_to_ids--> ids[N] --make_batches / for_each_batch-->
//   batches of whole, unpadded sequences, in input order, each with the index of its first input
//
// Errors name the input by its index into `inputs` (BatchItemError, error.h), so that each caller
// can name its own file:line; the message detail is what the caller prints after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "modernbert/error.h"
#include "modernbert/model.h"
#include "modernbert/tokenizer.h"

namespace modernbert {

// One input: a text (or a pair) to tokenize with special tokens, or token ids used as given.
struct SequenceInput {
  std::string text, text_pair;
  bool has_pair = false;
  std::vector<int32_t> ids;
  bool has_ids = false;
};

struct SequenceOptions {
  int64_t max_position = 0;   // the model's max_position_embeddings: a longer sequence is an error (0: no limit)
  int64_t truncate_to = 0;    // > 0: texts are truncated by the tokenizer to this many tokens (pairs
                              // longest-first, the final [SEP] kept) and ids are cut to it
  int64_t vocab_size = 0;     // > 0: ids outside [0, vocab_size) are an error
  bool lossy_utf8 = false;    // invalid UTF-8 in a text becomes U+FFFD instead of an error
  std::string prefix;         // prepended to every text (the first text of a pair), not to ids
  std::string too_long_hint;  // appended as " (HINT)" to the too-long error, e.g. "use --truncate"
  unsigned tokenizer_threads = 0;  // encode_batch threads: 0 = every core, 1 = the calling thread only
};

// Why inputs_to_ids refused an input, for callers that map it to a status (the server). Thrown as
// SequenceInputError, a BatchItemError with the same index and message.
enum class SequenceIssue { kTokenizer, kIdOutOfRange, kTooLong, kEmpty };
class SequenceInputError : public BatchItemError {
 public:
  SequenceInputError(SequenceIssue k, std::size_t index, const std::string& detail)
      : BatchItemError(index, detail), kind(k) {}
  SequenceIssue kind;
};

// Token ids for every input, in input order. Texts are tokenized on every core (Tokenizer::
// encode_batch: single texts first, then pairs). `encodings` (optional) receives the Encoding of
// each text input (an empty Encoding for id inputs). Errors, all BatchItemError(i, detail):
//   a tokenizer failure of text i (the lowest failing index of the singles, else of the pairs);
//   then, checking inputs in order: an id outside the vocabulary ("field input_ids: id X outside
//   the vocabulary [0, V)"), more than max_position tokens ("N tokens exceed max_position_embeddings
//   M (HINT)"), no tokens ("no tokens").
// Each of these is a SequenceInputError (kTokenizer, kIdOutOfRange, kTooLong, kEmpty).
// A failure of the tokenizer as a whole (not of one text) propagates unchanged. `tok` may be null
// when every input has ids; a text input without a tokenizer is BatchItemError(i, "no tokenizer").
std::vector<std::vector<int32_t>> inputs_to_ids(const Tokenizer* tok, const std::vector<SequenceInput>& inputs,
                                                const SequenceOptions& o, std::vector<Encoding>* encodings = nullptr);

// Greedy packing in input order: a batch takes sequences while its token count stays within
// max_batch_tokens; a sequence longer than the budget goes alone. Returns the end (exclusive) of the
// batch that starts at `first` (first < seqs.size()).
size_t batch_end(const std::vector<std::vector<int32_t>>& seqs, size_t first, int64_t max_batch_tokens);

// One batch and the index (into seqs) of its first sequence; its sequences are first ..
// first + batch.num_seqs() - 1.
struct InputBatch {
  Batch batch;
  size_t first = 0;
};
// Every batch at once (for repeated passes, e.g. a benchmark). Throws when max_batch_tokens <= 0.
std::vector<InputBatch> make_batches(const std::vector<std::vector<int32_t>>& seqs, int64_t max_batch_tokens);

// Runs the encoder over the batches in order, building each only when it is due, and calls
// fn(batch, first, hidden[T_batch, H]). Throws when max_batch_tokens <= 0.
void for_each_batch(Encoder& enc, const std::vector<std::vector<int32_t>>& seqs, int64_t max_batch_tokens,
                    const std::function<void(const Batch&, size_t, const std::vector<float>&)>& fn);

}  // namespace modernbert
