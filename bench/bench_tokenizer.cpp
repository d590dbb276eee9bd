// Tokenizer throughput on the pretraining corpus: single-thread encode (cold and warm word
// cache) and encode_batch on 1 and 2 threads.
//
//   bench_tokenizer [--tokenizer FILE] [--corpus FILE.jsonl] [--repeat N]
// Defaults: $MB_SHARED_DATA (or ../shared/data) /modernbert-tokenizer/tokenizer.json and
// /corpus/train.jsonl. Prints a human table and one "RESULT key=value ..." line for scripts.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modernbert/tokenizer.h"

using Clock = std::chrono::steady_clock;

static double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Process CPU time (all threads): cpu/wall below the thread count means the machine did not
// give us that many cores (shared runner), which caps the measurable scaling.
static double cpu_secs() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

int main(int argc, char** argv) {
  const char* env = std::getenv("MB_SHARED_DATA");
  std::string shared = env ? env : "../shared/data";
  std::string tok_path = shared + "/modernbert-tokenizer/tokenizer.json";
  std::string corpus = shared + "/corpus/train.jsonl";
  int repeat = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok_path = argv[++i];
    else if (!std::strcmp(argv[i], "--corpus") && i + 1 < argc) corpus = argv[++i];
    else if (!std::strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--tokenizer FILE] [--corpus FILE.jsonl] [--repeat N]\n", argv[0]);
      return 2;
    }
  }
  try {
    auto t0 = Clock::now();
    modernbert::Tokenizer tk = modernbert::Tokenizer::from_file(tok_path);
    auto t1 = Clock::now();
    std::vector<std::string> texts;
    std::size_t bytes = 0;
    {
      std::ifstream f(corpus, std::ios::binary);
      if (!f) throw std::runtime_error("cannot open " + corpus);
      std::string line;
      while (std::getline(f, line)) {
        if (line.empty()) continue;
        texts.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
        bytes += texts.back().size();
      }
    }
    std::printf("tokenizer load: %.3f s; corpus: %zu docs, %.1f MB\n", secs(t0, t1), texts.size(),
                bytes / 1e6);

    auto single = [&](const modernbert::Tokenizer& t) {
      std::size_t ntok = 0;
      auto a = Clock::now();
      for (int r = 0; r < repeat; ++r)
        for (const auto& s : texts) ntok += t.encode(s).size();
      return std::make_pair(ntok, secs(a, Clock::now()));
    };
    auto [n_cold, s_cold] = single(tk);  // first pass fills the word cache
    auto [n_warm, s_warm] = single(tk);
    double cpu_b1 = 0, cpu_b2 = 0;
    auto batch = [&](unsigned threads, double& cpu) {
      modernbert::Tokenizer fresh = modernbert::Tokenizer::from_file(tok_path);  // cold caches
      std::size_t ntok = 0;
      double c0 = cpu_secs();
      auto a = Clock::now();
      for (int r = 0; r < repeat; ++r)
        for (const auto& e : fresh.encode_batch(texts, {}, threads)) ntok += e.size();
      double wall = secs(a, Clock::now());
      cpu = cpu_secs() - c0;
      return std::make_pair(ntok, wall);
    };
    auto [n_b1, s_b1] = batch(1, cpu_b1);
    auto [n_b2, s_b2] = batch(2, cpu_b2);
    auto row = [&](const char* name, std::size_t n, double s) {
      std::printf("%-34s %10zu tokens %8.3f s %12.0f tokens/s %8.2f MB/s\n", name, n, s, n / s,
                  bytes * repeat / s / 1e6);
    };
    row("encode, 1 thread, cold cache", n_cold, s_cold);
    row("encode, 1 thread, warm cache", n_warm, s_warm);
    row("encode_batch, 1 thread (cold)", n_b1, s_b1);
    row("encode_batch, 2 threads (cold)", n_b2, s_b2);
    std::printf("2-thread scaling (batch): %.2fx wall; CPU used per wall second: %.2f (1 thread), %.2f (2 threads)\n",
                s_b1 / s_b2, cpu_b1 / s_b1, cpu_b2 / s_b2);
    std::printf("2-thread scaling in CPU terms (tokens per CPU-second, 2 threads vs 1): %.2f\n",
                (n_b2 / cpu_b2) / (n_b1 / cpu_b1));
    std::printf("RESULT tokens=%zu bytes=%zu single_cold_s=%.4f single_warm_s=%.4f batch1_s=%.4f batch2_s=%.4f\n",
                n_cold, bytes * repeat, s_cold, s_warm, s_b1, s_b2);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_tokenizer: %s\n", e.what());
    return 1;
  }
  return 0;
}
