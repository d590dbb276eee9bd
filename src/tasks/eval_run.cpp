// evaluate(): a checkpoint over a labelled set (classification, multi-label, regression, token
// classification) or a retrieval set (single-vector embeddings or ColBERT MaxSim), and the
// human-readable table of any report.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "modernbert/error.h"
#include "modernbert/eval.h"
#include "modernbert/safetensors.h"  // AtomicOutputFile
#include "modernbert/tasks.h"

namespace modernbert {

using nlohmann::json;

namespace {

// ---- shared plumbing ---------------------------------------------------------------------------

struct TextInput {
  std::string text, pair;
  bool has_pair = false;
  std::string where;  // file:line for errors
};

// Token ids (with special tokens) for every input. max_length > 0 truncates (longest-first for
// pairs, [SEP] kept); else anything above max_position_embeddings is an error naming the input.
std::vector<std::vector<int32_t>> tokenize_inputs(const EvalModel& m, const std::vector<TextInput>& in,
                                                  int64_t max_length, std::vector<Encoding>* encodings = nullptr) {
  if (!m.tokenizer) throw Error(m.model->dir + ": evaluation needs the model's tokenizer.json");
  const int64_t limit = m.model->config.max_position_embeddings;
  if (max_length > limit)
    throw Error("--max-length " + std::to_string(max_length) + " exceeds max_position_embeddings " + std::to_string(limit));
  EncodeOptions opts;
  if (max_length > 0) opts.max_length = static_cast<size_t>(max_length);
  std::vector<std::string> singles;
  std::vector<std::pair<std::string, std::string>> pairs;
  std::vector<size_t> si, pi;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i].has_pair) {
      pairs.emplace_back(in[i].text, in[i].pair);
      pi.push_back(i);
    } else {
      singles.push_back(in[i].text);
      si.push_back(i);
    }
  }
  std::vector<std::vector<int32_t>> out(in.size());
  if (encodings) encodings->assign(in.size(), Encoding{});
  auto take = [&](std::vector<Encoding>&& encs, const std::vector<size_t>& idx) {
    for (size_t k = 0; k < idx.size(); ++k) {
      out[idx[k]] = encs[k].ids;
      if (encodings) (*encodings)[idx[k]] = std::move(encs[k]);
    }
  };
  // encode_batch reports the failing text's index in the batch: name its file:line instead.
  auto rethrow = [&](const Error& e, const std::vector<size_t>& idx) {
    if (const auto* item = dynamic_cast<const BatchItemError*>(&e); item && item->index() < idx.size())
      throw Error(in[idx[item->index()]].where + ": " + item->detail());
    throw Error(std::string("tokenizing: ") + e.what());
  };
  try {
    if (!singles.empty()) take(m.tokenizer->encode_batch(singles, opts), si);
  } catch (const Error& e) {
    rethrow(e, si);
  }
  try {
    if (!pairs.empty()) take(m.tokenizer->encode_batch_pairs(pairs, opts), pi);
  } catch (const Error& e) {
    rethrow(e, pi);
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (out[i].empty()) throw Error(in[i].where + ": no tokens");
    if (static_cast<int64_t>(out[i].size()) > limit)
      throw Error(in[i].where + ": " + std::to_string(out[i].size()) + " tokens exceed max_position_embeddings " +
                  std::to_string(limit) + " (use --max-length to truncate)");
  }
  return out;
}

// Runs the encoder over token-budget batches in order: fn(batch, first_index, hidden).
void run_batches(const EvalModel& m, const std::vector<std::vector<int32_t>>& seqs, int64_t budget,
                 const std::function<void(const Batch&, size_t, const std::vector<float>&)>& fn,
                 const char* what = nullptr, bool progress = false) {
  if (budget <= 0) throw Error("--max-batch-tokens must be positive");
  std::vector<float> hidden;
  size_t i = 0, next_report = 0;
  while (i < seqs.size()) {
    Batch b;
    const size_t first = i;
    while (i < seqs.size() && (b.num_seqs() == 0 || b.num_tokens() + static_cast<int64_t>(seqs[i].size()) <= budget))
      b.add(seqs[i++]);
    m.encoder->forward(b, hidden);
    fn(b, first, hidden);
    if (progress && what && (i >= next_report || i == seqs.size())) {
      std::fprintf(stderr, "eval: %s %zu/%zu\n", what, i, seqs.size());
      next_report = i + std::max<size_t>(1, seqs.size() / 10);
    }
  }
}

