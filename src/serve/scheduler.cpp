// The engine's scheduler thread (engine.h): FIFO over the sequences of the queued jobs, packed into
// one unpadded Batch while the token count stays within max_batch_tokens, one Encoder::forward per
// batch, then each sequence post-processed on its own hidden rows exactly as the inference commands
// post-process one input alone.
//
//   queue [job A: s0 s1 s2][job B: s0][job C: s0 s1] --fill_batch_locked--> Batch{A.s0 A.s1 | budget}
//   forward(Batch) -> hidden [T, H]; entry (job, seq, row): hidden rows [row, row + len) -> result
//   complete_batch_locked: a job whose sequences are all done (or that failed / was cancelled) is done
//
// A job's sequences may span several batches; strict FIFO means a job never waits behind a later one.
// A forward that fails on a batch of several sequences is run again for each sequence alone, so that
// one input that cannot be computed (an f16 activation past 65504) fails only its own request.
#include <algorithm>
#include <exception>
#include <utility>

#include "modernbert/error.h"
#include "serve/engine_impl.h"

namespace modernbert::serve {

void Engine::Impl::fill_batch_locked() {
  batch.ids.clear();  // clear() keeps the capacity: no reallocation once the largest batch was seen
  batch.cu_seqlens.assign(1, 0);
  entries.clear();
  int64_t tokens = 0;
  const Clock::time_point now = Clock::now();
  while (!q->jobs.empty()) {
    const std::shared_ptr<Job::State>& job = q->jobs.front();
    Job::State& j = *job;
    while (j.next < j.req.seqs.size()) {
      const std::vector<int32_t>& s = j.req.seqs[j.next];
      const auto n = static_cast<int64_t>(s.size());
      // Whole sequences only; a sequence longer than the budget goes alone.
      if (!entries.empty() && tokens + n > opts.max_batch_tokens) return;
      batch.add(s);  // before the entry: an entry always has its rows (if add throws, see run_scheduler)
      entries.push_back({job, j.next, tokens});
      if (!j.has_started) {
        j.started = now;
        j.has_started = true;
      }
      tokens += n;
      ++j.next;
      ++j.in_flight;
    }
    j.queued = false;
    q->jobs.pop_front();
  }
}

void Engine::Impl::post_process(const BatchEntry& e) {
  const Request& r = e.job->req;
  const std::vector<int32_t>& ids = r.seqs[e.seq];
  const auto len = static_cast<int64_t>(ids.size());
  const int64_t H = caps.hidden_size;
  const float* h = hidden.data() + e.row * H;  // this sequence's rows [len, H]
  SequenceResult& out = e.job->results[e.seq];
  // The one-sequence batch the commands would have had for this input alone.
  auto one_seq = [&] {
    one.ids.assign(ids.begin(), ids.end());
    one.cu_seqlens.assign({0, len});
  };
  int64_t D = 0;
  switch (r.task) {
    case Task::kEmbed: {
      one_seq();
      EmbedOptions o = embed;
      o.normalize = r.normalize;
      o.dim = r.dims;
      out.values = sentence_embeddings(one, h, H, o, &D);
      out.rows = 1;
      out.cols = D;
      break;
    }
    case Task::kEmbedAll:
      if (caps.has_colbert_projection) {
        out.values = colbert_vectors(h, len, H, embed.dense, &D);  // as `embed --colbert`
      } else {
        out.values.assign(h, h + len * H);  // the last hidden state (TEI /embed_all)
        D = H;
      }
      out.rows = len;
      out.cols = D;
      break;
    case Task::kClassify:
      one_seq();
      out.values = enc->classify(one, h);  // logits [1, num_labels]
      out.rows = 1;
      out.cols = caps.num_labels;
      break;
    case Task::kFillMask: {
      std::vector<int64_t> rows;
      for (int64_t t = 0; t < len; ++t)
        if (ids[static_cast<size_t>(t)] == caps.mask_token_id) rows.push_back(t);
      out.masks = fill_mask(*enc, h, len, rows, r.top_k);
      out.mask_positions = std::move(rows);
      out.rows = 0;
      out.cols = 0;
      break;
    }
  }
}

std::exception_ptr Engine::Impl::run_batch() {
  entry_errors.assign(entries.size(), nullptr);
  try {
    enc->forward(batch, hidden);
  } catch (...) {
    if (entries.size() < 2) return std::current_exception();
    // One sequence's failure (an activation past the f16 range, say) must not fail the requests it
    // was batched with: each sequence runs again alone, and only those that fail alone fail.
    forward_each_alone();
  }
  for (size_t i = 0; i < entries.size(); ++i) {
    if (entry_errors[i]) continue;
    try {
      post_process(entries[i]);
    } catch (...) {
      entry_errors[i] = std::current_exception();
    }
  }
  return nullptr;
}

void Engine::Impl::forward_each_alone() {
  const int64_t H = caps.hidden_size;
  hidden.resize(static_cast<size_t>(batch.num_tokens() * H));
  Batch alone;
  std::vector<float> h;
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::vector<int32_t>& ids = entries[i].job->req.seqs[entries[i].seq];
    try {
      alone.ids.assign(ids.begin(), ids.end());
      alone.cu_seqlens = {0, static_cast<int64_t>(ids.size())};
      enc->forward(alone, h);
      std::copy(h.begin(), h.end(), hidden.begin() + entries[i].row * H);
    } catch (...) {
      entry_errors[i] = std::current_exception();
    }
  }
}

