// The job's world (distributed.h): MPI_COMM_WORLD behind modernbert::Communicator, or the single
// process. Compiled with MB_HAVE_MPI when the MPI option is on.
//
// Every collective is posted non-blocking and then polled (MPI_Test) against a deadline, so a peer
// that hangs cannot hang the job: after timeout_seconds the rank prints what it waited for and
// calls MPI_Abort, which ends every rank. A peer that dies is normally noticed first by the
// launcher (mpirun kills the job and names the rank and signal); the SIGTERM handler then says,
// per surviving rank, why it is ending. MPI errors return codes (MPI_ERRORS_RETURN) that become
// the same abort with MPI_Error_string's text.
//
// Sums are in rank order (communicator.h): reduce_scatter_sum sends each owner its range (in
// buckets of kBucketFloats per peer message), and the owner adds the N pieces in rank order;
// MPI's own reductions are not used for floats because their association is unspecified.
#include "modernbert/distributed.h"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <unistd.h>

#include "modernbert/error.h"

#ifdef MB_HAVE_MPI
// The C API only (the deprecated C++ bindings would need libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace modernbert {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return (end && *end == 0 && x > 0 && x < (1 << 24)) ? static_cast<int>(x) : fallback;
}

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(v)) return true;
  return false;
}

int launcher_world_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"}) {
    const int n = env_int(v, 0);
    if (n > 0) return n;
  }
  return 1;
}

#ifndef MB_HAVE_MPI

bool mpi_built_in() { return false; }

Communicator& open_world(const WorldOptions&) {
  if (launched_by_mpi() && launcher_world_size() > 1)
    throw Error("this modernbert was built without MPI (CMake option MODERNBERT_MPI=OFF, or no MPI found) but an "
                "MPI launcher started it as one of " +
                std::to_string(launcher_world_size()) +
                " ranks: rebuild with MPI (Debian: libopenmpi-dev) or run a single process");
  return single_process();
}

int world_local_size() { return 1; }

#else  // MB_HAVE_MPI

bool mpi_built_in() { return true; }

