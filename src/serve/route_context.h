// What the route files share with http_server.cpp: the server's state, the per-request Call, the
// handler wrapper (auth is done before routing; readiness, JSON parsing, error mapping and the
// request metrics here) and the helpers that tokenize inputs and run a job while watching the
// client and the request timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "serve/api_error.h"
#include "serve/conn_watch.h"
#include "serve/engine.h"
#include "serve/http_server.h"
#include "serve/httplib_inc.h"
#include "serve/json_io.h"
#include "serve/metrics.h"

namespace modernbert::serve {

using Clock = std::chrono::steady_clock;

struct ServerState {
  ServerOptions opt;
  EngineOptions eopt;
  MetricsRegistry metrics;
  std::string model_name;  // /v1/models id, "model" of responses, /info model_id
  int64_t created = 0;     // unix seconds at start (/v1/models "created")
  size_t http_threads = 0;

  mutable std::mutex mu;
  std::shared_ptr<Engine> engine;  // set once loaded
  std::string load_error;

  // Cuts connections stuck outside a handler (slowloris); made by HttpServer::bind().
  std::unique_ptr<ConnectionReaper> reaper;

  // fill-mask decoding: transformers' clean_up_tokenization when tokenizer_config.json asks for it.
  std::once_flag cleanup_once;
  bool cleanup = false;

  // The engine when it is loaded and warm, else null.
  std::shared_ptr<Engine> ready_engine() const;
  // 503 message while not ready.
  std::string not_ready_message() const;
};

// One request being handled.
struct Call {
  ServerState& st;
  const httplib::Request& req;
  httplib::Response& res;
  ApiFamily family;
  std::string route;
  Clock::time_point start;
  std::shared_ptr<Engine> engine;  // held for the whole call (set when the route needs the model)
  json body;                       // parsed body (POST routes)
  double tokenize_seconds = 0;
  size_t prompt_tokens = 0;    // tokens submitted (OpenAI usage)
  bool text_response = false;  // the route set res itself (not JSON)
};

// The client went away while its job waited: nothing is answered.
struct ClientGone {};

using RouteFn = std::function<json(Call&)>;
struct RouteSpec {
  std::string route;  // metrics label, e.g. "embed"
  bool needs_engine = true;
  bool post = true;     // parse the body as a JSON object
  bool counted = true;  // te_request_* metrics
};
// Registers `fn` at `path` (POST with a JSON-object body, or GET).
void add_route(httplib::Server& s, ServerState& st, const std::string& path, RouteSpec spec, RouteFn fn);

// Inputs -> token ids (timed into Call::tokenize_seconds). `prefix` is the prompt text.
std::vector<int32_t> tokenize_text(Call& c, const std::string& text, const std::string* pair, const std::string& prefix,
                                   bool truncate, bool left);
std::vector<int32_t> check_ids(Call& c, std::vector<int32_t> ids, bool truncate);
// TEI `truncate`: the request's value, else --auto-truncate.
bool want_truncate(const Call& c);
// More than --max-client-batch-size inputs: 413.
void check_batch_size(const Call& c, size_t n);

// Submits `r` and waits for it: cancels and throws ClientGone when the client disconnects, cancels
// and throws 504 at the request timeout. Records queue/inference/input-length metrics.
std::vector<SequenceResult> run_job(Call& c, Request r);

// Classifier scores as TEI computes them: raw logits, or softmax / sigmoid by the problem type
// (unset: sigmoid for one label, softmax for more).
std::vector<float> class_scores(const Capabilities& caps, const SequenceResult& r, bool raw);
// A cross-encoder's relevance score of one (query, text) pair: the single logit (sigmoid unless
// raw), or with several labels the probability (logit when raw) of the last label.
float relevance_score(const Capabilities& caps, const SequenceResult& r, bool raw);

// The routes the loaded model can serve (GET /info "routes").
std::vector<std::string> supported_routes(const Engine& e);
// 400 unsupported unless the model has what `route` needs.
void require_route(const Call& c, const std::string& route);

void register_tei_routes(httplib::Server& s, ServerState& st);
void register_openai_routes(httplib::Server& s, ServerState& st);

}  // namespace modernbert::serve
