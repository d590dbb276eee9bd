// Evaluation: metric functions, reading labelled / retrieval data sets, running a checkpoint over
// them (classification, multi-label, regression, token classification, single-vector and
// ColBERT retrieval) and the project's own baselines (majority class, TF-IDF + logistic
// regression, BM25). Every report is one nlohmann::json object; format_report_table() renders it
// for people. docs/evaluation.md describes the formats and conventions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modernbert/config.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/tasks.h"
#include "modernbert/tokenizer.h"

namespace modernbert {

// ==== Metrics ====================================================================================

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
  double macro_f1 = 0;          // mean over ALL labels; a label never gold nor predicted counts 0 (sklearn)
  double subset_accuracy = 0;   // exact match of the whole label set
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
  double macro_f1 = 0;                        // mean over entity types of per-type F1
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
  int64_t queries = 0;                // given
  int64_t evaluated = 0;              // with at least one relevant document in the searched corpus
  int64_t skipped_no_relevant = 0;    // excluded from the means (counted, never scored as 0)
  int64_t positives_not_in_corpus = 0;  // positive ids (of evaluated queries) absent from the corpus
  double ndcg10 = 0, mrr10 = 0, recall1 = 0, recall10 = 0, recall100 = 0;
};
// relevant[q] empty = the query is skipped (counted in skipped_no_relevant).
RankingMetrics ranking_metrics(const std::vector<std::vector<int64_t>>& rankings,
                               const std::vector<std::vector<int64_t>>& relevant);

// Indices of the k largest scores, best first; ties broken by the lower index.
std::vector<int64_t> top_k_indices(const float* scores, int64_t n, int64_t k);

// Exact inner-product search: scores = Q [nq, dim] · C [nc, dim]ᵀ (cblas_sgemm, blocked over
// queries), top-k per query.
std::vector<std::vector<int64_t>> exact_search(const float* queries, int64_t nq, const float* corpus, int64_t nc,
                                               int64_t dim, int64_t k);

// Multi-vector (ColBERT) search: query q has vectors q_vecs[q_off[q] .. q_off[q+1]), document d
// d_vecs[d_off[d] .. d_off[d+1]) (rows of `dim` floats). Score = MaxSim (as modernbert::maxsim),
// computed exactly with sgemm over blocks of document tokens. Returns top-k per query; `scores`
// (optional) receives the full [nq, nd] score matrix.
std::vector<std::vector<int64_t>> maxsim_search(const std::vector<float>& q_vecs, const std::vector<int64_t>& q_off,
                                                const std::vector<float>& d_vecs, const std::vector<int64_t>& d_off,
                                                int64_t dim, int64_t k, std::vector<float>* scores = nullptr);

// ==== Data =======================================================================================

// One JSONL record with its text(s). Lines are 1-based.
struct Example {
  size_t line = 0;
  std::string text, text_pair;
  bool has_pair = false;
  nlohmann::json record;
};
// Reads every non-blank line as a JSON object with a string `text_field` (and optional
// `pair_field`). Throws naming file:line for bad lines; an empty file is an error. lossy_utf8:
// invalid UTF-8 is replaced by U+FFFD instead of failing (for_each_jsonl), here and below.
std::vector<Example> read_examples(const std::string& path, const std::string& text_field = "text",
                                   const std::string& pair_field = "text_pair", bool lossy_utf8 = false);

struct RetrievalDoc {
  std::string id, text, split;
};
struct RetrievalQuery {
  std::string qid, query;
  std::vector<std::string> positive_ids;
};
// corpus.jsonl: {"id", "text"[, "split"]}; queries: {"qid", "query", "positive_ids": [...]}.
// Duplicate ids are errors; empty files are errors.
std::vector<RetrievalDoc> read_corpus(const std::string& path, bool lossy_utf8 = false);
std::vector<RetrievalQuery> read_queries(const std::string& path, bool lossy_utf8 = false);

