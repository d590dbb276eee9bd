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
// buckets of up to kBucketFloats per peer message), and the owner adds the N pieces in rank order;
// MPI's own reductions are not used for floats because their association is unspecified. allgather
// and the byte collectives are point-to-point too, in messages below 2^31 elements, so no int count
// or displacement limits a buffer's size. Everything runs on a private duplicate of
// MPI_COMM_WORLD; MPI_Abort on MPI_COMM_WORLD ends the job.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>

#include "modernbert/distributed.h"
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
    throw Error(
        "this modernbert was built without MPI (CMake option MODERNBERT_MPI=OFF, or no MPI found) but an "
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
// link's bandwidth. reduce_scatter_sum receives one bucket from each of the N-1 peers at once, so
// for large worlds the bucket shrinks to keep those buffers within kRecvBudgetFloats (64 MiB), but
// not below kMinBucketFloats (256 KiB per message).
constexpr size_t kBucketFloats = size_t{1} << 22;
constexpr size_t kRecvBudgetFloats = size_t{1} << 24;
constexpr size_t kMinBucketFloats = size_t{1} << 16;
// Bytes per point-to-point message of the byte collectives (MPI counts are int).
constexpr size_t kByteChunk = size_t{1} << 30;

// Point-to-point tags on the world's private communicator (one per operation, so that a message can
// only ever match a receive of the same operation; messages between two ranks with one tag arrive
// in the order they were sent, and every rank posts them in the same collective order).
constexpr int kTagReduceScatter = 1, kTagAllgather = 2, kTagGatherBytes = 3, kTagAllgatherBytes = 4;

// For the SIGTERM handler (async-signal-safe: preformatted, written with write(), then _Exit).
char g_term_message[192];
size_t g_term_length = 0;

extern "C" void on_sigterm(int) {
  const ssize_t n = ::write(2, g_term_message, g_term_length);
  (void)n;
  std::_Exit(143);  // 128 + SIGTERM, what the default action reports
}

int as_count(size_t n) {
  // Every caller splits messages below 2^31 elements; this is the last guard.
  if (n > static_cast<size_t>(std::numeric_limits<int>::max())) throw Error("MPI message of over 2^31 elements");
  return static_cast<int>(n);
}

class MpiWorld final : public Communicator {
 public:
  explicit MpiWorld(const WorldOptions& o) : timeout_(o.timeout_seconds) {
    int have = 0;
    MPI_Initialized(&have);
    if (!have) {
      // FUNNELED: only the thread that opened the world calls MPI (compute threads never do).
      int provided = 0;
      if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        throw Error("MPI_Init_thread failed: the MPI library could not start this rank");
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    // A private copy of the world: our point-to-point tags and collectives can never match those of
    // another user of MPI_COMM_WORLD in the process (a library, a test harness).
    if (MPI_Comm_dup(MPI_COMM_WORLD, &comm_) != MPI_SUCCESS) throw Error("MPI_Comm_dup failed");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    MPI_Comm local;
    MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    library_.assign(lib, static_cast<size_t>(len));
    if (const size_t nl = library_.find_first_of(",\n"); nl != std::string::npos) library_.resize(nl);
    const int w =
        std::snprintf(g_term_message, sizeof g_term_message,
                      "modernbert: rank %d of %d: ended by the launcher (SIGTERM): another rank failed or the "
                      "job was cancelled\n",
                      rank_, size_);
    g_term_length = std::min(sizeof g_term_message - 1, static_cast<size_t>(std::max(0, w)));
    struct sigaction sa {};
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, nullptr);
  }
  // At exit (open_world's atexit handler, which runs before the static destructors of everything
  // constructed before the world). MPI_Finalize waits for the other ranks to reach it: a rank that
  // finishes early (embed's ranks > 0 while rank 0 writes the output) waits there, and a rank that
  // fails meanwhile ends it through MPI_Abort.
  ~MpiWorld() override {
    int fin = 0;
    MPI_Finalized(&fin);
    if (fin) return;
    MPI_Comm_free(&comm_);
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const { return local_size_; }
  std::string description() const override {
    return "MPI (" + library_ + "), rank " + std::to_string(rank_) + " of " + std::to_string(size_);
  }

  using Communicator::allreduce_sum;

  // Each owner receives its range from every peer (bucket by bucket) and adds the N pieces in rank
  // order. Memory: (N-1) x bucket floats of receive buffer, kept for the next call.
  void reduce_scatter_sum(float* data, const std::vector<size_t>& bounds) override {
    check_bounds(bounds, "reduce_scatter_sum");
    if (size_ == 1) return;
    const size_t N = static_cast<size_t>(size_), me = static_cast<size_t>(rank_);
    const size_t own_lo = bounds[me], own_n = bounds[me + 1] - own_lo;
    const size_t max_range = max_range_of(bounds);
    const size_t bucket = std::min(std::max(kRecvBudgetFloats / (N - 1), kMinBucketFloats), kBucketFloats);
    const size_t slot_n = std::min(bucket, std::max<size_t>(own_n, 1));
    if (own_n > 0) {
      recv_.resize((N - 1) * slot_n);
      acc_.resize(slot_n);
    }
    auto slot = [&](size_t q) { return recv_.data() + (q - (q > me ? 1 : 0)) * slot_n; };
    std::vector<MPI_Request> reqs;
    for (size_t j0 = 0; j0 < max_range; j0 += bucket) {
      reqs.clear();
      const size_t my_n = j0 < own_n ? std::min(bucket, own_n - j0) : 0;
      // Pieces of my range from every peer.
      for (size_t q = 0; q < N && my_n > 0; ++q) {
        if (q == me) continue;
        reqs.emplace_back();
        check(
            MPI_Irecv(slot(q), as_count(my_n), MPI_FLOAT, static_cast<int>(q), kTagReduceScatter, comm_, &reqs.back()),
            "reduce_scatter_sum (receive)");
      }
      // My values of every peer's range (never of my own range, which is rewritten below).
      for (size_t r = 0; r < N; ++r) {
        const size_t lo = bounds[r], n = bounds[r + 1] - lo;
        if (r == me || j0 >= n) continue;
        reqs.emplace_back();
        check(MPI_Isend(data + lo + j0, as_count(std::min(bucket, n - j0)), MPI_FLOAT, static_cast<int>(r),
                        kTagReduceScatter, comm_, &reqs.back()),
              "reduce_scatter_sum (send)");
      }
      wait_all(reqs, "the gradient all-reduce (reduce-scatter)");
      if (my_n == 0) continue;
      // Rank-order sum: acc = x_0; acc += x_1; ... (x_me is my own data).
      float* own = data + own_lo + j0;
      auto piece = [&](size_t q) -> const float* { return q == me ? own : slot(q); };
      std::memcpy(acc_.data(), piece(0), my_n * sizeof(float));
      for (size_t q = 1; q < N; ++q) {
        const float* p = piece(q);
        for (size_t i = 0; i < my_n; ++i) acc_[i] += p[i];
      }
      std::memcpy(own, acc_.data(), my_n * sizeof(float));
    }
  }

  // Each rank sends its own range to every peer and receives theirs in place (point-to-point, so
  // no int displacement limits the buffer size), bucket by bucket.
  void allgather(float* data, const std::vector<size_t>& bounds) override {
    check_bounds(bounds, "allgather");
    if (size_ == 1) return;
    const size_t N = static_cast<size_t>(size_), me = static_cast<size_t>(rank_);
    const size_t own_lo = bounds[me], own_n = bounds[me + 1] - own_lo;
    const size_t max_range = max_range_of(bounds);
    std::vector<MPI_Request> reqs;
    for (size_t j0 = 0; j0 < max_range; j0 += kBucketFloats) {
      reqs.clear();
      for (size_t r = 0; r < N; ++r) {
        const size_t lo = bounds[r], n = bounds[r + 1] - lo;
        if (r == me || j0 >= n) continue;
        reqs.emplace_back();
        check(MPI_Irecv(data + lo + j0, as_count(std::min(kBucketFloats, n - j0)), MPI_FLOAT, static_cast<int>(r),
                        kTagAllgather, comm_, &reqs.back()),
              "allgather (receive)");
      }
      if (j0 < own_n) {
        const int n = as_count(std::min(kBucketFloats, own_n - j0));
        for (size_t r = 0; r < N; ++r) {
          if (r == me) continue;
          reqs.emplace_back();
          check(MPI_Isend(data + own_lo + j0, n, MPI_FLOAT, static_cast<int>(r), kTagAllgather, comm_, &reqs.back()),
                "allgather (send)");
        }
      }
      wait_all(reqs, "the parameter/gradient all-gather");
    }
  }

  void allreduce_sum(double* data, size_t n) override { small_sum(data, n, MPI_DOUBLE); }
  void allreduce_sum(int64_t* data, size_t n) override { small_sum(data, n, MPI_INT64_T); }

  std::vector<std::string> allgather_bytes(const std::string& mine) override {
    if (size_ == 1) return {mine};
    const size_t N = static_cast<size_t>(size_), me = static_cast<size_t>(rank_);
    const std::vector<int64_t> sizes = exchange_sizes(mine.size(), -1);
    std::vector<std::string> out(N);
    std::vector<MPI_Request> reqs;
    for (size_t r = 0; r < N; ++r) {
      if (r == me) continue;
      out[r].resize(static_cast<size_t>(sizes[r]));
      post_chunks_recv(out[r].data(), out[r].size(), static_cast<int>(r), kTagAllgatherBytes, reqs);
      post_chunks_send(mine.data(), mine.size(), static_cast<int>(r), kTagAllgatherBytes, reqs);
    }
    wait_all(reqs, "an all-gather");
    out[me] = mine;
    return out;
  }

  std::vector<std::string> gather_bytes(const std::string& mine, int root) override {
    check_root(root, "gather_bytes");
    if (size_ == 1) return {mine};
    const size_t N = static_cast<size_t>(size_);
    const std::vector<int64_t> sizes = exchange_sizes(mine.size(), root);
    std::vector<std::string> out;
    // Point-to-point per rank: payloads may exceed the int counts and displacements of MPI_Gatherv.
    std::vector<MPI_Request> reqs;
    if (rank_ == root) {
      out.resize(N);
      for (size_t r = 0; r < N; ++r) {
        if (static_cast<int>(r) == root) continue;
        out[r].resize(static_cast<size_t>(sizes[r]));
        post_chunks_recv(out[r].data(), out[r].size(), static_cast<int>(r), kTagGatherBytes, reqs);
      }
    } else {
      post_chunks_send(mine.data(), mine.size(), root, kTagGatherBytes, reqs);
    }
    wait_all(reqs, "a gather to rank " + std::to_string(root));
    if (rank_ == root) out[static_cast<size_t>(root)] = mine;
    return out;
  }

  void broadcast(void* data, size_t bytes, int root) override {
    check_root(root, "broadcast");
    if (size_ == 1) return;
    char* p = static_cast<char*>(data);
    size_t off = 0;
    do {  // one (possibly empty) message at least, so that every rank takes part
      const size_t n = std::min(kByteChunk, bytes - off);
      MPI_Request req;
      check(MPI_Ibcast(p + off, as_count(n), MPI_BYTE, root, comm_, &req), "broadcast");
      wait_one(req, "a broadcast from rank " + std::to_string(root));
      off += n;
    } while (off < bytes);
  }

  void barrier() override {
    if (size_ == 1) return;
    MPI_Request req;
    check(MPI_Ibarrier(comm_, &req), "barrier");
    wait_one(req, "a barrier");
  }

  [[noreturn]] void abort(const std::string& message, int code) override {
    std::fprintf(stderr, "modernbert: rank %d of %d: %s\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    // MPI_COMM_WORLD, not the private copy: the whole job ends.
    MPI_Abort(MPI_COMM_WORLD, code == 0 ? 1 : code);
    std::_Exit(code == 0 ? 1 : code);  // MPI_Abort does not return; in case it does
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

  // Every rank gets the same bounds, so every rank throws the same error (before any message).
  void check_bounds(const std::vector<size_t>& b, const char* what) const {
    bool ok = b.size() == static_cast<size_t>(size_) + 1 && b[0] == 0;
    for (size_t i = 1; ok && i < b.size(); ++i) ok = b[i] >= b[i - 1];
    if (!ok) throw Error(std::string(what) + ": bounds must be size()+1 non-decreasing offsets from 0");
  }
  void check_root(int root, const char* what) const {
    if (root < 0 || root >= size_)
      throw Error(std::string(what) + ": root " + std::to_string(root) + " is not a rank of " + std::to_string(size_));
  }
  static size_t max_range_of(const std::vector<size_t>& b) {
    size_t m = 0;
    for (size_t r = 0; r + 1 < b.size(); ++r) m = std::max(m, b[r + 1] - b[r]);
    return m;
  }

  // Every rank's size to `root` (root < 0: to every rank).
  std::vector<int64_t> exchange_sizes(size_t mine, int root) {
    std::vector<int64_t> sizes(static_cast<size_t>(size_));
    const int64_t my = static_cast<int64_t>(mine);
    MPI_Request req;
    if (root < 0) {
      check(MPI_Iallgather(&my, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, comm_, &req), "allgather (sizes)");
      wait_one(req, "an all-gather of sizes");
    } else {
      check(MPI_Igather(&my, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, root, comm_, &req), "gather (sizes)");
      wait_one(req, "a gather of sizes to rank " + std::to_string(root));
    }
    return sizes;
  }

  // Polls until every request is done; past the deadline, aborts the job naming `what`. Spins for
  // the first 2000 polls (collectives on one host complete in microseconds), then sleeps 50 µs per
  // poll and looks at the clock every 256 polls (~20 ms). Completed requests become
  // MPI_REQUEST_NULL; on abort the pending ones die with the process.
  void wait_all(std::vector<MPI_Request>& reqs, const std::string& what) {
    if (reqs.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Testall(static_cast<int>(reqs.size()), reqs.data(), &done, MPI_STATUSES_IGNORE), "wait");
      if (done) return;
      if (polls < 2000) continue;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      if (timeout_ > 0 && (polls & 255) == 0) {
        const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (waited > timeout_) {
          char buf[96];
          std::snprintf(buf, sizeof buf, " did not complete within %g s", timeout_);
          abort(what + buf +
                    ": a peer rank died, hung or is far behind (see the other ranks' messages); aborting the "
                    "job (raise --comm-timeout for slow steps)",
                1);
        }
      }
    }
  }
  void wait_one(MPI_Request& req, const std::string& what) {
    std::vector<MPI_Request> v{req};
    wait_all(v, what);
    req = v[0];
  }

  void post_chunks_recv(char* p, size_t bytes, int src, int tag, std::vector<MPI_Request>& reqs) {
    for (size_t off = 0; off < bytes; off += kByteChunk) {
      reqs.emplace_back();
      check(MPI_Irecv(p + off, as_count(std::min(kByteChunk, bytes - off)), MPI_BYTE, src, tag, comm_, &reqs.back()),
            "receive");
    }
  }
  void post_chunks_send(const char* p, size_t bytes, int dst, int tag, std::vector<MPI_Request>& reqs) {
    for (size_t off = 0; off < bytes; off += kByteChunk) {
      reqs.emplace_back();
      check(MPI_Isend(p + off, as_count(std::min(kByteChunk, bytes - off)), MPI_BYTE, dst, tag, comm_, &reqs.back()),
            "send");
    }
  }

  // Small sums: every rank gathers every rank's values and adds them in rank order (exact order,
  // identical everywhere; n is small: losses, counts, checksums).
  template <typename T>
  void small_sum(T* data, size_t n, MPI_Datatype type) {
    if (size_ == 1 || n == 0) return;
    if (n > static_cast<size_t>(std::numeric_limits<int>::max() / size_))
      throw Error("allreduce_sum: too many values for the small-value sum");
    std::vector<T> all(n * static_cast<size_t>(size_));
    MPI_Request req;
    check(MPI_Iallgather(data, static_cast<int>(n), type, all.data(), static_cast<int>(n), type, comm_, &req),
          "allreduce_sum");
    wait_one(req, "an all-reduce of " + std::to_string(n) + " values");
    for (size_t i = 0; i < n; ++i) {
      T s = all[i];
      for (size_t r = 1; r < static_cast<size_t>(size_); ++r) s += all[r * n + i];
      data[i] = s;
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1, local_size_ = 1;
  double timeout_;
  std::string library_;
  std::vector<float> recv_, acc_;
};

// Constructed before main (an empty pointer), so its destructor runs after the atexit handler that
// open_world registers: the handler finalizes MPI, the destructor then finds nothing.
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
