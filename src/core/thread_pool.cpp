#include "core/thread_pool.h"

#include <memory>
#include <new>

namespace modernbert {

namespace {
// True while the current thread executes a pool task: nested parallel_for then runs inline,
// which avoids deadlock (the pool runs one job at a time) and oversubscription.
thread_local bool t_in_pool_task = false;

// Spin iterations before a worker goes to sleep. Ops in a forward pass follow each other within
// microseconds, so a short spin avoids a futex wake-up per op; short enough that idle workers
// give the core back quickly on a shared machine.
constexpr int kSpinIters = 20000;

// The spin-wait hint (PAUSE on x86): lets the sibling hyper-thread run while a worker spins.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace

int ThreadPool::default_num_threads() {
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : default_num_threads();
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::work(int id) {
  const bool was = t_in_pool_task;
  t_in_pool_task = true;
  for (;;) {
    int64_t b = next_.fetch_add(grain_, std::memory_order_relaxed);
    if (b >= n_) break;
    int64_t e = b + grain_ < n_ ? b + grain_ : n_;
    try {
      fn_(ctx_, b, e, id);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_, std::memory_order_relaxed);  // no new chunks
    }
  }
  t_in_pool_task = was;
}

void ThreadPool::worker_loop(int id) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int spin = 0; g == seen && spin < kSpinIters; ++spin) {
      cpu_relax();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = g;
    if (stop_.load(std::memory_order_acquire)) return;
    work(id);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) active_.notify_one();
  }
}

void ThreadPool::run(int64_t n, int64_t grain, void* ctx, TaskFn fn) {
  if (t_in_pool_task || n_threads_ == 1 || n <= grain) {
    fn(ctx, 0, n, 0);  // serial: nested call, single thread, or a single chunk
    return;
  }
  std::lock_guard<std::mutex> lock(run_mutex_);
  ctx_ = ctx;
  fn_ = fn;
  n_ = n;
  grain_ = grain;
  next_.store(0, std::memory_order_relaxed);
  error_ = nullptr;
  active_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_acq_rel);  // publishes the job
  generation_.notify_all();
  work(0);
  // Wait for the workers to leave the job (they may still be running their last chunk).
  for (int spin = 0;; ++spin) {
    int a = active_.load(std::memory_order_acquire);
    if (a == 0) break;
    if (spin < kSpinIters) {
      cpu_relax();
    } else {
      active_.wait(a, std::memory_order_acquire);
    }
  }
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

namespace {
std::mutex g_default_mutex;
std::unique_ptr<ThreadPool> g_default;
int g_requested = 0;  // set_default_threads' n (0 = hardware_concurrency)
}  // namespace

ThreadPool& default_pool() {
  // Fast path without the lock once created: the pool never moves (set_default_threads rebuilds it
  // in place, never while it runs a job: see thread_pool.h).
  static std::atomic<ThreadPool*> current{nullptr};
  ThreadPool* p = current.load(std::memory_order_acquire);
  if (p) return *p;
  std::lock_guard<std::mutex> lock(g_default_mutex);
  if (!g_default) g_default = std::make_unique<ThreadPool>(g_requested);
  current.store(g_default.get(), std::memory_order_release);
  return *g_default;
}

void set_default_threads(int n) {
  std::lock_guard<std::mutex> lock(g_default_mutex);
  g_requested = n < 0 ? 0 : n;
  if (!g_default) return;  // created on first use with this size
  const int want = g_requested > 0 ? g_requested : ThreadPool::default_num_threads();
  if (g_default->size() == want) return;
  // Replace the pool in place: the object keeps its address, so references that callers hold to
  // default_pool() stay valid.
  ThreadPool* p = g_default.get();
  p->~ThreadPool();
  new (p) ThreadPool(want);
}

}  // namespace modernbert
