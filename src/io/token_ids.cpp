// See include/modernbert/token_ids.h.
#include "modernbert/token_ids.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "modernbert/error.h"

namespace modernbert {

namespace {

std::string range_str(int64_t vocab_size) {
  const int64_t hi = vocab_size > 0 ? vocab_size : int64_t{std::numeric_limits<int32_t>::max()} + 1;
  return "[0, " + std::to_string(hi) + ")";
}

// The id as written must be an integer in range; `text` is how it appeared (for the message).
int32_t check_range(bool negative, uint64_t magnitude, const std::string& text, int64_t vocab_size,
                    const std::string& where) {
  const uint64_t hi = vocab_size > 0 ? static_cast<uint64_t>(vocab_size)
                                     : static_cast<uint64_t>(std::numeric_limits<int32_t>::max()) + 1;
  // The vocabulary itself can never hold more than int32 ids.
  const uint64_t limit = std::min<uint64_t>(hi, static_cast<uint64_t>(std::numeric_limits<int32_t>::max()) + 1);
  if ((negative && magnitude != 0) || magnitude >= limit)
    throw Error(where + ": id " + text + " outside the vocabulary " + range_str(vocab_size));
  return static_cast<int32_t>(magnitude);
}

}  // namespace

int32_t parse_token_id(const nlohmann::json& v, int64_t vocab_size, const std::string& where) {
  // nlohmann keeps integers that fit int64 as number_integer, larger ones as number_unsigned; both
  // are checked on the 64-bit value before any narrowing. Floats ("3.0", "1e3") are refused: an id
  // is an integer as written.
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    return check_range(false, u, std::to_string(u), vocab_size, where);
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0) throw Error(where + ": id " + std::to_string(s) + " outside the vocabulary " + range_str(vocab_size));
    return check_range(false, static_cast<uint64_t>(s), std::to_string(s), vocab_size, where);
  }
  throw Error(where + ": expected an integer token id, found " + v.dump());
}

std::vector<int32_t> parse_token_ids(const nlohmann::json& ids, int64_t vocab_size, const std::string& where,
                                     bool allow_empty) {
  if (!ids.is_array()) throw Error(where + ": expected a list of integer token ids, found " + ids.dump());
  if (ids.empty() && !allow_empty) throw Error(where + ": empty list of token ids");
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (size_t k = 0; k < ids.size(); ++k)
    out.push_back(parse_token_id(ids[k], vocab_size, where + "[" + std::to_string(k) + "]"));
  return out;
}

std::vector<int32_t> parse_token_id_line(std::string_view line, int64_t vocab_size, const std::string& where) {
  std::vector<int32_t> out;
  size_t i = 0;
  auto sep = [](char c) { return c == ' ' || c == ',' || c == '\t' || c == '\r'; };
  while (i < line.size()) {
    while (i < line.size() && sep(line[i])) ++i;
    if (i >= line.size()) break;
    size_t j = i;
    while (j < line.size() && !sep(line[j])) ++j;
    const std::string tok(line.substr(i, j - i));
    const std::string w = where + "[" + std::to_string(out.size()) + "]";
    size_t d = 0;
    const bool negative = tok[0] == '-';
    if (negative || tok[0] == '+') d = 1;
    if (d == tok.size()) throw Error(w + ": expected an integer token id, found '" + tok + "'");
    // Accumulate with saturation: any value at or above 2^63 is out of range anyway.
    uint64_t mag = 0;
    bool saturated = false;
    for (size_t k = d; k < tok.size(); ++k) {
      if (tok[k] < '0' || tok[k] > '9') throw Error(w + ": expected an integer token id, found '" + tok + "'");
      const uint64_t digit = static_cast<uint64_t>(tok[k] - '0');
      if (mag > (std::numeric_limits<uint64_t>::max() - digit) / 10) saturated = true;
      if (!saturated) mag = mag * 10 + digit;
    }
    if (saturated) mag = std::numeric_limits<uint64_t>::max();
    out.push_back(check_range(negative, mag, tok, vocab_size, w));
    i = j;
  }
  return out;
}

}  // namespace modernbert
