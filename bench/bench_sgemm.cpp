// The sgemm rate our achieved GFLOP/s is compared with: a BLAS library's sgemm alone, at the four
// linear-layer shapes of ModernBERT-base with M = tokens of a batch, row-major X[M,K] · W[N,K]^T
// (the layout of kernels::gemm), each library threading itself on --threads threads: OpenBLAS
// cblas_sgemm, and oneDNN dnnl_sgemm (its OpenMP team) when the build has oneDNN.
//
// usage: bench_sgemm [--threads 2] [--m 8192] [--reps 3] [--hidden 768] [--intermediate 1152]
// Prints one JSON line: per library and shape GFLOP/s (median of reps), per library the total
// FLOPs of the four shapes over their total median time (the mix a layer runs), and "gflops": the
// better library's total (the figure run_cpu_bench.sh divides by).
#include <cblas.h>
#ifdef MODERNBERT_HAVE_ONEDNN
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#endif

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 3;
  long long M = 8192, H = 768, I = 1152;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("usage: bench_sgemm [--threads N] [--m M] [--reps R] [--hidden H] [--intermediate I]\n");
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_sgemm: %s needs a value\n", a.c_str());
      return 2;
    }
    const long long v = std::atoll(argv[++i]);
    if (v <= 0) {
      std::fprintf(stderr, "bench_sgemm: %s must be positive\n", a.c_str());
      return 2;
    }
    if (a == "--threads")
      threads = static_cast<int>(v);
    else if (a == "--m")
      M = v;
    else if (a == "--reps")
      reps = static_cast<int>(v);
    else if (a == "--hidden")
      H = v;
    else if (a == "--intermediate")
      I = v;
    else {
      std::fprintf(stderr, "bench_sgemm: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  openblas_set_num_threads(threads);
  struct Shape {
    const char* name;
    long long N, K;
  };
  const Shape shapes[] = {{"Wqkv", 3 * H, H}, {"Wo", H, H}, {"Wi", 2 * I, H}, {"Wo_mlp", H, I}};
  const long long maxK = std::max(H, I), maxN = std::max(3 * H, 2 * I);
  std::mt19937 g(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> X(static_cast<size_t>(M * maxK)), W(static_cast<size_t>(maxN * maxK)),
      Y(static_cast<size_t>(M * maxN));
  for (auto& x : X) x = u(g);
  for (auto& w : W) w = u(g) * 0.05f;
  // One library's rate over the four shapes; appends its per-shape figures to `per_shape`.
  auto measure = [&](const char* lib, auto&& sgemm, std::string& per_shape) {
    double total_flops = 0, total_time = 0;
    for (const Shape& s : shapes) {
      auto once = [&] { sgemm(s.N, s.K); };
      once();  // warm-up (page faults, library buffers, thread start)
      std::vector<double> t;
      for (int r = 0; r < reps; ++r) {
        const double t0 = now();
        once();
        t.push_back(now() - t0);
      }
      std::sort(t.begin(), t.end());
      const double med = t[t.size() / 2];
      const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(s.N) * static_cast<double>(s.K);
      total_flops += flops;
      total_time += med;
      char buf[200];
      std::snprintf(buf, sizeof buf, "%s\"%s_%s_%lldx%lldx%lld\": %.2f", per_shape.empty() ? "" : ", ", lib, s.name, M,
                    s.N, s.K, flops / med * 1e-9);
      per_shape += buf;
    }
    return total_flops / total_time * 1e-9;
  };
  std::string per_shape;
  const double openblas = measure(
      "openblas",
      [&](long long N, long long K) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(M), static_cast<int>(N),
                    static_cast<int>(K), 1.0f, X.data(), static_cast<int>(K), W.data(), static_cast<int>(K), 0.0f,
                    Y.data(), static_cast<int>(N));
      },
      per_shape);
  double onednn = 0;
#ifdef MODERNBERT_HAVE_ONEDNN
  omp_set_num_threads(threads);
  onednn = measure(
      "onednn",
      [&](long long N, long long K) {
        dnnl_sgemm('N', 'T', M, N, K, 1.0f, X.data(), K, W.data(), K, 0.0f, Y.data(), N);
      },
      per_shape);
#endif
  std::printf(
      "{\"system\": \"sgemm\", \"threads\": %d, \"m\": %lld, \"reps\": %d, \"gflops\": %.2f, "
      "\"openblas_gflops\": %.2f, \"onednn_gflops\": %.2f, \"shapes\": {%s}}\n",
      threads, M, reps, std::max(openblas, onednn), openblas, onednn, per_shape.c_str());
  return 0;
}
