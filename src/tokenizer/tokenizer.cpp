// Encoding and decoding. The pipeline mirrors HF tokenizers (TokenizerImpl::encode_single_sequence):
//   1. non-normalized added tokens are cut out of the raw text (leftmost-longest, with
//      single_word / lstrip / rstrip);
//   2. each remaining piece is NFC-normalized, then normalized added tokens are cut out of it;
//   3. each remaining piece is split by the GPT-2 regex (ByteLevel pre-tokenizer);
//   4. each pre-token is BPE-encoded over its raw bytes (the byte-level alphabet is a bijection,
//      so merging raw bytes is merging their byte-level characters);
//   5. offsets are mapped back to the original bytes through per-byte alignments (identity in
//      the common already-NFC case, so no alignment vector is built).
#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <thread>

#include "core/hash.h"
#include "core/thread_pool.h"
#include "modernbert/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace modernbert {
namespace tok {

void MergeMap::reserve(std::size_t n) {
  std::size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap > keys_.size()) rehash(cap);
}

void MergeMap::rehash(std::size_t cap) {
  std::vector<std::uint64_t> old_keys = std::move(keys_);
  std::vector<Value> old_vals = std::move(vals_);
  keys_.assign(cap, kEmpty);
  vals_.assign(cap, Value{0, 0});
  mask_ = cap - 1;
  size_ = 0;
  for (std::size_t i = 0; i < old_keys.size(); ++i)
    if (old_keys[i] != kEmpty) insert_or_assign(old_keys[i], old_vals[i]);
}

void MergeMap::insert_or_assign(std::uint64_t key, Value v) {
  if (keys_.empty() || (size_ + 1) * 2 > keys_.size()) rehash(keys_.empty() ? 16 : keys_.size() * 2);
  std::size_t i = hash(key) & mask_;
  while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
  if (keys_[i] == kEmpty) {
    keys_[i] = key;
    ++size_;
  }
  vals_[i] = v;
}

void PatternSet::add(std::string_view p, int value) {
  if (p.empty()) return;
  first_[static_cast<unsigned char>(p[0])] = true;
  int node = 0;
  for (unsigned char ch : p) {
    std::uint64_t key = (static_cast<std::uint64_t>(node) << 8) | ch;
    auto it = edges_.find(key);
    if (it == edges_.end()) {
      nodes_.push_back(Node{});
      it = edges_.emplace(key, static_cast<int>(nodes_.size() - 1)).first;
    }
    node = it->second;
  }
  if (nodes_[node].value < 0) nodes_[node].value = value;  // first added wins, like aho-corasick
  dense_.clear();
}

void PatternSet::finalize() {
  dense_.clear();
  if (nodes_.size() <= 4096) {
    dense_.assign(nodes_.size() * 256, -1);
    for (const auto& [k, v] : edges_) dense_[static_cast<std::size_t>(k >> 8) * 256 + (k & 0xff)] = v;
  }
}

std::size_t PatternSet::longest_at(std::string_view s, std::size_t i, int& value) const {
  int node = 0;
  std::size_t best = 0;
  for (std::size_t j = i; j < s.size(); ++j) {
    node = child(node, static_cast<unsigned char>(s[j]));
    if (node < 0) break;
    if (nodes_[node].value >= 0) {
      best = j + 1 - i;
      value = nodes_[node].value;
    }
  }
  return best;
}

std::uint64_t WordCache::hash(std::string_view s) noexcept {
  return fnv_words64(s);  // FNV-style mixing over 8-byte words: pre-tokens are short
}

void WordCache::grow() {
  std::size_t cap = slots_.empty() ? 4096 : slots_.size() * 2;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (const Slot& sl : old) {
    if (sl.key_len == kEmpty) continue;
    std::size_t i = sl.hash & mask_;
    while (slots_[i].key_len != kEmpty) i = (i + 1) & mask_;
    slots_[i] = sl;
  }
}

void WordCache::insert(std::string_view word, std::uint64_t h, const std::vector<Tok>& toks) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  std::size_t i = h & mask_;
  while (slots_[i].key_len != kEmpty) i = (i + 1) & mask_;
  Slot& sl = slots_[i];
  sl.hash = h;
  sl.key_off = static_cast<std::uint32_t>(keys_.size());
  sl.key_len = static_cast<std::uint32_t>(word.size());
  sl.val_off = static_cast<std::uint32_t>(vals_.size());
  sl.val_len = static_cast<std::uint32_t>(toks.size());
  keys_.append(word);
  vals_.insert(vals_.end(), toks.begin(), toks.end());
  ++size_;
}