// Which documents a protocol searches: "closed" = the documents whose split equals `split`,
// "full" = all of them.
struct SearchScope {
  std::string name;              // "closed:test" | "full"
  std::vector<int64_t> doc_rows; // indices into the corpus
};
// scope: "closed" | "full" | "both" (closed needs a split).
std::vector<SearchScope> make_scopes(const std::vector<RetrievalDoc>& corpus, const std::string& scope,
                                     const std::string& split);

// Ranks (indices into scope.doc_rows order) -> metrics, given the queries' positive ids. Positives
// absent from the scope are counted; a query with none present is skipped and counted.
// Returns the JSON block of one scope.
nlohmann::json score_rankings(const std::vector<RetrievalDoc>& corpus, const SearchScope& scope,
                              const std::vector<RetrievalQuery>& queries,
                              const std::vector<std::vector<int64_t>>& rankings);

// Label names of a checkpoint's classifier: id2label when present, else LABEL_i.
struct LabelSpace {
  std::vector<std::string> names;
  std::map<std::string, int64_t> index;  // name -> id (also label2id's spellings)
  bool named = false;                    // id2label has names other than LABEL_i
};
LabelSpace label_space(const ModelConfig& cfg, int64_t num_labels);
// A label value from the data: an integer id (must be < names.size()) or a name that must be in
// the label space. Throws naming `where` and the valid labels.
int64_t resolve_label(const nlohmann::json& v, const LabelSpace& ls, const std::string& where);

// ==== Evaluating a checkpoint ====================================================================

struct EvalModel {
  const LoadedModel* model = nullptr;
  const Tokenizer* tokenizer = nullptr;
  Encoder* encoder = nullptr;
};

struct EvalOptions {
  std::string task;               // classification | multilabel | regression | token-classification | retrieval | colbert
  std::string data;               // labelled JSONL (not retrieval)
  std::string text_field = "text", pair_field = "text_pair", label_field = "label";
  std::string group_field;        // classification: also report accuracy per value of this field
  std::string positive_label;     // classification: F1 of this class (default: id 1 when binary)
  int64_t max_length = 0;         // truncate to this many tokens (0 = max_position_embeddings, error beyond)
  int64_t max_batch_tokens = 16384;
  double threshold = 0.5;         // multi-label decision threshold on sigmoid scores
  std::string predictions_path;   // optional JSONL of per-example predictions
  // Retrieval.
  std::string corpus, queries, split, scope;  // scope: closed | full | both
  EmbedPooling pooling = EmbedPooling::kMean;
  bool pooling_set = false;
  std::string similarity = "cos";  // cos | dot
  std::string query_prefix, doc_prefix;
  int64_t query_max_length = 0, doc_max_length = 0;  // 0: max_length
  int64_t depth = 100;             // ranking depth kept per query
  bool progress = true;            // progress lines on stderr
  bool lossy_utf8 = false;         // replace invalid UTF-8 in the data with U+FFFD instead of failing
};

// Runs the evaluation and returns the report. Throws modernbert::Error on bad input.
nlohmann::json evaluate(const EvalModel& m, const EvalOptions& o);

// Human-readable table of a report (classification / retrieval / baseline reports alike).
std::string format_report_table(const nlohmann::json& report);

// JSON blocks shared by evaluate() and the baselines.
nlohmann::json classification_report_json(const ClassificationMetrics& m, const std::vector<std::string>& names,
                                          std::optional<int64_t> positive);
nlohmann::json ranking_report_json(const RankingMetrics& m);

// ==== Baselines ==================================================================================

// BM25 tokens: lower-cased runs of ASCII letters/digits (non-ASCII bytes count as letters, which
// keeps UTF-8 words whole). With `code`, identifiers (runs of [A-Za-z0-9_]) are emitted whole and,
// when they have several parts, also split on '_' and camelCase:
// "getHTTPResponse_code" -> "gethttpresponse_code", "get", "http", "response", "code".
std::vector<std::string> simple_tokenize(const std::string& text, bool code);

// sklearn-style word tokens for TF-IDF: lower-cased runs of 2+ word characters ([A-Za-z0-9_] and
// non-ASCII bytes), as the default token_pattern (?u)\b\w\w+\b.
std::vector<std::string> tfidf_tokenize(const std::string& text);

