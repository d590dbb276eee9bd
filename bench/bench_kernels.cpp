// Kernel throughput at ModernBERT-base shapes: gemm (the four projections of a layer) and
// attention (global and 128-window local), in GFLOP/s, against a single-thread sgemm "peak"
// measured here (1024^3 OpenBLAS) times the thread count.
//
// usage: bench_kernels [tokens=8192] [reps=2] [linear]
// Tokens are run both as one sequence of T and as T/128 sequences of 128 (for attention).
// Also: linear() per weight dtype (f32 / bf16 / f16 / int8) at M = 1024 and the four base shapes,
// dtypes interleaved within each repetition, median time (a third argument `linear`: only that).
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/attention_bf16.h"
#include "kernels/cpu/kernels.h"
#include "kernels/ref/ref.h"
#include "modernbert/model.h"
#include "modernbert/weights.h"

namespace mk = modernbert::kernels;

namespace {
double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::vector<float> rnd(size_t n, float s = 1.0f) {
  std::mt19937 g(42);
  std::uniform_real_distribution<float> u(-s, s);
  std::vector<float> v(n);
  for (auto& x : v) x = u(g);
  return v;
}
template <class F>
double best_of(int reps, F&& f) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}

// linear() GFLOP/s per weight dtype at M = 1024 (A/B in one process: the dtypes take turns within
// each of `reps` rounds; the median time of each is reported, with its ratio to f32).
void bench_linear_dtypes(int reps) {
  using modernbert::Precision;
  const int64_t M = 1024, H = 768, I = 1152;
  struct G {
    const char* name;
    int64_t N, K;
  };
  const G shapes[] = {
      {"Wqkv [2304x768]", 3 * H, H}, {"Wo [768x768]", H, H}, {"Wi [2304x768]", 2 * I, H}, {"Wo_mlp [768x1152]", H, I}};
  for (Precision p : {Precision::kF32, Precision::kBF16, Precision::kF16, Precision::kInt8})
    std::printf("linear path %-4s: %s\n", modernbert::precision_name(p), mk::linear_path(p).c_str());
  auto X = rnd(static_cast<size_t>(M * I));
  std::vector<float> Y(static_cast<size_t>(M * 3 * H)), b = rnd(static_cast<size_t>(3 * H));
  double tot[4] = {0, 0, 0, 0};
  for (const G& g : shapes) {
    auto W = rnd(static_cast<size_t>(g.N * g.K), 0.05f);
    std::vector<uint16_t> wb(W.size()), wh(W.size());
    for (size_t i = 0; i < W.size(); ++i) wb[i] = mk::ref::bf16_from_float(W[i]), wh[i] = mk::ref::f16_from_float(W[i]);
    std::vector<int8_t> wq(W.size());
    std::vector<float> ws(static_cast<size_t>(g.N));
    mk::quantize_rows_i8(W.data(), g.K, g.N, g.K, wq.data(), ws.data());
    const modernbert::WeightMatrix wm[4] = {modernbert::WeightMatrix(W.data()),
                                            {Precision::kBF16, wb.data()},
                                            {Precision::kF16, wh.data()},
                                            {Precision::kInt8, wq.data(), ws.data()}};
    std::vector<double> times[4];
    for (int r = 0; r < reps + 1; ++r)
      for (int d = 0; d < 4; ++d) {
        const double t0 = now();
        mk::linear(X.data(), wm[d], b.data(), Y.data(), M, g.N, g.K);
        if (r > 0) times[d].push_back(now() - t0);  // round 0 warms up (primitives, scratch)
      }
    const double fl = 2.0 * M * g.N * g.K;
    double med[4], best[4];
    for (int d = 0; d < 4; ++d) {
      std::sort(times[d].begin(), times[d].end());
      med[d] = times[d][times[d].size() / 2];
      best[d] = times[d][0];
      tot[d] += med[d];
    }
    for (const double* t : {med, best})
      std::printf(
          "linear M=%lld %-18s %-6s GFLOP/s  f32 %6.1f  bf16 %6.1f (x%.2f)  f16 %6.1f (x%.2f)  int8 %6.1f (x%.2f)\n",
          static_cast<long long>(M), g.name, t == med ? "median" : "best", fl / t[0] * 1e-9, fl / t[1] * 1e-9,
          t[0] / t[1], fl / t[2] * 1e-9, t[0] / t[2], fl / t[3] * 1e-9, t[0] / t[3]);
  }
  std::printf(
      "linear M=1024 layer total (medians) ms: f32 %.2f  bf16 %.2f (x%.2f)  f16 %.2f (x%.2f)  int8 %.2f (x%.2f)\n",
      tot[0] * 1e3, tot[1] * 1e3, tot[0] / tot[1], tot[2] * 1e3, tot[0] / tot[2], tot[3] * 1e3, tot[0] / tot[3]);
}
}  // namespace

