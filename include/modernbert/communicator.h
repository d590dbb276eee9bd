// Collectives among the processes of one data-parallel job (#16). The training loop, the
// fine-tuning tasks and `embed` see only this interface; the MPI implementation lives in the dist
// layer (src/dist/, include/modernbert/distributed.h), and single_process() is the world of one.
//
// Contracts, for every implementation:
//  * Every rank calls the same collectives in the same order with the same sizes (a mismatch is
//    undefined, as in MPI; the training loop checks it is in step with a parameter checksum).
//  * Sums are DETERMINISTIC and in RANK ORDER: element i of a float sum is
//      ((x_0[i] + x_1[i]) + x_2[i]) + ... + x_{N-1}[i]
//    evaluated in float (double for the double overload), identical on every rank. So N ranks that
//    each hold one micro-batch's gradient reduce to exactly what one process that adds the N
//    micro-batch gradients in order computes (training_loop.h).
//  * A peer that dies or stops answering makes a collective fail within timeout_seconds(): the
//    implementation prints "rank R of N: ..." naming the operation and aborts the whole job
//    (every rank exits non-zero). Collectives never throw on a peer failure; abort() ends the job.
//  * Buffers are not retained after a call returns; aliasing between send and receive data is
//    stated at each call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace modernbert {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  bool is_root() const { return rank() == 0; }
  // "single process" | "MPI (Open MPI v4.1.4), rank 0 of 2"
  virtual std::string description() const = 0;

  // ---- float buffers split into per-rank ranges ----
  // bounds: size()+1 increasing offsets, bounds[0] = 0, bounds[size()] = n; rank r owns
  // [bounds[r], bounds[r+1]).
  // After reduce_scatter_sum, rank r's own range holds the rank-order sum over all ranks of that
  // range; elements outside the own range are left unspecified (they may be overwritten).
  virtual void reduce_scatter_sum(float* data, const std::vector<size_t>& bounds) = 0;
  // After allgather, every rank's data equals, in each range r, rank r's values of that range.
  virtual void allgather(float* data, const std::vector<size_t>& bounds) = 0;
  // In place, all n elements: reduce_scatter_sum over even_bounds(n, size()), then allgather.
  void allreduce_sum(float* data, size_t n);

  // ---- small values (losses, counts, flags, checksums) ----
  // In place, rank-order sums (exact for int64 without overflow).
  virtual void allreduce_sum(double* data, size_t n) = 0;
  virtual void allreduce_sum(int64_t* data, size_t n) = 0;
  // Every rank's `mine` (any size, may differ between ranks), in rank order.
  virtual std::vector<std::string> allgather_bytes(const std::string& mine) = 0;
  // Rank `root`'s bytes to every rank (`data` in place, `bytes` equal on every rank).
  virtual void broadcast(void* data, size_t bytes, int root) = 0;
  // Every rank's `mine` to `root` in rank order (other ranks get an empty vector). For large
  // payloads (embed output) where allgather_bytes would copy everything to every rank.
  virtual std::vector<std::string> gather_bytes(const std::string& mine, int root) = 0;
  virtual void barrier() = 0;

  // Ends the whole job: prints "rank R of N: <message>" on stderr and makes every rank exit
  // non-zero (MPI_Abort). The single process prints the message and exits with `code` (0 -> 1).
  [[noreturn]] virtual void abort(const std::string& message, int code) = 0;

  // Seconds a collective may wait for its peers before the job is aborted (0 = forever).
  virtual void set_timeout_seconds(double s) = 0;
  virtual double timeout_seconds() const = 0;
};

// The world of one process: rank 0 of 1; collectives return at once and leave data as it is.
Communicator& single_process();

// bounds of n elements split into `parts` contiguous ranges of near-equal size (the first
// n % parts ranges get one more). Error when parts < 1; rank_share: when rank is outside
// [0, size) or count < 0.
std::vector<size_t> even_bounds(size_t n, int parts);
// The contiguous share of `count` items (micro-batches, inputs) that rank `rank` of `size` takes:
// [first, last) with the same near-equal split as even_bounds.
struct Share {
  int64_t first = 0, last = 0;
};
Share rank_share(int64_t count, int rank, int size);

}  // namespace modernbert
