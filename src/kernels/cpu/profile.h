// Optional per-scope timing (internal). Off unless MODERNBERT_PROFILE is set in the environment
// (read once); then every Scope adds its wall time and the process CPU time (all threads) to the
// total of its name. The caller names the scope with a static string (prof::Scope s("gemm Wqkv")):
// the kernels layer knows nothing of the model's ops. bench/profile_forward prints the table.
// Costs two clock reads per scope when on, one relaxed load when off.
#pragma once

#include <time.h>

#include <cstdint>
#include <vector>

namespace modernbert::kernels::prof {

struct Entry {
  const char* name;  // the static string the scopes passed
  double wall = 0, cpu = 0;
  int64_t calls = 0;
};
// Totals per name, in the order the names were first seen.
std::vector<Entry> totals();
void reset();
bool enabled();
// Adds one timing to name's total (thread-safe).
void add(const char* name, double wall, double cpu);

inline double clock_s(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

class Scope {
 public:
  // `name` must outlive the process's profile (a string literal).
  explicit Scope(const char* name) : name_(name), on_(enabled()) {
    if (on_) {
      w0_ = clock_s(CLOCK_MONOTONIC);
      c0_ = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    }
  }
  ~Scope() {
    if (on_) add(name_, clock_s(CLOCK_MONOTONIC) - w0_, clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  const char* name_;
  bool on_;
  double w0_ = 0, c0_ = 0;
};

}  // namespace modernbert::kernels::prof
