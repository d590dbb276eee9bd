#include "serve/http_server.h"

#include <signal.h>
#include <sys/socket.h>

#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <thread>

#include "modernbert/error.h"
#include "serve/route_context.h"

namespace modernbert::serve {

namespace {

// cpp-httplib's task queue, elastic: a connection occupies one thread for its whole keep-alive life,
// so a fixed pool of N threads leaves connection N+1 unanswered until another closes. This pool
// starts a thread whenever a connection arrives and none is idle, up to `max` (then connections
// wait for a free thread), and keeps its threads for reuse.
class ElasticPool : public httplib::TaskQueue {
 public:
  explicit ElasticPool(size_t max) : max_(std::max<size_t>(max, 1)) {}
  ~ElasticPool() override { ElasticPool::shutdown(); }

  void enqueue(std::function<void()> fn) override {
    std::lock_guard<std::mutex> lk(mu_);
    jobs_.push_back(std::move(fn));
    if (jobs_.size() > idle_ && threads_.size() < max_)
      threads_.emplace_back([this] { work(); });
    else
      cv_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stop_) return;
      stop_ = true;
    }
    cv_.notify_all();
    // threads_ only grows under mu_ and enqueue() is not called after shutdown (the accept loop
    // has ended), so it is stable here.
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      ++idle_;
      cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // stop_ and nothing left
      auto fn = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      fn();
      lk.lock();
    }
  }

  const size_t max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
};

// Gives access to the listening socket (protected in cpp-httplib), to raise its accept backlog:
// the library listens with a backlog of 5, which drops SYNs (1 s client retries) when dozens of
// clients connect at once.
class Listener : public httplib::Server {
 public:
  int listen_fd() const { return static_cast<int>(svr_sock_); }
};

// Constant-time comparison of the presented key with the configured one: the time depends only on
// the configured key's length, never on where the first difference is.
bool same_key(const std::string& given, const std::string& want) {
  unsigned char diff = given.size() == want.size() ? 0 : 1;
  for (size_t i = 0; i < want.size(); ++i) {
    const unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(want[i]));
  }
  return diff == 0;
}

// Every path we serve and its method (405 for the others).
const std::vector<std::pair<std::string, std::string>>& known_routes() {
  static const std::vector<std::pair<std::string, std::string>> r = {
      {"/embed", "POST"},     {"/embed_all", "POST"}, {"/predict", "POST"},       {"/rerank", "POST"},
      {"/tokenize", "POST"},  {"/decode", "POST"},    {"/fill-mask", "POST"},     {"/info", "GET"},
      {"/health", "GET"},     {"/metrics", "GET"},    {"/v1/embeddings", "POST"}, {"/v1/models", "GET"},
      {"/v1/rerank", "POST"},
  };
  return r;
}

std::string basename_of(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  auto slash = dir.rfind('/');
  return slash == std::string::npos ? dir : dir.substr(slash + 1);
}

}  // namespace

struct HttpServer::Impl {
  ServerState st;
  Listener svr;
  std::thread loader;
  std::atomic<bool> serving{false}, stop_requested{false};
  std::mutex stop_mu;

  void configure();
  void load();
  void stop();
};

