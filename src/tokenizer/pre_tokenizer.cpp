// Encoding of one sequence. The pipeline mirrors HF tokenizers (TokenizerImpl::encode_single_sequence):
//   1. non-normalized added tokens are cut out of the raw text (leftmost-longest, with
//      single_word / lstrip / rstrip);
//   2. each remaining piece is NFC-normalized, then normalized added tokens are cut out of it;
//   3. each remaining piece is split by the GPT-2 regex (ByteLevel pre-tokenizer);
//   4. each pre-token is BPE-encoded over its raw bytes (the byte-level alphabet is a bijection,
//      so merging raw bytes is merging their byte-level characters);
//   5. offsets are mapped back to the original bytes through per-byte alignments (identity in
//      the common already-NFC case, so no alignment vector is built).
//
// This file is steps 1-3 and 5 (Impl::encode_sequence); step 4 is bpe.cpp, post-processing
// and truncation are post_processor.cpp.
#include <algorithm>
#include <cstring>

#include "modernbert/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace modernbert {
namespace tok {

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
inline std::pair<std::uint32_t, std::uint32_t> to_original(const Piece& p, std::size_t a, std::size_t b) {
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
std::size_t gpt2_match_end(const unsigned char* s, std::size_t n, std::size_t i, const AsciiClasses& ac) {
  unsigned char c0 = s[i];
  if (c0 == '\'' && i + 1 < n) {
    unsigned char c1 = s[i + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
    if (i + 2 < n) {
      unsigned char c2 = s[i + 2];
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return i + 3;
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
void find_added(const Tokenizer::Impl& t, const PatternSet& pats, std::string_view s, std::vector<Split>& out) {
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

void Tokenizer::Impl::encode_sequence(std::string_view text, bool lossy, tok::WordCache& cache,
                                      std::vector<RawToken>& out,
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
    Piece r{p.text.substr(a, b - a), p.align ? p.align + a : nullptr, p.base + static_cast<std::uint32_t>(a)};
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
      while (first_len < p.text.size() && tok::is_cont(static_cast<unsigned char>(p.text[first_len]))) ++first_len;
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
        if (ws)
          ws->push_back(static_cast<std::size_t>(id) < vocab_ws.size() ? vocab_ws[id]
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
      if (sp.added >= 0)
        emit_added(p, sp.start, sp.stop, sp.added);
      else
        model_piece(sub(p, sp.start, sp.stop));
    }
  };

  if (root.text.empty()) return;
  if (raw_patterns.empty()) {
    normalized_piece(root);
    return;
  }
  tok::find_added(*this, raw_patterns, root.text, splits);
  for (const auto& sp : splits) {
    if (sp.added >= 0)
      emit_added(root, sp.start, sp.stop, sp.added);
    else
      normalized_piece(sub(root, sp.start, sp.stop));
  }
}

}  // namespace modernbert
