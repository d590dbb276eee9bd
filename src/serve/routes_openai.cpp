// OpenAI-style routes:
//   POST /v1/embeddings {input: "t" | ["t"] | [id] | [[id]], model, encoding_format "float"|"base64",
//                        dimensions, user} -> {object: "list", data: [{object: "embedding",
//                        embedding: [float] | base64 of little-endian float32, index}], model,
//                        usage: {prompt_tokens, total_tokens}}. Embeddings are L2-normalised (as
//                        OpenAI's and TEI's); over-long inputs follow --auto-truncate (extension:
//                        "truncate": bool, "prompt_name").
//   GET  /v1/models     -> {object: "list", data: [{id, object: "model", created, owned_by}]}
//   POST /v1/rerank     Jina / Cohere shape as llama-server serves it: {model, query, documents:
//                        ["t" | {text}], top_n, return_documents} -> {object: "list", model, usage,
//                        results: [{index, relevance_score, document?: {text}}]} sorted by score
//                        desc, the first top_n.
#include <algorithm>
#include <numeric>

#include "serve/route_context.h"

namespace modernbert::serve {

namespace {

json embeddings(Call& c) {
  auto inputs = parse_inputs(require(c.body, "input"), "input");
  check_batch_size(c, inputs.size());
  const std::string fmt = get_string(c.body, "encoding_format", "float");
  if (fmt != "float" && fmt != "base64") throw invalid("`encoding_format` must be \"float\" or \"base64\"");
  Request r;
  r.task = Task::kEmbed;
  r.normalize = true;
  r.dims = get_int(c.body, "dimensions", 0);
  if (c.body.contains("dimensions") && !c.body["dimensions"].is_null() && r.dims <= 0)
    throw invalid("`dimensions` must be positive");
  get_string(c.body, "model", "");  // any model name is accepted (one model is served); type-checked
  const bool trunc = want_truncate(c);
  const std::string prefix = c.engine->prompt_text(get_string(c.body, "prompt_name", ""));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const InputItem& in = inputs[i];
    if (in.is_ids ? in.ids.empty() : in.text.empty()) throw empty_input("input " + std::to_string(i) + " is empty");
    r.seqs.push_back(in.is_ids ? check_ids(c, in.ids, trunc)
                               : tokenize_text(c, in.text, nullptr, prefix, trunc, false));
  }
  auto res = run_job(c, std::move(r));
  json data = json::array();
  for (size_t i = 0; i < res.size(); ++i) {
    json e = {{"object", "embedding"}, {"index", i}};
    if (fmt == "base64")
      e["embedding"] = base64_encode(res[i].values.data(), res[i].values.size() * sizeof(float));
    else
      e["embedding"] = std::move(res[i].values);
    data.push_back(std::move(e));
  }
  return {{"object", "list"},
          {"data", std::move(data)},
          {"model", c.st.model_name},
          {"usage", {{"prompt_tokens", c.prompt_tokens}, {"total_tokens", c.prompt_tokens}}}};
}

json models(Call& c) {
  return {{"object", "list"},
          {"data", json::array({{{"id", c.st.model_name},
                                 {"object", "model"},
                                 {"created", c.st.created},
                                 {"owned_by", "modernbert.cpp"}}})}};
}

json rerank(Call& c) {
  require_route(c, "/v1/rerank");
  const json& q = require(c.body, "query");
  if (!q.is_string()) throw invalid("`query` must be a string");
  const json& docs = require(c.body, "documents");
  if (!docs.is_array()) throw invalid("`documents` must be a list of strings or {\"text\"} objects");
  if (docs.empty()) throw empty_input("`documents` is empty");
  std::vector<std::string> texts;
  for (size_t i = 0; i < docs.size(); ++i) {
    const json& d = docs[i];
    if (d.is_string())
      texts.push_back(d.get<std::string>());
    else if (d.is_object() && d.contains("text") && d["text"].is_string())
      texts.push_back(d["text"].get<std::string>());
    else
      throw invalid("`documents`[" + std::to_string(i) + "] must be a string or {\"text\": string}");
  }
  check_batch_size(c, texts.size());
  const int64_t top_n = get_int(c.body, "top_n", static_cast<int64_t>(texts.size()));
  if (top_n <= 0) throw invalid("`top_n` must be positive");
  const bool return_docs = get_bool(c.body, "return_documents", false);
  const bool trunc = want_truncate(c);
  Request r;
  r.task = Task::kClassify;
  const std::string query = q.get<std::string>();
  for (size_t i = 0; i < texts.size(); ++i) {
    if (query.empty() && texts[i].empty())
      throw empty_input("document " + std::to_string(i) + " and the query are empty");
    r.seqs.push_back(tokenize_text(c, query, &texts[i], "", trunc, false));
  }
  auto res = run_job(c, std::move(r));
  std::vector<float> score(res.size());
  for (size_t i = 0; i < res.size(); ++i) score[i] = relevance_score(c.engine->capabilities(), res[i], false);
  std::vector<size_t> order(res.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return score[x] > score[y]; });
  order.resize(std::min(order.size(), static_cast<size_t>(top_n)));
  json results = json::array();
  for (size_t i : order) {
    json one = {{"index", i}, {"relevance_score", score[i]}};
    if (return_docs) one["document"] = {{"text", texts[i]}};
    results.push_back(std::move(one));
  }
  return {{"object", "list"},
          {"model", c.st.model_name},
          {"usage", {{"prompt_tokens", c.prompt_tokens}, {"total_tokens", c.prompt_tokens}}},
          {"results", std::move(results)}};
}

}  // namespace

void register_openai_routes(httplib::Server& s, ServerState& st) {
  add_route(s, st, "/v1/embeddings", {"openai_embed"}, embeddings);
  add_route(s, st, "/v1/models", {"models", false, false, false}, models);
  add_route(s, st, "/v1/rerank", {"openai_rerank"}, rerank);
}

}  // namespace modernbert::serve
