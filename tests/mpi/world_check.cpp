// The MPI world's contracts (communicator.h), checked under a real `mpirun -np N` (run.sh; CTest
// mpi.*). Every expected value is computed here, on each rank, from every rank's inputs, which are
// a pure function of (rank, index): never from another rank's output.
//
//   world_check contracts        all collectives, their sizes and edge cases (exit 0 when all hold)
//   world_check timeout SECONDS  rank 1 sleeps 30 s before a barrier; the others must abort after
//                                SECONDS ("did not complete within")
//   world_check abort            rank 1 calls abort(); every rank must end non-zero
//   world_check die              rank 1 dies by SIGKILL before a barrier; every rank must end
//
// Checks print "rank R: FAIL ..." and are counted; the counts are summed across ranks at the end,
// so every rank exits 1 when any rank saw a failure (and the collective sequence never depends on
// a check's outcome, so a failure cannot make the ranks fall out of step).
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "modernbert/communicator.h"
#include "modernbert/distributed.h"
#include "modernbert/error.h"

using modernbert::Communicator;

namespace {

int g_rank = 0;
int64_t g_failures = 0;

void fail(const std::string& what) {
  ++g_failures;
  std::fprintf(stderr, "rank %d: FAIL %s\n", g_rank, what.c_str());
}
#define CHECK(cond, what)    \
  do {                       \
    if (!(cond)) fail(what); \
  } while (0)

uint64_t mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Rank r's value of element i in test `salt`: random sign, 23-bit mantissa and exponent in
// 2^-8 .. 2^27 (the bits built directly: the big tests make 9M of them per rank), so that most sums
// of three depend on their association (checked below).
float value(int r, size_t i, uint64_t salt) {
  const uint64_t h = mix(salt * 1000003ULL + static_cast<uint64_t>(r) * 0x100000001b3ULL + i);
  const uint32_t bits = static_cast<uint32_t>((h >> 40) & 1) << 31 |
                        static_cast<uint32_t>(127 - 8 + static_cast<int>((h >> 23) % 36)) << 23 |
                        static_cast<uint32_t>(h & 0x7fffff);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
double dvalue(int r, size_t i) {
  const uint64_t h = mix(0xd0b1e + static_cast<uint64_t>(r) * 7919 + i);
  const double m = 1.0 + static_cast<double>(h & ((1ULL << 52) - 1)) / 4503599627370496.0;
  return ((h >> 60) & 1 ? -1.0 : 1.0) * std::ldexp(m, static_cast<int>((h >> 52) % 120) - 20);
}

// The contract's sum of element i over ranks 0..N-1: ((x_0 + x_1) + x_2) + ..., in float.
float rank_order_sum(size_t i, int N, uint64_t salt) {
  float s = value(0, i, salt);
  for (int q = 1; q < N; ++q) s += value(q, i, salt);
  return s;
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::string at(const char* what, size_t i, float got, float want) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s [%zu]: got %.9g, want %.9g (rank-order float sum)", what, i, got, want);
  return buf;
}

// reduce_scatter_sum then allgather over `bounds` (uneven, possibly empty ranges), each checked.
void check_reduce_scatter_allgather(Communicator& w, const std::vector<size_t>& b, uint64_t salt, const char* name) {
  const int N = w.size(), me = w.rank();
  const size_t n = b.back();
  std::vector<float> x(n), want(n);
  for (size_t i = 0; i < n; ++i) x[i] = value(me, i, salt), want[i] = rank_order_sum(i, N, salt);
  w.reduce_scatter_sum(x.data(), b);
  size_t bad = 0;
  for (size_t i = b[static_cast<size_t>(me)]; i < b[static_cast<size_t>(me) + 1]; ++i)
    if (!same_bits(x[i], want[i]) && bad++ == 0)
      fail(std::string(name) + ": " + at("reduce_scatter_sum", i, x[i], want[i]));
  CHECK(bad == 0, std::string(name) + ": reduce_scatter_sum: " + std::to_string(bad) + " elements differ");
  // allgather: fill other ranges with NaN so that a range that is not received shows.
  for (size_t i = 0; i < n; ++i)
    if (i < b[static_cast<size_t>(me)] || i >= b[static_cast<size_t>(me) + 1]) x[i] = std::nanf("");
  w.allgather(x.data(), b);
  bad = 0;
  for (size_t i = 0; i < n; ++i)
    if (!same_bits(x[i], want[i]) && bad++ == 0) fail(std::string(name) + ": " + at("allgather", i, x[i], want[i]));
  CHECK(bad == 0, std::string(name) + ": allgather: " + std::to_string(bad) + " elements differ");
}

void check_allreduce(Communicator& w, size_t n, uint64_t salt) {
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = value(w.rank(), i, salt);
  w.allreduce_sum(x.data(), n);
  size_t bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const float want = rank_order_sum(i, w.size(), salt);
    if (!same_bits(x[i], want) && bad++ == 0)
      fail("n=" + std::to_string(n) + ": " + at("allreduce_sum", i, x[i], want));
  }
  CHECK(bad == 0, "allreduce_sum(float) n=" + std::to_string(n) + ": " + std::to_string(bad) + " elements differ");
}

std::string bytes_of(int r, uint64_t salt) {
  // Rank 1 sends nothing; the others different sizes, with zero bytes inside.
  if (r == 1) return "";
  std::string s(static_cast<size_t>(1000 * r + 3 + (salt % 7) * 100000), '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>(mix(salt + static_cast<uint64_t>(r) * 131 + i) % 7);
  return s;
}

int contracts(Communicator& w) {
  const int N = w.size(), me = w.rank();
  // The world is what the launcher announced.
  const char* env_size = std::getenv("OMPI_COMM_WORLD_SIZE");
  const char* env_rank = std::getenv("OMPI_COMM_WORLD_RANK");
  CHECK(env_size && std::atoi(env_size) == N, "size() " + std::to_string(N) + " != OMPI_COMM_WORLD_SIZE");
  CHECK(env_rank && std::atoi(env_rank) == me, "rank() " + std::to_string(me) + " != OMPI_COMM_WORLD_RANK");
  CHECK(w.description().find("rank " + std::to_string(me) + " of " + std::to_string(N)) != std::string::npos,
        "description() '" + w.description() + "'");
  CHECK(modernbert::mpi_built_in(), "mpi_built_in() false in an MPI build");
  CHECK(modernbert::launched_by_mpi() && modernbert::launcher_world_size() == N, "launcher detection");
  CHECK(&modernbert::open_world() == &w, "open_world() twice gives another world");
  w.set_timeout_seconds(120);
  CHECK(w.timeout_seconds() == 120, "timeout_seconds()");

  // The inputs are association-sensitive: for 3+ ranks, most elements' rank-order sum differs from
  // another order's, so a reduction in the wrong order cannot pass by accident.
  if (N >= 3) {
    size_t sensitive = 0;
    for (size_t i = 0; i < 1000; ++i) {
      const float a = value(0, i, 1), b = value(1, i, 1), c = value(2, i, 1);
      sensitive += !same_bits((a + b) + c, a + (b + c)) || !same_bits((a + b) + c, (c + b) + a);
    }
    CHECK(sensitive > 100, "the test inputs are not association-sensitive (" + std::to_string(sensitive) + "/1000)");
    // The classic case: 1e8 + 1 - 1e8 is 0 in rank order (1e8 + 1 rounds to 1e8), 1 in another.
    float v = me == 0 ? 1e8f : me == 1 ? 1.0f : me == 2 ? -1e8f : 0.0f;
    w.allreduce_sum(&v, 1);
    CHECK(same_bits(v, 0.0f), "allreduce_sum of {1e8, 1, -1e8} = " + std::to_string(v) + ", want 0 (rank order)");
  }

  // Ranges: one above the bucket (4M floats) so that buckets are exercised, an empty one, small
  // ones; the large one first owned by rank 0, then by the last rank.
  const size_t big = (size_t{9} << 20) + 5;  // 9M + 5 floats: three buckets
  {
    std::vector<size_t> b{0};
    for (int r = 0; r < N; ++r) b.push_back(b.back() + (r == 0 ? big : r == 1 ? 0 : 1000 + static_cast<size_t>(r)));
    check_reduce_scatter_allgather(w, b, 11, "big range on rank 0, empty on rank 1");
  }
  {
    std::vector<size_t> b{0};
    for (int r = 0; r < N; ++r) b.push_back(b.back() + (r == N - 1 ? big : r == 0 ? 0 : 3));
    check_reduce_scatter_allgather(w, b, 12, "empty on rank 0, big range on the last rank");
  }
  {  // every range empty
    std::vector<size_t> b(static_cast<size_t>(N) + 1, 0);
    check_reduce_scatter_allgather(w, b, 13, "all empty");
  }
  // allreduce_sum over even_bounds: above the bucket per rank (for 2 ranks), fewer elements than
  // ranks (empty ranges), one, none.
  check_allreduce(w, (size_t{9} << 20) + 7, 21);
  check_allreduce(w, static_cast<size_t>(N - 1), 22);
  check_allreduce(w, 1, 23);
  check_allreduce(w, 0, 24);

  // Bad bounds: an Error on every rank, before any message.
  try {
    std::vector<size_t> b(static_cast<size_t>(N), 0);  // one short
    std::vector<float> x(1);
    w.reduce_scatter_sum(x.data(), b);
    fail("reduce_scatter_sum accepted size() bounds");
  } catch (const modernbert::Error&) {
  }

  // Double and int64 sums, rank order.
  {
    const size_t n = 257;
    std::vector<double> d(n);
    std::vector<int64_t> k(n);
    for (size_t i = 0; i < n; ++i) {
      d[i] = dvalue(me, i);
      k[i] = (int64_t{me} + 1) * 1000000007LL * static_cast<int64_t>(i + 1) - (int64_t{1} << 40) * me;
    }
    w.allreduce_sum(d.data(), n);
    w.allreduce_sum(k.data(), n);
    size_t bad_d = 0, bad_k = 0;
    for (size_t i = 0; i < n; ++i) {
      double s = dvalue(0, i);
      int64_t t = 0;
      for (int q = 1; q < N; ++q) s += dvalue(q, i);
      for (int q = 0; q < N; ++q)
        t += (int64_t{q} + 1) * 1000000007LL * static_cast<int64_t>(i + 1) - (int64_t{1} << 40) * q;
      bad_d += std::memcmp(&d[i], &s, sizeof s) != 0;
      bad_k += k[i] != t;
    }
    CHECK(bad_d == 0, "allreduce_sum(double): " + std::to_string(bad_d) + " elements differ from the rank-order sum");
    CHECK(bad_k == 0, "allreduce_sum(int64): " + std::to_string(bad_k) + " elements differ");
    double one = 1.5;
    w.allreduce_sum(&one, 0);  // n = 0: nothing happens
    CHECK(one == 1.5, "allreduce_sum(double, 0) changed its data");
  }

  // Bytes: different sizes per rank, rank 1 empty, zero bytes inside; twice with other sizes.
  for (uint64_t salt : {0, 3}) {
    const auto all = w.allgather_bytes(bytes_of(me, salt));
    CHECK(all.size() == static_cast<size_t>(N), "allgather_bytes: " + std::to_string(all.size()) + " parts");
    for (int r = 0; r < N && r < static_cast<int>(all.size()); ++r)
      CHECK(all[static_cast<size_t>(r)] == bytes_of(r, salt), "allgather_bytes: part of rank " + std::to_string(r));
    for (int root : {0, N - 1}) {
      const auto got = w.gather_bytes(bytes_of(me, salt + 1), root);
      if (me != root) {
        CHECK(got.empty(), "gather_bytes: a non-root rank got data");
        continue;
      }
      CHECK(got.size() == static_cast<size_t>(N), "gather_bytes: " + std::to_string(got.size()) + " parts");
      for (int r = 0; r < N && r < static_cast<int>(got.size()); ++r)
        CHECK(got[static_cast<size_t>(r)] == bytes_of(r, salt + 1),
              "gather_bytes to " + std::to_string(root) + ": part of rank " + std::to_string(r));
    }
  }
  {  // everybody empty
    const auto all = w.allgather_bytes("");
    CHECK(all.size() == static_cast<size_t>(N) && all[0].empty() && all.back().empty(), "allgather_bytes of nothing");
  }

  // Broadcast from the last rank: 1 MiB + 3, then 0 bytes (every rank takes part, nothing moves).
  {
    const int root = N - 1;
    std::vector<unsigned char> buf((size_t{1} << 20) + 3);
    for (size_t i = 0; i < buf.size(); ++i)
      buf[i] = me == root ? static_cast<unsigned char>(mix(i) & 0xff) : static_cast<unsigned char>(0xee);
    w.broadcast(buf.data(), buf.size(), root);
    size_t bad = 0;
    for (size_t i = 0; i < buf.size(); ++i) bad += buf[i] != static_cast<unsigned char>(mix(i) & 0xff);
    CHECK(bad == 0, "broadcast: " + std::to_string(bad) + " bytes differ from the root's");
    w.broadcast(nullptr, 0, root);
  }

  // Barrier: rank 0 arrives 500 ms late; nobody may leave before it arrived. Measured on each
  // rank from a common start (a barrier, which ranks may leave a little apart: allow 250 ms).
  w.barrier();
  const auto t0 = std::chrono::steady_clock::now();
  if (me == 0) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  w.barrier();
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(waited >= 0.25, "barrier returned after " + std::to_string(waited) + " s, before rank 0 arrived (0.5 s)");

  // even_bounds / rank_share: contiguous, disjoint, cover everything, near-equal.
  for (size_t count : {size_t{0}, size_t{1}, size_t{7}, size_t{1000003}}) {
    const auto b = modernbert::even_bounds(count, N);
    CHECK(b.size() == static_cast<size_t>(N) + 1 && b[0] == 0 && b.back() == count, "even_bounds ends");
    for (int r = 0; r < N; ++r) {
      const size_t len = b[static_cast<size_t>(r) + 1] - b[static_cast<size_t>(r)];
      CHECK(len == count / static_cast<size_t>(N) + (static_cast<size_t>(r) < count % static_cast<size_t>(N)),
            "even_bounds: range " + std::to_string(r) + " of " + std::to_string(count));
      const auto s = modernbert::rank_share(static_cast<int64_t>(count), r, N);
      CHECK(static_cast<size_t>(s.first) == b[static_cast<size_t>(r)] &&
                static_cast<size_t>(s.last) == b[static_cast<size_t>(r) + 1],
            "rank_share != even_bounds");
    }
  }

  // Every rank learns every rank's failure count (so all exit alike).
  int64_t total = g_failures;
  w.allreduce_sum(&total, 1);
  if (me == 0 && total == 0) std::printf("world_check: ok (%d ranks)\n", N);
  return total == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  try {
    Communicator& w = modernbert::open_world();
    g_rank = w.rank();
    if (mode == "contracts") return contracts(w);
    if (mode == "timeout" && argc > 2) {
      w.set_timeout_seconds(std::atof(argv[2]));
      if (w.rank() == 1) std::this_thread::sleep_for(std::chrono::seconds(30));
      w.barrier();
      std::printf("rank %d: the barrier completed\n", w.rank());
      return 0;
    }
    if (mode == "abort") {
      if (w.rank() == 1) w.abort("rank one gives up", 3);
      w.barrier();
      return 0;
    }
    if (mode == "die") {
      if (w.rank() == 1) std::raise(SIGKILL);
      w.barrier();
      return 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "world_check: rank %d: error: %s\n", g_rank, e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: world_check contracts | timeout SECONDS | abort | die\n");
  return 2;
}
