// text-embeddings-inference's routes (router/src/http/server.rs, types.rs) and our /fill-mask:
//   POST /embed      {inputs, normalize=true, truncate, truncation_direction, prompt_name, dimensions}
//                    -> [[float]]
//   POST /embed_all  {inputs, truncate, truncation_direction, prompt_name} -> [[[float]]] (per token;
//                    ColBERT vectors when the model has a projection)
//   POST /predict    {inputs: "a" | ["a","b"] | [["a"],["a","b"]], truncate, truncation_direction,
//                    raw_scores} -> [{score, label}] (desc) | [[{score, label}]]
//   POST /rerank     {query, texts, truncate, truncation_direction, raw_scores, return_text}
//                    -> [{index, text?, score}] sorted by score desc
//   POST /tokenize   {inputs, add_special_tokens=true, prompt_name} -> [[{id, text, special, start, stop}]]
//   POST /decode     {ids: [int] | [[int]], skip_special_tokens=true} -> [string]
//   GET  /info       model, limits, and the routes the loaded model supports
//   POST /fill-mask  {inputs: "t" | ["t", ...], top_k=5, truncate} -> per input, per [MASK]:
//                    [{token, token_str, score, sequence}] (HF's fill-mask pipeline fields);
//                    a single string input answers [[...] per mask], a list answers a list of those
// `inputs` everywhere but /predict and /rerank: "text" | [id, ...] | ["text" | [id, ...], ...].
#include <algorithm>
#include <cmath>
#include <numeric>

#include "modernbert/config.h"
#include "modernbert/file_io.h"
#include "serve/route_context.h"

namespace modernbert::serve {

namespace {

// Inputs -> ids with the prompt (text inputs only) and the truncation settings of the request.
std::vector<std::vector<int32_t>> input_ids(Call& c, const std::vector<InputItem>& inputs, bool use_prompt) {
  check_batch_size(c, inputs.size());
  const bool trunc = want_truncate(c);
  const bool left = parse_truncation_left(c.body);
  const std::string prefix = use_prompt ? c.engine->prompt_text(get_string(c.body, "prompt_name", "")) : "";
  std::vector<std::vector<int32_t>> seqs;
  seqs.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const InputItem& in = inputs[i];
    if (in.is_ids ? in.ids.empty() : in.text.empty()) throw empty_input("input " + std::to_string(i) + " is empty");
    seqs.push_back(in.is_ids ? check_ids(c, in.ids, trunc) : tokenize_text(c, in.text, nullptr, prefix, trunc, left));
  }
  return seqs;
}

json embed(Call& c) {
  Request r;
  r.task = Task::kEmbed;
  r.normalize = get_bool(c.body, "normalize", true);
  r.dims = get_int(c.body, "dimensions", 0);
  if (c.body.contains("dimensions") && !c.body["dimensions"].is_null() && r.dims <= 0)
    throw invalid("`dimensions` must be positive");
  r.seqs = input_ids(c, parse_inputs(require(c.body, "inputs"), "inputs"), true);
  json out = json::array();
  for (auto& s : run_job(c, std::move(r))) out.push_back(std::move(s.values));
  return out;
}

json embed_all(Call& c) {
  Request r;
  r.task = Task::kEmbedAll;
  r.seqs = input_ids(c, parse_inputs(require(c.body, "inputs"), "inputs"), true);
  json out = json::array();
  for (const auto& s : run_job(c, std::move(r))) {
    json rows = json::array();
    for (int64_t i = 0; i < s.rows; ++i)
      rows.push_back(std::vector<float>(s.values.begin() + i * s.cols, s.values.begin() + (i + 1) * s.cols));
    out.push_back(std::move(rows));
  }
  return out;
}

// (a, b?) pairs -> ids for the classifier.
std::vector<std::vector<int32_t>> pair_ids(
    Call& c, const std::vector<std::pair<std::string, std::optional<std::string>>>& items) {
  check_batch_size(c, items.size());
  const bool trunc = want_truncate(c);
  const bool left = parse_truncation_left(c.body);
  std::vector<std::vector<int32_t>> seqs;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& [a, b] = items[i];
    if (a.empty() && (!b || b->empty())) throw empty_input("input " + std::to_string(i) + " is empty");
    if (b && left && trunc) throw invalid("truncation_direction \"left\" applies to single texts, not pairs");
    seqs.push_back(tokenize_text(c, a, b ? &*b : nullptr, "", trunc, left));
  }
  return seqs;
}

json predictions(const Capabilities& caps, const SequenceResult& r, bool raw) {
  auto sc = class_scores(caps, r, raw);
  std::vector<size_t> order(sc.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return sc[x] > sc[y]; });
  json out = json::array();
  for (size_t i : order)
    out.push_back(
        {{"score", sc[i]}, {"label", i < caps.labels.size() ? caps.labels[i] : "LABEL_" + std::to_string(i)}});
  return out;
}

