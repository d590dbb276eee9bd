// HTTP errors of the server: one exception type carrying the status and the error type, and the two
// body shapes. Every error answer of every route comes from here, so this is THE table (also in
// docs/serving.md):
//
//   condition                                        status  TEI error_type  OpenAI error.type
//   ------------------------------------------------ ------  --------------  ---------------------
//   body is not JSON (syntax)                         400     validation      invalid_request_error
//   empty input: no inputs, "", [] or a text of no     400     empty           invalid_request_error
//     tokens
//   a field of the wrong JSON type / missing field /   422     validation      invalid_request_error
//     bad value (e.g. truncation_direction "up",
//     dimensions out of range, unknown prompt_name)
//   input longer than the model, truncate off          422     validation      invalid_request_error
//   token id outside [0, vocab_size)                   422     validation      invalid_request_error
//   text the tokenizer refuses (invalid UTF-8)         422     tokenizer       invalid_request_error
//   more inputs than --max-client-batch-size           413     validation      invalid_request_error
//   body larger than --payload-limit                   413     validation      invalid_request_error
//   route the loaded model cannot serve (e.g.          400     unsupported     not_supported_error
//     /predict without a classifier)
//   missing or wrong API key (Authorization: Bearer)   401     unauthorized    authentication_error
//   unknown route                                      404     not_found       not_found_error
//   known route, wrong method (Allow header set)       405     method_not_allowed invalid_request_error
//   queue full (--max-concurrent-requests)             429     overloaded      rate_limit_error
//   model still loading / server shutting down         503     unhealthy       unavailable_error
//   request body stalled past --read-timeout (slow     408     timeout         timeout_error
//     client; a stall in the headers just closes)
//   request not answered within --request-timeout      504     timeout         timeout_error
//     (its work is cancelled)
//   the forward failed (a bug or out of memory)        500     backend         server_error
//
// TEI routes (everything not under /v1) answer {"error": MESSAGE, "error_type": TYPE} (TEI's
// ErrorResponse; TEI itself answers 413 for every validation error: we keep 413 for "too much"
// and use 422 for "this input is wrong"). /v1 routes answer OpenAI's
// {"error": {"message": MESSAGE, "type": OPENAI_TYPE, "code": STATUS}} (code: the HTTP status as a
// number, as llama-server does). A client that went away mid-request gets nothing (its job is
// cancelled); it is counted as te_request_failure{err="disconnected"}.
#pragma once

#include <stdexcept>
#include <string>

#include "serve/engine.h"

namespace modernbert::serve {

enum class ApiFamily { kTei, kOpenAi };

class ApiError : public std::runtime_error {
 public:
  ApiError(int status_code, std::string error_type, const std::string& message)
      : std::runtime_error(message), status(status_code), type(std::move(error_type)) {}
  int status;
  std::string type;  // the TEI error_type (the OpenAI type is derived from it)
};

// Shorthands for the rows of the table.
ApiError bad_json(const std::string& msg);     // 400 validation
ApiError empty_input(const std::string& msg);  // 400 empty
ApiError invalid(const std::string& msg);      // 422 validation
ApiError too_many(const std::string& msg);     // 413 validation
ApiError unsupported(const std::string& msg);  // 400 unsupported

// The engine's refusals mapped to the table.
ApiError from_input_error(const InputError& e);

const char* openai_error_type(int status, const std::string& tei_type);
std::string error_body(ApiFamily f, int status, const std::string& tei_type, const std::string& message);
// The family of a path: /v1/... is OpenAI, the rest TEI.
ApiFamily family_of(const std::string& path);

}  // namespace modernbert::serve
