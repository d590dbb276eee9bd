#include "serve/route_context.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "modernbert/tasks.h"
#include "serve/conn_watch.h"

namespace modernbert::serve {

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void log_line(const Call& c, int status) {
  if (!c.st.opt.log_requests) return;
  std::fprintf(stderr, "%s %s %s:%d -> %d (%.1f ms)\n", c.req.method.c_str(), c.req.path.c_str(),
               c.req.remote_addr.c_str(), c.req.remote_port, status, 1e3 * seconds_since(c.start));
}

}  // namespace

std::shared_ptr<Engine> ServerState::ready_engine() const {
  std::lock_guard<std::mutex> lk(mu);
  return engine && engine->ready() ? engine : nullptr;
}

std::string ServerState::not_ready_message() const {
  std::lock_guard<std::mutex> lk(mu);
  if (!load_error.empty()) return "the model failed to load: " + load_error;
  return "the model is loading";
}

namespace {

// One request through a route: readiness, JSON body, the route, error mapping, request metrics.
// `body` is null for GET routes.
void handle(ServerState& st, const RouteSpec& spec, const RouteFn& fn, const httplib::Request& req,
            httplib::Response& res, const std::string* body) {
  Call c{st, req, res, family_of(req.path), spec.route, Clock::now(), nullptr, json(), 0, 0, false};
  if (spec.counted) st.metrics.inc("te_request_count", "method=" + spec.route);
  auto fail = [&](int status, const std::string& type, const std::string& msg) {
    res.status = status;
    res.set_content(error_body(c.family, status, type, msg), "application/json");
    if (spec.counted) st.metrics.inc("te_request_failure", "err=" + type);
    log_line(c, status);
  };
  try {
    if (spec.needs_engine) {
      c.engine = st.ready_engine();
      if (!c.engine) throw ApiError(503, "unhealthy", st.not_ready_message());
    }
    if (body) c.body = parse_body(*body);
    json out = fn(c);
    res.status = 200;
    if (!c.text_response) res.set_content(dump(out), "application/json");
    if (spec.counted) {
      st.metrics.inc("te_request_success", "method=" + spec.route);
      st.metrics.observe("te_request_duration", seconds_since(c.start));
      if (c.tokenize_seconds > 0) st.metrics.observe("te_request_tokenization_duration", c.tokenize_seconds);
    }
    log_line(c, 200);
  } catch (const ApiError& e) {
    fail(e.status, e.type, e.what());
  } catch (const InputError& e) {
    ApiError a = from_input_error(e);
    fail(a.status, a.type, a.what());
  } catch (const QueueFull& e) {
    fail(429, "overloaded", std::string("the model is overloaded: ") + e.what());
  } catch (const ShuttingDown& e) {
    fail(503, "unhealthy", std::string("the server is shutting down: ") + e.what());
  } catch (const ClientGone&) {
    // Nobody to answer: cpp-httplib's write fails on the closed socket and drops the connection.
    res.status = 503;
    res.set_content(error_body(c.family, 503, "disconnected", "client disconnected"), "application/json");
    if (spec.counted) st.metrics.inc("te_request_failure", "err=disconnected");
    log_line(c, 499);
  } catch (const json::exception& e) {  // a JSON access the route did not type-check first
    fail(422, "validation", "invalid request: " + json_error_text(e));
  } catch (const std::exception& e) {
    fail(500, "backend", std::string("inference failed: ") + e.what());
  }
}

// POST: the body through a content reader. cpp-httplib then skips its own body handling, which
// would refuse an application/x-www-form-urlencoded body over 8 KB with 413 (what `curl -d` sends
// without -H 'Content-Type: application/json'); --payload-limit is enforced here for chunked bodies
// (cpp-httplib 0.11 checks it for Content-Length bodies only).
void read_and_handle(ServerState& st, const RouteSpec& spec, const RouteFn& fn, const httplib::Request& req,
                     httplib::Response& res, const httplib::ContentReader& reader) {
  std::string body;
  bool over = false, late = false;
  // The whole body within --read-timeout: cpp-httplib's timeout is per recv(), which a client
  // sending a byte a second never hits.
  const auto deadline = Clock::now() + std::chrono::seconds(st.opt.read_timeout);
  const bool ok = reader([&](const char* data, size_t n) {
    if (body.size() + n > st.opt.payload_limit) return !(over = true);
    if (Clock::now() > deadline) return !(late = true);
    body.append(data, n);
    return true;
  });
  if (ok && !over && !late) return handle(st, spec, fn, req, res, &body);
  // Not over the limit: the client stalled or dribbled past --read-timeout (or sent broken chunks).
  const bool too_large = over || res.status == 413;
  const int status = too_large ? 413 : 408;
  const std::string type = too_large ? "validation" : "timeout";
  res.status = status;
  res.set_content(error_body(family_of(req.path), status, type,
                             too_large ? "request body larger than --payload-limit"
                                       : "the request body did not arrive within --read-timeout"),
                  "application/json");
  if (spec.counted) {
    st.metrics.inc("te_request_count", "method=" + spec.route);
    st.metrics.inc("te_request_failure", "err=" + type);
  }
}

}  // namespace

