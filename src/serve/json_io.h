// Request-body parsing shared by the routes: the JSON input shapes of TEI and OpenAI, typed field
// access with the error table's codes (api_error.h), base64 of float32 vectors.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace modernbert::serve {

using nlohmann::json;

// Body -> JSON object. Syntax error: 400; valid JSON that is not an object: 422.
json parse_body(const std::string& body);

// One input: a text or client-given token ids.
struct InputItem {
  bool is_ids = false;
  std::string text;
  std::vector<int32_t> ids;
};
// TEI `inputs` / OpenAI `input`: "text" | [id, ...] | ["text" | [id, ...], ...]. An empty list
// is 400 (empty); any other shape 422. `field` names the field in messages.
std::vector<InputItem> parse_inputs(const json& v, const std::string& field);
// Token ids: non-negative integers below 2^31 (the vocabulary bound is the engine's check): 422.
std::vector<int32_t> parse_ids(const json& v, const std::string& what);

// /predict inputs: "a" | ["a", "b"] (a pair) | [["a"], ["a", "b"], ...] (a batch).
struct PredictInputs {
  std::vector<std::pair<std::string, std::optional<std::string>>> items;
  bool batch = false;
};
PredictInputs parse_predict_inputs(const json& v);

// Optional fields: absent or null -> the default; wrong type -> 422 naming the field.
bool get_bool(const json& body, const char* name, bool dflt);
std::optional<bool> get_opt_bool(const json& body, const char* name);
std::string get_string(const json& body, const char* name, const std::string& dflt);
int64_t get_int(const json& body, const char* name, int64_t dflt);
// Required field present (not null), else 422 "missing field".
const json& require(const json& body, const char* name);
std::vector<std::string> get_string_list(const json& v, const std::string& what);

// TEI truncation_direction: "right" (default) / "left", either case. Returns true for left.
bool parse_truncation_left(const json& body);

// Standard base64 (RFC 4648, padded) of raw bytes; OpenAI's encoding_format "base64" is the
// little-endian float32 bytes of the vector.
std::string base64_encode(const void* data, size_t n);

// Serialise a response: never throws on invalid UTF-8 in echoed client text (written as U+FFFD).
std::string dump(const json& j);

}  // namespace modernbert::serve
