// `modernbert serve`'s HTTP server: the OpenAI and text-embeddings-inference routes over one
// Engine (engine.h), on cpp-httplib 0.11.4 from Debian (libcpp-httplib-dev; llama-server uses the
// same library).
//
// Life cycle (cmd_serve.cpp):
//   HttpServer s(server_opts, engine_opts);
//   s.bind();            // listening socket ready: /health answers 503 from here on
//   s.start_loading();   // the Engine is built on a background thread; /health turns 200 when
//                        // Engine::ready() (loaded and warm); a load failure stops the server
//   s.serve();           // blocks until stop()
//   s.stop();            // from any thread (the signal thread): stop accepting; serve() returns
//                        // once every request already read has been answered
//   s.shutdown_engine(); // finish what is queued, stop the scheduler
//
// Threads: cpp-httplib runs a connection on one pool thread for the connection's whole keep-alive
// life, so the pool bounds how many clients are served at once. Ours grows on demand up to
// http_threads (default: max_concurrent_requests + 32, so the engine's queue, not the pool, is
// what refuses work with 429, and /health and /metrics still answer at full load) and its threads
// stay for reuse. Slow clients: a stall of read_timeout while sending closes the connection (a
// stalled body answers 408); a request body must arrive within read_timeout in total; a connection
// that spends more than max(read_timeout, keep_alive_timeout) + 1 s outside a handler (dribbling its
// headers: slowloris) is cut by the ConnectionReaper (conn_watch.h); idle keep-alive connections
// close after keep_alive_timeout; write_timeout bounds a stall while receiving the answer.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "serve/engine.h"
#include "serve/metrics.h"

namespace modernbert::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                     // 0: any free port (tests)
  std::string api_key;                 // "": no authentication
  int http_threads = 0;                // connection threads at most; 0 = max_concurrent_requests + 32
  size_t max_client_batch_size = 32;   // inputs per request (413 above)
  size_t payload_limit = 2000000;      // request body bytes (413 above)
  bool auto_truncate = false;          // truncate over-long inputs when the request does not say
  std::string served_model_name;       // "" = the model directory's name
  double request_timeout = 60;         // seconds from request read to answer (504 + cancel); 0 = none
  int read_timeout = 30;               // seconds to send a request (per stall; a body in total)
  int write_timeout = 30;              // seconds a client may stall while receiving the answer
  int keep_alive_timeout = 5;          // seconds an idle keep-alive connection is kept
  size_t keep_alive_max_count = 1000;  // requests per connection before it is closed
  bool log_requests = false;           // one line per request on stderr
};

struct ServerState;  // route_context.h

class HttpServer {
 public:
  HttpServer(const ServerOptions& so, const EngineOptions& eo);
  ~HttpServer();  // stop(), join the loader, shut the engine down
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0: a free port). Returns the port. Throws modernbert::Error.
  int bind();
  // Builds the Engine on a background thread. On failure load_error() is set and stop() is called.
  void start_loading();
  // Serves until stop(). Returns false when the socket could not be served (not bound).
  bool serve();
  // Thread-safe, idempotent, never blocks on requests.
  void stop();
  // Joins the loader and shuts the engine down (finishes its queue). Call after serve() returned.
  void shutdown_engine();

  bool ready() const;
  bool load_failed() const;
  std::string load_error() const;
  int port() const { return port_; }
  size_t http_threads() const;
  MetricsRegistry& metrics();
  std::shared_ptr<Engine> engine() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = -1;
};

}  // namespace modernbert::serve
