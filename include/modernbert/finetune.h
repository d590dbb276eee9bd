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
//
// Data parallelism and gradient accumulation (#16): `mpirun -np N modernbert finetune ...` runs
// finetune() on every rank with the job's Communicator. The GLOBAL batch is batch_size examples
// (queries) per optimizer step whatever N and grad_accumulation K are, so the learning dynamics do
// not depend on the world size. Each step's examples are split into M = K x N contiguous
// micro-batches of near-equal size (rank_share(batch, m, M)); rank r runs micro-batches
// rank_share(M, r, N) (the training loop's split), and a batch smaller than M leaves some
// micro-batches empty (they contribute nothing).
//  * Heads: every micro-batch's loss is divided by the count of the WHOLE step (labels, or
//    sequences x labels), so the micro losses and gradients sum to the step's mean.
//  * Retrieval (embedding / ColBERT): GATHERED in-batch negatives, as sentence-transformers'
//    gather_across_devices / CachedMNRL: the negatives of a query are the documents of the whole
//    global batch, so N ranks (or K micro-batches) compute the loss of the one-batch step.
//    Micro-batch m holds its share of the step's queries and the positives that first appear among
//    them (documents are deduplicated over the whole step: a positive shared with an earlier
//    micro-batch is encoded there only). Each rank encodes its micro-batches (pooled embeddings, or
//    ColBERT's projected token vectors), the vectors are all-gathered in micro-batch order, every
//    rank computes the step's loss and its gradient w.r.t. all vectors (identical on every rank),
//    then back-propagates its own micro-batches' rows, re-running a micro-batch's forward when the
//    rank's encoder no longer holds its activations (GradCache). The step's loss is reported by
//    micro-batch 0; ColBERT's projection gradient is summed over micro-batches like the encoder's.
//  So 2 ranks x K=1 give the BIT-IDENTICAL run of 1 rank x K=2 (same micro-batches, gradients
//  summed in micro-batch order); K=2 against K=1 differ by float re-association only.
//  * Rank 0 alone writes --out (tokenizer copy, finetune_log.jsonl, the best model). The dev set
//  is encoded in shards of the one-process batches (the same bits), gathered to rank 0, scored
//  there, and rank 0's score is broadcast, so the best-epoch and patience decisions are the same
//  on every rank. Before training, every rank checks that its options and data equal rank 0's.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "modernbert/communicator.h"
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
  int64_t batch_size = 16;        // examples (queries) per optimizer step, over all ranks
  int64_t grad_accumulation = 1;  // K: micro-batches per rank and step (HF gradient_accumulation_steps)
  // ZeRO stage (#16): 1 = each rank keeps the AdamW moments of 1/N of the encoder's tensors and the
  // updated weights are all-gathered (bitwise the same run as 0); 0 = every rank keeps them all.
  int64_t zero_stage = 0;
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
// `comm`: the ranks of a data-parallel job (every rank calls finetune with the same options).
FinetuneResult finetune(const FinetuneOptions& o, Communicator& comm = single_process());
// The embedding / ColBERT part (finetune() dispatches to it).
FinetuneResult finetune_retrieval(const FinetuneOptions& o, Communicator& comm = single_process());

}  // namespace modernbert