namespace {

// Floats per peer message of reduce_scatter_sum / allgather (16 MiB): large enough to reach the
// link's bandwidth, small enough that the receive buffers ((N-1) × this) stay modest.
constexpr size_t kBucketFloats = size_t{1} << 22;

// For the SIGTERM handler (async-signal-safe: preformatted, written with write()).
char g_term_message[160];

extern "C" void on_sigterm(int) {
  const ssize_t n = ::write(2, g_term_message, std::strlen(g_term_message));
  (void)n;
  std::_Exit(143);
}

class MpiWorld final : public Communicator {
 public:
  explicit MpiWorld(const WorldOptions& o) : timeout_(o.timeout_seconds) {
    int have = 0;
    MPI_Initialized(&have);
    if (!have) {
      int provided = 0;
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw Error("MPI_Init_thread failed: the MPI library could not start this rank");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    library_.assign(lib, static_cast<size_t>(len));
    if (const size_t nl = library_.find_first_of(",\n"); nl != std::string::npos) library_.resize(nl);
    std::snprintf(g_term_message, sizeof g_term_message,
                  "modernbert: rank %d of %d: ended by the launcher (SIGTERM): another rank failed or the job was "
                  "cancelled\n",
                  rank_, size_);
    std::signal(SIGTERM, on_sigterm);
  }
  ~MpiWorld() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const { return local_size_; }
  std::string description() const override {
    return "MPI (" + library_ + "), rank " + std::to_string(rank_) + " of " + std::to_string(size_);
  }

  using Communicator::allreduce_sum;

  void reduce_scatter_sum(float* data, const std::vector<size_t>& bounds) override {
    check_bounds(bounds, "reduce_scatter_sum");
    if (size_ == 1) return;
    const size_t N = static_cast<size_t>(size_), me = static_cast<size_t>(rank_);
    const size_t own_lo = bounds[me], own_n = bounds[me + 1] - own_lo;
    size_t max_range = 0;
    for (size_t r = 0; r < N; ++r) max_range = std::max(max_range, bounds[r + 1] - bounds[r]);
    const size_t bucket = std::min(kBucketFloats, std::max<size_t>(max_range, 1));
    recv_.resize((N - 1) * bucket);
    acc_.resize(bucket);
    std::vector<MPI_Request> reqs;
    for (size_t j0 = 0; j0 < max_range; j0 += bucket) {
      reqs.clear();
      const size_t my_n = j0 < own_n ? std::min(bucket, own_n - j0) : 0;
      // Pieces of my range from every peer (slot q - (q > me)).
      for (size_t q = 0; q < N; ++q) {
        if (q == me || my_n == 0) continue;
        float* slot = recv_.data() + (q - (q > me ? 1 : 0)) * bucket;
        reqs.emplace_back();
        check(MPI_Irecv(slot, static_cast<int>(my_n), MPI_FLOAT, static_cast<int>(q), 7, MPI_COMM_WORLD, &reqs.back()),
              "reduce_scatter_sum (receive)");
      }
      // My values of every peer's range.
      for (size_t r = 0; r < N; ++r) {
        const size_t lo = bounds[r], n = bounds[r + 1] - lo;
        if (r == me || j0 >= n) continue;
        reqs.emplace_back();
        check(MPI_Isend(data + lo + j0, static_cast<int>(std::min(bucket, n - j0)), MPI_FLOAT, static_cast<int>(r), 7,
                        MPI_COMM_WORLD, &reqs.back()),
              "reduce_scatter_sum (send)");
      }
      wait_all(reqs, "the gradient all-reduce (reduce-scatter)");
      if (my_n == 0) continue;
      // Rank-order sum: acc = x_0; acc += x_1; ... (x_me is my own data).
      float* own = data + own_lo + j0;
      auto piece = [&](size_t q) -> const float* {
        return q == me ? own : recv_.data() + (q - (q > me ? 1 : 0)) * bucket;
      };
      std::memcpy(acc_.data(), piece(0), my_n * sizeof(float));
      for (size_t q = 1; q < N; ++q) {
        const float* p = piece(q);
        for (size_t i = 0; i < my_n; ++i) acc_[i] += p[i];
      }
      std::memcpy(own, acc_.data(), my_n * sizeof(float));
    }
  }

  void allgather(float* data, const std::vector<size_t>& bounds) override {
    check_bounds(bounds, "allgather");
    if (size_ == 1) return;
    const size_t N = static_cast<size_t>(size_);
    size_t max_range = 0;
    for (size_t r = 0; r < N; ++r) max_range = std::max(max_range, bounds[r + 1] - bounds[r]);
    std::vector<int> counts(N), displs(N);
    for (size_t j0 = 0; j0 < max_range; j0 += kBucketFloats) {
      for (size_t r = 0; r < N; ++r) {
        const size_t n = bounds[r + 1] - bounds[r];
        counts[r] = static_cast<int>(j0 < n ? std::min(kBucketFloats, n - j0) : 0);
        // Displacements are ints: address from the bucket's first element instead of data.
        displs[r] = 0;
      }
      // One Iallgatherv per bucket over a base pointer that keeps displacements small: each
      // range's bucket j lies at bounds[r] + j0; use the smallest as the base.
      size_t base = std::numeric_limits<size_t>::max();
      for (size_t r = 0; r < N; ++r)
        if (counts[r] > 0) base = std::min(base, bounds[r] + j0);
      for (size_t r = 0; r < N; ++r) {
        const size_t off = bounds[r] + j0 - std::min(base, bounds[r] + j0);
        if (off > static_cast<size_t>(std::numeric_limits<int>::max()))
          throw Error("allgather: a parameter range of over 2^31 floats per rank is not supported");
        displs[r] = static_cast<int>(off);
      }
      MPI_Request req;
      check(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data + base, counts.data(), displs.data(), MPI_FLOAT,
                            MPI_COMM_WORLD, &req),
            "allgather");
      wait_one(req, "the parameter/gradient all-gather");
    }
  }