struct TfidfOptions {
  int64_t max_ngram = 2;   // unigrams (1) or unigrams + bigrams (2)
  int64_t min_df = 2;      // keep terms in at least this many training documents
  bool sublinear_tf = true;  // 1 + ln(tf)
};
// Sparse CSR rows, l2-normalised.
struct SparseMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> indptr{0};
  std::vector<int32_t> indices;
  std::vector<float> values;
};
class TfidfVectorizer {
 public:
  explicit TfidfVectorizer(TfidfOptions o = {}) : o_(o) {}
  // Vocabulary and idf from the training texts (smooth idf: ln((1+n)/(1+df)) + 1, as sklearn).
  void fit(const std::vector<std::string>& texts);
  SparseMatrix transform(const std::vector<std::string>& texts) const;
  int64_t vocabulary_size() const { return static_cast<int64_t>(idf_.size()); }

 private:
  std::vector<std::string> terms(const std::string& text) const;
  TfidfOptions o_;
  std::map<std::string, int32_t> vocab_;
  std::vector<float> idf_;
};

struct LogRegOptions {
  double C = 10.0;          // inverse regularisation as sklearn: minimise C·Σ CE + ½‖W‖² (bias free)
  int64_t max_iter = 300;   // L-BFGS iterations
  double tol = 1e-6;        // stop when ‖g‖∞ ≤ tol·max(1, ‖g0‖∞) or the relative loss change < tol
  int64_t history = 10;
};
// Multinomial logistic regression trained with deterministic full-batch L-BFGS (zero init, fixed
// summation order: same data -> same weights).
class LogisticRegression {
 public:
  void fit(const SparseMatrix& X, const std::vector<int64_t>& y, int64_t num_classes, const LogRegOptions& o);
  std::vector<int64_t> predict(const SparseMatrix& X) const;
  int64_t iterations() const { return iters_; }
  double final_loss() const { return loss_; }

 private:
  int64_t K_ = 0, D_ = 0;
  std::vector<double> w_;  // [K, D+1] (last column = bias)
  int64_t iters_ = 0;
  double loss_ = 0;
};

// BM25 (Lucene/Pyserini form): idf = ln(1 + (N − df + 0.5)/(df + 0.5));
// tf·(k1+1) / (tf + k1·(1 − b + b·|d|/avgdl)).
struct Bm25Options {
  double k1 = 0.9, b = 0.4;
  bool code = false;  // identifier splitting (simple_tokenize code mode)
};
class Bm25Index {
 public:
  Bm25Index(const std::vector<std::string>& docs, const Bm25Options& o);
  // Scores of every document for the query.
  std::vector<float> scores(const std::string& query) const;
  int64_t size() const { return n_docs_; }

 private:
  Bm25Options o_;
  int64_t n_docs_ = 0;
  double avgdl_ = 0;
  std::vector<float> doclen_;
  std::map<std::string, std::vector<std::pair<int32_t, int32_t>>> postings_;  // term -> (doc, tf)
};

struct ClassificationBaselineOptions {
  std::string train, dev, test;  // JSONL with text + label (int) [+ label_name]
  std::string text_field = "text", label_field = "label", group_field, positive_label;
  std::string method = "all";    // majority | tfidf-lr | all
  TfidfOptions tfidf;
  LogRegOptions logreg;
  std::vector<double> c_grid;    // non-empty: pick C by dev macro-F1 from these
  bool progress = true;
  bool lossy_utf8 = false;       // replace invalid UTF-8 in the data with U+FFFD instead of failing
};
nlohmann::json run_classification_baselines(const ClassificationBaselineOptions& o);

struct RetrievalBaselineOptions {
  std::string corpus, queries, split, scope = "both";
  Bm25Options bm25;
  int64_t depth = 100;
  bool lossy_utf8 = false;       // replace invalid UTF-8 in the data with U+FFFD instead of failing
};
nlohmann::json run_bm25_baseline(const RetrievalBaselineOptions& o);

}  // namespace modernbert
