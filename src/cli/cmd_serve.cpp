// modernbert serve: the HTTP server (OpenAI + text-embeddings-inference APIs) over one model.
// Every flag can also come from the environment, MODERNBERT_<FLAG_IN_UPPER_SNAKE> (containers);
// a flag on the command line wins over the environment. Bad values: a message and exit code 2.
// SIGTERM / SIGINT: stop accepting, answer every request already read, finish the engine's queue,
// exit 0 (a second signal exits at once with 130).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "cli/args.h"
#include "cli/command.h"
#include "modernbert/error.h"
#include "serve/http_server.h"

namespace modernbert::cli {
namespace {

struct FlagSpec {
  const char* name;
  const char* metavar;  // nullptr: a switch
  const char* dflt;     // nullptr: none
  const char* help;
};

// The flags, in --help order. Defaults follow TEI (max-batch-tokens 16384, max-concurrent-requests
// 512, max-client-batch-size 32, payload-limit 2 MB) except the port: 8080 like TEI's docker image
// and llama-server.
const FlagSpec kFlags[] = {
    {"model", "DIR", nullptr, "model directory (config.json, model.safetensors, tokenizer.json)"},
    {"host", "ADDR", "127.0.0.1", "address to listen on (0.0.0.0: every interface)"},
    {"port", "N", "8080", "port to listen on (0: any free port, printed at start)"},
    {"api-key", "KEY", nullptr,
     "require 'Authorization: Bearer KEY' on every route but /health and /metrics (compared in constant time)"},
    {"threads", "N", "0", "threads for the forward (0 = all cores)"},
    {"dtype", "TYPE", nullptr,
     "weights and compute: f32 | bf16 | f16 | int8 (default: f32, or a quantized checkpoint's type)"},
    {"max-batch-tokens", "N", "16384", "token budget of one forward batch (>= the model's max input length)"},
    {"max-concurrent-requests", "N", "512", "requests queued or running at once; more answer 429"},
    {"max-client-batch-size", "N", "32", "inputs per request; more answer 413"},
    {"payload-limit", "BYTES", "2000000", "largest request body; larger answer 413"},
    {"auto-truncate", nullptr, nullptr, "truncate over-long inputs unless the request says \"truncate\": false"},
    {"pooling", "MODE", nullptr, "cls | mean | max (default: the model's)"},
    {"default-prompt-name", "NAME", nullptr, "prompt applied when a request names none (default: the model's)"},
    {"served-model-name", "NAME", nullptr, "model name in /v1 responses and /info (default: the directory's name)"},
    {"request-timeout", "SECONDS", "60", "answer 504 and cancel the work of a request not done by then (0: never)"},
    {"http-threads", "N", "0", "connections served at once (0 = max-concurrent-requests + 32)"},
    {"read-timeout", "SECONDS", "30", "slow clients: a request must arrive within about this long (a late body: 408)"},
    {"write-timeout", "SECONDS", "30", "close a connection that stalls reading the answer this long"},
    {"keep-alive-timeout", "SECONDS", "5", "close an idle keep-alive connection after this long"},
    {"log-requests", nullptr, nullptr, "log one line per request on stderr"},
};

std::string env_name(const std::string& flag) {
  std::string e = "MODERNBERT_";
  for (char c : flag) e += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return e;
}

// Flag, else environment, else default.
struct Resolved {
  const ArgParser& a;
  std::optional<std::string> get(const FlagSpec& f) const {
    if (a.has(f.name)) return a.get(f.name);
    if (const char* v = std::getenv(env_name(f.name).c_str()); v && *v) return std::string(v);
    if (f.dflt) return std::string(f.dflt);
    return std::nullopt;
  }
  const FlagSpec& spec(const std::string& name) const {
    for (const auto& f : kFlags)
      if (name == f.name) return f;
    throw Error("internal: no flag " + name);
  }
  std::optional<std::string> get(const std::string& name) const { return get(spec(name)); }
  std::string str(const std::string& name) const { return get(name).value_or(""); }
  long long integer(const std::string& name, long long lo, long long hi) const {
    std::string v = str(name);
    char* end = nullptr;
    errno = 0;
    long long r = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end || errno == ERANGE || r < lo || r > hi)
      throw Error("--" + name + " (or " + env_name(name) + "): expected an integer in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got '" + v + "'");
    return r;
  }
  double number(const std::string& name, double lo, double hi) const {
    std::string v = str(name);
    char* end = nullptr;
    double r = std::strtod(v.c_str(), &end);
    if (v.empty() || *end || !(r >= lo && r <= hi))
      throw Error("--" + name + " (or " + env_name(name) + "): expected a number in [" + std::to_string(lo) + ", " +
                  std::to_string(hi) + "], got '" + v + "'");
    return r;
  }
  bool boolean(const std::string& name) const {
    if (a.has(name)) return true;
    const char* v = std::getenv(env_name(name).c_str());
    if (!v || !*v) return false;
    std::string s = v;
    if (s == "1" || s == "true" || s == "TRUE" || s == "True" || s == "yes") return true;
    if (s == "0" || s == "false" || s == "FALSE" || s == "False" || s == "no") return false;
    throw Error(env_name(name) + ": expected true/false/1/0, got '" + s + "'");
  }
};

void parse_options(const Resolved& r, serve::ServerOptions* so, serve::EngineOptions* eo) {
  auto model = r.get("model");
  if (!model) throw Error("missing --model DIR (or MODERNBERT_MODEL)");
  eo->model_dir = *model;
  so->host = r.str("host");
  if (so->host.empty()) throw Error("--host: empty address");
  so->port = static_cast<int>(r.integer("port", 0, 65535));
  so->api_key = r.str("api-key");
  eo->threads = static_cast<int>(r.integer("threads", 0, 4096));
  if (auto d = r.get("dtype")) {
    Precision p;
    if (!parse_precision(*d, &p))
      throw Error("--dtype (or MODERNBERT_DTYPE): expected f32, bf16, f16 or int8, got '" + *d + "'");
    eo->precision = p;
  }
  eo->max_batch_tokens = r.integer("max-batch-tokens", 1, 1LL << 30);
  eo->max_queued_requests = static_cast<size_t>(r.integer("max-concurrent-requests", 1, 1000000));
  so->max_client_batch_size = static_cast<size_t>(r.integer("max-client-batch-size", 1, 1000000));
  so->payload_limit = static_cast<size_t>(r.integer("payload-limit", 1, 1LL << 40));
  so->auto_truncate = r.boolean("auto-truncate");
  eo->pooling = r.str("pooling");
  if (!eo->pooling.empty() && eo->pooling != "cls" && eo->pooling != "mean" && eo->pooling != "max")
    throw Error("--pooling (or MODERNBERT_POOLING): expected cls, mean or max, got '" + eo->pooling + "'");
  eo->default_prompt_name = r.str("default-prompt-name");
  so->served_model_name = r.str("served-model-name");
  so->request_timeout = r.number("request-timeout", 0, 1e7);
  so->http_threads = static_cast<int>(r.integer("http-threads", 0, 100000));
  so->read_timeout = static_cast<int>(r.integer("read-timeout", 1, 3600));
  so->write_timeout = static_cast<int>(r.integer("write-timeout", 1, 3600));
  so->keep_alive_timeout = static_cast<int>(r.integer("keep-alive-timeout", 1, 3600));
  so->log_requests = r.boolean("log-requests");
}

int g_signal_pipe[2] = {-1, -1};
std::atomic<int> g_signals{0};  // lock-free: usable in a signal handler
static_assert(std::atomic<int>::is_always_lock_free);

extern "C" void on_signal(int sig) {
  if (g_signals.fetch_add(1) >= 1) _exit(130);  // the second signal: exit at once
  const unsigned char c = static_cast<unsigned char>(sig);
  ssize_t r = write(g_signal_pipe[1], &c, 1);
  (void)r;
}

int run_serve(int argc, char** argv) {
  std::string desc =
      "HTTP server with the OpenAI (/v1/embeddings, /v1/models, /v1/rerank) and text-embeddings-inference\n"
      "(/embed, /embed_all, /predict, /rerank, /tokenize, /decode, /info, /health, /metrics) APIs, plus\n"
      "/fill-mask. Concurrent requests are packed into unpadded token-budget batches. It listens at once;\n"
      "/health answers 200 when the model is loaded and warm. SIGTERM/SIGINT: graceful shutdown (exit 0).\n"
      "Every flag may also be given as an environment variable MODERNBERT_<FLAG> (e.g. --max-batch-tokens:\n"
      "MODERNBERT_MAX_BATCH_TOKENS; switches: 1/true/0/false); the command line wins.";
  ArgParser a("serve", "--model DIR [flags]", desc);
  for (const auto& f : kFlags) {
    std::string help = std::string(f.help) + " [env " + env_name(f.name) + "]";
    if (f.dflt) help += " (default: " + std::string(f.dflt) + ")";
    if (f.metavar)
      a.option(f.name, f.metavar, help);
    else
      a.flag(f.name, help);
  }
  serve::ServerOptions so;
  serve::EngineOptions eo;
  try {
    if (!a.parse(argc, argv)) return 0;
    parse_options(Resolved{a}, &so, &eo);
  } catch (const Error& e) {
    std::fprintf(stderr, "modernbert serve: error: %s\n", e.what());
    return 2;
  }

  // Signals: the handler only writes the signal number to a pipe (async-signal-safe); a watcher
  // thread reads it and stops the server. (Blocking the signals and sigwait()ing is not enough
  // here: OpenBLAS starts its threads when the library loads, before main, with the signals
  // unblocked, so a process-directed SIGTERM could land on one of them and kill the process.)
  if (pipe(g_signal_pipe) != 0) {
    std::perror("modernbert serve: pipe");
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that vanished must not kill the process on write

  serve::HttpServer server(so, eo);
  int port = 0;
  try {
    port = server.bind();
  } catch (const Error& e) {
    std::fprintf(stderr, "modernbert serve: error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "modernbert serve: listening on http://%s:%d (%zu connection threads at most); loading %s\n",
               so.host.c_str(), port, server.http_threads(), eo.model_dir.c_str());
  std::thread watcher([&] {
    unsigned char sig = 0;
    while (read(g_signal_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig == 0) return;  // written by main: the server stopped by itself
    std::fprintf(stderr, "modernbert serve: %s: shutting down (finishing the requests already received)\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
    server.stop();
  });
  server.start_loading();
  server.serve();
  server.shutdown_engine();
  const unsigned char zero = 0;
  if (write(g_signal_pipe[1], &zero, 1) != 1) std::perror("modernbert serve: write");
  watcher.join();
  if (server.load_failed()) return 1;
  std::fprintf(stderr, "modernbert serve: stopped\n");
  return 0;
}

CommandRegistrar reg({"serve", "HTTP server: OpenAI + text-embeddings-inference APIs, dynamic batching", run_serve});

}  // namespace
}  // namespace modernbert::cli
