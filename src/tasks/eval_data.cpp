// Reading evaluation data (labelled JSONL, retrieval corpus + queries), label spaces of a
// checkpoint, search scopes, and the JSON blocks shared by evaluate() and the baselines.
#include "modernbert/eval_data.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <unordered_map>

#include "modernbert/error.h"
#include "modernbert/metrics.h"
#include "tasks/jsonl.h"

namespace modernbert {

using nlohmann::json;

namespace {

std::string need_string(const json& j, const std::string& field, const std::string& where) {
  if (!j.contains(field)) throw Error(where + ": missing \"" + field + "\"");
  if (!j[field].is_string()) throw Error(where + ": \"" + field + "\" must be a string");
  return j[field].get<std::string>();
}

double finite_or_null(double v) { return v; }

}  // namespace

std::vector<Example> read_examples(const std::string& path, const std::string& text_field,
                                   const std::string& pair_field, bool lossy_utf8) {
  std::vector<Example> out;
  for_each_jsonl(path, [&](size_t line, json& j) {
    const std::string where = path + ":" + std::to_string(line);
    Example e;
    e.line = line;
    e.text = need_string(j, text_field, where);
    if (!pair_field.empty() && j.contains(pair_field) && !j[pair_field].is_null()) {
      e.text_pair = need_string(j, pair_field, where);
      e.has_pair = true;
    }
    e.record = std::move(j);
    out.push_back(std::move(e));
  }, lossy_utf8);
  return out;
}

std::vector<RetrievalDoc> read_corpus(const std::string& path, bool lossy_utf8) {
  std::vector<RetrievalDoc> out;
  std::set<std::string> seen;
  for_each_jsonl(path, [&](size_t line, json& j) {
    const std::string where = path + ":" + std::to_string(line);
    RetrievalDoc d;
    d.id = need_string(j, "id", where);
    d.text = need_string(j, "text", where);
    if (j.contains("split") && j["split"].is_string()) d.split = j["split"].get<std::string>();
    if (!seen.insert(d.id).second) throw Error(where + ": duplicate document id '" + d.id + "'");
    out.push_back(std::move(d));
  }, lossy_utf8);
  return out;
}

std::vector<RetrievalQuery> read_queries(const std::string& path, bool lossy_utf8) {
  std::vector<RetrievalQuery> out;
  std::set<std::string> seen;
  for_each_jsonl(path, [&](size_t line, json& j) {
    const std::string where = path + ":" + std::to_string(line);
    RetrievalQuery q;
    q.qid = need_string(j, "qid", where);
    q.query = need_string(j, "query", where);
    if (!j.contains("positive_ids") || !j["positive_ids"].is_array())
      throw Error(where + ": \"positive_ids\" must be a list of document ids");
    for (const auto& p : j["positive_ids"]) {
      if (!p.is_string()) throw Error(where + ": \"positive_ids\" must hold strings");
      q.positive_ids.push_back(p.get<std::string>());
    }
    if (!seen.insert(q.qid).second) throw Error(where + ": duplicate query id '" + q.qid + "'");
    out.push_back(std::move(q));
  }, lossy_utf8);
  return out;
}

ScopeMode parse_scope_mode(const std::string& s) {
  if (s == "closed") return ScopeMode::kClosed;
  if (s == "full") return ScopeMode::kFull;
  if (s == "both") return ScopeMode::kBoth;
  throw Error("scope must be closed, full or both, got '" + s + "'");
}

std::vector<SearchScope> make_scopes(const std::vector<RetrievalDoc>& corpus, ScopeMode mode,
                                     const std::string& split) {
  std::vector<SearchScope> out;
  if (mode == ScopeMode::kClosed || mode == ScopeMode::kBoth) {
    if (split.empty()) throw Error("the closed-corpus protocol needs --split (the documents of the queries' split)");
    SearchScope s{"closed:" + split, {}};
    for (size_t i = 0; i < corpus.size(); ++i)
      if (corpus[i].split == split) s.doc_rows.push_back(static_cast<int64_t>(i));
    if (s.doc_rows.empty()) throw Error("no corpus document has split \"" + split + "\"");
    out.push_back(std::move(s));
  }
  if (mode == ScopeMode::kFull || mode == ScopeMode::kBoth) {
    SearchScope s{"full", {}};
    for (size_t i = 0; i < corpus.size(); ++i) s.doc_rows.push_back(static_cast<int64_t>(i));
    out.push_back(std::move(s));
  }
  return out;
}

json ranking_report_json(const RankingMetrics& m) {
  return json{{"queries", m.queries},
              {"evaluated", m.evaluated},
              {"skipped_no_relevant", m.skipped_no_relevant},
              {"positives_not_in_corpus", m.positives_not_in_corpus},
              {"ndcg@10", finite_or_null(m.ndcg10)},
              {"mrr@10", finite_or_null(m.mrr10)},
              {"recall@1", finite_or_null(m.recall1)},
              {"recall@10", finite_or_null(m.recall10)},
              {"recall@100", finite_or_null(m.recall100)}};
}

json score_rankings(const std::vector<RetrievalDoc>& corpus, const SearchScope& scope,
                    const std::vector<RetrievalQuery>& queries, const std::vector<std::vector<int64_t>>& rankings) {
  if (rankings.size() != queries.size()) throw Error("score_rankings: one ranking per query expected");
  std::unordered_map<std::string, int64_t> pos;  // doc id -> position in the scope
  for (size_t i = 0; i < scope.doc_rows.size(); ++i)
    pos[corpus[static_cast<size_t>(scope.doc_rows[i])].id] = static_cast<int64_t>(i);
  std::vector<std::vector<int64_t>> relevant(queries.size());
  int64_t missing = 0;
  std::vector<std::string> skipped_ids;
  for (size_t q = 0; q < queries.size(); ++q) {
    int64_t miss_q = 0;
    for (const auto& id : queries[q].positive_ids) {
      auto it = pos.find(id);
      if (it == pos.end()) ++miss_q;
      else relevant[q].push_back(it->second);
    }
    if (relevant[q].empty()) skipped_ids.push_back(queries[q].qid);
    else missing += miss_q;
  }
  RankingMetrics m = ranking_metrics(rankings, relevant);
  m.positives_not_in_corpus = missing;
  json j = ranking_report_json(m);
  j["corpus_size"] = scope.doc_rows.size();
  if (!skipped_ids.empty()) {
    json ex = json::array();
    for (size_t i = 0; i < skipped_ids.size() && i < 10; ++i) ex.push_back(skipped_ids[i]);
    j["skipped_examples"] = ex;
  }
  return j;
}

LabelSpace label_space(const ModelConfig& cfg, int64_t num_labels) {
  LabelSpace ls;
  for (int64_t i = 0; i < num_labels; ++i) {
    auto it = cfg.id2label.find(i);
    std::string name = it == cfg.id2label.end() ? "LABEL_" + std::to_string(i) : it->second;
    if (name != "LABEL_" + std::to_string(i)) ls.named = true;
    ls.index[name] = i;
    ls.names.push_back(name);
  }
  for (const auto& [name, id] : cfg.label2id)
    if (id >= 0 && id < num_labels && !ls.index.count(name)) ls.index[name] = id;
  return ls;
}

int64_t resolve_label(const json& v, const LabelSpace& ls, const std::string& where) {
  const int64_t K = static_cast<int64_t>(ls.names.size());
  auto known = [&] {
    std::string s;
    for (int64_t i = 0; i < K && i < 50; ++i) s += (i ? ", " : "") + std::to_string(i) + "=" + ls.names[static_cast<size_t>(i)];
    if (K > 50) s += ", ...";
    return s;
  };
  if (v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())) {
    // Range-check a float id before converting it: casting 1e300 to int64 is undefined (found by
    // fuzz_eval_jsonl).
    const bool fits = v.is_number_integer() ? v.get<int64_t>() >= 0 && v.get<int64_t>() < K
                                            : v.get<double>() >= 0 && v.get<double>() < static_cast<double>(K);
    if (!fits)
      throw Error(where + ": label id " + v.dump() + " does not fit the checkpoint's head (" + std::to_string(K) +
                  " labels: " + known() + ")");
    return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
  }
  if (v.is_string()) {
    auto it = ls.index.find(v.get<std::string>());
    if (it == ls.index.end())
      throw Error(where + ": label \"" + v.get<std::string>() + "\" is not in the checkpoint's id2label (" + known() + ")");
    return it->second;
  }
  throw Error(where + ": a label must be an integer id or a label name, found " + v.dump());
}

