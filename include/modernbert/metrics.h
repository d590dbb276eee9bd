// Evaluation metrics, each as the reference library computes it (sklearn, scipy, seqeval, BEIR):
// classification (accuracy, macro-F1, MCC), multi-label, regression correlations, entity spans, and
// ranking metrics with binary relevance. docs/evaluation.md describes the conventions.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace modernbert {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;  // 0 where undefined (sklearn zero_division=0)
  int64_t support = 0;                       // gold count
  int64_t predicted = 0;                     // predicted count
};

struct ClassificationMetrics {
  int64_t n = 0, num_classes = 0;
  double accuracy = 0;
  // Unweighted mean of per-class F1 over the classes that occur in gold or predictions (sklearn
  // average="macro" with labels = unique(gold ∪ pred)).
  double macro_f1 = 0;
  double mcc = 0;  // Matthews (binary) = Gorodkin's R_K (multi-class); 0 when undefined
  std::vector<ClassMetrics> per_class;
  std::vector<int64_t> confusion;  // [K*K], row = gold, column = predicted
};

// gold/pred are class ids in [0, num_classes); throws modernbert::Error otherwise or when the
// lengths differ or are 0.
ClassificationMetrics classification_metrics(const std::vector<int64_t>& gold, const std::vector<int64_t>& pred,
                                             int64_t num_classes);
// Gorodkin (2004) R_K from a K×K confusion matrix (rows gold): (c·s − Σ t_k p_k) /
// sqrt((s² − Σ p_k²)(s² − Σ t_k²)); 0 when a factor of the denominator is 0 (sklearn).
double matthews_corrcoef(const std::vector<int64_t>& confusion, int64_t num_classes);

// Pearson r; NaN when either side is constant or n < 2.
double pearson(const std::vector<double>& x, const std::vector<double>& y);
// 1-based ranks; tied values get the mean of the ranks they span (scipy rankdata "average").
std::vector<double> average_ranks(const std::vector<double>& x);
// Spearman ρ = Pearson over average ranks (ties handled as scipy.stats.spearmanr).
double spearman(const std::vector<double>& x, const std::vector<double>& y);

struct MultiLabelMetrics {
  int64_t n = 0, num_labels = 0;
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;
  double macro_f1 = 0;         // mean over ALL labels; a label never gold nor predicted counts 0 (sklearn)
  double subset_accuracy = 0;  // exact match of the whole label set
  double hamming_loss = 0;
  std::vector<ClassMetrics> per_label;
};
// gold/pred: row-major [n, num_labels] of 0/1.
MultiLabelMetrics multilabel_metrics(const std::vector<uint8_t>& gold, const std::vector<uint8_t>& pred,
                                     int64_t num_labels);

// An entity span over tag positions [begin, end] (inclusive, as seqeval).
struct EntitySpan {
  std::string type;
  int64_t begin = 0, end = 0;
  bool operator==(const EntitySpan& o) const { return type == o.type && begin == o.begin && end == o.end; }
  bool operator<(const EntitySpan& o) const;
};
// seqeval's default (non-strict) chunking of IOB/IOB2/IOBES tags: "B-PER", "I-PER", "O", ...;
// an I- after O or after another type starts a new chunk; a tag without "-" (e.g. "O") is outside.
std::vector<EntitySpan> extract_entities(const std::vector<std::string>& tags);

struct EntityMetrics {
  int64_t sentences = 0, tokens = 0;
  double token_accuracy = 0;  // over all tag positions
  int64_t gold_entities = 0, predicted_entities = 0, correct_entities = 0;
  double precision = 0, recall = 0, f1 = 0;  // micro over entities, exact (type, begin, end) match
  double macro_f1 = 0;                       // mean over entity types of per-type F1
  std::map<std::string, ClassMetrics> per_type;
};
EntityMetrics entity_metrics(const std::vector<std::vector<std::string>>& gold,
                             const std::vector<std::vector<std::string>>& pred);

// Ranking metrics with binary relevance for one query. `ranking` = document indices, best first;
// `relevant` = the relevant document indices (non-empty).
double ndcg_at_k(const std::vector<int64_t>& ranking, const std::vector<int64_t>& relevant, int64_t k);
double mrr_at_k(const std::vector<int64_t>& ranking, const std::vector<int64_t>& relevant, int64_t k);
double recall_at_k(const std::vector<int64_t>& ranking, const std::vector<int64_t>& relevant, int64_t k);

struct RankingMetrics {
  int64_t queries = 0;                  // given
  int64_t evaluated = 0;                // with at least one relevant document in the searched corpus
  int64_t skipped_no_relevant = 0;      // excluded from the means (counted, never scored as 0)
  int64_t positives_not_in_corpus = 0;  // positive ids (of evaluated queries) absent from the corpus
  double ndcg10 = 0, mrr10 = 0, recall1 = 0, recall10 = 0, recall100 = 0;
};
// relevant[q] empty = the query is skipped (counted in skipped_no_relevant).
RankingMetrics ranking_metrics(const std::vector<std::vector<int64_t>>& rankings,
                               const std::vector<std::vector<int64_t>>& relevant);

// JSON blocks of the metrics as reports carry them (evaluate() and the baselines).
nlohmann::json classification_report_json(const ClassificationMetrics& m, const std::vector<std::string>& names,
                                          std::optional<int64_t> positive);
nlohmann::json ranking_report_json(const RankingMetrics& m);

}  // namespace modernbert