namespace {

// A piece of text on its way through the pipeline: bytes plus the way back to the original.
struct Piece {
  std::string_view text;
  const Align* align = nullptr;  // per-byte alignment, or nullptr: identity shifted by `base`
  std::uint32_t base = 0;
};

inline bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

// Original range of bytes [a, b) of a piece (a < b). A boundary inside a character widens to
// the whole character, as HF's per-byte alignments do.
inline std::pair<std::uint32_t, std::uint32_t> to_original(const Piece& p, std::size_t a,
                                                           std::size_t b) {
  if (a >= b) {  // empty range (only from the overlapping added-token quirk)
    std::uint32_t o = p.align ? (a < p.text.size() ? p.align[a].first : (a ? p.align[a - 1].second : 0))
                              : p.base + static_cast<std::uint32_t>(a);
    return {o, o};
  }
  if (p.align) return {p.align[a].first, p.align[b - 1].second};
  const auto* s = reinterpret_cast<const unsigned char*>(p.text.data());
  while (a > 0 && is_cont(s[a])) --a;
  while (b < p.text.size() && is_cont(s[b])) ++b;
  return {p.base + static_cast<std::uint32_t>(a), p.base + static_cast<std::uint32_t>(b)};
}

// Decodes the (valid) code point at s[i].
inline char32_t peek(const unsigned char* s, std::size_t i, int& len) {
  unsigned char b = s[i];
  if (b < 0x80) {
    len = 1;
    return b;
  }
  if (b < 0xE0) {
    len = 2;
    return ((b & 0x1F) << 6) | (s[i + 1] & 0x3F);
  }
  if (b < 0xF0) {
    len = 3;
    return ((b & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
  }
  len = 4;
  return ((b & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) |
         (s[i + 3] & 0x3F);
}

struct AsciiClasses {
  CharClass c[128];
  AsciiClasses() {
    for (int i = 0; i < 128; ++i) c[i] = char_class(static_cast<char32_t>(i));
  }
};
const AsciiClasses& ascii_classes() {
  static const AsciiClasses t;
  return t;
}

inline CharClass class_at(const unsigned char* s, std::size_t i, int& len, const AsciiClasses& ac) {
  if (s[i] < 0x80) {
    len = 1;
    return ac.c[s[i]];
  }
  return char_class(peek(s, i, len));
}

// End of the GPT-2 regex match starting at s[i] (i < n):
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
std::size_t gpt2_match_end(const unsigned char* s, std::size_t n, std::size_t i,
                           const AsciiClasses& ac) {
  unsigned char c0 = s[i];
  if (c0 == '\'' && i + 1 < n) {
    unsigned char c1 = s[i + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
    if (i + 2 < n) {
      unsigned char c2 = s[i + 2];
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return i + 3;
    }
  }
  int len;
  CharClass cls;
  std::size_t j;
  if (c0 == ' ' && i + 1 < n) {
    CharClass next = class_at(s, i + 1, len, ac);
    if (next != kSpace) {
      cls = next;
      j = i + 1 + len;
      goto run;
    }
  }
  cls = class_at(s, i, len, ac);
  j = i + len;
  if (cls != kSpace) goto run;
  {
    // Whitespace: \s+(?!\S) keeps the last whitespace character for the next match when a
    // non-space follows; a single whitespace character before a non-space falls to \s+.
    std::size_t last = i, count = 1;
    while (j < n) {
      if (class_at(s, j, len, ac) != kSpace) break;
      last = j;
      j += len;
      ++count;
    }
    if (j == n || count == 1) return j;
    return last;
  }
run:
  while (j < n) {
    if (s[j] < 0x80) {
      if (ac.c[s[j]] != cls) break;
      ++j;
    } else {
      if (char_class(peek(s, j, len)) != cls) break;
      j += len;
    }
  }
  return j;
}

// Rust `\w` / `\s` tests on the characters around an added-token match.
bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  std::size_t i = s.size() - 1;
  while (i > 0 && is_cont(static_cast<unsigned char>(s[i]))) --i;
  int len;
  return is_word_char(peek(reinterpret_cast<const unsigned char*>(s.data()), i, len));
}
bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  int len;
  return is_word_char(peek(reinterpret_cast<const unsigned char*>(s.data()), 0, len));
}
// Start of the trailing whitespace run of s.
std::size_t trailing_space_start(std::string_view s) {
  std::size_t end = s.size();
  while (end > 0) {
    std::size_t i = end - 1;
    while (i > 0 && is_cont(static_cast<unsigned char>(s[i]))) --i;
    int len;
    if (!is_white_space(peek(reinterpret_cast<const unsigned char*>(s.data()), i, len))) break;
    end = i;
  }
  return end;
}
std::size_t leading_space_end(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    int len;
    if (!is_white_space(peek(reinterpret_cast<const unsigned char*>(s.data()), i, len))) break;
    i += len;
  }
  return i;
}

struct Split {
  std::size_t start, stop;
  int added = -1;  // index into Impl::added, or -1 for text
};

// AddedVocabulary::find_matches.
void find_added(const Tokenizer::Impl& t, const PatternSet& pats, std::string_view s,
                std::vector<Split>& out) {
  out.clear();
  std::size_t start_offset = 0, i = 0;
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    if (!pats.maybe_starts(u[i])) {
      ++i;
      continue;
    }
    int value = -1;
    std::size_t len = pats.longest_at(s, i, value);
    if (!len) {
      ++i;
      continue;
    }
    std::size_t start = i, stop = i + len;
    i = stop;  // aho-corasick resumes after the match, even one discarded below
    const AddedToken& a = t.added[static_cast<std::size_t>(value)];
    if (a.single_word) {
      bool start_space = start == 0 || !ends_with_word(s.substr(0, start));
      bool stop_space = stop == s.size() || !starts_with_word(s.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (a.lstrip) start = std::max(trailing_space_start(s.substr(0, start)), start_offset);
    if (a.rstrip) stop += leading_space_end(s.substr(stop));
    // HF quirk kept on purpose: the search resumes after the raw match (`i`), not after the
    // rstripped `stop`, so a following match may overlap the stripped whitespace.
    if (start > stop) start = stop;  // HF would panic here (bad split); we emit an empty token
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, value});
    start_offset = stop;
  }
  if (start_offset != s.size()) out.push_back({start_offset, s.size(), -1});
}

std::pair<std::uint16_t, std::uint16_t> ws_of(std::string_view s) {
  std::size_t lead = 0, trail = 0;
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  std::vector<char32_t> cps;
  for (std::size_t i = 0; i < s.size();) {
    int len;
    cps.push_back(peek(u, i, len));
    i += len;
  }
  auto sp = [](char32_t c) { return c == 0x120 || is_white_space(c); };
  while (lead < cps.size() && sp(cps[lead])) ++lead;
  while (trail < cps.size() && sp(cps[cps.size() - 1 - trail])) ++trail;
  return {static_cast<std::uint16_t>(std::min<std::size_t>(lead, 65535)),
          static_cast<std::uint16_t>(std::min<std::size_t>(trail, 65535))};
}

}  // namespace
}  // namespace tok