std::string where_of(const EvalOptions& o, const Example& e) { return o.data + ":" + std::to_string(e.line); }

std::vector<TextInput> text_inputs(const EvalOptions& o, const std::vector<Example>& ex) {
  std::vector<TextInput> in;
  for (const auto& e : ex) in.push_back({e.text, e.text_pair, e.has_pair, where_of(o, e)});
  return in;
}

const json& label_value(const Example& e, const std::string& field, const std::string& where) {
  if (!e.record.contains(field) || e.record[field].is_null())
    throw Error(where + ": missing label field \"" + field + "\" (see --label-field)");
  return e.record[field];
}

void require_head(const EvalModel& m, HeadSet::Classifier kind, const std::string& task) {
  const HeadSet& h = m.model->weights.heads();
  if (h.classifier == kind) return;
  const char* want = kind == HeadSet::Classifier::kSequence ? "a sequence-classification head (classifier.*)"
                                                           : "a token-classification head (classifier.*)";
  throw Error(m.model->dir + ": --task " + task + " needs " + want + "; the checkpoint has heads " + h.describe());
}

void check_problem_type(const EvalModel& m, ProblemType want, const std::string& task) {
  ProblemType p = m.model->config.problem_type;
  if (p != ProblemType::kUnset && p != want)
    throw Error(m.model->dir + ": --task " + task + " but config.json says problem_type=" + to_string(p));
}

void write_predictions(const std::string& path, const std::vector<json>& rows) {
  if (path.empty()) return;
  AtomicOutputFile out(path);  // appears whole or not at all
  for (const auto& r : rows) out.write(r.dump() + "\n");
  out.commit();
}

json base_report(const EvalModel& m, const EvalOptions& o) {
  json j = {{"task", o.task}, {"model", m.model->dir}};
  if (!o.data.empty()) j["data"] = o.data;
  return j;
}

// ---- sequence classification -------------------------------------------------------------------

json eval_classification(const EvalModel& m, const EvalOptions& o) {
  require_head(m, HeadSet::Classifier::kSequence, o.task);
  check_problem_type(m, ProblemType::kSingleLabel, o.task);
  const int64_t K = m.encoder->num_labels();
  if (K < 2) throw Error(m.model->dir + ": a classification head needs at least 2 labels, this one has " + std::to_string(K) +
                         " (use --task regression)");
  const LabelSpace ls = label_space(m.model->config, K);
  auto ex = read_examples(o.data, o.text_field, o.pair_field, o.lossy_utf8);
  std::vector<int64_t> gold;
  for (const auto& e : ex) {
    const std::string w = where_of(o, e);
    int64_t g = resolve_label(label_value(e, o.label_field, w), ls, w);
    // A name next to an integer label (as the shared sets carry) must agree with the head.
    if (ls.named && e.record.contains("label_name") && e.record["label_name"].is_string() &&
        e.record[o.label_field].is_number()) {
      const std::string nm = e.record["label_name"].get<std::string>();
      if (nm != ls.names[static_cast<size_t>(g)])
        throw Error(w + ": label " + std::to_string(g) + " is \"" + nm + "\" in the data but \"" +
                    ls.names[static_cast<size_t>(g)] + "\" in the checkpoint's id2label");
    }
    gold.push_back(g);
  }
  auto seqs = tokenize_inputs(m, text_inputs(o, ex), o.max_length);
  std::vector<int64_t> pred(ex.size());
  std::vector<json> rows;
  run_batches(m, seqs, o.max_batch_tokens, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    auto lg = m.encoder->classify(b, h.data());
    for (int64_t s = 0; s < b.num_seqs(); ++s) {
      const float* l = lg.data() + s * K;
      const int64_t p = std::max_element(l, l + K) - l;
      pred[first + static_cast<size_t>(s)] = p;
      if (!o.predictions_path.empty()) {
        auto sc = logits_to_scores(l, K, ProblemType::kSingleLabel);
        const size_t i = first + static_cast<size_t>(s);
        rows.push_back({{"line", ex[i].line}, {"gold", ls.names[static_cast<size_t>(gold[i])]},
                        {"pred", ls.names[static_cast<size_t>(p)]}, {"score", sc[static_cast<size_t>(p)]}});
      }
    }
  }, "classified", o.progress);
  std::optional<int64_t> positive;
  if (!o.positive_label.empty()) {
    json v = o.positive_label.find_first_not_of("0123456789") == std::string::npos ? json(std::stoll(o.positive_label))
                                                                                  : json(o.positive_label);
    positive = resolve_label(v, ls, "--positive-label");
  } else if (K == 2) {
    positive = 1;
  }
  auto cm = classification_metrics(gold, pred, K);
  json j = base_report(m, o);
  j.update(classification_report_json(cm, ls.names, positive));
  if (!o.group_field.empty()) {
    std::map<std::string, std::pair<int64_t, int64_t>> g;  // value -> (n, correct)
    for (size_t i = 0; i < ex.size(); ++i) {
      const json& r = ex[i].record;
      if (!r.contains(o.group_field)) continue;
      std::string key = r[o.group_field].is_string() ? r[o.group_field].get<std::string>() : r[o.group_field].dump();
      ++g[key].first;
      g[key].second += gold[i] == pred[i];
    }
    json groups = json::object();
    for (const auto& [k, v] : g)
      groups[k] = {{"n", v.first}, {"accuracy", static_cast<double>(v.second) / static_cast<double>(v.first)}};
    j["groups"] = groups;
  }
  write_predictions(o.predictions_path, rows);
  return j;
}

