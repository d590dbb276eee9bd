// Token ids from user input (JSONL "input_ids" lists, lines of ids): the one place that turns them
// into int32 ids. Every value is checked as written, before any narrowing, so that an id such as
// 4294967807 is an error rather than silently wrapping to 511, and a non-integer, a float, a
// negative id or one at or above the vocabulary size is refused with a message naming where it was.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace modernbert {

// `ids` must be a JSON array of integers in [0, vocab_size). `where` names the input and field,
// e.g. "data.jsonl:3: field input_ids"; errors read "<where>[K]: id 4294967807 outside the
// vocabulary [0, 50368)". An empty array is an error unless allow_empty. vocab_size <= 0 means
// "no vocabulary known": ids are only checked against [0, 2^31).
std::vector<int32_t> parse_token_ids(const nlohmann::json& ids, int64_t vocab_size, const std::string& where,
                                     bool allow_empty = false);

// One JSON value as a token id; same rules and message as above.
int32_t parse_token_id(const nlohmann::json& v, int64_t vocab_size, const std::string& where);

// A line of decimal ids separated by spaces, tabs or commas (detokenize's plain-text input).
std::vector<int32_t> parse_token_id_line(std::string_view line, int64_t vocab_size, const std::string& where);

}  // namespace modernbert
