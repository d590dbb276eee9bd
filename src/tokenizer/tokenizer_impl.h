// Internal state of modernbert::Tokenizer (shared by the encoder, the loader and the tests).
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "modernbert/tokenizer.h"
#include "tokenizer/unicode.h"

namespace modernbert::tok {

// Open-addressing hash map uint64 -> (rank, new_id) for BPE merges keyed by (left_id, right_id).
class MergeMap {
 public:
  struct Value {
    std::uint32_t rank;
    std::int32_t new_id;
  };
  void reserve(std::size_t n);
  void insert_or_assign(std::uint64_t key, Value v);
  const Value* find(std::uint64_t key) const {
    if (keys_.empty()) return nullptr;
    std::size_t i = hash(key) & mask_;
    while (true) {
      std::uint64_t k = keys_[i];
      if (k == key) return &vals_[i];
      if (k == kEmpty) return nullptr;
      i = (i + 1) & mask_;
    }
  }
  std::size_t size() const { return size_; }
  static std::uint64_t make_key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
           static_cast<std::uint32_t>(b);
  }

 private:
  static constexpr std::uint64_t kEmpty = ~0ULL;
  static std::size_t hash(std::uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return static_cast<std::size_t>(k);
  }
  void rehash(std::size_t cap);
  std::vector<std::uint64_t> keys_;
  std::vector<Value> vals_;
  std::size_t mask_ = 0, size_ = 0;
};

struct AddedToken {
  std::string content;
  std::int32_t id = -1;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = true;
};

// Leftmost-longest multi-pattern matcher (what aho-corasick MatchKind::LeftmostLongest finds),
// as a byte trie: added-token sets are small, so a first-byte filter plus a trie walk is enough.
class PatternSet {
 public:
  void add(std::string_view pattern, int value);
  void finalize();  // builds the dense table; call after the last add
  bool empty() const { return nodes_.size() <= 1; }
  // Longest pattern starting at s[i]; returns its length (0 = none) and value.
  std::size_t longest_at(std::string_view s, std::size_t i, int& value) const;
  bool maybe_starts(unsigned char c) const { return first_[c]; }

 private:
  struct Node {
    int value = -1;
  };
  int child(int node, unsigned char c) const {
    if (!dense_.empty()) return dense_[static_cast<std::size_t>(node) * 256 + c];
    auto it = edges_.find((static_cast<std::uint64_t>(node) << 8) | c);
    return it == edges_.end() ? -1 : it->second;
  }
  std::vector<Node> nodes_{Node{}};
  std::unordered_map<std::uint64_t, int> edges_;  // (node << 8 | byte) -> child
  // Dense transition table (node * 256 + byte -> child or -1) while the trie is small; the
  // space-run tokens make ' ' a pattern start, so this lookup runs at every space.
  std::vector<std::int32_t> dense_;
  bool first_[256] = {};
};

// Word cache: open addressing over (hash, key bytes) with keys and token lists in flat arenas;
// per-thread, so no locking. Values: (id, byte length) per BPE token of the pre-token.
class WordCache {
 public:
  using Tok = std::pair<std::int32_t, std::uint32_t>;
  // Returns the cached tokens of `word` or nullptr. Pointers stay valid until the next insert.
  const Tok* find(std::string_view word, std::uint64_t h, std::uint32_t& n) const {
    if (slots_.empty()) return nullptr;
    std::size_t i = h & mask_;
    while (true) {
      const Slot& sl = slots_[i];
      if (sl.key_len == kEmpty) return nullptr;
      if (sl.hash == h && sl.key_len == word.size() &&
          std::memcmp(keys_.data() + sl.key_off, word.data(), word.size()) == 0) {
        n = sl.val_len;
        return vals_.data() + sl.val_off;
      }
      i = (i + 1) & mask_;
    }
  }
  void insert(std::string_view word, std::uint64_t h, const std::vector<Tok>& toks);
  std::size_t size() const { return size_; }
  std::size_t bytes() const { return keys_.size() + vals_.size() * sizeof(Tok) + slots_.size() * sizeof(Slot); }
  void clear() {
    slots_.clear();
    keys_.clear();
    vals_.clear();
    size_ = 0;
    mask_ = 0;
  }
  static std::uint64_t hash(std::string_view s) noexcept;