// ---- multi-label -------------------------------------------------------------------------------

json eval_multilabel(const EvalModel& m, const EvalOptions& o) {
  require_head(m, HeadSet::Classifier::kSequence, o.task);
  check_problem_type(m, ProblemType::kMultiLabel, o.task);
  const int64_t L = m.encoder->num_labels();
  const LabelSpace ls = label_space(m.model->config, L);
  auto ex = read_examples(o.data, o.text_field, o.pair_field, o.lossy_utf8);
  std::vector<uint8_t> gold(ex.size() * static_cast<size_t>(L), 0), pred(gold.size(), 0);
  for (size_t i = 0; i < ex.size(); ++i) {
    const std::string w = where_of(o, ex[i]);
    const json& v = label_value(ex[i], o.label_field, w);
    if (!v.is_array()) throw Error(w + ": \"" + o.label_field + "\" must be a list of label ids or names");
    for (const auto& x : v) gold[i * static_cast<size_t>(L) + static_cast<size_t>(resolve_label(x, ls, w))] = 1;
  }
  auto seqs = tokenize_inputs(m, text_inputs(o, ex), o.max_length);
  std::vector<json> rows;
  run_batches(m, seqs, o.max_batch_tokens, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    auto lg = m.encoder->classify(b, h.data());
    for (int64_t s = 0; s < b.num_seqs(); ++s) {
      auto sc = logits_to_scores(lg.data() + s * L, L, ProblemType::kMultiLabel);
      const size_t i = first + static_cast<size_t>(s);
      json labels = json::array();
      for (int64_t l = 0; l < L; ++l)
        if (sc[static_cast<size_t>(l)] > o.threshold) {
          pred[i * static_cast<size_t>(L) + static_cast<size_t>(l)] = 1;
          labels.push_back(ls.names[static_cast<size_t>(l)]);
        }
      if (!o.predictions_path.empty()) rows.push_back({{"line", ex[i].line}, {"pred", labels}});
    }
  }, "classified", o.progress);
  auto mm = multilabel_metrics(gold, pred, L);
  json j = base_report(m, o);
  json per = json::object();
  for (int64_t l = 0; l < L; ++l) {
    const auto& c = mm.per_label[static_cast<size_t>(l)];
    per[ls.names[static_cast<size_t>(l)]] = {{"precision", c.precision}, {"recall", c.recall}, {"f1", c.f1},
                                             {"support", c.support}, {"predicted", c.predicted}};
  }
  j.update(json{{"n", mm.n}, {"num_labels", L}, {"threshold", o.threshold}, {"micro_f1", mm.micro_f1},
                {"micro_precision", mm.micro_precision}, {"micro_recall", mm.micro_recall}, {"macro_f1", mm.macro_f1},
                {"subset_accuracy", mm.subset_accuracy}, {"hamming_loss", mm.hamming_loss}, {"per_label", per}});
  write_predictions(o.predictions_path, rows);
  return j;
}

// ---- regression --------------------------------------------------------------------------------

