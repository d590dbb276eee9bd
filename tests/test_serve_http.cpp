// The HTTP server in-process (src/serve/http_server.h) on a free loopback port, with a tiny model,
// hit with cpp-httplib's client: every route's response shape, every row of the error table
// (src/serve/api_error.h), authentication, /health before the model is loaded, the metric names,
// disconnect detection and graceful stop. Script tests with real clients (curl, openai npm,
// concurrency) live on the `clients` branch.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstring>
#include <memory>
#include <thread>

#include "serve/api_error.h"
#include "serve/conn_watch.h"
#include "serve/http_server.h"
#include "serve/httplib_inc.h"
#include "serve/json_io.h"
#include "serve/metrics.h"
#include "test_util.h"

using namespace modernbert;
using namespace modernbert::serve;
using nlohmann::json;

namespace {

std::string make_model(const mbtest::TempDir& tmp, const std::string& name, const std::string& heads) {
  std::string dir = tmp / name;
  auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 21 --heads " + heads + " --out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  mbtest::run_command("cp " + mbtest::tokenizer_json() + " " + dir + "/");
  return dir;
}

// A server on a free port, serving on its own thread; stopped and joined at destruction.
class TestServer {
 public:
  TestServer(ServerOptions so, EngineOptions eo, bool load = true) {
    so.host = "127.0.0.1";
    so.port = 0;
    server_ = std::make_unique<HttpServer>(so, eo);
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
    if (load) {
      server_->start_loading();
      wait_ready();
    }
  }
  ~TestServer() {
    server_->stop();
    if (thread_.joinable()) thread_.join();
    server_->shutdown_engine();
  }
  void wait_ready() {
    for (int i = 0; i < 3000 && !server_->ready() && !server_->load_failed(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(server_->ready()) << server_->load_error();
  }
  HttpServer& server() { return *server_; }
  int port() const { return port_; }
  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_read_timeout(30, 0);
    return c;
  }
  struct Reply {
    int status = -1;
    std::string body;
    json j;
  };
  Reply post(const std::string& path, const std::string& body, const httplib::Headers& h = {}) const {
    auto r = client()->Post(path.c_str(), h, body, "application/json");
    return reply(r);
  }
  Reply post(const std::string& path, const json& body, const httplib::Headers& h = {}) const {
    return post(path, body.dump(), h);
  }
  Reply get(const std::string& path, const httplib::Headers& h = {}) const {
    auto r = client()->Get(path.c_str(), h);
    return reply(r);
  }

 private:
  static Reply reply(const httplib::Result& r) {
    Reply out;
    if (!r) {
      out.body = "no response: " + httplib::to_string(r.error());
      return out;
    }
    out.status = r->status;
    out.body = r->body;
    out.j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
    return out;
  }
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  int port_ = -1;
};

// One model with MLM + a 3-label classifier, shared by the suite (made once: ~1 s).
class ServeHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new mbtest::TempDir("serve_http");
    dir_ = make_model(*tmp_, "cls", "mlm,cls:3");
    ServerOptions so;
    so.payload_limit = 200000;
    EngineOptions eo;
    eo.model_dir = dir_;
    eo.threads = 1;
    srv_ = new TestServer(so, eo);
  }
  static void TearDownTestSuite() {
    delete srv_;
    delete tmp_;
  }
  static const TestServer& srv() { return *srv_; }
  static void expect_tei_error(const TestServer::Reply& r, int status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.body;
    ASSERT_TRUE(r.j.is_object()) << r.body;
    EXPECT_TRUE(r.j["error"].is_string()) << r.body;
    EXPECT_EQ(r.j.value("error_type", ""), type) << r.body;
  }
  static void expect_openai_error(const TestServer::Reply& r, int status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.body;
    ASSERT_TRUE(r.j.is_object() && r.j["error"].is_object()) << r.body;
    EXPECT_TRUE(r.j["error"]["message"].is_string()) << r.body;
    EXPECT_EQ(r.j["error"].value("type", ""), type) << r.body;
    EXPECT_EQ(r.j["error"].value("code", 0), status) << r.body;
  }
  static inline mbtest::TempDir* tmp_ = nullptr;
  static inline std::string dir_;
  static inline TestServer* srv_ = nullptr;
};