void HttpServer::Impl::configure() {
  const ServerOptions& o = st.opt;
  st.http_threads = o.http_threads > 0 ? static_cast<size_t>(o.http_threads) : st.eopt.max_queued_requests + 32;
  const size_t pool = st.http_threads;
  svr.new_task_queue = [pool] { return new ElasticPool(pool); };
  svr.set_payload_max_length(o.payload_limit);
  svr.set_read_timeout(o.read_timeout, 0);
  svr.set_write_timeout(o.write_timeout, 0);
  svr.set_keep_alive_timeout(o.keep_alive_timeout);
  svr.set_keep_alive_max_count(std::max<size_t>(o.keep_alive_max_count, 1));
  svr.set_tcp_nodelay(true);

  // Authentication before routing, so that unknown routes do not reveal themselves either.
  // /health and /metrics stay open: load balancers and Prometheus probe them without credentials,
  // and they reveal no data.
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (st.opt.api_key.empty() || req.path == "/health" || req.path == "/metrics")
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    const std::string given = h.rfind(prefix, 0) == 0 ? h.substr(prefix.size()) : "";
    if (same_key(given, st.opt.api_key)) return httplib::Server::HandlerResponse::Unhandled;
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer");
    res.set_content(error_body(family_of(req.path), 401, "unauthorized",
                               h.empty() ? "missing API key (Authorization: Bearer KEY)" : "invalid API key"),
                    "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });

  // Answers cpp-httplib produced itself (no route: 404; body over the limit: 413; unparsable
  // request: 400) get the error body of the path's family. Our handlers' errors already have one.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    const ApiFamily f = family_of(req.path);
    // A known path asked with another method: cpp-httplib answers 404 (or 400 for a bodiless POST).
    if (res.status == 404 || res.status == 400) {
      for (const auto& [path, method] : known_routes()) {
        if (path == req.path && req.method != method && !(method == "GET" && req.method == "HEAD")) {
          res.status = 405;
          res.set_header("Allow", method);
          res.set_content(error_body(f, 405, "method_not_allowed", req.method + " " + req.path + ": use " + method),
                          "application/json");
          return httplib::Server::HandlerResponse::Handled;
        }
      }
    }
    if (res.status == 404) {
      res.set_content(error_body(f, 404, "not_found", "no route " + req.method + " " + req.path), "application/json");
    } else if (res.status == 413) {
      res.set_content(error_body(f, 413, "validation", "request body larger than --payload-limit"), "application/json");
    } else {
      res.set_content(error_body(f, res.status, "validation", "bad request"), "application/json");
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
    res.status = 500;
    res.set_content(error_body(family_of(req.path), 500, "backend", "internal error"), "application/json");
  });

  // /health: 200 (empty body, as TEI) once the model is loaded and warm; 503 before.
  svr.Get("/health", [this](const httplib::Request& req, httplib::Response& res) {
    if (st.ready_engine()) {
      res.status = 200;
      res.set_content("", "text/plain");
      return;
    }
    res.status = 503;
    res.set_content(error_body(family_of(req.path), 503, "unhealthy", st.not_ready_message()), "application/json");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto e = st.ready_engine();
    st.metrics.set("te_queue_size", e ? static_cast<double>(e->queue_size()) : 0);
    st.metrics.set("te_model_ready", e ? 1 : 0);
    res.status = 200;
    res.set_content(st.metrics.render(), "text/plain; version=0.0.4");
  });
  register_tei_routes(svr, st);
  register_openai_routes(svr, st);
}

void HttpServer::Impl::load() {
  try {
    const auto t0 = Clock::now();
    auto e = std::make_shared<Engine>(st.eopt);
    e->set_batch_observer([this](const BatchStats& b) {
      st.metrics.observe("te_batch_next_size", static_cast<double>(b.seqs));
      st.metrics.observe("te_batch_next_tokens", static_cast<double>(b.tokens));
      st.metrics.observe("te_batch_inference_duration", b.seconds);
      st.metrics.inc("te_batch_inference_success");
      st.metrics.set("te_queue_size", static_cast<double>(b.queued_after));
    });
    {
      std::lock_guard<std::mutex> lk(st.mu);
      st.engine = e;
    }
    std::fprintf(stderr, "modernbert serve: model %s loaded in %.2f s%s\n", st.eopt.model_dir.c_str(),
                 std::chrono::duration<double>(Clock::now() - t0).count(), e->ready() ? ", ready" : "");
  } catch (const std::exception& ex) {
    {
      std::lock_guard<std::mutex> lk(st.mu);
      st.load_error = ex.what();
    }
    std::fprintf(stderr, "modernbert serve: error: cannot load the model: %s\n", ex.what());
    // The server cannot become healthy: stop it so that the process exits with an error.
    stop();
  }
}