json eval_regression(const EvalModel& m, const EvalOptions& o) {
  require_head(m, HeadSet::Classifier::kSequence, o.task);
  check_problem_type(m, ProblemType::kRegression, o.task);
  const int64_t L = m.encoder->num_labels();
  auto ex = read_examples(o.data, o.text_field, o.pair_field, o.lossy_utf8);
  std::vector<std::vector<double>> gold(static_cast<size_t>(L)), pred(static_cast<size_t>(L));
  for (const auto& e : ex) {
    const std::string w = where_of(o, e);
    const json& v = label_value(e, o.label_field, w);
    if (L == 1 && v.is_number()) {
      gold[0].push_back(v.get<double>());
    } else if (v.is_array() && static_cast<int64_t>(v.size()) == L) {
      for (int64_t l = 0; l < L; ++l) {
        if (!v[static_cast<size_t>(l)].is_number()) throw Error(w + ": regression targets must be numbers");
        gold[static_cast<size_t>(l)].push_back(v[static_cast<size_t>(l)].get<double>());
      }
    } else {
      throw Error(w + ": the head has " + std::to_string(L) + " output(s); expected " +
                  (L == 1 ? std::string("a number") : "a list of " + std::to_string(L) + " numbers") + ", found " + v.dump());
    }
  }
  auto seqs = tokenize_inputs(m, text_inputs(o, ex), o.max_length);
  std::vector<json> rows;
  run_batches(m, seqs, o.max_batch_tokens, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    auto lg = m.encoder->classify(b, h.data());
    for (int64_t s = 0; s < b.num_seqs(); ++s) {
      for (int64_t l = 0; l < L; ++l) pred[static_cast<size_t>(l)].push_back(lg[static_cast<size_t>(s * L + l)]);
      if (!o.predictions_path.empty())
        rows.push_back({{"line", ex[first + static_cast<size_t>(s)].line},
                        {"pred", std::vector<float>(lg.begin() + s * L, lg.begin() + (s + 1) * L)}});
    }
  }, "scored", o.progress);
  json j = base_report(m, o);
  json outs = json::array();
  double ps = 0, ss = 0;
  for (int64_t l = 0; l < L; ++l) {
    const auto& g = gold[static_cast<size_t>(l)];
    const auto& p = pred[static_cast<size_t>(l)];
    double mse = 0, mae = 0;
    for (size_t i = 0; i < g.size(); ++i) {
      mse += (g[i] - p[i]) * (g[i] - p[i]);
      mae += std::fabs(g[i] - p[i]);
    }
    const double n = static_cast<double>(g.size());
    const double pr = pearson(g, p), sr = spearman(g, p);
    ps += pr;
    ss += sr;
    outs.push_back({{"pearson", pr}, {"spearman", sr}, {"mse", mse / n}, {"mae", mae / n}});
  }
  j["n"] = ex.size();
  j["num_outputs"] = L;
  j["pearson"] = ps / static_cast<double>(L);
  j["spearman"] = ss / static_cast<double>(L);
  if (L == 1) {
    j["mse"] = outs[0]["mse"];
    j["mae"] = outs[0]["mae"];
  } else {
    j["outputs"] = outs;
  }
  write_predictions(o.predictions_path, rows);
  return j;
}

// ---- token classification ----------------------------------------------------------------------

