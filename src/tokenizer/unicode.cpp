#include "tokenizer/unicode.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <array>
#include <mutex>

#include "modernbert/error.h"

namespace modernbert::tok {

int utf8_decode(const unsigned char* s, std::size_t n, std::size_t i, char32_t& cp, int& bad_len) {
  unsigned char b0 = s[i];
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  int len;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    bad_len = 1;
    return 0;
  }
  for (int k = 1; k < len; ++k) {
    if (i + k >= n) {
      bad_len = k;
      return 0;
    }
    unsigned char b = s[i + k];
    unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) {
      bad_len = k;
      return 0;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  return len;
}

std::size_t utf8_first_invalid(std::string_view sv) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  std::size_t n = sv.size(), i = 0;
  while (i < n) {
    // ASCII fast path, 8 bytes at a time.
    while (i + 8 <= n) {
      std::uint64_t w;
      __builtin_memcpy(&w, s + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= n) break;
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    char32_t cp;
    int bad;
    int len = utf8_decode(s, n, i, cp, bad);
    if (!len) return i;
    i += len;
  }
  return std::string_view::npos;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string utf8_lossy(std::string_view in, std::vector<Align>* align) {
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t n = in.size(), i = 0;
  std::string out;
  out.reserve(n + 8);
  if (align) align->reserve(n + 8);
  while (i < n) {
    char32_t cp;
    int bad = 0;
    int len = utf8_decode(s, n, i, cp, bad);
    std::size_t before = out.size();
    std::uint32_t start = static_cast<std::uint32_t>(i);
    if (len) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      utf8_append(out, 0xFFFD);
      i += bad;
    }
    if (align)
      for (std::size_t k = before; k < out.size(); ++k)
        align->emplace_back(start, static_cast<std::uint32_t>(i));
  }
  return out;
}

namespace {

CharClass classify_icu(char32_t cp) {
  if (is_white_space(cp)) return kSpace;
  int8_t t = u_charType(static_cast<UChar32>(cp));
  switch (t) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return kLetter;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return kNumber;
    default:
      return kOther;
  }
}

// Class of every BMP code point, built once (64 KiB).
const std::array<CharClass, 0x10000>& bmp_classes() {
  static const auto* table = [] {
    auto* t = new std::array<CharClass, 0x10000>();
    for (char32_t c = 0; c < 0x10000; ++c) (*t)[c] = classify_icu(c);
    return t;
  }();
  return *table;
}

}  // namespace

bool is_white_space(char32_t c) {
  // Unicode White_Space; identical to Oniguruma's Unicode \s (9-13, 0x85, Zs, Zl, Zp).
  if (c < 0x80) return c == ' ' || (c >= 9 && c <= 13);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

CharClass char_class(char32_t cp) {
  if (cp < 0x10000) return bmp_classes()[cp];
  return classify_icu(cp);
}

bool is_word_char(char32_t cp) {
  if (cp < 0x80)
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  UChar32 c = static_cast<UChar32>(cp);
  if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL))
    return true;
  int8_t t = u_charType(c);
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}

namespace {

const UNormalizer2* nfc_instance() {
  static const UNormalizer2* n = [] {
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2* r = unorm2_getNFCInstance(&err);
    if (U_FAILURE(err)) throw Error(std::string("ICU NFC normalizer unavailable: ") + u_errorName(err));
    return r;
  }();
  return n;
}

std::u16string to_u16(const std::u32string& s) {
  std::u16string r;
  for (char32_t c : s) {
    if (c < 0x10000) {
      r += static_cast<char16_t>(c);
    } else {
      c -= 0x10000;
      r += static_cast<char16_t>(0xD800 + (c >> 10));
      r += static_cast<char16_t>(0xDC00 + (c & 0x3FF));
    }
  }
  return r;
}

std::u32string from_u16(const char16_t* p, std::size_t n) {
  std::u32string r;
  for (std::size_t i = 0; i < n; ++i) {
    char32_t c = p[i];
    if (c >= 0xD800 && c < 0xDC00 && i + 1 < n && p[i + 1] >= 0xDC00 && p[i + 1] < 0xE000) {
      c = 0x10000 + ((c - 0xD800) << 10) + (p[i + 1] - 0xDC00);
      ++i;
    }
    r += c;
  }
  return r;
}

std::u32string nfc32(const std::u32string& seg) {
  std::u16string u = to_u16(seg);
  UErrorCode err = U_ZERO_ERROR;
  std::vector<char16_t> buf(u.size() * 3 + 16);
  int32_t len = unorm2_normalize(nfc_instance(), reinterpret_cast<const UChar*>(u.data()),
                                 static_cast<int32_t>(u.size()), reinterpret_cast<UChar*>(buf.data()),
                                 static_cast<int32_t>(buf.size()), &err);
  if (U_FAILURE(err)) throw Error(std::string("NFC normalization failed: ") + u_errorName(err));
  return from_u16(buf.data(), static_cast<std::size_t>(len));
}

}  // namespace