HttpServer::HttpServer(const ServerOptions& so, const EngineOptions& eo) : impl_(std::make_unique<Impl>()) {
  // cpp-httplib 0.11 writes with send(..., 0): answering a client that already left raises SIGPIPE,
  // whose default action kills the process. A server must survive that, so ignore it unless the
  // program installed its own handler.
  struct sigaction old {};
  if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) signal(SIGPIPE, SIG_IGN);
  impl_->st.opt = so;
  impl_->st.eopt = eo;
  impl_->st.model_name = so.served_model_name.empty() ? basename_of(eo.model_dir) : so.served_model_name;
  impl_->st.created = static_cast<int64_t>(std::time(nullptr));
  declare_tei_metrics(impl_->st.metrics);
  impl_->configure();
}

HttpServer::~HttpServer() {
  stop();
  shutdown_engine();
}

int HttpServer::bind() {
  const int port = impl_->st.opt.port == 0
                       ? impl_->svr.bind_to_any_port(impl_->st.opt.host)
                       : (impl_->svr.bind_to_port(impl_->st.opt.host, impl_->st.opt.port) ? impl_->st.opt.port : -1);
  if (port < 0)
    throw Error("cannot listen on " + impl_->st.opt.host + ":" + std::to_string(impl_->st.opt.port) +
                " (address in use, or not an address of this machine)");
  ::listen(impl_->svr.listen_fd(), 4096);  // raise the backlog (see Listener); the kernel caps it at somaxconn
  port_ = port;
  // A connection outside a handler longer than this is dribbling its request (an idle one is
  // closed by cpp-httplib after the keep-alive timeout; +1 s: one that just read its request may be
  // a moment from entering its handler).
  const ServerOptions& o = impl_->st.opt;
  impl_->st.reaper = std::make_unique<ConnectionReaper>(port, std::max(o.read_timeout, o.keep_alive_timeout) + 1.0);
  return port;
}

void HttpServer::start_loading() {
  if (impl_->loader.joinable()) return;
  impl_->loader = std::thread([this] { impl_->load(); });
}

bool HttpServer::serve() {
  if (port_ < 0) return false;
  {
    std::lock_guard<std::mutex> lk(impl_->stop_mu);
    if (impl_->stop_requested) return true;
    impl_->serving = true;
  }
  const bool ok = impl_->svr.listen_after_bind();
  impl_->serving = false;
  return ok || impl_->stop_requested;
}

void HttpServer::Impl::stop() {
  std::lock_guard<std::mutex> lk(stop_mu);
  stop_requested = true;
  if (!serving) return;
  // listen_after_bind() sets is_running() on entry; a stop() before that would be lost.
  for (int i = 0; i < 2000 && serving && !svr.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  svr.stop();
  // Idle keep-alive connections and clients still sending a request would hold their threads (and
  // so the exit) for up to the keep-alive / read timeout: cut them; requests in progress finish.
  if (st.reaper) st.reaper->stopping();
}

void HttpServer::stop() { impl_->stop(); }

void HttpServer::shutdown_engine() {
  if (impl_->loader.joinable()) impl_->loader.join();
  std::shared_ptr<Engine> e;
  {
    std::lock_guard<std::mutex> lk(impl_->st.mu);
    e = impl_->st.engine;
  }
  if (e) e->shutdown();
}

bool HttpServer::ready() const { return impl_->st.ready_engine() != nullptr; }
bool HttpServer::load_failed() const {
  std::lock_guard<std::mutex> lk(impl_->st.mu);
  return !impl_->st.load_error.empty();
}
std::string HttpServer::load_error() const {
  std::lock_guard<std::mutex> lk(impl_->st.mu);
  return impl_->st.load_error;
}
size_t HttpServer::http_threads() const { return impl_->st.http_threads; }
MetricsRegistry& HttpServer::metrics() { return impl_->st.metrics; }
std::shared_ptr<Engine> HttpServer::engine() const {
  std::lock_guard<std::mutex> lk(impl_->st.mu);
  return impl_->st.engine;
}

}  // namespace modernbert::serve
