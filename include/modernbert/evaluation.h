// Evaluating a checkpoint: classification, multi-label, regression, token classification, single-
// vector and ColBERT retrieval. Every report is one nlohmann::json object; format_report_table()
// renders it (and the baselines' reports) for people. docs/evaluation.md describes the formats.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "modernbert/eval_data.h"
#include "modernbert/metrics.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/tasks.h"
#include "modernbert/tokenizer.h"

namespace modernbert {

struct EvalModel {
  const LoadedModel* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  Encoder* encoder = nullptr;
};

enum class EvalTask { kClassification, kMultiLabel, kRegression, kTokenClassification, kRetrieval, kColbert };
// "classification" | "multilabel" | "regression" | "token-classification" | "retrieval" | "colbert";
// throws "unknown --task 'X' (...)" otherwise.
EvalTask parse_eval_task(const std::string& s);
const char* to_string(EvalTask t);  // the name parse_eval_task reads (reports carry it)
bool is_retrieval(EvalTask t);      // retrieval | colbert

enum class Similarity { kCos, kDot };
Similarity parse_similarity(const std::string& s);  // "cos" | "dot"; throws "--similarity must be cos or dot"
const char* to_string(Similarity s);

struct EvalOptions {
  EvalTask task = EvalTask::kClassification;
  std::string data;  // labelled JSONL (not retrieval)
  std::string text_field = "text", pair_field = "text_pair", label_field = "label";
  std::string group_field;     // classification: also report accuracy per value of this field
  std::string positive_label;  // classification: F1 of this class (default: id 1 when binary)
  int64_t max_length = 0;      // truncate to this many tokens (0 = max_position_embeddings, error beyond)
  int64_t max_batch_tokens = 16384;
  double threshold = 0.5;        // multi-label decision threshold on sigmoid scores
  std::string predictions_path;  // optional JSONL of per-example predictions
  // Retrieval.
  std::string corpus, queries, split;
  std::optional<ScopeMode> scope;       // unset: closed with a split, else full
  std::optional<EmbedPooling> pooling;  // unset: as `embed` (sentence-transformers config, else config.json)
  Similarity similarity = Similarity::kCos;
  std::string query_prefix, doc_prefix;
  int64_t query_max_length = 0, doc_max_length = 0;  // 0: max_length
  int64_t depth = 100;                               // ranking depth kept per query
  bool progress = true;                              // progress lines on stderr
  bool lossy_utf8 = false;                           // replace invalid UTF-8 in the data with U+FFFD instead of failing
};

// Runs the evaluation and returns the report. Throws modernbert::Error on bad input.
nlohmann::json evaluate(const EvalModel& m, const EvalOptions& o);

// Human-readable table of a report (classification / retrieval / baseline reports alike).
std::string format_report_table(const nlohmann::json& report);

}  // namespace modernbert
