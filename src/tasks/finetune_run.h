// What both fine-tuning paths (heads: finetune.cpp; embedding / ColBERT: finetune_retrieval.cpp)
// share around the training loop: the output directory and its JSONL log, the loop in epoch mode
// (one step per batch, dev evaluation at each epoch end, the best epoch saved, patience), and the
// result; and what data parallelism adds to both (finetune.h): the micro-batches of a step, the
// check that every rank runs the same job, rank 0's output, the dev set encoded in shards.
#pragma once

#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/hash.h"
#include "modernbert/communicator.h"
#include "modernbert/finetune.h"
#include "modernbert/training_loop.h"

namespace modernbert::finetune_util {

// Rank 0: creates o.out, copies the tokenizer into it and opens o.out/finetune_log.jsonl
// (truncated). Other ranks write nothing: they get a closed stream (the loop logs on rank 0 only).
std::ofstream open_output(const FinetuneOptions& o, const std::string& tokenizer_path, const Communicator& comm);

// --grad-accumulation in [1, 4096] and --zero 0 or 1 (an Error naming the flag otherwise).
void check_parallel_options(const FinetuneOptions& o);

// M = grad_accumulation x ranks: the micro-batches of every step (the loop runs rank_share(M) of
// them on each rank).
int64_t micro_batches_per_step(const FinetuneOptions& o, const Communicator& comm);

// An order-sensitive fingerprint of a run's data (token ids, labels) for check_same_job.
class Fingerprint {
 public:
  template <class T>
  void add(const std::vector<T>& v) {
    add_bytes(v.data(), v.size() * sizeof(T));
  }
  template <class T>
  void add(const std::vector<std::vector<T>>& vv) {
    const uint64_t n = vv.size();
    add_bytes(&n, sizeof n);
    for (const auto& v : vv) add(v);
  }
  uint64_t value() const { return h_; }

 private:
  void add_bytes(const void* p, size_t n);  // the length first, so concatenations do not collide
  uint64_t h_ = kFnv64Offset;
};

// Data parallel: every rank's options (the flags that shape training; not --out or paths) and data
// fingerprints (name -> value, e.g. {"training data (--train)", fp}) equal rank 0's, else an Error
// on every rank naming the first rank and option (or data set) that differs. A no-op alone.
void check_same_job(const FinetuneOptions& o, const std::vector<std::pair<std::string, uint64_t>>& data,
                    Communicator& comm);

// The dev set's `parts` batches shared among the ranks (rank_share of the parts): each rank calls
// encode(part) for its own parts, in order, and rank 0 gets every part's bytes concatenated in part
// order (other ranks: ""). The batches are the one-process run's, so the bits are the same.
std::string encode_shards(int64_t parts, const std::function<std::string(int64_t)>& encode, Communicator& comm);

// Rank 0's dev score on every rank (the best-epoch and patience decisions must agree).
double root_score(double score, Communicator& comm);

// o.epochs epochs of steps_per_epoch steps at lr = o.lr · schedule_config(o, total steps)(step),
// records to `log`, selection by `metric_name` (higher is better).
train::LoopConfig loop_config(const FinetuneOptions& o, int64_t steps_per_epoch, std::ostream& log,
                              const std::string& metric_name, Communicator& comm);

FinetuneResult result_of(const train::LoopResult& r, const std::string& metric_name);

}  // namespace modernbert::finetune_util
