#include "serve/json_io.h"

#include <bit>
#include <cctype>
#include <cmath>
#include <limits>

#include "serve/api_error.h"

namespace modernbert::serve {

static_assert(std::endian::native == std::endian::little, "base64 embeddings are little-endian float32 bytes");

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw bad_json(std::string("request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw invalid("request body must be a JSON object");
  return j;
}

namespace {

int32_t parse_id(const json& x, const std::string& what) {
  if (x.is_number_unsigned() || x.is_number_integer()) {
    if (x.is_number_integer() && !x.is_number_unsigned() && x.get<int64_t>() < 0)
      throw invalid(what + ": token id " + std::to_string(x.get<int64_t>()) + " is out of range (negative)");
    const uint64_t v = x.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int32_t>::max()))
      throw invalid(what + ": token id " + std::to_string(v) + " is out of range");
    return static_cast<int32_t>(v);
  }
  throw invalid(what + ": token ids must be integers, got " + std::string(x.type_name()));
}

}  // namespace

std::vector<int32_t> parse_ids(const json& v, const std::string& what) {
  if (!v.is_array()) throw invalid(what + ": expected a list of token ids, got " + std::string(v.type_name()));
  std::vector<int32_t> ids;
  ids.reserve(v.size());
  for (const auto& x : v) ids.push_back(parse_id(x, what));
  return ids;
}

std::vector<InputItem> parse_inputs(const json& v, const std::string& field) {
  std::vector<InputItem> out;
  if (v.is_string()) {
    out.push_back({false, v.get<std::string>(), {}});
    return out;
  }
  if (!v.is_array())
    throw invalid("`" + field +
                  "` must be a string, a list of strings, a list of token ids or a list of id lists; got " +
                  v.type_name());
  if (v.empty()) throw empty_input("`" + field + "` is empty");
  // A flat list of numbers is ONE input of ids (TEI's untagged Single(Ids), OpenAI's [int]).
  if (v[0].is_number()) {
    out.push_back({true, {}, parse_ids(v, "`" + field + "`")});
    return out;
  }
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const json& x = v[i];
    const std::string where = "`" + field + "`[" + std::to_string(i) + "]";
    if (x.is_string())
      out.push_back({false, x.get<std::string>(), {}});
    else if (x.is_array())
      out.push_back({true, {}, parse_ids(x, where)});
    else
      throw invalid(where + ": expected a string or a list of token ids, got " + std::string(x.type_name()));
  }
  return out;
}

PredictInputs parse_predict_inputs(const json& v) {
  PredictInputs p;
  auto str = [](const json& x, const std::string& where) {
    if (!x.is_string()) throw invalid(where + ": expected a string, got " + std::string(x.type_name()));
    return x.get<std::string>();
  };
  auto seq = [&](const json& x, const std::string& where) {
    if (!x.is_array() || x.empty() || x.size() > 2) throw invalid(where + ": expected [text] or a pair [text, text]");
    std::pair<std::string, std::optional<std::string>> s{str(x[0], where + "[0]"), std::nullopt};
    if (x.size() == 2) s.second = str(x[1], where + "[1]");
    return s;
  };
  if (v.is_string()) {
    p.items.push_back({v.get<std::string>(), std::nullopt});
    return p;
  }
  if (!v.is_array())
    throw invalid("`inputs` must be a string, a pair [string, string] or a batch [[string], [string, string], ...]");
  if (v.empty()) throw empty_input("`inputs` is empty");
  if (v[0].is_string()) {  // one text or one pair
    if (v.size() > 2) throw invalid("`inputs`: a pair has two strings (a batch is a list of lists)");
    p.items.push_back(seq(v, "`inputs`"));
    return p;
  }
  p.batch = true;
  for (size_t i = 0; i < v.size(); ++i) p.items.push_back(seq(v[i], "`inputs`[" + std::to_string(i) + "]"));
  return p;
}

bool get_bool(const json& body, const char* name, bool dflt) {
  auto o = get_opt_bool(body, name);
  return o ? *o : dflt;
}

std::optional<bool> get_opt_bool(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw invalid(std::string("`") + name + "` must be a boolean, got " + it->type_name());
  return it->get<bool>();
}

std::string get_string(const json& body, const char* name, const std::string& dflt) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return dflt;
  if (!it->is_string()) throw invalid(std::string("`") + name + "` must be a string, got " + it->type_name());
  return it->get<std::string>();
}

int64_t get_int(const json& body, const char* name, int64_t dflt) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return dflt;
  if (!it->is_number_integer() && !it->is_number_unsigned())
    throw invalid(std::string("`") + name + "` must be an integer, got " + it->type_name());
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    throw invalid(std::string("`") + name + "` is too large");
  return it->get<int64_t>();
}

const json& require(const json& body, const char* name) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) throw invalid(std::string("missing field `") + name + "`");
  return *it;
}

std::vector<std::string> get_string_list(const json& v, const std::string& what) {
  if (!v.is_array()) throw invalid(what + " must be a list of strings, got " + std::string(v.type_name()));
  std::vector<std::string> out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string())
      throw invalid(what + "[" + std::to_string(i) + "] must be a string, got " + std::string(v[i].type_name()));
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

bool parse_truncation_left(const json& body) {
  std::string d = get_string(body, "truncation_direction", "right");
  for (char& c : d) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (d == "right") return false;
  if (d == "left") return true;
  throw invalid("`truncation_direction` must be \"left\" or \"right\"");
}

std::string base64_encode(const void* data, size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (i + 1 < n) v |= uint32_t{p[i + 1]} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace modernbert::serve