json eval_token_classification(const EvalModel& m, const EvalOptions& o) {
  require_head(m, HeadSet::Classifier::kToken, o.task);
  const int64_t K = m.encoder->num_labels();
  const LabelSpace ls = label_space(m.model->config, K);
  // Records: {"tokens": [words], "<label_field>": [tag names or ids]} (CoNLL-style, one tag per word).
  std::vector<std::vector<std::string>> gold_tags;
  std::vector<TextInput> inputs;
  std::vector<std::vector<std::pair<size_t, size_t>>> word_spans;
  {
    std::ifstream in(o.data, std::ios::binary);
    if (!in) throw Error(o.data + ": cannot open");
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos) continue;
      const std::string w = o.data + ":" + std::to_string(lineno);
      json j;
      try {
        j = json::parse(line);
      } catch (const std::exception& e) {
        throw Error(w + ": malformed JSON: " + e.what());
      }
      if (!j.is_object() || !j.contains("tokens") || !j["tokens"].is_array())
        throw Error(w + ": expected {\"tokens\": [words], \"" + o.label_field + "\": [tags]}");
      if (!j.contains(o.label_field) || !j[o.label_field].is_array())
        throw Error(w + ": missing tag list \"" + o.label_field + "\" (see --label-field)");
      const json& toks = j["tokens"];
      const json& tags = j[o.label_field];
      if (toks.size() != tags.size())
        throw Error(w + ": " + std::to_string(toks.size()) + " words but " + std::to_string(tags.size()) + " tags");
      if (toks.empty()) throw Error(w + ": no words");
      std::vector<std::string> gs;
      std::vector<std::pair<size_t, size_t>> spans;
      std::string text;
      for (size_t i = 0; i < toks.size(); ++i) {
        if (!toks[i].is_string() || toks[i].get<std::string>().empty())
          throw Error(w + ": word " + std::to_string(i) + " must be a non-empty string");
        if (i) text += ' ';
        spans.emplace_back(text.size(), text.size() + toks[i].get<std::string>().size());
        text += toks[i].get<std::string>();
        gs.push_back(ls.names[static_cast<size_t>(resolve_label(tags[i], ls, w))]);
      }
      gold_tags.push_back(std::move(gs));
      word_spans.push_back(std::move(spans));
      inputs.push_back({text, "", false, w});
    }
    if (inputs.empty()) throw Error(o.data + ": no records (empty file)");
  }
  std::vector<Encoding> encs;
  auto seqs = tokenize_inputs(m, inputs, o.max_length, &encs);
  // Word -> its first sub-token (the HF convention: the other sub-tokens are not scored).
  std::vector<std::vector<int64_t>> first_tok(inputs.size());
  int64_t words_truncated = 0;
  for (size_t s = 0; s < inputs.size(); ++s) {
    const Encoding& e = encs[s];
    size_t t = 0;
    for (const auto& [ws, we] : word_spans[s]) {
      while (t < e.size() && (e.special_tokens_mask[t] || e.offsets[t].second <= ws)) ++t;
      if (t < e.size() && e.offsets[t].first < we) first_tok[s].push_back(static_cast<int64_t>(t));
      else {
        first_tok[s].push_back(-1);
        ++words_truncated;
      }
    }
  }
  const std::string outside = ls.index.count("O") ? "O" : ls.names[0];
  std::vector<std::vector<std::string>> pred_tags(inputs.size());
  std::vector<json> rows;
  run_batches(m, seqs, o.max_batch_tokens, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    auto lg = m.encoder->classify_tokens(h.data(), b.num_tokens());
    for (int64_t s = 0; s < b.num_seqs(); ++s) {
      const size_t i = first + static_cast<size_t>(s);
      const int64_t t0 = b.cu_seqlens[static_cast<size_t>(s)];
      for (int64_t t : first_tok[i]) {
        if (t < 0) {
          pred_tags[i].push_back(outside);
          continue;
        }
        const float* l = lg.data() + (t0 + t) * K;
        pred_tags[i].push_back(ls.names[static_cast<size_t>(std::max_element(l, l + K) - l)]);
      }
      if (!o.predictions_path.empty()) rows.push_back({{"line", inputs[i].where}, {"pred", pred_tags[i]}});
    }
  }, "tagged", o.progress);
  auto em = entity_metrics(gold_tags, pred_tags);
  json j = base_report(m, o);
  json per = json::object();
  for (const auto& [t, c] : em.per_type)
    per[t] = {{"precision", c.precision}, {"recall", c.recall}, {"f1", c.f1}, {"support", c.support}, {"predicted", c.predicted}};
  bool bio = true;
  for (const auto& n : ls.names)
    if (n != "O" && !(n.size() > 2 && n[1] == '-' && std::string("BIES").find(n[0]) != std::string::npos)) bio = false;
  j.update(json{{"n", em.sentences}, {"words", em.tokens}, {"num_labels", K}, {"token_accuracy", em.token_accuracy},
                {"entity_precision", em.precision}, {"entity_recall", em.recall}, {"entity_f1", em.f1},
                {"entity_macro_f1", em.macro_f1}, {"gold_entities", em.gold_entities},
                {"predicted_entities", em.predicted_entities}, {"correct_entities", em.correct_entities},
                {"per_type", per}, {"words_truncated", words_truncated}});
  if (!bio) j["note"] = "the label names are not BIO/IOB2 tags (O, B-X, I-X): entity scores are not meaningful";
  write_predictions(o.predictions_path, rows);
  return j;
}