  struct Hash {  // for std::unordered_map<std::string, ...> with string_view lookups
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return static_cast<std::size_t>(hash(s)); }
  };

 private:
  static constexpr std::uint32_t kEmpty = 0xffffffffu;
  struct Slot {
    std::uint64_t hash;
    std::uint32_t key_off, key_len = kEmpty, val_off, val_len;
  };
  void grow();
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<Tok> vals_;
  std::size_t mask_ = 0, size_ = 0;
};

struct TemplatePiece {
  bool is_sequence = false;
  int sequence = 0;          // 0 = A, 1 = B
  std::string special;       // key into template special_tokens
  std::uint32_t type_id = 0;
};

struct PostStep {
  enum Kind { kTemplate, kByteLevel } kind = kTemplate;
  std::vector<TemplatePiece> single, pair;
  std::unordered_map<std::string, std::vector<std::int32_t>> special_ids;
  bool trim_offsets = false, add_prefix_space = false;
};

// One token during encoding, before post-processing.
struct RawToken {
  std::int32_t id;
  std::uint32_t start, end;  // original byte offsets
};

}  // namespace modernbert::tok

namespace modernbert {

struct Tokenizer::Impl {
  std::string origin;
  // Model (BPE).
  std::unordered_map<std::string, std::int32_t> vocab;  // token (byte-level chars) -> id
  std::vector<std::string> id_to_vocab;                 // id -> token ("" if none)
  std::vector<std::uint8_t> has_vocab;
  tok::MergeMap merges;
  std::int32_t byte_id[256];  // id of the byte-level character of each raw byte, -1 if absent
  std::int32_t unk_id = -1;
  bool fuse_unk = false, ignore_merges = false;
  std::unordered_map<std::string, std::int32_t> raw_vocab;  // raw bytes -> id (ignore_merges)
  // Normalizer.
  bool nfc = false;
  // Pre-tokenizer.
  bool byte_level = false, add_prefix_space = false, use_regex = true;
  // Added tokens.
  std::vector<tok::AddedToken> added;                       // by index
  std::unordered_map<std::string, std::int32_t> added_by_content;
  std::unordered_map<std::int32_t, std::size_t> added_by_id;  // id -> index into `added`
  tok::PatternSet raw_patterns, norm_patterns;                // value = index into `added`
  // Post-processing.
  std::vector<tok::PostStep> post;
  bool has_trim = false;
  std::vector<std::pair<std::uint16_t, std::uint16_t>> vocab_ws;  // leading/trailing spaces per id
  // Decoder.
  bool byte_level_decoder = false;
  // Truncation from the file.
  std::size_t file_max_length = 0;
  int file_trunc_strategy = 0;  // 0 LongestFirst, 1 OnlyFirst, 2 OnlySecond
  std::size_t max_id_plus_one = 0;

  // Word caches, checked out per encode call / per thread.
  mutable std::mutex cache_mu;
  mutable std::vector<std::unique_ptr<tok::WordCache>> cache_pool;

  std::unique_ptr<tok::WordCache> take_cache() const;
  void give_cache(std::unique_ptr<tok::WordCache> c) const;

  // Tokenizes one sequence (no post-processing) into `out`; `ws` gets leading/trailing
  // whitespace counts per token when has_trim.
  // With `word_sink`, pre-tokens are handed to it instead of being BPE-encoded (training).
  void encode_sequence(std::string_view text, bool lossy, tok::WordCache& cache,
                       std::vector<tok::RawToken>& out,
                       std::vector<std::pair<std::uint16_t, std::uint16_t>>* ws,
                       const std::function<void(std::string_view)>* word_sink = nullptr) const;
  Encoding encode_full(std::string_view a, const std::string_view* b, const EncodeOptions& o,
                       tok::WordCache& cache) const;
  // BPE of one pre-token; appends (id, byte length) pairs.
  void bpe(std::string_view word, std::vector<std::pair<std::int32_t, std::uint32_t>>& out) const;
};

}  // namespace modernbert