json predict(Call& c) {
  require_route(c, "/predict");
  auto p = parse_predict_inputs(require(c.body, "inputs"));
  const bool raw = get_bool(c.body, "raw_scores", false);
  Request r;
  r.task = Task::kClassify;
  r.seqs = pair_ids(c, p.items);
  auto res = run_job(c, std::move(r));
  const Capabilities& caps = c.engine->capabilities();
  if (!p.batch) return predictions(caps, res.at(0), raw);
  json out = json::array();
  for (const auto& s : res) out.push_back(predictions(caps, s, raw));
  return out;
}

json rerank(Call& c) {
  require_route(c, "/rerank");
  const json& q = require(c.body, "query");
  if (!q.is_string()) throw invalid("`query` must be a string");
  auto texts = get_string_list(require(c.body, "texts"), "`texts`");
  if (texts.empty()) throw empty_input("`texts` is empty");
  const bool raw = get_bool(c.body, "raw_scores", false), return_text = get_bool(c.body, "return_text", false);
  std::vector<std::pair<std::string, std::optional<std::string>>> items;
  for (const auto& t : texts) items.push_back({q.get<std::string>(), t});
  Request r;
  r.task = Task::kClassify;
  r.seqs = pair_ids(c, items);
  auto res = run_job(c, std::move(r));
  std::vector<float> score(res.size());
  for (size_t i = 0; i < res.size(); ++i) score[i] = relevance_score(c.engine->capabilities(), res[i], raw);
  std::vector<size_t> order(res.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return score[x] > score[y]; });
  json out = json::array();
  for (size_t i : order) {
    json rank = {{"index", i}};
    if (return_text) rank["text"] = texts[i];
    rank["score"] = score[i];
    out.push_back(std::move(rank));
  }
  return out;
}

json tokenize(Call& c) {
  require_route(c, "/tokenize");
  auto inputs = parse_inputs(require(c.body, "inputs"), "inputs");
  check_batch_size(c, inputs.size());
  EncodeOptions eo;
  eo.add_special_tokens = get_bool(c.body, "add_special_tokens", true);
  const std::string prefix = c.engine->prompt_text(get_string(c.body, "prompt_name", ""));
  const Tokenizer& tok = *c.engine->tokenizer();
  json out = json::array();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].is_ids) throw invalid("inputs[" + std::to_string(i) + "]: /tokenize takes text, not token ids");
    const std::string text = prefix + inputs[i].text;
    Encoding e;
    try {
      e = tok.encode(text, eo);
    } catch (const std::exception& ex) {
      throw ApiError(422, "tokenizer", "inputs[" + std::to_string(i) + "]: " + ex.what());
    }
    json toks = json::array();
    for (size_t k = 0; k < e.ids.size(); ++k) {
      const bool special = e.special_tokens_mask[k] != 0;
      json t = {{"id", e.ids[k]}, {"special", special}};
      if (special) {
        t["text"] = tok.id_to_token(e.ids[k]).value_or("");
        t["start"] = nullptr;
        t["stop"] = nullptr;
      } else {
        const auto [s0, s1] = e.offsets[k];
        t["text"] = text.substr(s0, s1 - s0);
        t["start"] = s0;
        t["stop"] = s1;
      }
      toks.push_back(std::move(t));
    }
    out.push_back(std::move(toks));
  }
  return out;
}

json decode(Call& c) {
  require_route(c, "/decode");
  const json& ids = require(c.body, "ids");
  const bool skip = get_bool(c.body, "skip_special_tokens", true);
  std::vector<std::vector<int32_t>> lists;
  if (ids.is_array() && !ids.empty() && ids[0].is_array()) {
    for (size_t i = 0; i < ids.size(); ++i) lists.push_back(parse_ids(ids[i], "`ids`[" + std::to_string(i) + "]"));
  } else {
    lists.push_back(parse_ids(ids, "`ids`"));
  }
  if (lists.size() == 1 && lists[0].empty()) throw empty_input("`ids` is empty");
  check_batch_size(c, lists.size());
  const Tokenizer& tok = *c.engine->tokenizer();
  const auto vocab = static_cast<int64_t>(tok.vocab_size());
  json out = json::array();
  for (size_t i = 0; i < lists.size(); ++i) {
    for (int32_t id : lists[i])
      if (id >= vocab)
        throw invalid("`ids`: token id " + std::to_string(id) + " is out of range [0, " + std::to_string(vocab) + ")");
    out.push_back(tok.decode(lists[i], skip));
  }
  return out;
}

