// Unicode helpers for the tokenizer: UTF-8 decoding/validation, the character classes the
// GPT-2 pre-tokenizer regex needs, NFC with HF-compatible offset alignment, and the GPT-2
// byte <-> printable-character map.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modernbert::tok {

// Original-text byte range [first, second) a normalized byte maps back to. HF keeps one such
// pair per byte of the normalized string; all bytes of one character carry the same pair.
using Align = std::pair<std::uint32_t, std::uint32_t>;

// Decodes one code point at s[i]. Returns its length (1..4) and sets cp; for an invalid
// sequence returns 0 and sets `bad_len` to the length of its maximal subpart (>= 1), the unit
// that from_utf8_lossy replaces with one U+FFFD.
int utf8_decode(const unsigned char* s, std::size_t n, std::size_t i, char32_t& cp, int& bad_len);

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
  return ((b & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
}

// Returns the offset of the first byte that is not part of valid UTF-8, or npos.
std::size_t utf8_first_invalid(std::string_view s);

// from_utf8_lossy; `align` (optional) receives one Align per output byte pointing into `in`.
std::string utf8_lossy(std::string_view in, std::vector<Align>* align);

void utf8_append(std::string& out, char32_t cp);

// Classes of the GPT-2 regex `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
enum CharClass : std::uint8_t { kLetter = 0, kNumber = 1, kSpace = 2, kOther = 3 };
CharClass char_class(char32_t cp);

// Rust's char::is_whitespace / regex \s (Unicode White_Space).
bool is_white_space(char32_t cp);
// Rust regex \w: Alphabetic, M, Nd, Pc, Join_Control.
bool is_word_char(char32_t cp);

// NFC-normalizes `in` (valid UTF-8). Returns false (and leaves outputs untouched) when `in` is
// already NFC, which is the common case and costs one scan. Otherwise fills `out` and
// `out_align`, one Align per byte of `out`, computed from `in_align` (one per byte of `in`) the
// way HF's NormalizedString::transform does with the changes of unicode-normalization-alignments:
// an output character that replaces input characters takes the alignment of the first one it
// consumes; an inserted character takes the alignment of the byte before it.
bool nfc_normalize(std::string_view in, const std::vector<Align>& in_align, std::string& out,
                   std::vector<Align>& out_align);

// Cheap test: true when `in` is certainly NFC (all code points below U+0300, or ICU quick check).
bool is_nfc(std::string_view in);

// GPT-2 byte-level alphabet: byte b <-> printable code point.
char32_t byte_to_char(std::uint8_t b);
// -1 if cp is not one of the 256 byte-level characters.
int char_to_byte(char32_t cp);

}  // namespace modernbert::tok
