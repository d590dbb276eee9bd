// Where the time of one encoder forward goes, per op (MODERNBERT_PROFILE timing scopes in
// encoder.cpp), at ModernBERT-base shapes with random weights and `layers` layers (layer 0, 3, ...
// global, the rest local, as in base). Prints wall and process-CPU seconds per op and the useful
// GFLOP/s per CPU-second (robust on a loaded machine: CPU time is what our threads got).
//
// usage: profile_forward WORKLOAD [layers=3] [reps=2]
//   WORKLOAD: a JSONL file of {"input_ids": [...]} lines (only the lengths are used), or
//             NxL (N sequences of L tokens), e.g. 64x128, 1x8192.
// Threads: $MODERNBERT_THREADS (default: all cores), read once here (the library reads no environment
// for it).
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/profile.h"
#include "modernbert/model.h"
#include "modernbert/weights.h"

namespace mp = modernbert::kernels::prof;

namespace {
std::vector<int64_t> lengths_of(const std::string& w) {
  std::vector<int64_t> lens;
  const auto x = w.find('x');
  if (x != std::string::npos && w.find('.') == std::string::npos) {
    const int64_t n = std::atoll(w.substr(0, x).c_str()), l = std::atoll(w.substr(x + 1).c_str());
    lens.assign(static_cast<size_t>(n), l);
    return lens;
  }
  std::ifstream in(w);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lens.push_back(static_cast<int64_t>(nlohmann::json::parse(line)["input_ids"].size()));
  return lens;
}
double cpu_s() { return mp::clock_s(CLOCK_PROCESS_CPUTIME_ID); }
double wall_s() { return mp::clock_s(CLOCK_MONOTONIC); }
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: profile_forward WORKLOAD [layers=3] [reps=2]\n");
    return 2;
  }
  setenv("MODERNBERT_PROFILE", "1", 0);
  if (const char* e = std::getenv("MODERNBERT_THREADS")) modernbert::kernels::set_num_threads(std::atoi(e));
  const std::vector<int64_t> lens = lengths_of(argv[1]);
  const int64_t L = argc > 2 ? std::atoll(argv[2]) : 3;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 2;
  nlohmann::json j = {{"num_hidden_layers", L}, {"vocab_size", 50368}, {"pad_token_id", 0}, {"bos_token_id", 1},
                      {"eos_token_id", 2}, {"cls_token_id", 1}, {"sep_token_id", 2}};
  auto cfg = modernbert::ModelConfig::from_json(j, "profile");
  modernbert::Weights w(cfg, modernbert::HeadSet{});
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(-0.03f, 0.03f);
  for (size_t i = 0; i < w.num_params(); ++i) w.data()[i] = u(g);
  for (const auto& s : w.specs())
    if (s.name.find("norm") != std::string::npos) std::fill_n(w.mutable_param(s.name), s.numel(), 1.0f);
  modernbert::Encoder enc(w);

  modernbert::Batch b;
  for (int64_t n : lens) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& x : ids) x = static_cast<int32_t>(g() % 50000);
    b.add(ids);
  }
  // Useful FLOPs (as `modernbert bench` counts them): linears + attention over attended keys.
  const double H = 768, I = 1152, nh = 12, d = 64;
  double flops = 0;
  for (int64_t l = 0; l < L; ++l) {
    const int64_t hw = cfg.half_window(l);
    for (int64_t n : lens) {
      flops += 2.0 * (3 * H * H + H * H + 2 * I * H + I * H) * static_cast<double>(n);
      double keys = 0;
      for (int64_t i = 0; i < n; ++i)
        keys += hw < 0 ? static_cast<double>(n)
                       : static_cast<double>(std::min(n - 1, i + hw) - std::max<int64_t>(0, i - hw) + 1);
      flops += 4.0 * d * nh * keys;
    }
  }
  std::vector<float> out;
  enc.forward(b, out);  // warm-up (arena, RoPE tables, page faults)
  mp::reset();
  const double w0 = wall_s(), c0 = cpu_s();
  for (int r = 0; r < reps; ++r) enc.forward(b, out);
  const double wall = (wall_s() - w0) / reps, cpu = (cpu_s() - c0) / reps;
  const int nt = modernbert::kernels::default_pool().size();
  double loads[3] = {0, 0, 0};
  getloadavg(loads, 3);
  std::printf("workload %s: %zu seqs, %lld tokens, %lld layers, %d threads, load %.1f\n", argv[1], lens.size(),
              static_cast<long long>(b.num_tokens()), static_cast<long long>(L), nt, loads[0]);
  std::printf("per forward: wall %.3f s, cpu %.3f s; useful %.1f GFLOP -> %.1f GFLOP/s per cpu-second "
              "(x%d = %.1f if the cores were ours)\n",
              wall, cpu, flops * 1e-9, flops / cpu * 1e-9, nt, nt * flops / cpu * 1e-9);
  const auto t = mp::totals();
  double tw = 0, tc = 0;
  for (const auto& e : t) tw += e.wall, tc += e.cpu;
  std::printf("%-18s %9s %6s %9s %6s %7s\n", "op", "wall s", "%", "cpu s", "%", "calls");
  for (const auto& e : t)
    std::printf("%-18s %9.3f %6.1f %9.3f %6.1f %7lld\n", e.name, e.wall / reps, 100 * e.wall / tw, e.cpu / reps,
                100 * e.cpu / tc, static_cast<long long>(e.calls / reps));
  return 0;
}