void Engine::Impl::complete_batch_locked(const std::exception_ptr& forward_error) {
  for (size_t i = 0; i < entries.size(); ++i) {
    Job::State& j = *entries[i].job;
    --j.in_flight;
    const std::exception_ptr& err = forward_error ? forward_error : entry_errors[i];
    if (err && !j.error) j.error = err;
    if (j.in_flight > 0) continue;  // more of its sequences later in this batch
    if (j.error || j.cancelled) {
      // Its remaining sequences are dropped.
      if (j.queued) {
        auto it = std::find(q->jobs.begin(), q->jobs.end(), entries[i].job);
        if (it != q->jobs.end()) q->jobs.erase(it);
        j.queued = false;
      }
      j.finish_locked();
    } else if (j.next == j.req.seqs.size()) {
      j.finish_locked();
    }
  }
  entries.clear();  // drops the batch's references to its jobs
}

void Engine::Impl::run_scheduler() {
  std::unique_lock<std::mutex> l(q->mu);
  for (;;) {
    q->wake.wait(l, [&] { return !q->jobs.empty() || q->stopping; });
    if (q->jobs.empty()) return;  // stopping and drained
    try {
      fill_batch_locked();
    } catch (...) {
      // Out of memory copying ids: fail what was taken, or the job that could not be taken.
      if (entries.empty()) {
        std::shared_ptr<Job::State> j = q->jobs.front();
        q->jobs.pop_front();
        j->queued = false;
        j->error = std::current_exception();
        if (j->in_flight == 0) j->finish_locked();
        continue;
      }
    }
    l.unlock();
    const Clock::time_point t0 = Clock::now();
    const std::exception_ptr forward_error = run_batch();
    BatchStats stats;
    const bool observe = !entries.front().job->warmup;
    stats.seqs = batch.num_seqs();
    stats.tokens = batch.num_tokens();
    stats.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    l.lock();
    complete_batch_locked(forward_error);
    stats.queued_after = q->jobs.size();
    l.unlock();
    {
      std::lock_guard<std::mutex> ol(observer_mu);
      if (observer && observe) {
        try {
          observer(stats);
        } catch (...) {
          // Metrics must never stop the scheduler.
        }
      }
    }
    l.lock();
  }
}

}  // namespace modernbert::serve