// ---- retrieval ---------------------------------------------------------------------------------

json eval_retrieval(const EvalModel& m, const EvalOptions& o, bool colbert) {
  if (o.corpus.empty() || o.queries.empty()) throw Error("--task " + o.task + " needs --corpus and --queries (or --data DIR)");
  auto corpus = read_corpus(o.corpus, o.lossy_utf8);
  auto queries = read_queries(o.queries, o.lossy_utf8);
  const std::string scope = o.scope.empty() ? (o.split.empty() ? "full" : "closed") : o.scope;
  auto scopes = make_scopes(corpus, scope, o.split);
  // Embed only the documents some scope searches.
  std::vector<int64_t> doc_slot(corpus.size(), -1);
  std::vector<int64_t> docs;  // corpus rows embedded, in order
  for (const auto& s : scopes)
    for (int64_t r : s.doc_rows)
      if (doc_slot[static_cast<size_t>(r)] < 0) {
        doc_slot[static_cast<size_t>(r)] = static_cast<int64_t>(docs.size());
        docs.push_back(r);
      }
  std::vector<TextInput> qin, din;
  for (const auto& q : queries) qin.push_back({o.query_prefix + q.query, "", false, o.queries + ": query " + q.qid});
  for (int64_t r : docs)
    din.push_back({o.doc_prefix + corpus[static_cast<size_t>(r)].text, "", false, o.corpus + ": document " + corpus[static_cast<size_t>(r)].id});
  auto qseq = tokenize_inputs(m, qin, o.query_max_length ? o.query_max_length : o.max_length);
  auto dseq = tokenize_inputs(m, din, o.doc_max_length ? o.doc_max_length : o.max_length);

  const ModelConfig& cfg = m.model->config;
  const SentenceTransformersInfo& st = m.model->sentence_transformers;
  const int64_t H = cfg.hidden_size;
  const int64_t depth = std::max<int64_t>(o.depth, 100);
  json j = base_report(m, o);
  j["corpus"] = o.corpus;
  j["queries"] = o.queries;
  j["num_queries"] = queries.size();
  json settings;
  json scopes_json = json::object();

  if (!colbert) {
    if (o.similarity != "cos" && o.similarity != "dot") throw Error("--similarity must be cos or dot");
    EmbedOptions eo;
    eo.pooling = cfg.classifier_pooling == Pooling::kCls ? EmbedPooling::kCls : EmbedPooling::kMean;
    if (st.present && !st.pooling_mode.empty()) eo.pooling = parse_embed_pooling(st.pooling_mode);
    if (o.pooling_set) eo.pooling = o.pooling;
    eo.normalize = o.similarity == "cos" || st.normalize;
    eo.dense = st.dense_out > 0 ? &st : nullptr;
    int64_t D = 0;
    auto embed_all = [&](const std::vector<std::vector<int32_t>>& seqs, const char* what) {
      std::vector<float> all;
      run_batches(m, seqs, o.max_batch_tokens, [&](const Batch& b, size_t, const std::vector<float>& h) {
        auto e = sentence_embeddings(b, h.data(), H, eo, &D);
        all.insert(all.end(), e.begin(), e.end());
      }, what, o.progress);
      return all;
    };
    auto Q = embed_all(qseq, "embedded queries");
    auto E = embed_all(dseq, "embedded documents");
    for (const auto& s : scopes) {
      std::vector<float> C(s.doc_rows.size() * static_cast<size_t>(D));
      for (size_t i = 0; i < s.doc_rows.size(); ++i) {
        const int64_t slot = doc_slot[static_cast<size_t>(s.doc_rows[i])];
        std::copy(E.begin() + slot * D, E.begin() + (slot + 1) * D, C.begin() + static_cast<int64_t>(i) * D);
      }
      auto ranks = exact_search(Q.data(), static_cast<int64_t>(queries.size()), C.data(),
                                static_cast<int64_t>(s.doc_rows.size()), D, depth);
      scopes_json[s.name] = score_rankings(corpus, s, queries, ranks);
    }
    const char* pn = eo.pooling == EmbedPooling::kCls ? "cls" : eo.pooling == EmbedPooling::kMax ? "max" : "mean";
    settings = {{"pooling", pn}, {"similarity", o.similarity}, {"dense", eo.dense != nullptr}, {"dim", D}};
  } else {
    const SentenceTransformersInfo* dense = st.dense_out > 0 ? &st : nullptr;
    int64_t D = 0;
    auto vectors = [&](const std::vector<std::vector<int32_t>>& seqs, std::vector<int64_t>& off, const char* what) {
      std::vector<float> all;
      off.assign(1, 0);
      run_batches(m, seqs, o.max_batch_tokens, [&](const Batch& b, size_t, const std::vector<float>& h) {
        auto v = colbert_vectors(h.data(), b.num_tokens(), H, dense, &D);
        all.insert(all.end(), v.begin(), v.end());
        for (int64_t s = 0; s < b.num_seqs(); ++s) off.push_back(off.back() + b.seq_len(s));
      }, what, o.progress);
      return all;
    };
    std::vector<int64_t> qoff, doff;
    auto QV = vectors(qseq, qoff, "encoded queries");
    auto DV = vectors(dseq, doff, "encoded documents");
    for (const auto& s : scopes) {
      std::vector<float> sub;
      std::vector<int64_t> soff{0};
      for (int64_t r : s.doc_rows) {
        const int64_t slot = doc_slot[static_cast<size_t>(r)];
        const int64_t a = doff[static_cast<size_t>(slot)], b = doff[static_cast<size_t>(slot + 1)];
        sub.insert(sub.end(), DV.begin() + a * D, DV.begin() + b * D);
        soff.push_back(soff.back() + (b - a));
      }
      auto ranks = maxsim_search(QV, qoff, sub, soff, D, depth);
      scopes_json[s.name] = score_rankings(corpus, s, queries, ranks);
    }
    settings = {{"scoring", "maxsim"}, {"dense", dense != nullptr}, {"dim", D}};
  }
  settings["query_prefix"] = o.query_prefix;
  settings["doc_prefix"] = o.doc_prefix;
  settings["query_max_length"] = o.query_max_length ? o.query_max_length : o.max_length;
  settings["doc_max_length"] = o.doc_max_length ? o.doc_max_length : o.max_length;
  j["settings"] = settings;
  j["scopes"] = scopes_json;
  return j;
}

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
    if (c.size() < width[i]) c = (i == 0 ? c + std::string(width[i] - c.size(), ' ') : std::string(width[i] - c.size(), ' ') + c);
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
    rows.push_back({prefix + name, fmt(s.value("corpus_size", json())), fmt(s["evaluated"]), fmt(s["skipped_no_relevant"]),
                    fmt(s["ndcg@10"]), fmt(s["mrr@10"]), fmt(s["recall@1"]), fmt(s["recall@10"]), fmt(s["recall@100"])});
}