// Marks the connection as inside a handler for the reaper (conn_watch.h) while it lives.
class InHandler {
 public:
  InHandler(ServerState& st, const httplib::Request& req)
      : reaper_(st.reaper.get()), client_(req.remote_addr + ":" + std::to_string(req.remote_port)) {
    if (reaper_) reaper_->enter(client_);
  }
  ~InHandler() {
    if (reaper_) reaper_->leave(client_);
  }
  InHandler(const InHandler&) = delete;
  InHandler& operator=(const InHandler&) = delete;

 private:
  ConnectionReaper* reaper_;
  std::string client_;
};

void add_route(httplib::Server& s, ServerState& st, const std::string& path, RouteSpec spec, RouteFn fn) {
  if (spec.post) {
    s.Post(path, httplib::Server::HandlerWithContentReader([&st, spec, fn](const httplib::Request& req,
                                                                           httplib::Response& res,
                                                                           const httplib::ContentReader& reader) {
             InHandler in(st, req);
             read_and_handle(st, spec, fn, req, res, reader);
           }));
  } else {
    s.Get(path, httplib::Server::Handler([&st, spec, fn](const httplib::Request& req, httplib::Response& res) {
            InHandler in(st, req);
            handle(st, spec, fn, req, res, nullptr);
          }));
  }
}

std::vector<std::string> supported_routes(const Engine& e) {
  const Capabilities& caps = e.capabilities();
  const bool tok = e.tokenizer() != nullptr;
  std::vector<std::string> r = {"/embed", "/embed_all", "/v1/embeddings", "/v1/models", "/info", "/health", "/metrics"};
  if (tok) r.insert(r.end(), {"/tokenize", "/decode"});
  if (caps.has_classifier && tok) r.insert(r.end(), {"/predict", "/rerank", "/v1/rerank"});
  if (caps.has_mlm && tok && caps.mask_token_id >= 0) r.push_back("/fill-mask");
  return r;
}

void require_route(const Call& c, const std::string& route) {
  const Capabilities& caps = c.engine->capabilities();
  const bool tok = c.engine->tokenizer() != nullptr;
  std::string why;
  if ((route == "/tokenize" || route == "/decode" || route == "/predict" || route == "/rerank" ||
       route == "/v1/rerank" || route == "/fill-mask") &&
      !tok)
    why = "the model directory has no tokenizer.json";
  else if ((route == "/predict" || route == "/rerank" || route == "/v1/rerank") && !caps.has_classifier)
    why = "the model has no sequence-classification head (not a classifier or cross-encoder)";
  else if (route == "/fill-mask" && !caps.has_mlm)
    why = "the model has no masked-language-model head";
  else if (route == "/fill-mask" && caps.mask_token_id < 0)
    why = "the tokenizer has no [MASK] token";
  if (!why.empty())
    throw unsupported(route + " is not available for this model: " + why + " (GET /info lists its routes)");
}

