// Byte-level BPE tokenizer compatible with Hugging Face `tokenizers` for the ModernBERT / OLMo /
// GPT-NeoX family of `tokenizer.json` files.
//
// Supported components (anything else is rejected by name with a modernbert::Error):
//   normalizer      null | NFC | Sequence of those
//   pre_tokenizer   ByteLevel (add_prefix_space, trim_offsets, use_regex) | Sequence of one ByteLevel
//   model           BPE (merges as "a b" strings or ["a","b"] pairs; unk_token, fuse_unk,
//                   ignore_merges; no dropout, byte_fallback or subword prefix/suffix)
//   added_tokens    special or not, with lstrip / rstrip / single_word / normalized
//   post_processor  null | TemplateProcessing | ByteLevel (trim_offsets) | Sequence of those
//   decoder         null | ByteLevel
//   truncation      null | {max_length, strategy LongestFirst|OnlyFirst|OnlySecond, direction Right,
//                   stride 0}; padding must be null.
//
// Offsets are UTF-8 byte offsets [start, end) into the ORIGINAL input text (before NFC), exactly
// as HF computes them (a token that covers part of a multi-byte character gets the whole
// character; post-processor special tokens get [0, 0]; in a pair, second-sequence offsets are
// relative to the second text).
//
// Invalid UTF-8 input: by default encode throws a modernbert::Error giving the byte position. With
// EncodeOptions::lossy_utf8 each maximal invalid subpart (the WHATWG / Rust from_utf8_lossy rule)
// is replaced by U+FFFD before tokenization; offsets still point into the original bytes (the
// replacement character's token covers the invalid bytes it replaced).
//
// Thread safety: a Tokenizer is immutable after loading; every const method may be called from any
// number of threads at once. Copies share the loaded data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modernbert {

struct EncodeOptions {
  bool add_special_tokens = true;
  // Truncate to at most this many tokens in total (special tokens included), longest-first for
  // pairs, dropping tokens on the right. Unset: no truncation (unless tokenizer.json sets one).
  std::optional<std::size_t> max_length;
  // Replace invalid UTF-8 with U+FFFD instead of throwing.
  bool lossy_utf8 = false;
};

struct Encoding {
  std::vector<std::int32_t> ids;
  // UTF-8 byte offsets [start, end) into the text the token came from.
  std::vector<std::pair<std::size_t, std::size_t>> offsets;
  std::vector<std::uint32_t> type_ids;
  std::vector<std::uint8_t> special_tokens_mask;  // 1 for post-processor special tokens
  std::vector<std::int8_t> sequence_ids;          // 0 / 1, -1 for post-processor special tokens
  std::size_t size() const { return ids.size(); }
};

// ---------------------------------------------------------------------------------------------
// Training a byte-level BPE tokenizer with ModernBERT's pipeline (NFC + ByteLevel regex).

struct BpeTrainerOptions {
  // Model (BPE) vocabulary size: 2 specials + 256 bytes + learned tokens + 23 space runs. The
  // 5 BERT specials and [unusedK] padding to a multiple of 64 come on top (like ModernBERT's
  // 50280 + 5 + 83 = 50368).
  std::size_t vocab_size = 32768;
  std::size_t min_frequency = 2;   // a pair must occur at least this often to be merged
  unsigned num_threads = 0;        // for counting words; 0 = all hardware threads
  bool verbose = false;            // progress on stderr
};

struct BpeTrainerStats {
  std::size_t num_words = 0;       // distinct pre-tokens
  std::size_t num_merges = 0;
  std::size_t vocab_size = 0;      // including added tokens
  double count_seconds = 0, merge_seconds = 0;
};

class Tokenizer;

// Learns merges from `texts` and returns a complete tokenizer.json (as a string) laid out like
// ModernBERT's: <|endoftext|> and <|padding|> first, the 256 byte symbols, merged tokens,
// then the space-run tokens (24..2 spaces) — together opts.vocab_size entries, fewer if the
// corpus runs out of pairs — then [UNK] [CLS] [SEP] [PAD] [MASK] (lstrip) and [unusedK] tokens
// padding the total to a multiple of 64. TemplateProcessing
// [CLS] $A [SEP] / [CLS] $A [SEP] $B [SEP]; ByteLevel decoder.
std::string train_bpe_tokenizer(const std::vector<std::string>& texts,
                                const BpeTrainerOptions& opts, BpeTrainerStats* stats = nullptr);


class Tokenizer {
 public:
  // Loads a HF tokenizer.json. Throws modernbert::Error naming the file and the field at fault.
  static Tokenizer from_file(const std::string& path);
  static Tokenizer from_json_string(std::string_view json, const std::string& origin = "<string>");

  Encoding encode(std::string_view text, const EncodeOptions& opts = {}) const;
  Encoding encode_pair(std::string_view first, std::string_view second,
                       const EncodeOptions& opts = {}) const;

  // Encodes every text on `num_threads` threads (0 = all hardware threads). Result i belongs to
  // text i. An error in any text is rethrown as a modernbert::Error naming the text's index.
  std::vector<Encoding> encode_batch(const std::vector<std::string>& texts,
                                     const EncodeOptions& opts = {},
                                     unsigned num_threads = 0) const;
  std::vector<Encoding> encode_batch_pairs(
      const std::vector<std::pair<std::string, std::string>>& pairs,
      const EncodeOptions& opts = {}, unsigned num_threads = 0) const;

  // HF Tokenizer::decode: ids -> token strings (added tokens by content) -> ByteLevel decoder ->
  // UTF-8 (invalid byte sequences become U+FFFD). Unknown ids are skipped, as HF does.
  std::string decode(std::span<const std::int32_t> ids, bool skip_special_tokens = false) const;

  std::optional<std::int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(std::int32_t id) const;
  bool is_special_id(std::int32_t id) const;
  // Largest id + 1 over the model vocabulary and the added tokens.
  std::size_t vocab_size() const;
  // Number of special tokens the post-processor adds (HF num_special_tokens_to_add).
  std::size_t num_special_tokens_to_add(bool pair) const;

  struct Impl;

 private:
  friend std::string train_bpe_tokenizer(const std::vector<std::string>&, const BpeTrainerOptions&,
                                         BpeTrainerStats*);
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// transformers' clean_up_tokenization (" ." -> ".", " n't" -> "n't", ...), which
// PreTrainedTokenizer.decode applies when tokenizer_config.json sets clean_up_tokenization_spaces
// (ModernBERT's does); fill-mask's decoded sequences use it.
std::string clean_up_tokenization(std::string s);

}  // namespace modernbert
