// modernbert baseline: the project's own reference numbers. Classification: majority class and
// TF-IDF + logistic regression; retrieval: BM25. Same report format as `modernbert eval`.
#include <sys/stat.h>

#include <cstdio>
#include <sstream>

#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/baselines.h"
#include "modernbert/error.h"
#include "modernbert/evaluation.h"

namespace modernbert::cli {
namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<double> parse_list(const std::string& s) {
  std::vector<double> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      double v = std::stod(item, &used);
      if (used != item.size() || !(v > 0)) throw std::invalid_argument("");
      out.push_back(v);
    } catch (const std::exception&) {
      throw Error("--c-grid: '" + item + "' is not a positive number");
    }
  }
  if (out.empty()) throw Error("--c-grid is empty");
  return out;
}

int run_baseline(int argc, char** argv) {
  ArgParser a(
      "baseline", "--task classification|retrieval --data DIR [flags]",
      "Baselines computed by the project itself (docs/results.md).\n"
      "  classification: majority class (of train) and TF-IDF (word uni+bigrams, sublinear tf, smooth\n"
      "    idf, l2 norm, min_df) + multinomial logistic regression (L2, deterministic L-BFGS; C chosen\n"
      "    by dev macro-F1 from --c-grid). Data: --data DIR with train/dev/test.jsonl or --train/--dev/--test.\n"
      "  retrieval: BM25 (Lucene form; k1, b) with lower-cased alphanumeric tokens (--tokenize code also\n"
      "    splits identifiers on _ and camelCase). Data: --data DIR --split S or --corpus/--queries.");
  a.option("task", "TASK", "classification | retrieval");
  a.option("data", "DIR", "data set directory (train/dev/test.jsonl, or corpus.jsonl + queries_SPLIT.jsonl)");
  a.option("train", "F", "classification: training JSONL");
  a.option("dev", "F", "classification: dev JSONL");
  a.option("test", "F", "classification: test JSONL");
  a.option("method", "M", "classification: majority | tfidf-lr | all", "all");
  a.option("text-field", "NAME", "field holding the text", "text");
  a.option("label-field", "NAME", "field holding the label", "label");
  a.option("group-field", "NAME", "also report accuracy per value of this field (e.g. group)");
  a.option("positive-label", "NAME", "report F1 of this class (default: id 1 when binary)");
  a.option("ngram", "N", "TF-IDF: 1 = unigrams, 2 = unigrams + bigrams", "2");
  a.option("min-df", "N", "TF-IDF: minimum document frequency in train", "2");
  a.flag("no-sublinear-tf", "TF-IDF: raw term counts instead of 1 + ln(tf)");
  a.option("C", "X", "logistic regression: inverse L2 strength (sklearn's C)", "10");
  a.option("c-grid", "LIST", "logistic regression: comma list of C values; the best dev macro-F1 wins");
  a.option("max-iter", "N", "logistic regression: L-BFGS iterations", "300");
  a.option("corpus", "F", "retrieval: corpus JSONL");
  a.option("queries", "F", "retrieval: queries JSONL");
  a.option("split", "S", "retrieval: the queries' split (closed corpus)");
  a.option("scope", "S", "retrieval: closed | full | both", "both");
  a.option("k1", "X", "BM25 k1", "0.9");
  a.option("b", "X", "BM25 b", "0.4");
  a.option("tokenize", "MODE", "BM25 tokens: plain | code", "plain");
  a.option("format", "FMT", "json (JSON on stdout, table on stderr) | table", "json");
  a.option("output", "F", "write the JSON report here instead of stdout");
  a.flag("lossy-utf8", "replace invalid UTF-8 in the data with U+FFFD instead of failing");
  a.flag("quiet", "nothing on stderr (no progress lines, no table)");
  if (!a.parse(argc, argv)) return 0;
  const std::string task = a.require("task"), fmt = a.get("format");
  if (fmt != "json" && fmt != "table") throw Error("--format must be json or table");
  nlohmann::json report;
  if (task == "classification") {
    ClassificationBaselineOptions o;
    if (a.has("data")) {
      const std::string d = a.get("data");
      if (!is_dir(d)) throw Error("--data must be a directory with train.jsonl, dev.jsonl, test.jsonl");
      o.train = d + "/train.jsonl";
      o.dev = d + "/dev.jsonl";
      o.test = d + "/test.jsonl";
    }
    if (a.has("train")) o.train = a.get("train");
    if (a.has("dev")) o.dev = a.get("dev");
    if (a.has("test")) o.test = a.get("test");
    o.text_field = a.get("text-field");
    o.label_field = a.get("label-field");
    o.group_field = a.get_or("group-field", "");
    o.positive_label = a.get_or("positive-label", "");
    o.method = parse_baseline_method(a.get("method"));
    o.tfidf.max_ngram = a.get_int("ngram");
    o.tfidf.min_df = a.get_int("min-df");
    if (o.tfidf.min_df < 1) throw Error("--min-df must be at least 1");
    o.tfidf.sublinear_tf = !a.has("no-sublinear-tf");
    o.logreg.C = a.get_double("C");
    o.logreg.max_iter = a.get_int("max-iter");
    if (a.has("c-grid")) o.c_grid = parse_list(a.get("c-grid"));
    o.progress = !a.has("quiet");
    o.lossy_utf8 = a.has("lossy-utf8");
    report = run_classification_baselines(o);
  } else if (task == "retrieval") {
    RetrievalBaselineOptions o;
    o.split = a.get_or("split", "");
    if (a.has("data")) {
      const std::string d = a.get("data");
      if (!is_dir(d)) throw Error("--data must be a directory with corpus.jsonl and queries_SPLIT.jsonl");
      if (o.split.empty()) throw Error("--data DIR needs --split");
      o.corpus = d + "/corpus.jsonl";
      o.queries = d + "/queries_" + o.split + ".jsonl";
    }
    if (a.has("corpus")) o.corpus = a.get("corpus");
    if (a.has("queries")) o.queries = a.get("queries");
    const std::string scope = a.get("scope");
    if (scope != "full" && o.split.empty()) throw Error("--scope " + scope + " needs --split");
    o.scope = parse_scope_mode(scope);
    o.bm25.k1 = a.get_double("k1");
    o.bm25.b = a.get_double("b");
    const std::string tk = a.get("tokenize");
    if (tk != "plain" && tk != "code") throw Error("--tokenize must be plain or code");
    o.bm25.code = tk == "code";
    o.lossy_utf8 = a.has("lossy-utf8");
    report = run_bm25_baseline(o);
  } else {
    throw Error("--task must be classification or retrieval, got '" + task + "'");
  }
  const std::string table = format_report_table(report);
  if (fmt == "table") {
    write_output("-", table);
    if (a.has("output")) write_output(a.get("output"), report.dump(2) + "\n");
  } else {
    if (!a.has("quiet")) std::fputs(table.c_str(), stderr);
    write_output(a.get_or("output", "-"), report.dump(2) + "\n");
  }
  return 0;
}

CommandRegistrar reg({"baseline", "project baselines: majority / TF-IDF + logistic regression, BM25", run_baseline});

}  // namespace
}  // namespace modernbert::cli