std::vector<int32_t> tokenize_text(Call& c, const std::string& text, const std::string* pair, const std::string& prefix,
                                   bool truncate, bool left) {
  if (!c.engine->tokenizer())
    throw unsupported("the model directory has no tokenizer.json: send token ids instead of text");
  const auto t0 = Clock::now();
  auto ids = c.engine->tokenize(text, pair, prefix, truncate, left);
  c.tokenize_seconds += seconds_since(t0);
  return ids;
}

std::vector<int32_t> check_ids(Call& c, std::vector<int32_t> ids, bool truncate) {
  const auto t0 = Clock::now();
  auto out = c.engine->check_ids(std::move(ids), truncate);
  c.tokenize_seconds += seconds_since(t0);
  return out;
}

bool want_truncate(const Call& c) { return get_bool(c.body, "truncate", c.st.opt.auto_truncate); }

void check_batch_size(const Call& c, size_t n) {
  if (n > c.st.opt.max_client_batch_size)
    throw too_many("batch size " + std::to_string(n) + " > maximum allowed batch size " +
                   std::to_string(c.st.opt.max_client_batch_size) + " (--max-client-batch-size)");
}

std::vector<SequenceResult> run_job(Call& c, Request r) {
  for (const auto& s : r.seqs) {
    c.prompt_tokens += s.size();
    c.st.metrics.observe("te_request_input_length", static_cast<double>(s.size()));
  }
  std::shared_ptr<Job> job = c.engine->submit(std::move(r));
  const double timeout = c.st.opt.request_timeout;
  const auto deadline = c.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout));
  auto timed_out = [&] { return timeout > 0 && Clock::now() >= deadline; };
  auto slice = [&](std::chrono::milliseconds most) {
    if (timeout <= 0) return most;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return std::clamp(left, std::chrono::milliseconds(1), most);
  };
  // Most requests finish within the first wait and never pay for finding their socket.
  if (!job->wait_for(slice(std::chrono::milliseconds(20)))) {
    ConnectionWatch watch(c.req.local_addr, c.req.local_port, c.req.remote_addr, c.req.remote_port);
    // The check interval backs off from 25 ms to 400 ms: at saturation dozens of handler threads
    // wait here for many seconds, and on a machine with as many compute threads as cores every
    // wake-up preempts a compute thread that the others then wait for at the pool's next barrier.
    // A client gone during a long wait is still seen within 0.4 s (its unscheduled work dropped).
    auto interval = std::chrono::milliseconds(25);
    while (!job->wait_for(slice(interval))) {
      interval = std::min(interval * 2, std::chrono::milliseconds(400));
      if (!watch.alive()) {
        job->cancel();
        throw ClientGone{};
      }
      if (timed_out()) {
        job->cancel();
        throw ApiError(504, "timeout",
                       "request not answered within --request-timeout " + std::to_string(timeout) + " s (cancelled)");
      }
    }
  }
  c.st.metrics.observe("te_request_queue_duration", job->queue_seconds());
  c.st.metrics.observe("te_request_inference_duration", job->inference_seconds());
  return job->results();  // rethrows a failed forward (-> 500)
}

std::vector<float> class_scores(const Capabilities& caps, const SequenceResult& r, bool raw) {
  const auto n = static_cast<int64_t>(r.values.size());
  if (raw) return r.values;
  ProblemType p = caps.problem_type;
  if (p == ProblemType::kUnset) p = n == 1 ? ProblemType::kMultiLabel : ProblemType::kSingleLabel;  // TEI
  return logits_to_scores(r.values.data(), n, p);
}

float relevance_score(const Capabilities& caps, const SequenceResult& r, bool raw) {
  (void)caps;
  if (r.values.empty()) return 0;
  if (raw) return r.values.back();
  // The same score as Model::rerank (tasks.h): sigmoid of one logit, else the last label's softmax.
  return modernbert::relevance_score(r.values.data(), static_cast<int64_t>(r.values.size()));
}

}  // namespace modernbert::serve
