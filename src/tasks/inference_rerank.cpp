// Model::rerank (inference.h): a query against texts, by a cross-encoder's classifier, ColBERT
// MaxSim or the cosine of sentence embeddings; best first.
#include <algorithm>
#include <numeric>

#include "modernbert/inference.h"
#include "tasks/inference_impl.h"

namespace modernbert {

namespace {

RerankMode resolve_mode(const ModelInfo& info, RerankMode mode) {
  if (mode == RerankMode::kAuto)
    return info.has_classifier ? RerankMode::kCrossEncoder
           : info.has_colbert  ? RerankMode::kColBERT
                               : RerankMode::kEmbedding;
  if (mode == RerankMode::kCrossEncoder && !info.has_classifier)
    throw Error(info.dir + ": cross-encoder reranking needs a sequence-classification head");
  return mode;
}

// Runs fn on the query alone; its input errors name the query instead of "text 0".
template <typename F>
auto for_query(F&& fn) {
  try {
    return fn();
  } catch (const InputError& e) {
    throw Error("rerank: the query: " + e.detail());
  }
}

}  // namespace

std::vector<RerankHit> Model::rerank(const std::string& query, const std::vector<std::string>& texts,
                                     const RerankParams& p) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (p.top_n < 0) throw Error("rerank: top_n must be >= 0 (0 = all), got " + std::to_string(p.top_n));
  if (query.empty()) throw Error("rerank: empty query");
  const RerankMode mode = resolve_mode(m.info, p.mode);
  if (mode != RerankMode::kEmbedding && (!p.query_prompt_name.empty() || !p.document_prompt_name.empty()))
    throw Error(std::string("rerank: prompts apply to the embedding mode only, and this reranks by ") +
                (mode == RerankMode::kCrossEncoder ? "the cross-encoder" : "ColBERT MaxSim") +
                " (set the mode to embedding to use them)");
  std::vector<float> score(texts.size());
  if (!texts.empty()) {
    if (mode == RerankMode::kCrossEncoder) {
      // (query, text) pairs, the query first: sentence-transformers' CrossEncoder.predict and TEI.
      auto c = m.classify(std::vector<std::string>(texts.size(), query), texts);
      for (size_t i = 0; i < c.size(); ++i)
        score[i] = relevance_score(c[i].logits.data(), static_cast<int64_t>(c[i].logits.size()));
    } else if (mode == RerankMode::kColBERT) {
      TokenParams qp, dp;
      qp.is_query = true;
      const TokenVectors q = for_query([&] { return m.embed_tokens({query}, qp); });
      const TokenVectors d = m.embed_tokens(texts, dp);
      const int64_t D = q.vectors.cols;
      for (size_t i = 0; i < texts.size(); ++i)
        score[i] = maxsim(q.vectors.data.data(), q.offsets[1], d.vectors.row(d.offsets[i]),
                          d.offsets[i + 1] - d.offsets[i], D);
    } else {
      EmbedParams qp, dp;
      qp.prompt_name = p.query_prompt_name;
      dp.prompt_name = p.document_prompt_name;
      qp.normalize = dp.normalize = true;  // the dot product of unit vectors is their cosine
      const Matrix q = for_query([&] { return m.embed({query}, qp); });
      const Matrix d = m.embed(texts, dp);
      for (int64_t i = 0; i < d.rows; ++i) {
        double dot = 0;
        for (int64_t k = 0; k < d.cols; ++k) dot += double(q.row(0)[k]) * d.row(i)[k];
        score[static_cast<size_t>(i)] = static_cast<float>(dot);
      }
    }
  }
  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return score[x] > score[y]; });
  if (p.top_n > 0 && order.size() > static_cast<size_t>(p.top_n)) order.resize(static_cast<size_t>(p.top_n));
  std::vector<RerankHit> hits;
  for (size_t i : order) hits.push_back({static_cast<int64_t>(i), score[i]});
  return hits;
}

}  // namespace modernbert
