// The single-process world and the helpers shared by every communicator (communicator.h).
#include "modernbert/communicator.h"

#include <cstdio>
#include <cstdlib>

#include "modernbert/error.h"

namespace modernbert {

void Communicator::allreduce_sum(float* data, size_t n) {
  if (size() == 1) return;
  const std::vector<size_t> b = even_bounds(n, size());
  reduce_scatter_sum(data, b);
  allgather(data, b);
}

std::vector<size_t> even_bounds(size_t n, int parts) {
  if (parts < 1) throw Error("even_bounds: " + std::to_string(parts) + " parts (need at least 1)");
  std::vector<size_t> b(static_cast<size_t>(parts) + 1, 0);
  const size_t p = static_cast<size_t>(parts), q = n / p, r = n % p;
  for (size_t i = 0; i < p; ++i) b[i + 1] = b[i] + q + (i < r ? 1 : 0);
  return b;
}

Share rank_share(int64_t count, int rank, int size) {
  if (count < 0 || size < 1 || rank < 0 || rank >= size)
    throw Error("rank_share: rank " + std::to_string(rank) + " of " + std::to_string(size) + ", " +
                std::to_string(count) + " items");
  const std::vector<size_t> b = even_bounds(static_cast<size_t>(count), size);
  return {static_cast<int64_t>(b[static_cast<size_t>(rank)]), static_cast<int64_t>(b[static_cast<size_t>(rank) + 1])};
}

namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string description() const override { return "single process"; }
  void reduce_scatter_sum(float*, const std::vector<size_t>&) override {}
  void allgather(float*, const std::vector<size_t>&) override {}
  void allreduce_sum(double*, size_t) override {}
  void allreduce_sum(int64_t*, size_t) override {}
  std::vector<std::string> allgather_bytes(const std::string& mine) override { return {mine}; }
  void broadcast(void*, size_t, int) override {}
  std::vector<std::string> gather_bytes(const std::string& mine, int) override { return {mine}; }
  void barrier() override {}
  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    std::_Exit(code == 0 ? 1 : code);
  }
  void set_timeout_seconds(double) override {}
  double timeout_seconds() const override { return 0; }
};

}  // namespace

Communicator& single_process() {
  static SingleProcess world;
  return world;
}

}  // namespace modernbert