json classification_report_json(const ClassificationMetrics& m, const std::vector<std::string>& names,
                                std::optional<int64_t> positive) {
  json per = json::object();
  for (int64_t k = 0; k < m.num_classes; ++k) {
    const ClassMetrics& c = m.per_class[static_cast<size_t>(k)];
    per[names.at(static_cast<size_t>(k))] = {{"precision", c.precision}, {"recall", c.recall}, {"f1", c.f1},
                                             {"support", c.support}, {"predicted", c.predicted}};
  }
  json conf = json::array();
  for (int64_t i = 0; i < m.num_classes; ++i) {
    json row = json::array();
    for (int64_t j = 0; j < m.num_classes; ++j) row.push_back(m.confusion[static_cast<size_t>(i * m.num_classes + j)]);
    conf.push_back(row);
  }
  json j = {{"n", m.n},         {"num_labels", m.num_classes}, {"accuracy", m.accuracy}, {"macro_f1", m.macro_f1},
            {"mcc", m.mcc},     {"per_class", per},            {"confusion", conf}};
  if (positive) {
    j["positive_label"] = names.at(static_cast<size_t>(*positive));
    j["positive_f1"] = m.per_class.at(static_cast<size_t>(*positive)).f1;
  }
  return j;
}

}  // namespace modernbert
