// The engine's internals (engine.h), shared by engine.cpp (loading, validation, submit, jobs) and
// scheduler.cpp (the scheduler thread: batching, the forward, post-processing).
//
// Locking: one mutex (Queue::mu) guards the queue, every job's scheduling state (next, in_flight,
// queued, cancelled, done, error) and the counters. A job's results are written by the scheduler
// without the lock, each slot by that thread only, and read by the handler only after it saw
// done == true under the lock (the lock orders the writes before the reads).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/tasks.h"
#include "modernbert/tokenizer.h"
#include "serve/engine.h"

namespace modernbert::serve {

using Clock = std::chrono::steady_clock;

// The request queue. Shared (shared_ptr) by the engine and every job, so that a job outliving the
// engine can still be waited on and cancelled safely.
struct Queue {
  std::mutex mu;
  std::condition_variable wake;                  // the scheduler waits here for work or shutdown
  std::deque<std::shared_ptr<Job::State>> jobs;  // jobs with sequences not yet in a batch, FIFO
  size_t outstanding = 0;                        // submitted and not done (queue_size(), QueueFull)
  bool stopping = false;                         // shutdown() began: submit() refuses, the scheduler drains and exits
};

struct Job::State {
  std::shared_ptr<Queue> q;
  Request req;
  std::vector<SequenceResult> results;  // one per req.seqs entry
  size_t tokens = 0;
  // Scheduling state, under q->mu.
  size_t next = 0;       // the first sequence not yet in a batch
  size_t in_flight = 0;  // sequences in the batch now running
  bool queued = false;   // in q->jobs
  bool cancelled = false, done = false;
  std::exception_ptr error;  // a failed forward or post-processing: results() rethrows it
  std::condition_variable done_cv;
  Clock::time_point enqueued, started, finished;
  bool has_started = false;
  bool warmup = false;  // the constructor's warm-up: its batch is not reported to the observer

  // Marks the job done and wakes its waiters. Caller holds q->mu.
  void finish_locked();
};

// One sequence of the running batch: the job, the sequence's index in it and its first row.
struct BatchEntry {
  std::shared_ptr<Job::State> job;
  size_t seq = 0;
  int64_t row = 0;
};

struct Engine::Impl {
  explicit Impl(LoadedModel m) : model(std::move(m)) {}

  LoadedModel model;
  EngineOptions opts;
  Capabilities caps;
  std::optional<Tokenizer> tok;
  std::unique_ptr<Encoder> enc;
  EmbedOptions embed;          // pooling and Dense as the CLI resolves them (normalize/dim per request)
  std::string default_prompt;  // the text of the default prompt ("" when none)
  std::atomic<bool> ready{false};

  std::shared_ptr<Queue> q = std::make_shared<Queue>();
  std::thread scheduler;
  std::mutex observer_mu;
  std::function<void(const BatchStats&)> observer;
  std::once_flag joined;

  // Reused by every batch (no reallocation once the largest batch was seen).
  Batch batch;
  std::vector<float> hidden;
  std::vector<BatchEntry> entries;
  std::vector<std::exception_ptr> entry_errors;  // per entry: its post-processing failed
  Batch one;                                     // a one-sequence batch for post-processing

  void run_scheduler();  // scheduler.cpp: the thread's body
  // Takes sequences FIFO into `batch`/`entries` while the token count stays within the budget.
  // Caller holds q->mu.
  void fill_batch_locked();
  // Post-processes entry e's sequence (its hidden rows only) into its job's result slot.
  void post_process(const BatchEntry& e);
  // Forward + post-processing of the filled batch (without the lock); returns the forward's
  // failure, if any (a batch of one sequence). Per-entry failures go to entry_errors: where the
  // forward of a batch of several fails, each sequence is run again alone (forward_each_alone) and
  // only those that fail alone fail.
  std::exception_ptr run_batch();
  void forward_each_alone();
  // Hands the batch's results to their jobs and completes the jobs that are done. Caller holds q->mu.
  void complete_batch_locked(const std::exception_ptr& forward_error);
};

}  // namespace modernbert::serve
