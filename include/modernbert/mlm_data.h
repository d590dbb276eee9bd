// The pre-training data pipeline: MLM masking (spec §6.1), a restartable shuffled document stream
// and greedy best-fit sequence packing (spec §6.3).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace modernbert {

// ---- MLM masking (spec §6.1) ----
struct MaskingConfig {
  double probability = 0.3;
  int32_t mask_token_id = 50284;
  // Ids never masked (the reference excludes only padding; we never store padding).
  std::vector<int32_t> excluded_ids;
};
// Masks ids in place and writes labels (original id at masked positions, -100 elsewhere), with one
// uniform r per position: r < 0.8p → [MASK]; < 0.9p → random id in [0, max id of the row after
// [MASK] substitution]; < p → unchanged. Deterministic from (seed, stream): the same row serial
// always gets the same mask, independent of threads, restarts or what came before.
void mlm_mask(std::vector<int32_t>& ids, std::vector<int32_t>& labels, const MaskingConfig& cfg, uint64_t seed,
              uint64_t stream);

// ---- Greedy best-fit sequence packing (spec §6.3) ----
struct PackedRow {
  std::vector<int32_t> ids;             // concatenated sequences (no padding stored)
  std::vector<int64_t> cu_seqlens{0};   // row-local boundaries
  int64_t capacity = 0;                 // row length; capacity - ids.size() = padding not stored
};

// Deterministic, restartable document source: documents in a per-epoch shuffled order.
class DocumentStream {
 public:
  DocumentStream(std::vector<std::vector<int32_t>> docs, uint64_t seed, bool shuffle = true);
  const std::vector<int32_t>& next();
  int64_t epoch() const { return epoch_; }
  int64_t cursor() const { return cursor_; }
  void seek(int64_t epoch, int64_t cursor);
  size_t size() const { return docs_.size(); }

 private:
  void make_order();
  std::vector<std::vector<int32_t>> docs_;
  std::vector<int64_t> order_;
  uint64_t seed_;
  bool shuffle_;
  int64_t epoch_ = 0, cursor_ = 0;
};

class SequencePacker {
 public:
  // row_len tokens per row; buffer_size = FIFO capacity in sequences (reference: 5 × device batch).
  SequencePacker(int64_t row_len, int64_t buffer_size, std::function<std::vector<int32_t>()> source);
  // Packs n_rows rows: pop the next buffered sequence, put it in the fitting row with the least
  // room left (ties: lowest index), else set it aside; refill while the set-aside list leaves
  // room; set-aside sequences go back to the front of the buffer (deque.extendleft order).
  // Returns false (and keeps the buffer) if some row would stay empty.
  bool next(int64_t n_rows, std::vector<PackedRow>& rows);
  // Buffer contents (for checkpoints).
  std::vector<std::vector<int32_t>> buffer() const;
  void set_buffer(std::vector<std::vector<int32_t>> b);

 private:
  int64_t row_len_, capacity_;
  std::function<std::vector<int32_t>()> source_;
  std::vector<std::vector<int32_t>> buf_;  // front = index 0
};

}  // namespace modernbert
