// format_report_table(): the human-readable table of any report (evaluate(), the baselines).
#include <algorithm>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "modernbert/evaluation.h"

namespace modernbert {

using nlohmann::json;

namespace {

// ---- tables ------------------------------------------------------------------------------------

std::string fmt(const json& v, int digits = 4) {
  if (v.is_null()) return "n/a";
  if (v.is_number_float()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", digits, v.get<double>());
    return buf;
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void table_row(std::ostringstream& os, const std::vector<std::string>& cells, const std::vector<size_t>& width) {
  for (size_t i = 0; i < cells.size(); ++i) {
    std::string c = cells[i];
    if (c.size() < width[i])
      c = (i == 0 ? c + std::string(width[i] - c.size(), ' ') : std::string(width[i] - c.size(), ' ') + c);
    os << (i ? "  " : "") << c;
  }
  os << "\n";
}

std::string render(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::ostringstream os;
  for (size_t k = 0; k < rows.size(); ++k) {
    table_row(os, rows[k], width);
    if (k == 0) {
      size_t total = 0;
      for (size_t w : width) total += w + 2;
      os << std::string(total > 2 ? total - 2 : 0, '-') << "\n";
    }
  }
  return os.str();
}

void add_scope_rows(std::vector<std::vector<std::string>>& rows, const std::string& prefix, const json& scopes) {
  for (const auto& [name, s] : scopes.items())
    rows.push_back({prefix + name, fmt(s.value("corpus_size", json())), fmt(s["evaluated"]),
                    fmt(s["skipped_no_relevant"]), fmt(s["ndcg@10"]), fmt(s["mrr@10"]), fmt(s["recall@1"]),
                    fmt(s["recall@10"]), fmt(s["recall@100"])});
}

void add_classification_rows(std::vector<std::vector<std::string>>& rows, const std::string& name, const json& r) {
  rows.push_back({name, fmt(r["n"]), fmt(r["accuracy"]), fmt(r["macro_f1"]), fmt(r["mcc"]),
                  r.contains("positive_f1") ? fmt(r["positive_f1"]) : "-"});
}

}  // namespace

std::string format_report_table(const json& r) {
  std::ostringstream os;
  const std::string task = r.value("task", "");
  if (r.contains("baselines")) {  // classification baselines: method × split
    std::vector<std::vector<std::string>> rows{{"method / split", "n", "accuracy", "macro-F1", "MCC", "pos-F1"}};
    for (const auto& [method, b] : r["baselines"].items())
      for (const char* split : {"dev", "test"})
        if (b.contains(split)) add_classification_rows(rows, method + " / " + split, b[split]);
    os << render(rows);
    for (const auto& [method, b] : r["baselines"].items())
      for (const char* split : {"dev", "test"})
        if (b.contains(split) && b[split].contains("groups"))
          for (const auto& [g, v] : b[split]["groups"].items())
            os << method << " / " << split << ": accuracy on " << g << " = " << fmt(v["accuracy"])
               << " (n=" << fmt(v["n"]) << ")\n";
    return os.str();
  }
  if (r.contains("scopes")) {
    std::vector<std::vector<std::string>> rows{
        {"corpus", "docs", "queries", "skipped", "nDCG@10", "MRR@10", "R@1", "R@10", "R@100"}};
    add_scope_rows(rows, "", r["scopes"]);
    os << render(rows);
    return os.str();
  }
  if (task == "classification") {
    os << "n=" << fmt(r["n"]) << "  accuracy=" << fmt(r["accuracy"]) << "  macro-F1=" << fmt(r["macro_f1"])
       << "  MCC=" << fmt(r["mcc"]);
    if (r.contains("positive_f1")) os << "  F1(" << fmt(r["positive_label"]) << ")=" << fmt(r["positive_f1"]);
    os << "\n";
    std::vector<std::vector<std::string>> rows{{"label", "precision", "recall", "F1", "support"}};
    for (const auto& [name, c] : r["per_class"].items())
      rows.push_back({name, fmt(c["precision"]), fmt(c["recall"]), fmt(c["f1"]), fmt(c["support"])});
    os << render(rows);
    if (r.contains("groups"))
      for (const auto& [g, v] : r["groups"].items())
        os << "group " << g << ": accuracy=" << fmt(v["accuracy"]) << " (n=" << fmt(v["n"]) << ")\n";
    return os.str();
  }
  if (task == "multilabel") {
    os << "n=" << fmt(r["n"]) << "  micro-F1=" << fmt(r["micro_f1"]) << "  macro-F1=" << fmt(r["macro_f1"])
       << "  subset-accuracy=" << fmt(r["subset_accuracy"]) << "  (threshold " << fmt(r["threshold"], 2) << ")\n";
    return os.str();
  }
  if (task == "regression") {
    os << "n=" << fmt(r["n"]) << "  Pearson=" << fmt(r["pearson"]) << "  Spearman=" << fmt(r["spearman"]);
    if (r.contains("mse")) os << "  MSE=" << fmt(r["mse"]);
    os << "\n";
    return os.str();
  }
  if (task == "token-classification") {
    os << "sentences=" << fmt(r["n"]) << "  words=" << fmt(r["words"])
       << "  token-accuracy=" << fmt(r["token_accuracy"]) << "  entity P/R/F1=" << fmt(r["entity_precision"]) << "/"
       << fmt(r["entity_recall"]) << "/" << fmt(r["entity_f1"]) << "\n";
    std::vector<std::vector<std::string>> rows{{"entity type", "precision", "recall", "F1", "support"}};
    for (const auto& [name, c] : r["per_type"].items())
      rows.push_back({name, fmt(c["precision"]), fmt(c["recall"]), fmt(c["f1"]), fmt(c["support"])});
    os << render(rows);
    if (r.contains("note")) os << "note: " << fmt(r["note"]) << "\n";
    return os.str();
  }
  return r.dump(2) + "\n";
}

}  // namespace modernbert
