// The process's one thread pool (kernels, weight init, tokenizer, training loops).
//
// Why our own pool: every op in a forward pass (gemm slices, attention tiles, norms) is a short
// parallel loop, thousands per batch. Spawning threads or allocating std::function per call would
// cost more than small ops themselves. The pool keeps N-1 workers alive; the calling thread is
// worker 0. A parallel_for publishes one job (a type-erased function pointer + context, no heap),
// workers claim chunks of the index range with one atomic fetch_add each (dynamic scheduling, so
// uneven items such as long vs short sequences balance), and the caller waits for the last one.
// Idle workers spin briefly, then sleep on a futex (std::atomic::wait), so the pool does not steal
// cycles from other processes (or from OpenBLAS) between ops.
//
// Nested parallel_for (called from inside a task) runs serially on the calling worker.
// An exception thrown by a task stops the remaining chunks and is rethrown in the caller.
// Concurrent parallel_for calls from different external threads are serialised by a mutex taken
// once per call, never inside the loop.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace modernbert {

class ThreadPool {
 public:
  // n_threads includes the calling thread; <= 0 means default_num_threads().
  explicit ThreadPool(int n_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls f(begin, end, thread_id) over [0, n) in chunks of at most `grain` indices.
  // thread_id is in [0, size()) and stable for the duration of one chunk, so it may index
  // per-thread scratch space.
  template <class F>
  void parallel_for(int64_t n, int64_t grain, F&& f) {
    using Fn = std::remove_reference_t<F>;
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    run(n, grain, const_cast<void*>(static_cast<const void*>(&f)),
        [](void* ctx, int64_t b, int64_t e, int tid) { (*static_cast<Fn*>(ctx))(b, e, tid); });
  }

  // std::thread::hardware_concurrency() (at least 1).
  static int default_num_threads();

 private:
  using TaskFn = void (*)(void*, int64_t, int64_t, int);
  void run(int64_t n, int64_t grain, void* ctx, TaskFn fn);
  void worker_loop(int id);
  void work(int id);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;  // one job at a time

  // The current job. Written by the caller before bumping generation_ (release), read by
  // workers after observing the new generation (acquire).
  void* ctx_ = nullptr;
  TaskFn fn_ = nullptr;
  int64_t n_ = 0, grain_ = 1;
  alignas(64) std::atomic<int64_t> next_{0};  // next unclaimed index
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> active_{0};  // workers still inside the current job
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;  // first exception of the current job (guarded by error_mutex_)
  std::mutex error_mutex_;
};

// The process-wide pool used by everything that runs threads. Created on first use with
// set_default_threads' count (hardware_concurrency() until that is called).
ThreadPool& default_pool();

// The explicit thread-count setting: n threads (including the caller) for default_pool(), 0 =
// hardware_concurrency(). Rebuilds the pool if it exists with another size. Call it from the
// thread that drives the work and never while a parallel_for is running (the CLI calls it once,
// before any kernel runs). Configuration is by this call only (no environment variable).
void set_default_threads(int n);

// Convenience: default_pool().parallel_for.
template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f) {
  default_pool().parallel_for(n, grain, std::forward<F>(f));
}

}  // namespace modernbert

// The kernels use the pool under their own namespace, as before the pool moved to core/.
namespace modernbert::kernels {
using modernbert::default_pool;
using modernbert::parallel_for;
using modernbert::set_default_threads;
using modernbert::ThreadPool;
}  // namespace modernbert::kernels