json info(Call& c) {
  const Capabilities& caps = c.engine->capabilities();
  const ServerOptions& o = c.st.opt;
  json model_type;
  if (caps.has_classifier) {
    json id2label = json::object(), label2id = json::object();
    for (size_t i = 0; i < caps.labels.size(); ++i) {
      id2label[std::to_string(i)] = caps.labels[i];
      label2id[caps.labels[i]] = i;
    }
    model_type[caps.num_labels == 1 ? "reranker" : "classifier"] = {{"id2label", id2label}, {"label2id", label2id}};
  } else {
    const char* pool = caps.pooling == EmbedPooling::kCls ? "cls" : caps.pooling == EmbedPooling::kMax ? "max" : "mean";
    model_type["embedding"] = {{"pooling", pool}};
  }
  return {{"model_id", c.st.model_name},
          {"model_sha", nullptr},
          {"model_dtype", caps.stored_dtype},
          {"precision", caps.precision},  // ours: what the forward computes with (--dtype)
          {"model_type", model_type},
          {"max_concurrent_requests", c.st.eopt.max_queued_requests},
          {"max_input_length", caps.max_input_length},
          {"max_batch_tokens", c.st.eopt.max_batch_tokens},
          {"max_batch_requests", nullptr},
          {"max_client_batch_size", o.max_client_batch_size},
          {"auto_truncate", o.auto_truncate},
          {"tokenization_workers", nullptr},
          {"version", "modernbert.cpp 0.1.0"},
          {"sha", nullptr},
          {"docker_label", nullptr},
          // Ours: what the loaded model can do.
          {"routes", supported_routes(*c.engine)},
          {"model_dir", caps.model_dir},
          {"hidden_size", caps.hidden_size},
          {"vocab_size", caps.vocab_size},
          {"embedding_dim", caps.embedding_dim},
          {"token_vector_dim", caps.token_vector_dim},
          {"has_colbert_projection", caps.has_colbert_projection},
          {"normalize_by_default", caps.normalize_by_default},
          {"has_mlm", caps.has_mlm},
          {"has_classifier", caps.has_classifier},
          {"num_labels", caps.num_labels},
          {"problem_type", to_string(caps.problem_type)},
          {"prompts", caps.prompts},
          {"default_prompt_name", caps.default_prompt_name},
          {"payload_limit", o.payload_limit},
          {"request_timeout", o.request_timeout},
          {"http_threads", c.st.http_threads}};
}


json fill_mask(Call& c) {
  require_route(c, "/fill-mask");
  const Capabilities& caps = c.engine->capabilities();
  std::call_once(c.st.cleanup_once, [&] { c.st.cleanup = tokenizer_cleans_up(caps.model_dir); });
  const json& in = require(c.body, "inputs");
  auto inputs = parse_inputs(in, "inputs");
  Request r;
  r.task = Task::kFillMask;
  r.top_k = get_int(c.body, "top_k", 5);
  if (r.top_k <= 0 || r.top_k > caps.vocab_size) throw invalid("`top_k` must be in [1, vocab_size]");
  r.seqs = input_ids(c, inputs, false);
  for (size_t i = 0; i < r.seqs.size(); ++i)
    if (std::find(r.seqs[i].begin(), r.seqs[i].end(), caps.mask_token_id) == r.seqs[i].end())
      throw invalid("input " + std::to_string(i) + " has no [MASK] token");
  const auto seqs = r.seqs;
  auto res = run_job(c, std::move(r));
  const Tokenizer& tok = *c.engine->tokenizer();
  auto dec = [&](const std::vector<int32_t>& ids, bool skip) {
    std::string t = tok.decode(ids, skip);
    return c.st.cleanup ? clean_up_tokenization(t) : t;
  };
  json out = json::array();
  for (size_t i = 0; i < res.size(); ++i) {
    json masks = json::array();
    for (size_t m = 0; m < res[i].masks.size(); ++m) {
      json preds = json::array();
      for (const auto& p : res[i].masks[m]) {
        std::vector<int32_t> filled = seqs[i];
        if (m < res[i].mask_positions.size()) filled.at(static_cast<size_t>(res[i].mask_positions[m])) = p.token;
        preds.push_back({{"token", p.token},
                         {"token_str", dec({p.token}, false)},
                         {"score", p.score},
                         {"sequence", dec(filled, true)}});
      }
      masks.push_back(std::move(preds));
    }
    out.push_back(std::move(masks));
  }
  return in.is_string() ? out[0] : out;
}

}  // namespace

void register_tei_routes(httplib::Server& s, ServerState& st) {
  add_route(s, st, "/embed", {"embed"}, embed);
  add_route(s, st, "/embed_all", {"embed_all"}, embed_all);
  add_route(s, st, "/predict", {"predict"}, predict);
  add_route(s, st, "/rerank", {"rerank"}, rerank);
  add_route(s, st, "/tokenize", {"tokenize"}, tokenize);
  add_route(s, st, "/decode", {"decode"}, decode);
  add_route(s, st, "/fill-mask", {"fill_mask"}, fill_mask);
  add_route(s, st, "/info", {"info", true, false, false}, info);
}

}  // namespace modernbert::serve
