// Where a training step's time goes: times every op of one MLM training step of a base-shaped
// model (forward, backward, optimizer) on its own, at the step's shapes, and adds them up the way
// the step runs them (22 layers: 8 global, 14 local; the sparse MLM head on 30% of the tokens).
// GEMM rows report GFLOP/s, so a slow shape or tiling shows against the plain-sgemm rate printed
// first. Random data; numbers only (correctness is the tests' job).
//
// usage: bench_train_ops [--tokens 2048] [--threads N] [--repeat 5] [--model DIR (adds the optimizer)]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "modernbert/error.h"
#include "modernbert/model_dir.h"
#include "modernbert/optimizer.h"

namespace k = modernbert::kernels;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::vector<float> randv(size_t n, std::mt19937& g, float scale = 0.1f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

struct Row {
  std::string name;
  double seconds;   // fastest call
  double flops;     // 0 when not a GEMM-like op
  double per_step;  // calls per training step
};
std::vector<Row> g_rows;
int g_repeat = 5;

void time_op(const std::string& name, double flops, double per_step, const std::function<void()>& f) {
  f();  // warm caches, page in
  std::vector<double> ts;
  for (int i = 0; i < g_repeat; ++i) {
    const double t0 = now();
    f();
    ts.push_back(now() - t0);
  }
  std::sort(ts.begin(), ts.end());
  g_rows.push_back({name, ts.front(), flops, per_step});  // min: the machine is shared, noise only adds
}
}  // namespace

