// Pretraining data: documents from JSONL / text files as token ids, and packed rows as the
// micro-batches of a step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "modernbert/tokenizer.h"
#include "modernbert/mlm_data.h"
#include "modernbert/train_model.h"

namespace modernbert::train {

// Reads documents: JSONL lines with `input_ids` (used as given) or `text` (tokenized with
// [CLS] … [SEP]), or plain text with one document per non-empty line. A document longer than
// seq_len is cut (split = false, the reference) or split into seq_len pieces. Errors name FILE:LINE.
std::vector<std::vector<int32_t>> load_documents(const std::vector<std::string>& files, const Tokenizer* tok,
                                                 int64_t seq_len, bool split, bool lossy_utf8);

// Rows [r0, r1) with their MLM labels as one unpadded batch (row-local boundaries offset).
TrainBatch make_micro_batch(const std::vector<PackedRow>& rows, const std::vector<std::vector<int32_t>>& labels,
                            size_t r0, size_t r1);

}  // namespace modernbert::train