std::vector<float> decode_base64_floats(const std::string& s) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
  };
  std::string bytes;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = val(c);
    if (v < 0) break;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      bytes.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  std::vector<float> f(bytes.size() / 4);
  std::memcpy(f.data(), bytes.data(), f.size() * 4);
  return f;
}

}  // namespace

TEST(ServeJson, InputShapesAndBase64) {
  auto a = parse_inputs(json("hi"), "inputs");
  ASSERT_EQ(a.size(), 1u);
  EXPECT_FALSE(a[0].is_ids);
  auto b = parse_inputs(json::array({1, 2, 3}), "inputs");
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].ids, (std::vector<int32_t>{1, 2, 3}));
  auto c = parse_inputs(json::parse(R"(["x", [4, 5]])"), "inputs");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_TRUE(c[1].is_ids);
  EXPECT_THROW(parse_inputs(json::array(), "inputs"), ApiError);
  EXPECT_THROW(parse_inputs(json::parse("[1.5]"), "inputs"), ApiError);
  EXPECT_THROW(parse_inputs(json::parse("[{}]"), "inputs"), ApiError);
  EXPECT_EQ(base64_encode("Man", 3), "TWFu");
  EXPECT_EQ(base64_encode("Ma", 2), "TWE=");
  EXPECT_EQ(base64_encode("M", 1), "TQ==");
  float one = 1.0f;  // 00 00 80 3f little-endian
  EXPECT_EQ(base64_encode(&one, 4), "AACAPw==");
  auto p = parse_predict_inputs(json::parse(R"([["a"], ["b", "c"]])"));
  EXPECT_TRUE(p.batch);
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(*p.items[1].second, "c");
  auto q = parse_predict_inputs(json::parse(R"(["a", "b"])"));
  EXPECT_FALSE(q.batch);
  EXPECT_EQ(*q.items[0].second, "b");
}

