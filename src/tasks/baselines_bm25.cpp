// BM25 retrieval baseline (Lucene / Pyserini form) over the retrieval sets' corpora, with the
// closed-corpus (the queries' split) and full-corpus protocols. Each protocol indexes its own
// document collection (N, df and avgdl of the searched documents).
#include <algorithm>
#include <cmath>

#include "modernbert/baselines.h"
#include "modernbert/error.h"
#include "modernbert/metrics.h"
#include "modernbert/search.h"

namespace modernbert {

using nlohmann::json;

Bm25Index::Bm25Index(const std::vector<std::string>& docs, const Bm25Options& o) : o_(o) {
  if (o.k1 < 0 || o.b < 0 || o.b > 1) throw Error("BM25: need k1 >= 0 and 0 <= b <= 1");
  n_docs_ = static_cast<int64_t>(docs.size());
  double total = 0;
  for (size_t d = 0; d < docs.size(); ++d) {
    auto toks = simple_tokenize(docs[d], o.code);
    doclen_.push_back(static_cast<float>(toks.size()));
    total += static_cast<double>(toks.size());
    std::sort(toks.begin(), toks.end());
    for (size_t i = 0; i < toks.size();) {
      size_t j = i;
      while (j < toks.size() && toks[j] == toks[i]) ++j;
      postings_[toks[i]].emplace_back(static_cast<int32_t>(d), static_cast<int32_t>(j - i));
      i = j;
    }
  }
  avgdl_ = n_docs_ ? total / static_cast<double>(n_docs_) : 0.0;
}

std::vector<float> Bm25Index::scores(const std::string& query) const {
  std::vector<double> s(static_cast<size_t>(n_docs_), 0.0);
  // Every query token counts (a repeated term adds its clause again, as a bag-of-words query).
  for (const auto& t : simple_tokenize(query, o_.code)) {
    auto it = postings_.find(t);
    if (it == postings_.end()) continue;
    const double df = static_cast<double>(it->second.size()), N = static_cast<double>(n_docs_);
    const double idf = std::log(1.0 + (N - df + 0.5) / (df + 0.5));
    for (const auto& [d, tf] : it->second) {
      const double norm = o_.k1 * (1.0 - o_.b + o_.b * doclen_[static_cast<size_t>(d)] / std::max(avgdl_, 1e-9));
      s[static_cast<size_t>(d)] += idf * tf * (o_.k1 + 1.0) / (tf + norm);
    }
  }
  return std::vector<float>(s.begin(), s.end());
}

json run_bm25_baseline(const RetrievalBaselineOptions& o) {
  if (o.corpus.empty() || o.queries.empty()) throw Error("baseline --task retrieval needs --corpus and --queries (or --data DIR)");
  auto corpus = read_corpus(o.corpus, o.lossy_utf8);
  auto queries = read_queries(o.queries, o.lossy_utf8);
  const ScopeMode scope = o.scope ? *o.scope : o.split.empty() ? ScopeMode::kFull : ScopeMode::kClosed;
  auto scopes = make_scopes(corpus, scope, o.split);
  json sj = json::object();
  for (const auto& s : scopes) {
    std::vector<std::string> docs;
    for (int64_t r : s.doc_rows) docs.push_back(corpus[static_cast<size_t>(r)].text);
    Bm25Index index(docs, o.bm25);
    std::vector<std::vector<int64_t>> ranks;
    for (const auto& q : queries) {
      auto sc = index.scores(q.query);
      ranks.push_back(top_k_indices(sc.data(), static_cast<int64_t>(sc.size()), std::max<int64_t>(o.depth, 100)));
    }
    sj[s.name] = score_rankings(corpus, s, queries, ranks);
  }
  return json{{"task", "retrieval"},
              {"method", "bm25"},
              {"corpus", o.corpus},
              {"queries", o.queries},
              {"num_queries", queries.size()},
              {"settings", {{"k1", o.bm25.k1}, {"b", o.bm25.b}, {"tokenize", o.bm25.code ? "code" : "plain"}}},
              {"scopes", sj}};
}

}  // namespace modernbert