using tok::Align;
using tok::Piece;
using tok::RawToken;

std::unique_ptr<tok::WordCache> Tokenizer::Impl::take_cache() const {
  std::lock_guard<std::mutex> lk(cache_mu);
  if (cache_pool.empty()) return std::make_unique<tok::WordCache>();
  auto c = std::move(cache_pool.back());
  cache_pool.pop_back();
  return c;
}

void Tokenizer::Impl::give_cache(std::unique_ptr<tok::WordCache> c) const {
  if (c->bytes() > (64u << 20)) c->clear();  // bound memory; the hot words come back fast
  std::lock_guard<std::mutex> lk(cache_mu);
  cache_pool.push_back(std::move(c));
}

// BPE::merge_word + Word::merge_all, exactly: symbols in a doubly linked list, a min-heap of
// candidate merges ordered by (rank, position), stale entries skipped when the pair at that
// position no longer yields the same new id.
void Tokenizer::Impl::bpe(std::string_view word,
                          std::vector<std::pair<std::int32_t, std::uint32_t>>& out) const {
  if (ignore_merges) {
    auto it = raw_vocab.find(std::string(word));
    if (it != raw_vocab.end()) {
      out.emplace_back(it->second, static_cast<std::uint32_t>(word.size()));
      return;
    }
  }
  struct Sym {
    std::int32_t id;
    std::int32_t prev, next;
    std::uint32_t len;
  };
  thread_local std::vector<Sym> syms;
  syms.clear();
  std::int32_t pending_unk_len = -1;
  auto push = [&](std::int32_t id, std::uint32_t len) {
    std::int32_t idx = static_cast<std::int32_t>(syms.size());
    syms.push_back({id, idx - 1, -1, len});
    if (idx > 0) syms[idx - 1].next = idx;
  };
  for (unsigned char b : word) {
    std::int32_t id = byte_id[b];
    if (id >= 0) {
      if (pending_unk_len >= 0) {
        push(unk_id, static_cast<std::uint32_t>(pending_unk_len));
        pending_unk_len = -1;
      }
      push(id, 1);
    } else if (unk_id >= 0) {
      if (pending_unk_len >= 0 && fuse_unk) {
        pending_unk_len += 1;
      } else {
        if (pending_unk_len >= 0) push(unk_id, static_cast<std::uint32_t>(pending_unk_len));
        pending_unk_len = 1;
      }
    }
    // No unk token: HF drops the character.
  }
  if (pending_unk_len >= 0) push(unk_id, static_cast<std::uint32_t>(pending_unk_len));

  struct Cand {
    std::uint32_t rank;
    std::int32_t pos;
    std::int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Cand> heap;
  heap.clear();
  auto cmp = [](const Cand& a, const Cand& b) { return a > b; };
  for (std::size_t i = 0; i + 1 < syms.size(); ++i) {
    if (auto* m = merges.find(tok::MergeMap::make_key(syms[i].id, syms[i + 1].id)))
      heap.push_back({m->rank, static_cast<std::int32_t>(i), m->new_id});
  }
  std::make_heap(heap.begin(), heap.end(), cmp);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    Cand top = heap.back();
    heap.pop_back();
    Sym& cur = syms[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    std::int32_t next_pos = cur.next;
    Sym& right = syms[next_pos];
    auto* m = merges.find(tok::MergeMap::make_key(cur.id, right.id));
    if (!m || m->new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    right.len = 0;
    if (cur.next >= 0) syms[cur.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (auto* pm = merges.find(tok::MergeMap::make_key(syms[cur.prev].id, cur.id))) {
        heap.push_back({pm->rank, cur.prev, pm->new_id});
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    }
    if (cur.next >= 0) {
      if (auto* nm = merges.find(tok::MergeMap::make_key(cur.id, syms[cur.next].id))) {
        heap.push_back({nm->rank, top.pos, nm->new_id});
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    }
  }
  for (const Sym& s : syms)
    if (s.len > 0) out.emplace_back(s.id, s.len);
}

void Tokenizer::Impl::encode_sequence(
    std::string_view text, bool lossy, tok::WordCache& cache, std::vector<RawToken>& out,
    std::vector<std::pair<std::uint16_t, std::uint16_t>>* ws,
    const std::function<void(std::string_view)>* word_sink) const {
  // Storage for normalized strings / alignments made along the way (rare paths only).
  std::string lossy_text;
  std::vector<Align> lossy_align;
  Piece root{text, nullptr, 0};
  if (std::size_t bad = tok::utf8_first_invalid(text); bad != std::string_view::npos) {
    if (!lossy)
      throw Error("invalid UTF-8 at byte " + std::to_string(bad) +
                  " (use lossy mode to replace invalid bytes with U+FFFD)");
    lossy_text = tok::utf8_lossy(text, &lossy_align);
    root = Piece{lossy_text, lossy_align.data(), 0};
  }
  if (text.size() >= (1ULL << 32) - 1) throw Error("text too long (4 GiB or more)");

  auto sub = [](const Piece& p, std::size_t a, std::size_t b) {
    Piece r{p.text.substr(a, b - a), p.align ? p.align + a : nullptr,
            p.base + static_cast<std::uint32_t>(a)};
    return r;
  };
  auto emit_added = [&](const Piece& p, std::size_t a, std::size_t b, int idx) {
    auto [s, e] = tok::to_original(p, a, b);
    out.push_back({added[static_cast<std::size_t>(idx)].id, s, e});
    if (ws) ws->push_back(tok::ws_of(p.text.substr(a, b - a)));
  };

  const tok::AsciiClasses& ac = tok::ascii_classes();
  std::vector<std::pair<std::int32_t, std::uint32_t>> scratch;
  std::string prefixed;
  std::vector<Align> prefixed_align;

  // Steps 3-5 on a piece free of added tokens.
  auto model_piece = [&](Piece p) {
    if (p.text.empty()) return;
    if (add_prefix_space && p.text[0] != ' ') {
      // NormalizedString::prepend: the space takes the first character's alignment.
      std::size_t first_len = 1;
      while (first_len < p.text.size() && tok::is_cont(static_cast<unsigned char>(p.text[first_len])))
        ++first_len;
      auto first = tok::to_original(p, 0, first_len);
      // (resize + copy rather than assign/append: GCC 12 -O3 emits a bogus -Wrestrict there)
      prefixed.resize(p.text.size() + 1);
      prefixed[0] = ' ';
      std::memcpy(prefixed.data() + 1, p.text.data(), p.text.size());
      prefixed_align.assign(1, {first.first, first.second});
      for (std::size_t i = 0; i < p.text.size(); ++i) {
        std::size_t a = i, b = i + 1;
        auto r = tok::to_original(p, a, b);
        prefixed_align.push_back({r.first, r.second});
      }
      p = Piece{prefixed, prefixed_align.data(), 0};
    }
    const auto* s = reinterpret_cast<const unsigned char*>(p.text.data());
    std::size_t n = p.text.size();
    std::size_t i = 0;
    while (i < n) {
      std::size_t j = use_regex ? tok::gpt2_match_end(s, n, i, ac) : n;
      std::string_view w = p.text.substr(i, j - i);
      if (word_sink) {
        (*word_sink)(w);
        i = j;
        continue;
      }
      std::uint64_t h = tok::WordCache::hash(w);
      std::uint32_t ntok = 0;
      const tok::WordCache::Tok* toks = cache.find(w, h, ntok);
      if (!toks) {
        scratch.clear();
        bpe(w, scratch);
        if (w.size() <= 256) cache.insert(w, h, scratch);
        toks = scratch.data();
        ntok = static_cast<std::uint32_t>(scratch.size());
      }
      std::size_t pos = i;
      for (std::uint32_t k = 0; k < ntok; ++k) {
        auto [id, len] = toks[k];
        auto [a, b] = tok::to_original(p, pos, pos + len);
        out.push_back({id, a, b});
        if (ws) ws->push_back(static_cast<std::size_t>(id) < vocab_ws.size() ? vocab_ws[id]
                                                                          : std::pair<std::uint16_t, std::uint16_t>{0, 0});
        pos += len;
      }
      i = j;
    }
  };

  std::vector<tok::Split> splits, splits2;
  std::string norm;
  std::vector<Align> norm_align, in_align;
  auto normalized_piece = [&](Piece p) {
    // NFC (step 2), then normalized added tokens, then the model.
    if (nfc && !tok::is_nfc(p.text)) {
      in_align.clear();
      in_align.reserve(p.text.size());
      for (std::size_t i = 0; i < p.text.size(); ++i) {
        auto r = tok::to_original(p, i, i + 1);
        in_align.push_back({r.first, r.second});
      }
      norm.clear();
      norm_align.clear();
      tok::nfc_normalize(p.text, in_align, norm, norm_align);
      p = Piece{norm, norm_align.data(), 0};
    }
    if (norm_patterns.empty()) {
      model_piece(p);
      return;
    }
    tok::find_added(*this, norm_patterns, p.text, splits2);
    for (const auto& sp : splits2) {
      if (sp.added >= 0) emit_added(p, sp.start, sp.stop, sp.added);
      else model_piece(sub(p, sp.start, sp.stop));
    }
  };

  if (root.text.empty()) return;
  if (raw_patterns.empty()) {
    normalized_piece(root);
    return;
  }
  tok::find_added(*this, raw_patterns, root.text, splits);
  for (const auto& sp : splits) {
    if (sp.added >= 0) emit_added(root, sp.start, sp.stop, sp.added);
    else normalized_piece(sub(root, sp.start, sp.stop));
  }
}

namespace {

struct SeqTokens {
  std::vector<RawToken> toks;
  std::vector<std::pair<std::uint16_t, std::uint16_t>> ws;
};

// HF TruncationStrategy on token counts; `budget` excludes the special tokens.
void truncate(SeqTokens& a, SeqTokens* b, std::size_t budget, int strategy) {
  auto cut = [](SeqTokens& s, std::size_t n) {
    if (s.toks.size() > n) s.toks.resize(n);
    if (s.ws.size() > n) s.ws.resize(n);
  };
  if (!b) {
    if (strategy == 2) throw Error("truncation: OnlySecond needs a pair of sequences");
    cut(a, budget);
    return;
  }
  std::size_t n1 = a.toks.size(), n2 = b->toks.size();
  if (n1 + n2 <= budget) return;
  if (strategy == 1 || strategy == 2) {
    SeqTokens& t = strategy == 1 ? a : *b;
    std::size_t other = strategy == 1 ? n2 : n1;
    if (other >= budget || t.toks.size() < n1 + n2 - budget)
      throw Error("truncation: the sequence to truncate is too short to respect max_length");
    cut(t, t.toks.size() - (n1 + n2 - budget));
    return;
  }
  bool swap = false;
  if (n1 > n2) {
    swap = true;
    std::swap(n1, n2);
  }
  if (n1 > budget) n2 = n1;
  else n2 = std::max(n1, budget - n1);
  if (n1 + n2 > budget) {
    n1 = budget / 2;
    n2 = n1 + budget % 2;
  }
  if (swap) std::swap(n1, n2);
  cut(a, n1);
  cut(*b, n2);
}

}  // namespace

Encoding Tokenizer::Impl::encode_full(std::string_view a, const std::string_view* b,
                                      const EncodeOptions& o, tok::WordCache& cache) const {
  SeqTokens sa, sb;
  encode_sequence(a, o.lossy_utf8, cache, sa.toks, has_trim ? &sa.ws : nullptr);
  if (b) encode_sequence(*b, o.lossy_utf8, cache, sb.toks, has_trim ? &sb.ws : nullptr);

  std::size_t max_len = o.max_length ? *o.max_length : file_max_length;
  if (max_len) {
    std::size_t added_n = 0;
    if (o.add_special_tokens) {
      for (const auto& step : post)
        if (step.kind == tok::PostStep::kTemplate) {
          for (const auto& p : b ? step.pair : step.single)
            if (!p.is_sequence) added_n += step.special_ids.at(p.special).size();
        }
    }
    if (max_len < added_n)
      throw Error("truncation: max_length " + std::to_string(max_len) + " is smaller than the " +
                  std::to_string(added_n) + " special tokens to add");
    truncate(sa, b ? &sb : nullptr, max_len - added_n, o.max_length ? 0 : file_trunc_strategy);
  }

  // Post-processing on a list of encodings (one per sequence), HF PostProcessor semantics.
  struct Enc {
    std::vector<std::int32_t> ids;
    std::vector<std::pair<std::size_t, std::size_t>> offs;
    std::vector<std::uint32_t> type_ids;
    std::vector<std::uint8_t> special;
    std::vector<std::int8_t> seq;
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ws;
  };
  auto to_enc = [&](SeqTokens& s, std::int8_t seq_id) {
    Enc e;
    e.ids.reserve(s.toks.size() + 4);
    e.offs.reserve(s.toks.size() + 4);
    for (const auto& t : s.toks) {
      e.ids.push_back(t.id);
      e.offs.emplace_back(t.start, t.end);
    }
    e.type_ids.assign(s.toks.size(), seq_id);
    e.special.assign(s.toks.size(), 0);
    e.seq.assign(s.toks.size(), seq_id);
    e.ws = std::move(s.ws);
    return e;
  };
  std::vector<Enc> encs;
  encs.push_back(to_enc(sa, 0));
  if (b) encs.push_back(to_enc(sb, 1));
  for (const auto& step : post) {
    if (step.kind == tok::PostStep::kByteLevel) {
      if (!step.trim_offsets) continue;
      for (auto& e : encs) {
        for (std::size_t i = 0; i < e.ids.size(); ++i) {
          if (i >= e.ws.size()) break;
          auto [lead, trail] = e.ws[i];
          auto& off = e.offs[i];
          if (lead > 0) {
            bool is_first = i == 0 || off.first == 0;
            if (is_first && step.add_prefix_space && lead == 1) lead = 0;
            off.first = std::min(off.first + lead, off.second);
          }
          if (trail > 0 && off.second >= trail) off.second = std::max(off.second - trail, off.first);
        }
      }
    } else if (o.add_special_tokens) {
      Enc m;
      const auto& tpl = encs.size() > 1 ? step.pair : step.single;
      for (const auto& p : tpl) {
        if (p.is_sequence) {
          if (static_cast<std::size_t>(p.sequence) >= encs.size()) continue;
          const Enc& e = encs[static_cast<std::size_t>(p.sequence)];
          m.ids.insert(m.ids.end(), e.ids.begin(), e.ids.end());
          m.offs.insert(m.offs.end(), e.offs.begin(), e.offs.end());
          m.type_ids.insert(m.type_ids.end(), e.ids.size(), p.type_id);
          m.special.insert(m.special.end(), e.special.begin(), e.special.end());
          m.seq.insert(m.seq.end(), e.seq.begin(), e.seq.end());
          m.ws.insert(m.ws.end(), e.ws.begin(), e.ws.end());
        } else {
          for (std::int32_t id : step.special_ids.at(p.special)) {
            m.ids.push_back(id);
            m.offs.emplace_back(0, 0);
            m.type_ids.push_back(p.type_id);
            m.special.push_back(1);
            m.seq.push_back(-1);
            m.ws.emplace_back(0, 0);
          }
        }
      }
      encs.clear();
      encs.push_back(std::move(m));
    }
  }
  Encoding r;
  for (auto& e : encs) {
    r.ids.insert(r.ids.end(), e.ids.begin(), e.ids.end());
    r.offsets.insert(r.offsets.end(), e.offs.begin(), e.offs.end());
    r.type_ids.insert(r.type_ids.end(), e.type_ids.begin(), e.type_ids.end());
    r.special_tokens_mask.insert(r.special_tokens_mask.end(), e.special.begin(), e.special.end());
    r.sequence_ids.insert(r.sequence_ids.end(), e.seq.begin(), e.seq.end());
  }
  return r;
}

Encoding Tokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  auto cache = impl_->take_cache();
  struct Return {
    const Impl* impl;
    std::unique_ptr<tok::WordCache>& c;
    ~Return() { impl->give_cache(std::move(c)); }
  } ret{impl_.get(), cache};
  return impl_->encode_full(text, nullptr, opts, *cache);
}

Encoding Tokenizer::encode_pair(std::string_view first, std::string_view second,
                                const EncodeOptions& opts) const {
  auto cache = impl_->take_cache();
  struct Return {
    const Impl* impl;
    std::unique_ptr<tok::WordCache>& c;
    ~Return() { impl->give_cache(std::move(c)); }
  } ret{impl_.get(), cache};
  return impl_->encode_full(first, &second, opts, *cache);
}

namespace {

template <typename Fn>
void for_each_text(std::size_t n, unsigned num_threads, Fn fn) {
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  unsigned nt = num_threads ? num_threads : hw;
  nt = static_cast<unsigned>(std::min<std::size_t>(nt, n));
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(nt);
  std::vector<std::size_t> error_index(nt, 0);
  auto worker = [&](unsigned w) {
    try {
      fn([&](auto&& body) {
        while (true) {
          std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
          if (i >= n) break;
          error_index[w] = i;
          body(i);
        }
      });
    } catch (...) {
      errors[w] = std::current_exception();
      next.store(n);
    }
  };
  if (nt <= 1) {
    worker(0);
  } else {
    // nt workers claiming texts from one counter, run on the shared pool.
    default_pool().parallel_for(nt, 1, [&](int64_t w0, int64_t w1, int) {
      for (int64_t w = w0; w < w1; ++w) worker(static_cast<unsigned>(w));
    });
  }
  // Report the failing text with the smallest index.
  std::size_t best = n;
  std::exception_ptr err;
  for (unsigned w = 0; w < nt; ++w)
    if (errors[w] && error_index[w] < best) {
      best = error_index[w];
      err = errors[w];
    }
  if (err) {
    try {
      std::rethrow_exception(err);
    } catch (const std::exception& e) {
      throw BatchItemError(best, e.what());
    }
  }
}

}  // namespace

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                              const EncodeOptions& opts, unsigned num_threads) const {
  std::vector<Encoding> out(texts.size());
  for_each_text(texts.size(), num_threads, [&](auto loop) {
    auto cache = impl_->take_cache();
    struct Return {
      const Impl* impl;
      std::unique_ptr<tok::WordCache>& c;
      ~Return() { impl->give_cache(std::move(c)); }
    } ret{impl_.get(), cache};
    loop([&](std::size_t i) { out[i] = impl_->encode_full(texts[i], nullptr, opts, *cache); });
  });
  return out;
}

std::vector<Encoding> Tokenizer::encode_batch_pairs(
    const std::vector<std::pair<std::string, std::string>>& pairs, const EncodeOptions& opts,
    unsigned num_threads) const {
  std::vector<Encoding> out(pairs.size());
  for_each_text(pairs.size(), num_threads, [&](auto loop) {
    auto cache = impl_->take_cache();
    struct Return {
      const Impl* impl;
      std::unique_ptr<tok::WordCache>& c;
      ~Return() { impl->give_cache(std::move(c)); }
    } ret{impl_.get(), cache};
    loop([&](std::size_t i) {
      std::string_view second = pairs[i].second;
      out[i] = impl_->encode_full(pairs[i].first, &second, opts, *cache);
    });
  });
  return out;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::string bytes;
  bool first = true;
  for (std::int32_t id : ids) {
    const std::string* tokstr = nullptr;
    bool special = false;
    if (auto it = t.added_by_id.find(id); it != t.added_by_id.end()) {
      tokstr = &t.added[it->second].content;
      special = t.added[it->second].special;
    } else if (id >= 0 && static_cast<std::size_t>(id) < t.id_to_vocab.size() && t.has_vocab[id]) {
      tokstr = &t.id_to_vocab[id];
      // A vocabulary token whose content is also a special added token counts as special.
      if (auto ai = t.added_by_content.find(*tokstr); ai != t.added_by_content.end())
        special = t.added[t.added_by_id.at(ai->second)].special;
    }
    if (!tokstr || (skip_special_tokens && special)) continue;
    if (!t.byte_level_decoder) {
      if (!first) bytes += ' ';
      bytes += *tokstr;
      first = false;
      continue;
    }
    // ByteLevel decoder: a token whose every character is in the byte alphabet becomes those
    // bytes, any other token is kept as its UTF-8.
    std::string tb;
    bool all = true;
    const auto* s = reinterpret_cast<const unsigned char*>(tokstr->data());
    for (std::size_t i = 0; i < tokstr->size();) {
      int len;
      char32_t cp = tok::peek(s, i, len);
      int byte = tok::char_to_byte(cp);
      if (byte < 0) {
        all = false;
        break;
      }
      tb += static_cast<char>(byte);
      i += len;
    }
    bytes += all ? tb : *tokstr;
  }
  if (!t.byte_level_decoder) return bytes;
  return tok::utf8_lossy(bytes, nullptr);
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  std::string s(token);
  if (auto it = impl_->added_by_content.find(s); it != impl_->added_by_content.end())
    return it->second;
  if (auto it = impl_->vocab.find(s); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::id_to_token(std::int32_t id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end())
    return impl_->added[it->second].content;
  if (id >= 0 && static_cast<std::size_t>(id) < impl_->id_to_vocab.size() && impl_->has_vocab[id])
    return impl_->id_to_vocab[id];
  return std::nullopt;
}

bool Tokenizer::is_special_id(std::int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

std::size_t Tokenizer::vocab_size() const { return impl_->max_id_plus_one; }

std::size_t Tokenizer::num_special_tokens_to_add(bool pair) const {
  std::size_t n = 0;
  for (const auto& step : impl_->post)
    if (step.kind == tok::PostStep::kTemplate)
      for (const auto& p : pair ? step.pair : step.single)
        if (!p.is_sequence) n += step.special_ids.at(p.special).size();
  return n;
}

}  // namespace modernbert