int main(int argc, char** argv) {
  const int64_t T = argc > 1 ? std::atoll(argv[1]) : 8192;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 2;
  const int nt = mk::default_pool().size();
  const int64_t H = 768, I = 1152, heads = 12, d = 64;
  std::printf("threads: %d, tokens: %lld\n", nt, static_cast<long long>(T));
  if (argc > 3 && std::string(argv[3]) == "linear") {
    bench_linear_dtypes(std::max(reps, 1));
    return 0;
  }

  // Single-thread sgemm "peak": raw cblas_sgemm with OpenBLAS pinned to one thread (what the
  // kPool setting does), on the calling thread.
  {
    const int64_t n = 1024;
    auto A = rnd(static_cast<size_t>(n * n)), B = rnd(static_cast<size_t>(n * n));
    std::vector<float> C(static_cast<size_t>(n * n));
    mk::set_gemm_threading(mk::GemmThreading::kPool);  // OpenBLAS pinned to 1 thread
    double t = best_of(reps + 1, [&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, A.data(), n, B.data(), n, 0.0f,
                  C.data(), n);
    });
    std::printf("sgemm 1024^3, 1 thread: %.1f GFLOP/s (x%d threads = %.1f)\n", 2.0 * n * n * n / t * 1e-9, nt,
                nt * 2.0 * n * n * n / t * 1e-9);
  }

  struct G { const char* name; int64_t N, K; };
  const G shapes[] = {{"Wqkv [2304x768]", 3 * H, H}, {"Wo [768x768]", H, H},
                      {"Wi [2304x768]", 2 * I, H}, {"Wo_mlp [768x1152]", H, I}};
  auto X = rnd(static_cast<size_t>(T * I));
  auto W = rnd(static_cast<size_t>(3 * H * I));
  std::vector<float> Y(static_cast<size_t>(T * 3 * H));
  for (auto mode : {mk::GemmThreading::kPool, mk::GemmThreading::kNative}) {
    mk::set_gemm_threading(mode);
    double flops_total = 0, time_total = 0;
    for (const G& g : shapes) {
      double t = best_of(reps, [&] { mk::gemm(X.data(), W.data(), nullptr, Y.data(), T, g.N, g.K); });
      double fl = 2.0 * T * g.N * g.K;
      flops_total += fl;
      time_total += t;
      std::printf("gemm %-8s %-20s M=%lld: %7.1f ms %6.1f GFLOP/s\n",
                  mode == mk::GemmThreading::kPool ? "pool" : "native", g.name, static_cast<long long>(T),
                  t * 1e3, fl / t * 1e-9);
    }
    std::printf("gemm %-8s layer total: %.1f ms, %.1f GFLOP/s\n", mode == mk::GemmThreading::kPool ? "pool" : "native",
                time_total * 1e3, flops_total / time_total * 1e-9);
  }
  mk::set_gemm_threading(mk::GemmThreading::kPool);
  bench_linear_dtypes(std::max(reps, 3));

  auto qkv = rnd(static_cast<size_t>(T * 3 * H));
  std::vector<float> out(static_cast<size_t>(T * H));
  std::vector<float> ws(mk::attention_workspace_floats(T, heads, d));
  for (int64_t seqlen : {T, int64_t{128}, int64_t{512}}) {
    if (seqlen > T) continue;
    std::vector<int64_t> cu{0};
    while (cu.back() + seqlen <= T) cu.push_back(cu.back() + seqlen);
    const int64_t B = static_cast<int64_t>(cu.size()) - 1;
    for (int64_t hw : {int64_t{-1}, int64_t{64}}) {
      double pairs = 0;  // (query, key) pairs actually attended
      for (int64_t i = 0; i < seqlen; ++i) {
        int64_t lo = hw < 0 ? 0 : std::max<int64_t>(0, i - hw), hi = hw < 0 ? seqlen : std::min(seqlen, i + hw + 1);
        pairs += static_cast<double>(hi - lo);
      }
      pairs *= static_cast<double>(B);
      const double fl = 4.0 * d * heads * pairs;  // QK^T and PV
      const int r = fl > 5e10 ? 1 : reps;
      double t = best_of(r, [&] {
        mk::attention(qkv.data(), out.data(), cu.data(), B, heads, d, hw, ws.data());
      });
      std::printf("attention %2lld x %5lld %-7s: %8.1f ms %6.1f GFLOP/s (useful flops)\n", static_cast<long long>(B),
                  static_cast<long long>(seqlen), hw < 0 ? "global" : "w=128", t * 1e3, fl / t * 1e-9);
    }
  }
  // attention_bf16 (#15) against fp32 attention, both with RoPE on the fly, alternating in one run:
  // medians of max(reps, 5) calls each, on T/128 x 128 (workload a at T = 8192) and T/1024 x 1024 (d).
  {
    const auto rope = mk::make_rope_table(160000.0, d, 8192);
    std::printf("attention_bf16 path: %s\n", mk::cpu::attention_bf16_path());
    for (int64_t seqlen : {int64_t{128}, int64_t{1024}}) {
      std::vector<int64_t> cu{0};
      while (cu.back() + seqlen <= T) cu.push_back(cu.back() + seqlen);
      const int64_t B = static_cast<int64_t>(cu.size()) - 1;
      if (B == 0) continue;
      for (int64_t hw : {int64_t{-1}, int64_t{64}}) {
        std::vector<double> t32, t16;
        for (int r = 0; r < std::max(reps, 5); ++r) {
          t32.push_back(
              best_of(1, [&] { mk::attention(qkv.data(), out.data(), cu.data(), B, heads, d, hw, ws.data(), &rope); }));
          t16.push_back(best_of(1, [&] {
            mk::cpu::attention_bf16(qkv.data(), out.data(), cu.data(), B, heads, d, hw, ws.data(), &rope);
          }));
        }
        std::sort(t32.begin(), t32.end());
        std::sort(t16.begin(), t16.end());
        const double m32 = t32[t32.size() / 2], m16 = t16[t16.size() / 2];
        std::printf("attention %2lld x %5lld %-7s: fp32 %8.2f ms, bf16 %8.2f ms, x%.2f\n", static_cast<long long>(B),
                    static_cast<long long>(seqlen), hw < 0 ? "global" : "w=128", m32 * 1e3, m16 * 1e3, m32 / m16);
      }
    }
  }
  // Whole encoder: 3 base-shaped layers (global, local, local), tokens as 128-token sequences
  // and as one sequence; both gemm threading modes (OpenBLAS' spinning threads vs our pool
  // interact with the attention that follows, which the per-kernel numbers above cannot show).
  {
    nlohmann::json j = {{"num_hidden_layers", 3}, {"vocab_size", 1000}, {"pad_token_id", 0}, {"bos_token_id", 1},
                        {"eos_token_id", 2}, {"cls_token_id", 1}, {"sep_token_id", 2}};
    auto cfg = modernbert::ModelConfig::from_json(j, "bench");
    modernbert::Weights w(cfg, modernbert::HeadSet{});
    std::mt19937 g(7);
    std::uniform_real_distribution<float> u(-0.03f, 0.03f);
    for (size_t i = 0; i < w.num_params(); ++i) w.data()[i] = u(g);
    for (const auto& s : w.specs())
      if (s.name.find("norm") != std::string::npos) std::fill_n(w.mutable_param(s.name), s.numel(), 1.0f);
    modernbert::Encoder enc(w);
    for (int64_t seqlen : {int64_t{128}, T}) {
      modernbert::Batch b;
      std::vector<int32_t> ids(static_cast<size_t>(seqlen));
      for (auto& x : ids) x = static_cast<int32_t>(g() % 1000);
      for (int64_t t = 0; t + seqlen <= T; t += seqlen) b.add(ids);
      std::vector<float> hidden;
      for (auto mode : {mk::GemmThreading::kPool, mk::GemmThreading::kNative}) {
        mk::set_gemm_threading(mode);
        double t = best_of(reps, [&] { enc.forward(b, hidden); });
        std::printf("encoder 3 layers, %lld x %lld tokens, gemm %-6s: %8.1f ms (%.1f ms/layer)\n",
                    static_cast<long long>(b.num_seqs()), static_cast<long long>(seqlen),
                    mode == mk::GemmThreading::kPool ? "pool" : "native", t * 1e3, t * 1e3 / 3);
      }
    }
    mk::set_gemm_threading(mk::GemmThreading::kPool);
  }
  return 0;
}