bool is_nfc(std::string_view in) {
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t n = in.size(), i = 0;
  bool need_icu = false;
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    // Code points < U+0300 are all NFC_QC=Yes with ccc 0: lead bytes C2..CB.
    if (s[i] < 0xCC) {
      i += 2;
      continue;
    }
    need_icu = true;
    break;
  }
  if (!need_icu) return true;
  std::u32string u32;
  char32_t cp;
  int bad;
  for (i = 0; i < n;) {
    int len = utf8_decode(s, n, i, cp, bad);
    if (!len) return false;  // not reached: callers pass valid UTF-8
    u32 += cp;
    i += len;
  }
  std::u16string u = to_u16(u32);
  UErrorCode err = U_ZERO_ERROR;
  UNormalizationCheckResult r = unorm2_quickCheck(
      nfc_instance(), reinterpret_cast<const UChar*>(u.data()), static_cast<int32_t>(u.size()), &err);
  if (U_FAILURE(err)) return false;
  return r == UNORM_YES;
}

bool nfc_normalize(std::string_view in, const std::vector<Align>& in_align, std::string& out,
                   std::vector<Align>& out_align) {
  if (is_nfc(in)) return false;
  const auto* s = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t n = in.size();
  // Decode into code points with their byte starts.
  std::vector<char32_t> cps;
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i < n;) {
    char32_t cp;
    int bad;
    int len = utf8_decode(s, n, i, cp, bad);
    if (!len) throw Error("internal: NFC input is not valid UTF-8");
    cps.push_back(cp);
    starts.push_back(i);
    i += len;
  }
  starts.push_back(n);
  out.clear();
  out_align.clear();
  const UNormalizer2* nfc = nfc_instance();
  // Normalize segment by segment; a segment starts at each character with an NFC boundary
  // before it, so the concatenation of normalized segments is the NFC of the whole string.
  std::size_t k = 0;
  while (k < cps.size()) {
    std::size_t e = k + 1;
    while (e < cps.size() && !unorm2_hasBoundaryBefore(nfc, static_cast<UChar32>(cps[e]))) ++e;
    std::u32string seg(cps.begin() + k, cps.begin() + e);
    std::u32string norm = nfc32(seg);
    std::size_t in_n = e - k, out_n = norm.size();
    // Changes as unicode-normalization-alignments reports them: when characters compose, the
    // first (composed) output character consumes the extra inputs (change < 0); when they
    // decompose, the extra output characters are insertions (change > 0).
    std::size_t consumed = k;  // next input character
    for (std::size_t j = 0; j < out_n; ++j) {
      Align a;
      if (consumed < e) {
        a = in_align[starts[consumed]];
        consumed += (j == 0 && in_n > out_n) ? 1 + (in_n - out_n) : 1;
      } else {
        a = in_align[starts[consumed] - 1];  // insertion: the byte before it
      }
      std::size_t before = out.size();
      utf8_append(out, norm[j]);
      for (std::size_t b = before; b < out.size(); ++b) out_align.push_back(a);
    }
    k = e;
  }
  return true;
}

char32_t byte_to_char(std::uint8_t b) {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    int n = 0;
    for (int c = 0; c < 256; ++c) {
      bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
      t[c] = printable ? static_cast<char32_t>(c) : static_cast<char32_t>(256 + n++);
    }
    return t;
  }();
  return table[b];
}

int char_to_byte(char32_t cp) {
  static const std::array<int16_t, 324> table = [] {
    std::array<int16_t, 324> t{};
    t.fill(-1);
    for (int b = 0; b < 256; ++b) t[byte_to_char(static_cast<std::uint8_t>(b))] = static_cast<int16_t>(b);
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

}  // namespace modernbert::tok