void add_classification_rows(std::vector<std::vector<std::string>>& rows, const std::string& name, const json& r) {
  rows.push_back({name, fmt(r["n"]), fmt(r["accuracy"]), fmt(r["macro_f1"]), fmt(r["mcc"]),
                  r.contains("positive_f1") ? fmt(r["positive_f1"]) : "-"});
}

}  // namespace

json evaluate(const EvalModel& m, const EvalOptions& o) {
  if (!m.model || !m.encoder) throw Error("evaluate: no model");
  if (o.task == "classification") return eval_classification(m, o);
  if (o.task == "multilabel") return eval_multilabel(m, o);
  if (o.task == "regression") return eval_regression(m, o);
  if (o.task == "token-classification") return eval_token_classification(m, o);
  if (o.task == "retrieval") return eval_retrieval(m, o, false);
  if (o.task == "colbert") return eval_retrieval(m, o, true);
  throw Error("unknown --task '" + o.task +
              "' (classification | multilabel | regression | token-classification | retrieval | colbert)");
}

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
            os << method << " / " << split << ": accuracy on " << g << " = " << fmt(v["accuracy"]) << " (n=" << fmt(v["n"]) << ")\n";
    return os.str();
  }
  if (r.contains("scopes")) {
    std::vector<std::vector<std::string>> rows{{"corpus", "docs", "queries", "skipped", "nDCG@10", "MRR@10", "R@1", "R@10", "R@100"}};
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
    os << "sentences=" << fmt(r["n"]) << "  words=" << fmt(r["words"]) << "  token-accuracy=" << fmt(r["token_accuracy"])
       << "  entity P/R/F1=" << fmt(r["entity_precision"]) << "/" << fmt(r["entity_recall"]) << "/" << fmt(r["entity_f1"]) << "\n";
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
