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

#include "modernbert/batching.h"
#include "modernbert/error.h"
#include "modernbert/eval_data.h"
#include "modernbert/evaluation.h"
#include "modernbert/file_io.h"
#include "modernbert/metrics.h"
#include "modernbert/search.h"
#include "modernbert/tasks.h"

namespace modernbert {

using nlohmann::json;

namespace {
constexpr std::pair<EvalTask, const char*> kTaskNames[] = {
    {EvalTask::kClassification, "classification"}, {EvalTask::kMultiLabel, "multilabel"},
    {EvalTask::kRegression, "regression"},         {EvalTask::kTokenClassification, "token-classification"},
    {EvalTask::kRetrieval, "retrieval"},           {EvalTask::kColbert, "colbert"}};
}  // namespace

EvalTask parse_eval_task(const std::string& s) {
  for (const auto& [t, name] : kTaskNames)
    if (s == name) return t;
  throw Error("unknown --task '" + s +
              "' (classification | multilabel | regression | token-classification | retrieval | colbert)");
}

const char* to_string(EvalTask t) {
  for (const auto& [k, name] : kTaskNames)
    if (k == t) return name;
  return "?";
}

bool is_retrieval(EvalTask t) { return t == EvalTask::kRetrieval || t == EvalTask::kColbert; }

Similarity parse_similarity(const std::string& s) {
  if (s == "cos") return Similarity::kCos;
  if (s == "dot") return Similarity::kDot;
  throw Error("--similarity must be cos or dot");
}

const char* to_string(Similarity s) { return s == Similarity::kCos ? "cos" : "dot"; }

namespace {

// ---- shared plumbing ---------------------------------------------------------------------------

struct TextInput {
  std::string text, pair;
  bool has_pair = false;
  std::string where;  // file:line for errors
};

// Token ids (with special tokens) for every input (inputs_to_ids, batching.h). max_length > 0
// truncates (longest-first for pairs, [SEP] kept); else anything above max_position_embeddings is
// an error naming the input.
std::vector<std::vector<int32_t>> tokenize_inputs(const EvalModel& m, const std::vector<TextInput>& in,
                                                  int64_t max_length, std::vector<Encoding>* encodings = nullptr) {
  if (!m.tokenizer) throw Error(m.model->dir + ": evaluation needs the model's tokenizer.json");
  const int64_t limit = m.model->config.max_position_embeddings;
  if (max_length > limit)
    throw Error("--max-length " + std::to_string(max_length) + " exceeds max_position_embeddings " + std::to_string(limit));
  std::vector<SequenceInput> seq(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    seq[i].text = in[i].text;
    seq[i].text_pair = in[i].pair;
    seq[i].has_pair = in[i].has_pair;
  }
  SequenceOptions so;
  so.max_position = limit;
  so.truncate_to = max_length;
  so.too_long_hint = "use --max-length to truncate";
  try {
    return inputs_to_ids(m.tokenizer, seq, so, encodings);
  } catch (const BatchItemError& e) {
    // Name the input's file:line (or query / document id) instead of its index.
    if (e.index() < in.size()) throw Error(in[e.index()].where + ": " + e.detail());
    throw Error(std::string("tokenizing: ") + e.what());
  } catch (const Error& e) {
    throw Error(std::string("tokenizing: ") + e.what());
  }
}

// Runs the encoder over token-budget batches in order (for_each_batch, batching.h):
// fn(batch, first_index, hidden), with a progress line on stderr about every tenth of the inputs.
void run_batches(const EvalModel& m, const std::vector<std::vector<int32_t>>& seqs, int64_t budget,
                 const std::function<void(const Batch&, size_t, const std::vector<float>&)>& fn,
                 const char* what = nullptr, bool progress = false) {
  size_t next_report = 0;
  for_each_batch(*m.encoder, seqs, budget, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    fn(b, first, h);
    const size_t i = first + static_cast<size_t>(b.num_seqs());
    if (progress && what && (i >= next_report || i == seqs.size())) {
      std::fprintf(stderr, "eval: %s %zu/%zu\n", what, i, seqs.size());
      next_report = i + std::max<size_t>(1, seqs.size() / 10);
    }
  });
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

void require_head(const EvalModel& m, HeadSet::Classifier kind, EvalTask task) {
  const HeadSet& h = m.model->weights.heads();
  if (h.classifier == kind) return;
  const char* want = kind == HeadSet::Classifier::kSequence ? "a sequence-classification head (classifier.*)"
                                                           : "a token-classification head (classifier.*)";
  throw Error(m.model->dir + ": --task " + to_string(task) + " needs " + want + "; the checkpoint has heads " +
              h.describe());
}

void check_problem_type(const EvalModel& m, ProblemType want, EvalTask task) {
  ProblemType p = m.model->config.problem_type;
  if (p != ProblemType::kUnset && p != want)
    throw Error(m.model->dir + ": --task " + to_string(task) + " but config.json says problem_type=" + to_string(p));
}

void write_predictions(const std::string& path, const std::vector<json>& rows) {
  if (path.empty()) return;
  AtomicOutputFile out(path);  // appears whole or not at all
  for (const auto& r : rows) out.write(r.dump() + "\n");
  out.commit();
}

json base_report(const EvalModel& m, const EvalOptions& o) {
  json j = {{"task", to_string(o.task)}, {"model", m.model->dir}};
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
  if (o.corpus.empty() || o.queries.empty())
    throw Error(std::string("--task ") + to_string(o.task) + " needs --corpus and --queries (or --data DIR)");
  auto corpus = read_corpus(o.corpus, o.lossy_utf8);
  auto queries = read_queries(o.queries, o.lossy_utf8);
  const ScopeMode scope = o.scope ? *o.scope : o.split.empty() ? ScopeMode::kFull : ScopeMode::kClosed;
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
    EmbedOptions eo;
    eo.pooling = cfg.classifier_pooling == Pooling::kCls ? EmbedPooling::kCls : EmbedPooling::kMean;
    if (st.present && !st.pooling_mode.empty()) eo.pooling = parse_embed_pooling(st.pooling_mode);
    if (o.pooling) eo.pooling = *o.pooling;
    eo.normalize = o.similarity == Similarity::kCos || st.normalize;
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
    settings = {{"pooling", pn}, {"similarity", to_string(o.similarity)}, {"dense", eo.dense != nullptr}, {"dim", D}};
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

}  // namespace

json evaluate(const EvalModel& m, const EvalOptions& o) {
  if (!m.model || !m.encoder) throw Error("evaluate: no model");
  switch (o.task) {
    case EvalTask::kClassification:
      return eval_classification(m, o);
    case EvalTask::kMultiLabel:
      return eval_multilabel(m, o);
    case EvalTask::kRegression:
      return eval_regression(m, o);
    case EvalTask::kTokenClassification:
      return eval_token_classification(m, o);
    case EvalTask::kRetrieval:
      return eval_retrieval(m, o, false);
    case EvalTask::kColbert:
      return eval_retrieval(m, o, true);
  }
  throw Error("evaluate: unknown task");
}

}  // namespace modernbert