  void allreduce_sum(double* data, size_t n) override { small_sum(data, n, MPI_DOUBLE); }
  void allreduce_sum(int64_t* data, size_t n) override { small_sum(data, n, MPI_INT64_T); }

  std::vector<std::string> allgather_bytes(const std::string& mine) override {
    const size_t N = static_cast<size_t>(size_);
    std::vector<int64_t> sizes(N);
    int64_t my = static_cast<int64_t>(mine.size());
    MPI_Request req;
    check(MPI_Iallgather(&my, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, MPI_COMM_WORLD, &req), "allgather");
    wait_one(req, "an all-gather of sizes");
    std::vector<int> counts(N), displs(N);
    int64_t total = 0;
    for (size_t r = 0; r < N; ++r) {
      counts[r] = static_cast<int>(sizes[r]);
      displs[r] = static_cast<int>(total);
      total += sizes[r];
    }
    if (total > std::numeric_limits<int>::max()) throw Error("allgather_bytes: over 2 GiB in one call");
    std::string all(static_cast<size_t>(total), '\0');
    check(MPI_Iallgatherv(mine.data(), counts[static_cast<size_t>(rank_)], MPI_BYTE, all.data(), counts.data(),
                          displs.data(), MPI_BYTE, MPI_COMM_WORLD, &req),
          "allgather");
    wait_one(req, "an all-gather");
    std::vector<std::string> out(N);
    for (size_t r = 0; r < N; ++r) out[r] = all.substr(static_cast<size_t>(displs[r]), static_cast<size_t>(counts[r]));
    return out;
  }

  std::vector<std::string> gather_bytes(const std::string& mine, int root) override {
    const size_t N = static_cast<size_t>(size_);
    std::vector<int64_t> sizes(N);
    int64_t my = static_cast<int64_t>(mine.size());
    MPI_Request req;
    check(MPI_Igather(&my, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, root, MPI_COMM_WORLD, &req), "gather");
    wait_one(req, "a gather of sizes");
    std::vector<std::string> out;
    if (rank_ == root) out.resize(N);
    // Point-to-point per rank: payloads may exceed the int displacements of MPI_Gatherv.
    std::vector<MPI_Request> reqs;
    if (rank_ == root) {
      for (size_t r = 0; r < N; ++r) {
        out[r].resize(static_cast<size_t>(sizes[r]));
        if (static_cast<int>(r) == root) {
          out[r] = mine;
          continue;
        }
        post_chunks_recv(out[r].data(), out[r].size(), static_cast<int>(r), reqs);
      }
    } else {
      post_chunks_send(mine.data(), mine.size(), root, reqs);
    }
    wait_all(reqs, "a gather to rank " + std::to_string(root));
    return out;
  }

  void broadcast(void* data, size_t bytes, int root) override {
    char* p = static_cast<char*>(data);
    const size_t chunk = size_t{1} << 30;
    for (size_t off = 0; off < bytes || off == 0; off += chunk) {
      MPI_Request req;
      const int n = static_cast<int>(std::min(chunk, bytes - std::min(bytes, off)));
      check(MPI_Ibcast(p + off, n, MPI_BYTE, root, MPI_COMM_WORLD, &req), "broadcast");
      wait_one(req, "a broadcast from rank " + std::to_string(root));
      if (bytes == 0) break;
    }
  }

  void barrier() override {
    MPI_Request req;
    check(MPI_Ibarrier(MPI_COMM_WORLD, &req), "barrier");
    wait_one(req, "a barrier");
  }

  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "modernbert: rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code == 0 ? 1 : code);
    std::_Exit(code == 0 ? 1 : code);
  }

  void set_timeout_seconds(double s) override { timeout_ = s; }
  double timeout_seconds() const override { return timeout_; }