int main(int argc, char** argv) try {
  long long T = 2048, threads = 0;
  std::string model;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--tokens")
      T = std::atoll(v.c_str());
    else if (a == "--threads")
      threads = std::atoll(v.c_str());
    else if (a == "--repeat")
      g_repeat = std::atoi(v.c_str());
    else if (a == "--model")
      model = v;
    else
      throw modernbert::Error("unknown argument " + a);
  }
  if (threads > 0) k::set_num_threads(static_cast<int>(threads));
  const int64_t H = 768, I = 1152, nh = 12, d = 64, V = 50368, L = 22, n_global = 8, seq = 512;
  const int64_t R = T * 3 / 10, B = T / seq;
  std::mt19937 g(0);
  auto X = randv(static_cast<size_t>(T * H), g), W3 = randv(static_cast<size_t>(3 * H * H), g, 0.02f);
  auto Wi = randv(static_cast<size_t>(2 * I * H), g, 0.02f), Wo = randv(static_cast<size_t>(H * I), g, 0.02f);
  auto Wh = randv(static_cast<size_t>(H * H), g, 0.02f), E = randv(static_cast<size_t>(V * H), g, 0.02f);
  std::vector<float> qkv(static_cast<size_t>(T * 3 * H)), dqkv(qkv.size()), o(static_cast<size_t>(T * H)), dO(o.size()),
      lse(static_cast<size_t>(T * nh)), u(static_cast<size_t>(T * 2 * I)), du(u.size()), gl(static_cast<size_t>(T * I)),
      dW3(W3.size()), dWi(Wi.size()), dWo(Wo.size()), dWh(Wh.size()), dE(E.size()), y(o.size()), dx(o.size()),
      mean(static_cast<size_t>(T)), rstd(mean.size()), lng(H, 1.0f), dlng(H), logits(static_cast<size_t>(R * V)),
      dz(static_cast<size_t>(R * H));
  {
    auto q = randv(qkv.size(), g, 1.0f);
    qkv = q;
    auto uu = randv(u.size(), g, 1.0f);
    u = uu;
  }
  std::vector<int64_t> cu;
  for (int64_t b = 0; b <= B; ++b) cu.push_back(b * seq);
  std::vector<int32_t> ids(static_cast<size_t>(T)), labels(static_cast<size_t>(R));
  for (auto& x : ids) x = static_cast<int32_t>(g() % 50000);
  for (auto& x : labels) x = static_cast<int32_t>(g() % 50000);
  const auto table = k::make_rope_table(160000.0, d, seq);
  const double Ld = static_cast<double>(L), G = static_cast<double>(n_global), Lo = Ld - G;
  auto gf = [](double m, double n, double kk) { return 2.0 * m * n * kk; };

  // Forward GEMMs (the inference kernel, row-split over the pool).
  time_op("fwd gemm qkv", gf(T, 3 * H, H), Ld, [&] { k::gemm(X.data(), W3.data(), nullptr, qkv.data(), T, 3 * H, H); });
  {
    auto q = randv(qkv.size(), g, 1.0f);  // the gemm overwrote qkv with small values; keep scores O(1)
    qkv = q;
  }
  time_op("fwd gemm wo", gf(T, H, H), Ld, [&] { k::gemm(o.data(), Wh.data(), nullptr, y.data(), T, H, H); });
  time_op("fwd gemm wi", gf(T, 2 * I, H), Ld, [&] { k::gemm(X.data(), Wi.data(), nullptr, du.data(), T, 2 * I, H); });
  time_op("fwd gemm wo_mlp", gf(T, H, I), Ld, [&] { k::gemm(gl.data(), Wo.data(), nullptr, y.data(), T, H, I); });
  // Attention, global (full 512) and local (window 128).
  const double att_g = 4.0 * T * seq * H, att_l = 4.0 * T * 129 * H;
  time_op("fwd attention global", att_g, G,
          [&] { k::attention_forward(qkv.data(), o.data(), lse.data(), cu.data(), B, nh, d, -1); });
  time_op("fwd attention local", att_l, Lo,
          [&] { k::attention_forward(qkv.data(), o.data(), lse.data(), cu.data(), B, nh, d, 64); });
  time_op("(inference attn global)", att_g, 0,
          [&] { k::attention(qkv.data(), o.data(), cu.data(), B, nh, d, -1, nullptr, nullptr); });
  time_op("(inference attn local)", att_l, 0,
          [&] { k::attention(qkv.data(), o.data(), cu.data(), B, nh, d, 64, nullptr, nullptr); });
  time_op("fwd rope", 0, Ld, [&] { k::rope_qkv(dqkv.data(), cu.data(), B, nh, table); });
  time_op("fwd layernorm", 0, 2 * Ld - 1,
          [&] { k::layernorm(X.data(), lng.data(), nullptr, y.data(), T, H, 1e-5f, mean.data(), rstd.data()); });
  time_op("fwd glu", 0, Ld, [&] { k::glu(k::Act::kGelu, u.data(), gl.data(), T, I); });
  // Backward.
  time_op("bwd glu recompute", 0, Ld, [&] { k::glu(k::Act::kGelu, u.data(), gl.data(), T, I); });
  time_op("bwd glu", 0, Ld, [&] { k::glu_backward(k::Act::kGelu, u.data(), gl.data(), du.data(), T, I); });
  time_op("bwd dX wo_mlp", gf(T, I, H), Ld, [&] { k::matmul_nn(y.data(), Wo.data(), gl.data(), T, I, H, false); });
  time_op("bwd dW wo_mlp", gf(T, I, H), Ld, [&] { k::matmul_tn_acc(y.data(), gl.data(), dWo.data(), T, H, I); });
  time_op("bwd dX wi", gf(T, 2 * I, H), Ld, [&] { k::matmul_nn(du.data(), Wi.data(), dx.data(), T, H, 2 * I, false); });
  time_op("bwd dW wi", gf(T, 2 * I, H), Ld, [&] { k::matmul_tn_acc(du.data(), X.data(), dWi.data(), T, 2 * I, H); });
  time_op("bwd dX wo", gf(T, H, H), Ld, [&] { k::matmul_nn(y.data(), Wh.data(), dx.data(), T, H, H, false); });
  time_op("bwd dW wo", gf(T, H, H), Ld, [&] { k::matmul_tn_acc(y.data(), o.data(), dWh.data(), T, H, H); });
  time_op("bwd dX qkv", gf(T, 3 * H, H), Ld,
          [&] { k::matmul_nn(qkv.data(), W3.data(), dx.data(), T, H, 3 * H, false); });
  time_op("bwd dW qkv", gf(T, 3 * H, H), Ld, [&] { k::matmul_tn_acc(qkv.data(), X.data(), dW3.data(), T, 3 * H, H); });
  time_op("bwd attention global", 2 * att_g, G, [&] {
    k::attention_backward(qkv.data(), o.data(), dO.data(), lse.data(), dqkv.data(), cu.data(), B, nh, d, -1);
  });
  time_op("bwd attention local", 2 * att_l, Lo, [&] {
    k::attention_backward(qkv.data(), o.data(), dO.data(), lse.data(), dqkv.data(), cu.data(), B, nh, d, 64);
  });
  time_op("bwd rope", 0, Ld, [&] { k::rope_backward(dqkv.data(), cu.data(), B, nh, table); });
  time_op("bwd layernorm", 0, 2 * Ld - 1, [&] {
    k::layernorm_backward(y.data(), X.data(), lng.data(), mean.data(), rstd.data(), dx.data(), true, dlng.data(),
                          nullptr, T, H);
  });
  // Head: dense + LN on R rows, tied decoder [V,H], loss.
  time_op("head fwd decoder", gf(R, V, H), 1, [&] { k::gemm(dz.data(), E.data(), nullptr, logits.data(), R, V, H); });
  time_op("head cross-entropy", 0, 1,
          [&] { k::cross_entropy(logits.data(), labels.data(), logits.data(), R, V, 1.0f / R, nullptr, nullptr); });
  time_op("head bwd dX decoder", gf(R, V, H), 1,
          [&] { k::matmul_nn(logits.data(), E.data(), dz.data(), R, H, V, false); });
  time_op("head bwd dW decoder", gf(R, V, H), 1,
          [&] { k::matmul_tn_acc(logits.data(), dz.data(), dE.data(), R, V, H); });
  time_op("head dense fwd+bwd", 3 * gf(R, H, H), 1, [&] {
    k::gemm(dz.data(), Wh.data(), nullptr, y.data(), R, H, H);
    k::linear_backward(dz.data(), Wh.data(), y.data(), dx.data(), false, dWh.data(), nullptr, R, H, H);
  });
  time_op("embedding bwd", 0, 1, [&] { k::embedding_backward(ids.data(), dx.data(), dE.data(), T, H); });
  if (!model.empty()) {
    modernbert::LoadOptions lo;
    lo.zero_copy = false;
    modernbert::LoadedModel m = modernbert::load_model_dir(model, lo);
    modernbert::OptimizerConfig oc;
    oc.lr = 1e-5;
    modernbert::Optimizer opt(m.weights.specs(), oc);
    std::vector<float> grads(m.weights.num_params(), 1e-3f);
    time_op("optimizer (stableadamw)", 0, 1, [&] { opt.step(m.weights.data(), grads.data(), 1e-5); });
  }

  // Plain sgemm rate for reference: one big call on one thread per pool slice.
  double total = 0, gemm_total = 0, gemm_flops = 0;
  std::printf("%-26s %10s %8s %8s %10s\n", "op", "ms/call", "GFLOP/s", "calls", "ms/step");
  for (const auto& r : g_rows) {
    const double step = r.seconds * r.per_step;
    total += step;
    if (r.flops > 0) {
      gemm_total += step;
      gemm_flops += r.flops * r.per_step;
    }
    std::printf("%-26s %10.2f %8.1f %8.0f %10.1f\n", r.name.c_str(), r.seconds * 1e3,
                r.flops > 0 ? r.flops / r.seconds * 1e-9 : 0.0, r.per_step, step * 1e3);
  }
  std::printf("\nsum of ops: %.2f s/step; GEMM-like ops %.2f s at %.1f GFLOP/s (%.2f TFLOP)\n", total, gemm_total,
              gemm_flops / gemm_total * 1e-9, gemm_flops * 1e-12);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_train_ops: %s\n", e.what());
  return 1;
}
