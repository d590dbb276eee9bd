#include "serve/api_error.h"

#include <nlohmann/json.hpp>

namespace modernbert::serve {

ApiError bad_json(const std::string& msg) { return ApiError(400, "validation", msg); }
ApiError empty_input(const std::string& msg) { return ApiError(400, "empty", msg); }
ApiError invalid(const std::string& msg) { return ApiError(422, "validation", msg); }
ApiError too_many(const std::string& msg) { return ApiError(413, "validation", msg); }
ApiError unsupported(const std::string& msg) { return ApiError(400, "unsupported", msg); }

ApiError from_input_error(const InputError& e) {
  switch (e.kind) {
    case InputErrorKind::kEmpty:
      return empty_input(e.what());
    case InputErrorKind::kTokenizer:
      return ApiError(422, "tokenizer", e.what());
    case InputErrorKind::kValidation:
    case InputErrorKind::kTooLong:
    case InputErrorKind::kIdOutOfRange:
      break;
  }
  return invalid(e.what());
}

const char* openai_error_type(int status, const std::string& tei_type) {
  if (tei_type == "unsupported") return "not_supported_error";
  switch (status) {
    case 401:
      return "authentication_error";
    case 404:
      return "not_found_error";
    case 429:
      return "rate_limit_error";
    case 503:
      return "unavailable_error";
    case 408:
    case 504:
      return "timeout_error";
    default:
      return status >= 500 ? "server_error" : "invalid_request_error";
  }
}

std::string error_body(ApiFamily f, int status, const std::string& tei_type, const std::string& message) {
  nlohmann::json j;
  if (f == ApiFamily::kOpenAi)
    j = {{"error", {{"message", message}, {"type", openai_error_type(status, tei_type)}, {"code", status}}}};
  else
    j = {{"error", message}, {"error_type", tei_type}};
  // Messages may quote client bytes (an invalid UTF-8 text): never let the dump throw.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ApiFamily family_of(const std::string& path) {
  return path.rfind("/v1/", 0) == 0 || path == "/v1" ? ApiFamily::kOpenAi : ApiFamily::kTei;
}

}  // namespace modernbert::serve