 private:
  void check(int rc, const char* what) {
    if (rc == MPI_SUCCESS) return;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    abort(std::string(what) + " failed: " + std::string(msg, static_cast<size_t>(len)), 1);
  }

  void check_bounds(const std::vector<size_t>& b, const char* what) {
    bool ok = b.size() == static_cast<size_t>(size_) + 1 && b[0] == 0;
    for (size_t i = 1; ok && i < b.size(); ++i) ok = b[i] >= b[i - 1];
    if (!ok) throw Error(std::string(what) + ": bounds must be size()+1 non-decreasing offsets from 0");
  }

  // Polls until done; past the deadline, aborts the job naming `what`. Spins for the first
  // millisecond (collectives on one host complete in microseconds), then sleeps 50 µs per poll.
  void wait_all(std::vector<MPI_Request>& reqs, const std::string& what) {
    if (reqs.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE), "wait");
      if (done) return;
      if (polls > 2000) {
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (timeout_ > 0 && (polls & 255) == 0) {
          const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (waited > timeout_) {
            char buf[96];
            std::snprintf(buf, sizeof buf, " did not complete within %.0f s", timeout_);
            abort(what + buf +
                      ": a peer rank died, hung or is far behind (see the other ranks' messages); aborting the "
                      "job (raise --comm-timeout for slow steps)",
                  1);
          }
        }
      }
    }
  }
  void wait_one(MPI_Request& req, const std::string& what) {
    std::vector<MPI_Request> v{req};
    wait_all(v, what);
  }

  void post_chunks_recv(char* p, size_t bytes, int src, std::vector<MPI_Request>& reqs) {
    const size_t chunk = size_t{1} << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
      reqs.emplace_back();
      check(MPI_Irecv(p + off, static_cast<int>(std::min(chunk, bytes - off)), MPI_BYTE, src, 9, MPI_COMM_WORLD,
                      &reqs.back()),
            "gather (receive)");
    }
  }
  void post_chunks_send(const char* p, size_t bytes, int dst, std::vector<MPI_Request>& reqs) {
    const size_t chunk = size_t{1} << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
      reqs.emplace_back();
      check(MPI_Isend(p + off, static_cast<int>(std::min(chunk, bytes - off)), MPI_BYTE, dst, 9, MPI_COMM_WORLD,
                      &reqs.back()),
            "gather (send)");
    }
  }

  // Small sums: every rank gathers every rank's values and adds them in rank order (exact order,
  // identical everywhere; n is small: losses, counts).
  template <typename T>
  void small_sum(T* data, size_t n, MPI_Datatype type) {
    if (size_ == 1 || n == 0) return;
    if (n > static_cast<size_t>(std::numeric_limits<int>::max() / size_))
      throw Error("allreduce_sum: too many values for the small-value sum");
    std::vector<T> all(n * static_cast<size_t>(size_));
    MPI_Request req;
    check(MPI_Iallgather(data, static_cast<int>(n), type, all.data(), static_cast<int>(n), type, MPI_COMM_WORLD, &req),
          "allreduce_sum");
    wait_one(req, "an all-reduce of " + std::to_string(n) + " values");
    for (size_t i = 0; i < n; ++i) {
      T s = all[i];
      for (size_t r = 1; r < static_cast<size_t>(size_); ++r) s += all[r * n + i];
      data[i] = s;
    }
  }

  int rank_ = 0, size_ = 1, local_size_ = 1;
  double timeout_;
  std::string library_;
  std::vector<float> recv_, acc_;
};

std::unique_ptr<MpiWorld> g_world;

}  // namespace

Communicator& open_world(const WorldOptions& options) {
  if (g_world) return *g_world;
  if (!launched_by_mpi()) return single_process();
  g_world = std::make_unique<MpiWorld>(options);
  std::atexit([] { g_world.reset(); });
  return *g_world;
}

int world_local_size() { return g_world ? g_world->local_size() : 1; }

#endif  // MB_HAVE_MPI

}  // namespace modernbert
