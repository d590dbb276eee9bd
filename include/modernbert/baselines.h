// The project's own baselines: majority class and TF-IDF + logistic regression for classification,
// BM25 for retrieval. Their reports have the same format as evaluate()'s (evaluation.h).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "modernbert/eval_data.h"

namespace modernbert {

// BM25 tokens: lower-cased runs of ASCII letters/digits (non-ASCII bytes count as letters, which
// keeps UTF-8 words whole). With `code`, identifiers (runs of [A-Za-z0-9_]) are emitted whole and,
// when they have several parts, also split on '_' and camelCase:
// "getHTTPResponse_code" -> "gethttpresponse_code", "get", "http", "response", "code".
std::vector<std::string> simple_tokenize(const std::string& text, bool code);

// sklearn-style word tokens for TF-IDF: lower-cased runs of 2+ word characters ([A-Za-z0-9_] and
// non-ASCII bytes), as the default token_pattern (?u)\b\w\w+\b.
std::vector<std::string> tfidf_tokenize(const std::string& text);

struct TfidfOptions {
  int64_t max_ngram = 2;     // unigrams (1) or unigrams + bigrams (2)
  int64_t min_df = 2;        // keep terms in at least this many training documents
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
  double C = 10.0;         // inverse regularisation as sklearn: minimise C·Σ CE + ½‖W‖² (bias free)
  int64_t max_iter = 300;  // L-BFGS iterations
  double tol = 1e-6;       // stop when ‖g‖∞ ≤ tol·max(1, ‖g0‖∞) or the relative loss change < tol
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

enum class BaselineMethod { kMajority, kTfidfLr, kAll };
// "majority" | "tfidf-lr" | "all"; throws "baseline: --method must be majority, tfidf-lr or all, got 'X'".
BaselineMethod parse_baseline_method(const std::string& s);

struct ClassificationBaselineOptions {
  std::string train, dev, test;  // JSONL with text + label (int) [+ label_name]
  std::string text_field = "text", label_field = "label", group_field, positive_label;
  BaselineMethod method = BaselineMethod::kAll;
  TfidfOptions tfidf;
  LogRegOptions logreg;
  std::vector<double> c_grid;  // non-empty: pick C by dev macro-F1 from these
  bool progress = true;
  bool lossy_utf8 = false;  // replace invalid UTF-8 in the data with U+FFFD instead of failing
};
nlohmann::json run_classification_baselines(const ClassificationBaselineOptions& o);

struct RetrievalBaselineOptions {
  std::string corpus, queries, split;
  std::optional<ScopeMode> scope = ScopeMode::kBoth;  // unset: closed with a split, else full
  Bm25Options bm25;
  int64_t depth = 100;
  bool lossy_utf8 = false;  // replace invalid UTF-8 in the data with U+FFFD instead of failing
};
nlohmann::json run_bm25_baseline(const RetrievalBaselineOptions& o);

}  // namespace modernbert
