// Fine-tuning a (pre-trained MLM) checkpoint.
//  * Heads: sequence classification, regression, multi-label classification and token
//    classification (first sub-token per word) on labelled JSONL. The encoder and
//    head.dense/head.norm are kept from the checkpoint (HF shares the names), a fresh classifier
//    [L, H] is added; the best epoch on dev (by the task's metric) is kept.
//  * Retrieval: single-vector embeddings (pooling + cosine, InfoNCE with in-batch negatives) and
//    ColBERT (linear projection H -> colbert_dim without bias, per-token L2 norm, MaxSim with
//    in-batch negatives). Training/dev data are queries ({"qid", "query", "positive_ids"} with a
//    --corpus of {"id", "text"}) or pairs ({"query", "positive"}); the best epoch by dev nDCG@10 is
//    kept as an encoder-only checkpoint with the sentence-transformers (or PyLate) files.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "modernbert/tasks.h"
#include "modernbert/train_options.h"

namespace modernbert {

enum class FinetuneTask { kClassification, kRegression, kMultiLabel, kTokenClassification, kEmbedding, kColbert };
// linear: warm-up, linear decay to 0 | wsd: warm-up, stable, 1-sqrt decay over the last 20%
enum class FinetuneSchedule { kLinear, kWsd };

struct FinetuneOptions {
  FinetuneTask task = FinetuneTask::kClassification;
  std::string model_dir, train, dev, out;
  std::string text_field = "text", pair_field = "text_pair";
  std::string label_field;              // default: "labels" for multilabel, "tags" for tokens, else "label"
  int64_t epochs = 3;
  int64_t batch_size = 16;
  double lr = 5e-5;
  double weight_decay = 0.01;
  OptimizerType optimizer = OptimizerType::kAdamW;
  double warmup_ratio = 0.1;
  FinetuneSchedule schedule = FinetuneSchedule::kLinear;
  int64_t max_length = 512;
  int64_t patience = 0;                 // > 0: stop after this many epochs without a dev improvement
  uint64_t seed = 42;
  int64_t num_labels = 0;               // 0: from the training labels
  std::optional<EmbedPooling> pooling;  // unset: the checkpoint's | cls | mean (max: ColBERT only, unused)
  bool progress = true;                 // progress lines on stderr
  bool lossy_utf8 = false;              // replace invalid UTF-8 in the data with U+FFFD instead of failing
  // Retrieval (embedding | colbert).
  std::string corpus;                   // {"id", "text"} documents that positive_ids refer to
  double temperature = 0;               // 0: 0.05 (embedding, = ST scale 20) | 1.0 (colbert, as PyLate)
  int64_t query_max_length = 64;
  int64_t doc_max_length = 0;           // 0: max_length
  std::string query_prompt, document_prompt;  // prepended to the texts; saved as ST prompts
  int64_t colbert_dim = 128;
  int64_t eval_depth = 100;             // ranking depth of the dev evaluation
};

struct FinetuneResult {
  int64_t steps = 0, epochs_run = 0, best_epoch = 0;
  double best_metric = 0;      // accuracy | pearson | micro-F1 | entity F1 (word accuracy without entities) | nDCG@10 on dev
  std::string metric_name;
  nlohmann::json history = nlohmann::json::array();  // one object per epoch (dev metrics)
};

// Option strings of the CLI -> enums; Errors name the flag ("finetune: --task must be ...").
// classification | regression | multilabel | token-classification | embedding | colbert
const char* to_string(FinetuneTask t);
FinetuneTask parse_finetune_task(const std::string& s);
FinetuneSchedule parse_finetune_schedule(const std::string& s);  // linear | wsd
OptimizerType parse_finetune_optimizer(const std::string& s);    // adamw | stableadamw
// "" -> unset; cls | mean, and for ColBERT (which pools nothing) any name parse_embed_pooling takes.
std::optional<EmbedPooling> parse_finetune_pooling(const std::string& s, FinetuneTask task);

// Throws modernbert::Error on bad input (empty training file, dev labels outside the training
// label set, a label count that contradicts the checkpoint's existing classifier, ...).
FinetuneResult finetune(const FinetuneOptions& o);
// The embedding / ColBERT part (finetune() dispatches to it).
FinetuneResult finetune_retrieval(const FinetuneOptions& o);

}  // namespace modernbert