TEST(ServeMetrics, PrometheusText) {
  MetricsRegistry m;
  m.declare("x_total", MetricsRegistry::Kind::kCounter, "a counter");
  m.declare("x_seconds", MetricsRegistry::Kind::kHistogram, "a histogram", {0.1, 1});
  m.inc("x_total", "method=embed", 2);
  m.observe("x_seconds", 0.05);
  m.observe("x_seconds", 0.5);
  m.observe("x_seconds", 5);
  const std::string t = m.render();
  EXPECT_NE(t.find("# TYPE x_total counter\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_total{method=\"embed\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << t;  // cumulative
  EXPECT_NE(t.find("x_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_count 3\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_sum 5.55\n"), std::string::npos) << t;
}

// The socket lookup behind disconnect detection: found by its four-tuple, alive while the peer
// is connected, gone once it closes.
TEST(ServeConnWatch, FindsTheSocketAndSeesTheClose) {
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(ls, 1), 0);
  socklen_t al = sizeof a;
  getsockname(ls, reinterpret_cast<sockaddr*>(&a), &al);
  int cs = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(cs, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int ss = accept(ls, nullptr, nullptr);
  ASSERT_GE(ss, 0);
  sockaddr_in peer{};
  socklen_t pl = sizeof peer;
  getpeername(ss, reinterpret_cast<sockaddr*>(&peer), &pl);
  const int server_port = ntohs(a.sin_port), client_port = ntohs(peer.sin_port);
  EXPECT_EQ(ConnectionWatch::find_socket("127.0.0.1", server_port, "127.0.0.1", client_port), ss);
  ConnectionWatch w("127.0.0.1", server_port, "127.0.0.1", client_port);
  EXPECT_TRUE(w.alive());
  ASSERT_EQ(write(cs, "x", 1), 1);  // pending bytes (a pipelined request) do not count as gone
  EXPECT_TRUE(w.alive());
  close(cs);
  for (int i = 0; i < 100 && w.alive(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(w.alive());
  close(ss);
  close(ls);
}

TEST_F(ServeHttp, EmbedShapes) {
  auto one = srv().post("/embed", json{{"inputs", "Hello world"}});
  ASSERT_EQ(one.status, 200) << one.body;
  ASSERT_TRUE(one.j.is_array() && one.j.size() == 1 && one.j[0].is_array()) << one.body;
  const size_t D = one.j[0].size();
  ASSERT_GT(D, 0u);
  double norm = 0;
  for (const auto& x : one.j[0]) norm += x.get<double>() * x.get<double>();
  EXPECT_NEAR(norm, 1.0, 1e-4);  // normalize defaults to true
  auto batch = srv().post("/embed", json{{"inputs", {"a", "b c", json::array({50281, 12092, 50282})}}});
  ASSERT_EQ(batch.status, 200) << batch.body;
  EXPECT_EQ(batch.j.size(), 3u);
  auto dims = srv().post("/embed", json{{"inputs", "Hello world"}, {"dimensions", 8}, {"normalize", false}});
  ASSERT_EQ(dims.status, 200) << dims.body;
  EXPECT_EQ(dims.j[0].size(), 8u);
  // `curl -d` sends application/x-www-form-urlencoded: bodies over cpp-httplib's 8 KB form limit
  // are still read as JSON.
  auto form = srv().client()->Post("/embed", json{{"inputs", std::string(20000, 'a')}, {"truncate", true}}.dump(),
                                   "application/x-www-form-urlencoded");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 200) << form->body;
  auto all = srv().post("/embed_all", json{{"inputs", {"Hello world", "x"}}});
  ASSERT_EQ(all.status, 200) << all.body;
  ASSERT_EQ(all.j.size(), 2u);
  EXPECT_EQ(all.j[0].size(), 4u);  // [CLS] Hello world [SEP]
  EXPECT_EQ(all.j[1].size(), 3u);
  EXPECT_GT(all.j[0][0].size(), 0u);
}

TEST_F(ServeHttp, OpenAiEmbeddingsMatchEmbedAndBase64) {
  auto tei = srv().post("/embed", json{{"inputs", {"Hello world", "second text"}}});
  auto f = srv().post("/v1/embeddings", json{{"input", {"Hello world", "second text"}}, {"model", "whatever"}});
  ASSERT_EQ(f.status, 200) << f.body;
  EXPECT_EQ(f.j["object"], "list");
  ASSERT_EQ(f.j["data"].size(), 2u);
  EXPECT_EQ(f.j["data"][1]["index"], 1);
  EXPECT_EQ(f.j["data"][0]["object"], "embedding");
  EXPECT_GT(f.j["usage"]["prompt_tokens"].get<int>(), 0);
  EXPECT_EQ(f.j["usage"]["total_tokens"], f.j["usage"]["prompt_tokens"]);
  EXPECT_TRUE(f.j["model"].is_string());
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(f.j["data"][i]["embedding"], tei.j[i]);
  auto b = srv().post("/v1/embeddings", json{{"input", {"Hello world"}}, {"encoding_format", "base64"}});
  ASSERT_EQ(b.status, 200) << b.body;
  auto v = decode_base64_floats(b.j["data"][0]["embedding"].get<std::string>());
  ASSERT_EQ(v.size(), f.j["data"][0]["embedding"].size());
  for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], f.j["data"][0]["embedding"][i].get<float>());
  auto ids = srv().post("/v1/embeddings", json{{"input", json::array({json::array({50281, 12092, 50282})})}});
  ASSERT_EQ(ids.status, 200) << ids.body;
  EXPECT_EQ(ids.j["usage"]["prompt_tokens"], 3);
  auto models = srv().get("/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.j["object"], "list");
  EXPECT_EQ(models.j["data"][0]["object"], "model");
  EXPECT_EQ(models.j["data"][0]["id"], "cls");  // the directory's name
}

TEST_F(ServeHttp, PredictRerankShapes) {
  auto one = srv().post("/predict", json{{"inputs", "I like it"}});
  ASSERT_EQ(one.status, 200) << one.body;
  ASSERT_EQ(one.j.size(), 3u);
  double sum = 0;
  for (size_t i = 0; i < 3; ++i) {
    sum += one.j[i]["score"].get<double>();
    EXPECT_TRUE(one.j[i]["label"].is_string());
    if (i) {
      EXPECT_GE(one.j[i - 1]["score"].get<double>(), one.j[i]["score"].get<double>());  // sorted
    }
  }
  EXPECT_NEAR(sum, 1.0, 1e-5);  // softmax over 3 labels
  auto pair = srv().post("/predict", json{{"inputs", {"a question", "an answer"}}, {"raw_scores", true}});
  ASSERT_EQ(pair.status, 200) << pair.body;
  EXPECT_EQ(pair.j.size(), 3u);
  auto batch = srv().post("/predict", json::parse(R"({"inputs": [["one"], ["two", "three"]]})"));
  ASSERT_EQ(batch.status, 200) << batch.body;
  ASSERT_EQ(batch.j.size(), 2u);
  EXPECT_EQ(batch.j[1].size(), 3u);
  auto rr =
      srv().post("/rerank", json{{"query", "q"}, {"texts", {"first", "second doc", "third"}}, {"return_text", true}});
  ASSERT_EQ(rr.status, 200) << rr.body;
  ASSERT_EQ(rr.j.size(), 3u);
  for (size_t i = 1; i < 3; ++i) EXPECT_GE(rr.j[i - 1]["score"].get<double>(), rr.j[i]["score"].get<double>());
  EXPECT_TRUE(rr.j[0]["text"].is_string());
  EXPECT_TRUE(rr.j[0]["index"].is_number_integer());
  auto v1 =
      srv().post("/v1/rerank", json{{"query", "q"}, {"documents", {"first", "second doc", "third"}}, {"top_n", 2}});
  ASSERT_EQ(v1.status, 200) << v1.body;
  ASSERT_EQ(v1.j["results"].size(), 2u);
  EXPECT_TRUE(v1.j["results"][0]["relevance_score"].is_number());
  EXPECT_EQ(v1.j["results"][0]["index"], rr.j[0]["index"]);  // same ranking as /rerank
}

TEST_F(ServeHttp, TokenizeDecodeFillMaskInfo) {
  auto t = srv().post("/tokenize", json{{"inputs", "Hello world"}});
  ASSERT_EQ(t.status, 200) << t.body;
  ASSERT_EQ(t.j[0].size(), 4u);
  EXPECT_EQ(t.j[0][0]["special"], true);
  EXPECT_EQ(t.j[0][1]["text"], "Hello");
  EXPECT_EQ(t.j[0][1]["start"], 0);
  EXPECT_EQ(t.j[0][1]["stop"], 5);
  std::vector<int> ids;
  for (const auto& tok : t.j[0]) ids.push_back(tok["id"].get<int>());
  auto d = srv().post("/decode", json{{"ids", ids}});
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.j, json::array({"Hello world"}));
  auto fm = srv().post("/fill-mask", json{{"inputs", "Paris is the [MASK] of France."}, {"top_k", 3}});
  ASSERT_EQ(fm.status, 200) << fm.body;
  ASSERT_EQ(fm.j.size(), 1u);     // one [MASK]
  ASSERT_EQ(fm.j[0].size(), 3u);  // top_k
  for (const char* k : {"token", "token_str", "score", "sequence"}) EXPECT_TRUE(fm.j[0][0].contains(k)) << k;
  auto info = srv().get("/info");
  ASSERT_EQ(info.status, 200) << info.body;
  EXPECT_EQ(info.j["max_client_batch_size"], 32);
  EXPECT_GT(info.j["max_input_length"].get<int>(), 0);
  EXPECT_TRUE(info.j["model_type"].contains("classifier"));
  const auto routes = info.j["routes"].get<std::vector<std::string>>();
  for (const char* r : {"/embed", "/predict", "/rerank", "/fill-mask", "/v1/embeddings"})
    EXPECT_NE(std::find(routes.begin(), routes.end(), r), routes.end()) << r;
}

TEST_F(ServeHttp, MetricsHaveTeiNames) {
  srv().post("/embed", json{{"inputs", "warm the counters"}});
  auto m = srv().get("/metrics");
  ASSERT_EQ(m.status, 200);
  for (const char* name :
       {"te_request_count", "te_request_success", "te_request_failure", "te_request_duration_bucket",
        "te_request_tokenization_duration", "te_request_queue_duration", "te_request_inference_duration",
        "te_batch_next_size", "te_batch_next_tokens", "te_queue_size", "te_request_input_length"})
    EXPECT_NE(m.body.find(name), std::string::npos) << name;
  EXPECT_NE(m.body.find("te_request_success{method=\"embed\"}"), std::string::npos);
  auto h = srv().get("/health");
  EXPECT_EQ(h.status, 200);
}

TEST_F(ServeHttp, ErrorTable) {
  expect_tei_error(srv().post("/embed", std::string("{not json")), 400, "validation");
  expect_openai_error(srv().post("/v1/embeddings", std::string("[1,")), 400, "invalid_request_error");
  expect_tei_error(srv().post("/embed", json{{"inputs", json::array()}}), 400, "empty");
  expect_tei_error(srv().post("/embed", json{{"inputs", ""}}), 400, "empty");
  expect_openai_error(srv().post("/v1/embeddings", json{{"input", ""}}), 400, "invalid_request_error");
  expect_tei_error(srv().post("/embed", json{{"inputs", 42}}), 422, "validation");
  expect_tei_error(srv().post("/embed", json{{"inputs", "x"}, {"normalize", "yes"}}), 422, "validation");
  expect_tei_error(srv().post("/embed", json{{"nothing", "x"}}), 422, "validation");
  expect_tei_error(srv().post("/embed", std::string("[1, 2]")), 422, "validation");  // not an object
  expect_tei_error(srv().post("/embed", json{{"inputs", json::array({1, 999999})}}), 422, "validation");
  expect_tei_error(srv().post("/embed", json{{"inputs", json::array({-3})}}), 422, "validation");
  expect_openai_error(srv().post("/v1/embeddings", json{{"input", json::array({999999})}}), 422,
                      "invalid_request_error");
  expect_tei_error(srv().post("/decode", json{{"ids", json::array({999999})}}), 422, "validation");
  // Longer than the model without truncation: 422; with truncate (or --auto-truncate): 200.
  const int max_len = srv().get("/info").j["max_input_length"].get<int>();
  std::string long_text;
  for (int i = 0; i < max_len + 10; ++i) long_text += " word";
  expect_tei_error(srv().post("/embed", json{{"inputs", long_text}}), 422, "validation");
  EXPECT_EQ(srv().post("/embed", json{{"inputs", long_text}, {"truncate", true}}).status, 200);
  // Too many inputs, too large a body: 413.
  expect_tei_error(srv().post("/embed", json{{"inputs", std::vector<std::string>(33, "x")}}), 413, "validation");
  expect_tei_error(srv().post("/embed", json{{"inputs", std::string(300000, 'a')}}), 413, "validation");
  expect_openai_error(srv().post("/v1/embeddings", json{{"input", std::string(300000, 'a')}}), 413,
                      "invalid_request_error");
  // A chunked body (no Content-Length) over the limit too.
  int sent = 0;
  auto chunked = srv().client()->Post(
      "/embed",
      [&](size_t, httplib::DataSink& sink) {
        // The limit is crossed by the last, small chunk: the client has sent everything by then and
        // reads the 413 (crossing it early races the server's close against the client's writes).
        const std::string piece(sent < 4 ? 50000 : 1000, 'a');
        if (sent++ < 5) return sink.write(piece.data(), piece.size());
        sink.done();
        return true;
      },
      "application/json");
  ASSERT_TRUE(chunked);
  EXPECT_EQ(chunked->status, 413) << chunked->body;
  // Unknown route 404, wrong method 405 (with Allow).
  expect_tei_error(srv().get("/nope"), 404, "not_found");
  expect_openai_error(srv().get("/v1/nope"), 404, "not_found_error");
  expect_tei_error(srv().get("/embed"), 405, "method_not_allowed");
  auto r405 = srv().client()->Post("/health", "{}", "application/json");
  ASSERT_TRUE(r405);
  EXPECT_EQ(r405->status, 405);
  EXPECT_EQ(r405->get_header_value("Allow"), "GET");
  // Bad values of known fields.
  expect_tei_error(srv().post("/embed", json{{"inputs", "x"}, {"truncation_direction", "up"}}), 422, "validation");
  expect_tei_error(srv().post("/embed", json{{"inputs", "x"}, {"prompt_name", "no-such-prompt"}}), 422, "validation");
  expect_tei_error(srv().post("/embed", json{{"inputs", "x"}, {"dimensions", 0}}), 422, "validation");
  expect_openai_error(srv().post("/v1/embeddings", json{{"input", "x"}, {"encoding_format", "hex"}}), 422,
                      "invalid_request_error");
  expect_tei_error(srv().post("/fill-mask", json{{"inputs", "no mask here"}}), 422, "validation");
  expect_tei_error(srv().post("/predict", json{{"inputs", {"a", "b", "c"}}}), 422, "validation");
  // The server is still fine after all that.
  EXPECT_EQ(srv().get("/health").status, 200);
}

// /health is 503 until the model is loaded; routes that need the model answer 503 too, in their
// family's shape; /v1/models does not need the model.
TEST_F(ServeHttp, HealthBeforeLoadAuthAndUnsupportedRoute) {
  const std::string mlm_dir = make_model(*tmp_, "mlm", "mlm");
  ServerOptions so;
  so.api_key = "sekrit";
  EngineOptions eo;
  eo.model_dir = mlm_dir;
  eo.threads = 1;
  TestServer s(so, eo, /*load=*/false);
  const httplib::Headers auth = {{"Authorization", "Bearer sekrit"}};
  expect_tei_error(s.get("/health"), 503, "unhealthy");
  expect_tei_error(s.post("/embed", json{{"inputs", "x"}}, auth), 503, "unhealthy");
  expect_openai_error(s.post("/v1/embeddings", json{{"input", "x"}}, auth), 503, "unavailable_error");
  EXPECT_EQ(s.get("/v1/models", auth).status, 200);
  s.server().start_loading();
  s.wait_ready();
  EXPECT_EQ(s.get("/health").status, 200);  // no key needed
  EXPECT_EQ(s.get("/metrics").status, 200);
  // Authentication: missing or wrong key 401 on every other route, unknown ones included.
  expect_tei_error(s.post("/embed", json{{"inputs", "x"}}), 401, "unauthorized");
  expect_tei_error(s.post("/embed", json{{"inputs", "x"}}, {{"Authorization", "Bearer sekrit2"}}), 401, "unauthorized");
  expect_tei_error(s.post("/embed", json{{"inputs", "x"}}, {{"Authorization", "sekrit"}}), 401, "unauthorized");
  expect_openai_error(s.post("/v1/embeddings", json{{"input", "x"}}, {{"Authorization", "Bearer "}}), 401,
                      "authentication_error");
  expect_tei_error(s.get("/nope"), 401, "unauthorized");
  EXPECT_EQ(s.post("/embed", json{{"inputs", "x"}}, auth).status, 200);
  // A route the model cannot serve: 400 unsupported, and /info does not list it.
  expect_tei_error(s.post("/predict", json{{"inputs", "x"}}, auth), 400, "unsupported");
  expect_openai_error(s.post("/v1/rerank", json{{"query", "q"}, {"documents", {"d"}}}, auth), 400,
                      "not_supported_error");
  auto info = s.get("/info", auth);
  ASSERT_EQ(info.status, 200);
  const auto routes = info.j["routes"].get<std::vector<std::string>>();
  EXPECT_EQ(std::find(routes.begin(), routes.end(), "/predict"), routes.end());
  EXPECT_NE(std::find(routes.begin(), routes.end(), "/fill-mask"), routes.end());
}

// Queue full (429) and request timeout (504): a server whose queue holds one request and whose
// requests time out almost at once.
TEST_F(ServeHttp, QueueFullAndTimeout) {
  ServerOptions so;
  so.request_timeout = 0.002;
  EngineOptions eo;
  eo.model_dir = dir_;
  eo.threads = 1;
  eo.max_queued_requests = 1;
  TestServer s(so, eo);
  std::string long_text;
  for (int i = 0; i < 400; ++i) long_text += " word";
  const json heavy = {{"inputs", std::vector<std::string>(32, long_text)}, {"truncate", true}};
  std::atomic<int> n429{0}, n504{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      auto r = s.post("/embed", heavy);
      if (r.status == 429 && r.j.value("error_type", "") == "overloaded")
        ++n429;
      else if (r.status == 504 && r.j.value("error_type", "") == "timeout")
        ++n504;
      else if (r.status != 200)  // a request may also finish just in time
        ++other;
    });
  for (auto& t : threads) t.join();
  EXPECT_GT(n429.load(), 0);
  EXPECT_GT(n504.load(), 0);
  EXPECT_EQ(other.load(), 0);
  auto m = s.get("/metrics");
  EXPECT_NE(m.body.find("te_request_failure{err=\"overloaded\"}"), std::string::npos);
  EXPECT_NE(m.body.find("te_request_failure{err=\"timeout\"}"), std::string::npos);
  // Cancelled work does not linger: the queue drains.
  for (int i = 0; i < 500 && s.server().engine()->queue_size() > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(s.server().engine()->queue_size(), 0u);
}

// stop(): serve() returns, in-flight requests are answered, new connections are refused.
TEST_F(ServeHttp, GracefulStop) {
  ServerOptions so;
  EngineOptions eo;
  eo.model_dir = dir_;
  eo.threads = 1;
  auto s = std::make_unique<TestServer>(so, eo);
  std::string long_text;
  for (int i = 0; i < 400; ++i) long_text += " word";
  const json heavy = {{"inputs", std::vector<std::string>(32, long_text)}, {"truncate", true}};
  int status = -1;
  std::thread t([&] { status = s->post("/embed", heavy).status; });
  // Wait until the request is in the engine, then stop.
  for (int i = 0; i < 1000 && s->server().engine()->queue_size() == 0 && status < 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int port = s->port();
  s->server().stop();
  t.join();
  EXPECT_EQ(status, 200);
  s.reset();  // joins serve(), shuts the engine down
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1, 0);
  EXPECT_FALSE(c.Get("/health"));
}

// A client that disconnects mid-request: its job is cancelled (te_request_failure{err="disconnected"})
// and the server stays healthy with an empty queue.
TEST_F(ServeHttp, ClientDisconnectCancelsItsWork) {
  ServerOptions so;  // the default payload limit (the suite's server has a small one)
  EngineOptions eo;
  eo.model_dir = dir_;
  eo.threads = 1;
  TestServer srv(so, eo);
  std::string long_text;
  for (int i = 0; i < 3000; ++i) long_text += " w" + std::to_string(i % 97);
  const std::string body = json{{"inputs", std::vector<std::string>(32, long_text)}, {"truncate", true}}.dump();
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(srv.port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string req = "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  ASSERT_EQ(send(s, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  close(s);
  bool seen = false;
  for (int i = 0; i < 500 && !seen; ++i) {
    seen = srv.get("/metrics").body.find("te_request_failure{err=\"disconnected\"}") != std::string::npos;
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(seen);
  EXPECT_EQ(srv.get("/health").status, 200);
  EXPECT_EQ(srv.post("/embed", json{{"inputs", "still fine"}}).status, 200);
}

// 64 concurrent clients (the defaults must serve them all at once), mixed lengths, two requests
// each: every client gets its own result (the batch a sequence rides in changes it only within
// float rounding of the forward: the engine's stated bound).
TEST_F(ServeHttp, SixtyFourConcurrentClientsGetTheirOwnResults) {
  const int kClients = 64;
  std::vector<std::string> texts;
  for (int i = 0; i < kClients; ++i) {
    std::string t = "client " + std::to_string(i);
    for (int k = 0; k < (i % 4 == 0 ? 200 : i % 3 == 0 ? 40 : 3); ++k) t += " w" + std::to_string((i * 7 + k) % 101);
    texts.push_back(t);
  }
  std::vector<json> alone(kClients);
  for (int i = 0; i < kClients; ++i) alone[i] = srv().post("/embed", json{{"inputs", texts[i]}}).j;
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      auto c = srv().client();  // one keep-alive connection per client
      c->set_keep_alive(true);
      for (int k = 0; k < 2; ++k) {
        auto r = c->Post("/embed", json{{"inputs", texts[i]}}.dump(), "application/json");
        if (!r || r->status != 200) {
          ++bad;
          continue;
        }
        auto got = json::parse(r->body)[0].get<std::vector<float>>();
        auto want = alone[i][0].get<std::vector<float>>();
        if (!mbtest::allclose(got, want, 1e-5, 1e-4)) ++bad;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

// Slow clients: a request body that stalls gets 408 after --read-timeout.
TEST_F(ServeHttp, StalledClientIsDisconnected) {
  ServerOptions so;
  so.read_timeout = 1;
  EngineOptions eo;
  eo.model_dir = dir_;
  eo.threads = 1;
  TestServer srv(so, eo, /*load=*/false);  // the HTTP layer alone
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(srv.port()));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string part = "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inp";
  ASSERT_EQ(send(s, part.data(), part.size(), 0), static_cast<ssize_t>(part.size()));
  timeval tv{5, 0};
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const auto t0 = std::chrono::steady_clock::now();
  char buf[4096];
  const ssize_t n = recv(s, buf, sizeof buf, 0);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_GT(n, 12) << "no answer within 5 s";
  EXPECT_EQ(std::string(buf, 12), "HTTP/1.1 408");
  EXPECT_LT(waited, 4.0);
  close(s);
}

// The command: flags and their environment variables, exit 2 on bad values, and a real process
// that listens, turns healthy and exits 0 on SIGTERM.
TEST(ServeCli, FlagsEnvAndSigterm) {
  auto help = mbtest::run_command(mbtest::cli() + " serve --help");
  EXPECT_EQ(help.status, 0);
  for (const char* s : {"--max-batch-tokens", "MODERNBERT_MAX_BATCH_TOKENS", "--api-key", "MODERNBERT_API_KEY",
                        "--request-timeout", "--payload-limit", "--auto-truncate", "--served-model-name"})
    EXPECT_NE(help.output.find(s), std::string::npos) << s;
  EXPECT_EQ(mbtest::run_command(mbtest::cli() + " serve --model x --port abc").status, 2);
  EXPECT_EQ(mbtest::run_command("MODERNBERT_PORT=70000 " + mbtest::cli() + " serve --model x").status, 2);
  EXPECT_EQ(mbtest::run_command("MODERNBERT_AUTO_TRUNCATE=maybe " + mbtest::cli() + " serve --model x").status, 2);
  EXPECT_EQ(mbtest::run_command(mbtest::cli() + " serve --model x --pooling avg").status, 2);
  EXPECT_EQ(mbtest::run_command(mbtest::cli() + " serve").status, 2);  // no model
  EXPECT_EQ(mbtest::run_command(mbtest::cli() + " serve --model x --nope 1").status, 2);

  mbtest::TempDir tmp("serve_cli");
  const std::string dir = make_model(tmp, "m", "mlm");
  const std::string log = tmp / "log";
  // The flag wins over the environment: MODERNBERT_PORT is bad, --port 0 is used.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    setenv("MODERNBERT_PORT", "not-a-port", 1);
    setenv("MODERNBERT_SERVED_MODEL_NAME", "from-env", 1);
    const std::string cli = mbtest::cli();
    execl(cli.c_str(), cli.c_str(), "serve", "--model", dir.c_str(), "--port", "0", "--threads", "1",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  int port = 0;
  for (int i = 0; i < 500 && port == 0; ++i) {
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto at = text.find("listening on http://127.0.0.1:");
    if (at != std::string::npos) port = std::atoi(text.c_str() + at + 30);
    if (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(port, 0);
  httplib::Client c("127.0.0.1", port);
  int health = 0;
  for (int i = 0; i < 500 && health != 200; ++i) {
    auto r = c.Get("/health");
    health = r ? r->status : 0;
    if (health != 200) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(health, 200);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "from-env");
  kill(pid, SIGTERM);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// Slowloris: as many clients as connection threads, each dribbling its headers a byte at a time
// (cpp-httplib's per-recv timeout never fires), are cut off, so a normal request gets through.
TEST_F(ServeHttp, DribblingClientsAreCutOff) {
  ServerOptions so;
  so.read_timeout = 1;
  so.keep_alive_timeout = 1;
  so.http_threads = 2;
  EngineOptions eo;
  eo.model_dir = dir_;
  eo.threads = 1;
  TestServer srv(so, eo);
  std::atomic<bool> quit{false};
  std::vector<std::thread> dribblers;
  for (int k = 0; k < 2; ++k)
    dribblers.emplace_back([&] {
      int s = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(srv.port()));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
      const std::string head = "POST /embed HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(1000, 'z');
      for (size_t i = 0; i < head.size() && !quit; ++i) {
        if (send(s, &head[i], 1, MSG_NOSIGNAL) != 1) break;  // cut off by the server
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      close(s);
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the dribblers hold both threads
  const auto t0 = std::chrono::steady_clock::now();
  auto r = srv.post("/embed", json{{"inputs", "hello"}});
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_LT(waited, 5.0);
  quit = true;
  for (auto& t : dribblers) t.join();
}
