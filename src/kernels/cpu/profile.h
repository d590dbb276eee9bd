// Optional per-op timing of the encoder forward (internal). Off unless MODERNBERT_PROFILE is set
// in the environment (read once); then every op scope adds its wall time and the process CPU time
// (all threads) to a per-op total. bench/profile_forward prints the table. Costs two clock reads
// per op when on, one relaxed load when off.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>
#include <cstdio>

namespace modernbert::kernels::prof {

enum Op : int {
  kEmbed, kGemmQkv, kRope, kAttnGlobal, kAttnLocal, kGemmO, kAddLn, kGemmI, kGlu, kGemmMlpO,
  kHead, kCount
};
inline const char* op_name(int op) {
  static const char* const names[] = {"embed+LN", "gemm Wqkv", "rope", "attention global", "attention local",
                                      "gemm Wo", "add+LN", "gemm Wi", "GeGLU", "gemm Wo_mlp", "heads"};
  return names[op];
}

struct Totals {
  double wall[kCount] = {}, cpu[kCount] = {};
  int64_t calls[kCount] = {};
};
Totals& totals();
bool enabled();

inline double clock_s(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

class Scope {
 public:
  explicit Scope(Op op) : op_(op), on_(enabled()) {
    if (on_) {
      w0_ = clock_s(CLOCK_MONOTONIC);
      c0_ = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    }
  }
  ~Scope() {
    if (!on_) return;
    Totals& t = totals();
    t.wall[op_] += clock_s(CLOCK_MONOTONIC) - w0_;
    t.cpu[op_] += clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0_;
    t.calls[op_] += 1;
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  Op op_;
  bool on_;
  double w0_ = 0, c0_ = 0;
};

}  // namespace modernbert::kernels::prof
