// Reading JSONL files line by line (shared by eval data, fine-tuning data and retrieval sets).
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "modernbert/error.h"
#include "tokenizer/unicode.h"

namespace modernbert {

// Calls fn(line_number, object) for every non-blank line; throws naming path:line. JSON cannot
// carry invalid UTF-8 (the parser names the line); with lossy_utf8 it is replaced by U+FFFD first.
template <class Fn>
inline size_t for_each_jsonl(const std::string& path, Fn&& fn, bool lossy_utf8 = false) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  std::string line;
  size_t lineno = 0, count = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (lossy_utf8 && tok::utf8_first_invalid(line) != std::string::npos) line = tok::utf8_lossy(line, nullptr);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw Error(path + ":" + std::to_string(lineno) + ": malformed JSON: " + e.what());
    }
    if (!j.is_object()) throw Error(path + ":" + std::to_string(lineno) + ": expected a JSON object");
    fn(lineno, j);
    ++count;
  }
  if (in.bad()) throw Error(path + ": read error");
  if (count == 0) throw Error(path + ": no records (empty file)");
  return count;
}

}  // namespace modernbert
