// What both fine-tuning paths (heads: finetune.cpp; embedding / ColBERT: finetune_retrieval.cpp)
// share around the training loop: the output directory and its JSONL log, the loop in epoch mode
// (one step per batch, dev evaluation at each epoch end, the best epoch saved, patience), and the
// result.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

#include "modernbert/finetune.h"
#include "modernbert/training_loop.h"

namespace modernbert::finetune_util {

// Creates o.out, copies the tokenizer into it and opens o.out/finetune_log.jsonl (truncated).
std::ofstream open_output(const FinetuneOptions& o, const std::string& tokenizer_path);

// o.epochs epochs of steps_per_epoch steps at lr = o.lr · schedule_config(o, total steps)(step),
// records to `log`, selection by `metric_name` (higher is better).
train::LoopConfig loop_config(const FinetuneOptions& o, int64_t steps_per_epoch, std::ostream& log,
                              const std::string& metric_name);

FinetuneResult result_of(const train::LoopResult& r, const std::string& metric_name);

}  // namespace modernbert::finetune_util
