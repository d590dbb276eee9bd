// modernbert finetune: classification / regression / multi-label fine-tuning of a checkpoint
// (see include/modernbert/finetune.h).
#include "modernbert/finetune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>

#include "modernbert/error.h"
#include "modernbert/eval_data.h"
#include "modernbert/metrics.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/tokenizer.h"
#include "modernbert/trainer.h"
#include "modernbert/weights.h"
#include "tasks/finetune_progress.h"
#include "tasks/finetune_util.h"
#include "tasks/jsonl.h"

namespace modernbert {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using finetune_util::shuffled;
using finetune_util::trunc_normal;

struct Labelled {
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<int32_t>> tok_labels;  // token classification: [T] per sequence, -100 = not scored
  std::vector<std::vector<int64_t>> first_tok;   // token classification: word -> first sub-token (-1 = truncated)
  std::vector<std::vector<int64_t>> word_tags;   // token classification: gold tag id per word
  std::vector<int64_t> cls;                      // classification
  std::vector<float> targets;                    // regression / multilabel: [n, L]
};

// Label ids at or above this are rejected: the head gets one row per id, and an id near 2^63
// overflowed the label count (max id + 1) and sized multi-label rows (found by fuzz_finetune_jsonl).
constexpr int64_t kMaxLabelId = int64_t{1} << 20;

// Integral floats count as ids only inside the int64 range: converting 1e300 is undefined.
bool is_int(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::floor(d) == d && d >= -9.2e18 && d <= 9.2e18;
}
int64_t as_int(const json& v) {
  return v.is_number_integer() ? v.get<int64_t>() : static_cast<int64_t>(v.get<double>());
}

// A regression target as float32: a value beyond float's range (1e300) would be an undefined
// conversion, and an infinite target poisons the loss.
float target_of(const json& x, const std::string& where) {
  const double d = x.get<double>();
  if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
    throw Error(where + ": regression target " + x.dump() + " does not fit a 32-bit float");
  return static_cast<float>(d);
}

const json& field_of(const Example& e, const std::string& f, const std::string& where) {
  if (!e.record.contains(f)) throw Error(where + ": no \"" + f + "\" field");
  return e.record[f];
}

// Label set of the training data: names (sorted) or integer ids (max + 1).
struct LabelSet {
  bool named = false;
  std::vector<std::string> names;  // when named
  std::map<std::string, int64_t> index;
  int64_t count = 0;
};

void collect(const json& v, const std::string& where, std::set<std::string>& names, int64_t& max_id, bool& any_int) {
  if (is_int(v)) {
    // (JSON reads every non-negative integer as unsigned; a huge one must not wrap to negative.)
    if (v.is_number_unsigned() ? v.get<uint64_t>() >= static_cast<uint64_t>(kMaxLabelId) : as_int(v) >= kMaxLabelId)
      throw Error(where + ": label id " + v.dump() + " is too large (ids must be below " + std::to_string(kMaxLabelId) +
                  ")");
    const int64_t id = as_int(v);
    if (id < 0) throw Error(where + ": label id " + std::to_string(id) + " is negative");
    max_id = std::max(max_id, id);
    any_int = true;
  } else if (v.is_string()) {
    names.insert(v.get<std::string>());
  } else {
    throw Error(where + ": a label must be an integer id or a label name, found " + v.dump());
  }
}

std::vector<std::vector<int32_t>> tokenize(const Tokenizer& tok, const std::vector<Example>& ex, int64_t max_length) {
  std::vector<std::vector<int32_t>> out;
  out.reserve(ex.size());
  EncodeOptions eo;
  eo.max_length = static_cast<size_t>(max_length);
  for (const auto& e : ex) {
    Encoding enc = e.has_pair ? tok.encode_pair(e.text, e.text_pair, eo) : tok.encode(e.text, eo);
    if (enc.ids.empty()) enc.ids.push_back(0);
    out.push_back(std::move(enc.ids));
  }
  return out;
}

// {"tokens": [words], "<field>": [tags]} -> an Example with the words joined by spaces; the tags and
// word spans go into the record ("__tags", "__spans").
std::vector<Example> read_token_examples(const std::string& path, const std::string& field, bool lossy_utf8) {
  std::vector<Example> out;
  for_each_jsonl(path, [&](size_t lineno, json& j) {
    const std::string w = path + ":" + std::to_string(lineno);
    if (!j.contains("tokens") || !j["tokens"].is_array() || !j.contains(field) || !j[field].is_array())
      throw Error(w + ": expected {\"tokens\": [words], \"" + field + "\": [tags]}");
    const json& toks = j["tokens"];
    if (toks.size() != j[field].size())
      throw Error(w + ": " + std::to_string(toks.size()) + " words but " + std::to_string(j[field].size()) + " tags");
    if (toks.empty()) throw Error(w + ": no words");
    Example e;
    e.line = lineno;
    json spans = json::array();
    for (size_t i = 0; i < toks.size(); ++i) {
      if (!toks[i].is_string() || toks[i].get<std::string>().empty())
        throw Error(w + ": word " + std::to_string(i) + " must be a non-empty string");
      if (i) e.text += ' ';
      spans.push_back({e.text.size(), e.text.size() + toks[i].get<std::string>().size()});
      e.text += toks[i].get<std::string>();
    }
    e.record = json{{field, j[field]}, {"__spans", spans}};
    out.push_back(std::move(e));
  }, lossy_utf8);  // an empty file is an error there
  return out;
}

ProblemType problem_of(const std::string& task) {
  if (task == "token-classification") return ProblemType::kUnset;
  if (task == "classification") return ProblemType::kSingleLabel;
  if (task == "regression") return ProblemType::kRegression;
  return ProblemType::kMultiLabel;
}

}  // namespace

FinetuneResult finetune(const FinetuneOptions& o) {
  const std::string task = o.task;
  if (task == "embedding" || task == "colbert") return finetune_retrieval(o);
  if (task != "classification" && task != "regression" && task != "multilabel" && task != "token-classification")
    throw Error(
        "finetune: --task must be classification, regression, multilabel, token-classification, embedding or colbert, "
        "got '" +
        task + "'");
  if (o.epochs < 1) throw Error("finetune: --epochs must be >= 1");
  if (o.batch_size < 1) throw Error("finetune: --batch-size must be >= 1");
  if (o.max_length < 2) throw Error("finetune: --max-length must be >= 2");
  if (!(o.lr > 0)) throw Error("finetune: --lr must be > 0");
  if (o.warmup_ratio < 0 || o.warmup_ratio > 1) throw Error("finetune: --warmup-ratio must be in [0, 1]");
  if (o.schedule != "linear" && o.schedule != "wsd") throw Error("finetune: --schedule must be linear or wsd");
  if (o.optimizer != "adamw" && o.optimizer != "stableadamw")
    throw Error("finetune: --optimizer must be adamw or stableadamw");
  if (!o.pooling.empty() && o.pooling != "cls" && o.pooling != "mean")
    throw Error("finetune: --pooling must be cls or mean");
  if (o.out.empty()) throw Error("finetune: --out is required");
  const bool tokens = task == "token-classification";
  const std::string label_field = !o.label_field.empty() ? o.label_field
                                  : task == "multilabel" ? "labels"
                                  : tokens               ? "tags"
                                                         : "label";
  const TaskType tt = task == "classification" ? TaskType::kSequenceClassification
                      : task == "regression"   ? TaskType::kRegression
                      : tokens                 ? TaskType::kTokenClassification
                                               : TaskType::kMultiLabel;

  // ---- data ----
  const auto train = tokens ? read_token_examples(o.train, label_field, o.lossy_utf8)
                            : read_examples(o.train, o.text_field, o.pair_field, o.lossy_utf8);  // empty -> error
  if (train.empty()) throw Error(o.train + ": no training examples");
  const auto dev = tokens ? read_token_examples(o.dev, label_field, o.lossy_utf8) : read_examples(o.dev, o.text_field, o.pair_field, o.lossy_utf8);
  auto where = [](const std::string& f, const Example& e) { return f + ":" + std::to_string(e.line); };

  // ---- label space from the training data ----
  LabelSet ls;
  if (task == "regression") {
    int64_t width = -1;
    for (const auto& e : train) {
      const json& v = field_of(e, label_field, where(o.train, e));
      const int64_t w = v.is_array() ? static_cast<int64_t>(v.size()) : 1;
      if (!v.is_array() && !v.is_number())
        throw Error(where(o.train, e) + ": a regression label must be a number or an array of numbers");
      if (width >= 0 && w != width)
        throw Error(where(o.train, e) + ": " + std::to_string(w) + " targets, earlier lines have " +
                    std::to_string(width));
      width = w;
    }
    ls.count = o.num_labels > 0 ? o.num_labels : width;
    if (ls.count != width)
      throw Error("finetune: --num-labels " + std::to_string(o.num_labels) + " but the labels have " +
                  std::to_string(width) + " values");
  } else {
    std::set<std::string> names;
    int64_t max_id = -1;
    bool any_int = false;
    for (const auto& e : train) {
      const json& v = field_of(e, label_field, where(o.train, e));
      if (task == "multilabel" || tokens) {
        if (!v.is_array()) throw Error(where(o.train, e) + ": multilabel \"" + label_field + "\" must be an array");
        for (const auto& x : v) collect(x, where(o.train, e), names, max_id, any_int);
      } else {
        collect(v, where(o.train, e), names, max_id, any_int);
      }
    }
    if (any_int && !names.empty()) throw Error(o.train + ": labels mix integer ids and names");
    if (!names.empty()) {
      ls.named = true;
      ls.names.assign(names.begin(), names.end());
      for (size_t i = 0; i < ls.names.size(); ++i) ls.index[ls.names[i]] = static_cast<int64_t>(i);
      ls.count = static_cast<int64_t>(ls.names.size());
      if (o.num_labels > 0 && o.num_labels != ls.count)
        throw Error("finetune: --num-labels " + std::to_string(o.num_labels) + " but the training data has " +
                    std::to_string(ls.count) + " label names");
    } else {
      ls.count = max_id + 1;
      if (o.num_labels > 0) {
        if (o.num_labels < ls.count)
          throw Error("finetune: --num-labels " + std::to_string(o.num_labels) +
                      " but the training data has label id " + std::to_string(max_id));
        ls.count = o.num_labels;
      }
    }
    if (task == "classification" && ls.count < 2)
      throw Error(o.train + ": classification needs at least 2 labels, the training data has " +
                  std::to_string(ls.count));
  }
  const int64_t L = ls.count;
  if (L < 1) throw Error(o.train + ": no labels");

  auto resolve = [&](const json& v, const std::string& w) -> int64_t {
    if (ls.named) {
      if (!v.is_string() || !ls.index.count(v.get<std::string>()))
        throw Error(w + ": label " + v.dump() + " is not among the training labels");
      return ls.index.at(v.get<std::string>());
    }
    if (!is_int(v) || as_int(v) < 0 || as_int(v) >= L)
      throw Error(w + ": label " + v.dump() + " is not among the training labels (ids 0.." + std::to_string(L - 1) +
                  ")");
    return as_int(v);
  };
  auto labels_of = [&](const std::vector<Example>& ex, const std::string& file, Labelled& d) {
    for (const auto& e : ex) {
      const std::string w = where(file, e);
      const json& v = field_of(e, label_field, w);
      if (tokens) {
        std::vector<int64_t> tags;
        for (const auto& x : v) tags.push_back(resolve(x, w));
        d.word_tags.push_back(std::move(tags));
      } else if (task == "classification") {
        d.cls.push_back(resolve(v, w));
      } else if (task == "regression") {
        const int64_t n = v.is_array() ? static_cast<int64_t>(v.size()) : 1;
        if (n != L)
          throw Error(w + ": " + std::to_string(n) + " regression targets, the model has " + std::to_string(L));
        if (v.is_array()) {
          for (const auto& x : v) {
            if (!x.is_number()) throw Error(w + ": regression targets must be numbers");
            d.targets.push_back(target_of(x, w));
          }
        } else {
          if (!v.is_number()) throw Error(w + ": a regression label must be a number");
          d.targets.push_back(target_of(v, w));
        }
      } else {
        if (!v.is_array()) throw Error(w + ": multilabel \"" + label_field + "\" must be an array");
        std::vector<float> row(static_cast<size_t>(L), 0.0f);
        for (const auto& x : v) row[static_cast<size_t>(resolve(x, w))] = 1.0f;
        d.targets.insert(d.targets.end(), row.begin(), row.end());
      }
    }
  };
  Labelled tr, dv;
  labels_of(train, o.train, tr);
  labels_of(dev, o.dev, dv);

  // ---- model ----
  LoadOptions lo;
  lo.zero_copy = false;
  LoadedModel src = load_model_dir(o.model_dir, lo);
  const HeadSet& sh = src.weights.heads();
  const HeadSet::Classifier want = tokens ? HeadSet::Classifier::kToken : HeadSet::Classifier::kSequence;
  const bool reuse_head = sh.classifier == want;
  if (sh.classifier != HeadSet::Classifier::kNone && sh.classifier != want)
    throw Error(o.model_dir + std::string(": has a ") + (tokens ? "sequence" : "token") + "-classification head; " +
                task + " fine-tuning needs an MLM checkpoint or one with a " + (tokens ? "token" : "sequence") +
                "-classification head");
  if (reuse_head && sh.num_labels != L)
    throw Error(o.model_dir + ": the checkpoint already has a classifier with " + std::to_string(sh.num_labels) +
                " labels but the training data has " + std::to_string(L) +
                " (start from the MLM checkpoint, or pass data with the same label set)");
  const std::string tok_path = o.model_dir + "/tokenizer.json";
  if (!fs::exists(tok_path)) throw Error(o.model_dir + ": finetune needs tokenizer.json in the model directory");
  const Tokenizer tok = Tokenizer::from_file(tok_path);
  auto tokenize_set = [&](const std::vector<Example>& ex, Labelled& d) {
    if (!tokens) {
      d.ids = tokenize(tok, ex, o.max_length);
      return;
    }
    EncodeOptions eo;
    eo.max_length = static_cast<size_t>(o.max_length);
    for (size_t s = 0; s < ex.size(); ++s) {
      const Encoding e = tok.encode(ex[s].text, eo);
      std::vector<int32_t> lab(e.size(), -100);
      std::vector<int64_t> first;
      size_t t = 0;
      const json& spans = ex[s].record["__spans"];
      for (size_t k = 0; k < spans.size(); ++k) {
        const size_t ws = spans[k][0].get<size_t>(), we = spans[k][1].get<size_t>();
        while (t < e.size() && (e.special_tokens_mask[t] || e.offsets[t].second <= ws)) ++t;
        if (t < e.size() && e.offsets[t].first < we) {
          first.push_back(static_cast<int64_t>(t));
          lab[t] = static_cast<int32_t>(d.word_tags[s][k]);
        } else {
          first.push_back(-1);
        }
      }
      d.ids.push_back(e.ids);
      d.tok_labels.push_back(std::move(lab));
      d.first_tok.push_back(std::move(first));
    }
  };
  tokenize_set(train, tr);
  tokenize_set(dev, dv);

  ModelConfig cfg = src.config;
  cfg.architectures = {tokens ? "ModernBertForTokenClassification" : "ModernBertForSequenceClassification"};
  cfg.problem_type = problem_of(task);
  if (o.pooling == "cls") cfg.classifier_pooling = Pooling::kCls;
  if (o.pooling == "mean") cfg.classifier_pooling = Pooling::kMean;
  cfg.id2label.clear();
  cfg.label2id.clear();
  for (int64_t i = 0; i < L; ++i) {
    const std::string nm = ls.named ? ls.names[static_cast<size_t>(i)] : "LABEL_" + std::to_string(i);
    cfg.id2label[i] = nm;
    cfg.label2id[nm] = i;
  }
  cfg.raw.erase("num_labels");
  HeadSet heads;
  heads.classifier = want;
  heads.num_labels = L;
  Weights w(cfg, heads);
  for (const auto& sp : w.specs()) {
    if (src.weights.has(sp.name) && src.weights.spec(sp.name).shape == sp.shape) {
      std::copy_n(src.weights.param(sp.name), sp.numel(), w.mutable_param(sp.name));
    } else if (sp.name == "classifier.weight") {
      uint64_t s = o.seed ^ 0xC1A551F1E5ull;
      const double sd = 1.0 / std::sqrt(static_cast<double>(cfg.hidden_size));
      const double cut = cfg.initializer_cutoff_factor * sd;
      float* p = w.mutable_param(sp.name);
      for (int64_t i = 0; i < sp.numel(); ++i) p[i] = static_cast<float>(trunc_normal(s, sd, cut));
    } else if (sp.name == "classifier.bias") {
      std::fill_n(w.mutable_param(sp.name), sp.numel(), 0.0f);
    } else {
      throw Error(o.model_dir + ": the checkpoint has no parameter " + sp.name + " of the expected shape");
    }
  }
  { LoadedModel drop = std::move(src); }  // free the source copy

  // ---- output directory ----
  fs::create_directories(o.out);
  fs::copy_file(tok_path, o.out + "/tokenizer.json", fs::copy_options::overwrite_existing);
  std::ofstream log(o.out + "/finetune_log.jsonl", std::ios::trunc);
  if (!log) throw Error(o.out + "/finetune_log.jsonl: cannot open for writing");

  // ---- optimisation ----
  Optimizer opt(w.specs(), finetune_util::optimizer_config(o));
  const int64_t N = static_cast<int64_t>(tr.ids.size());
  const int64_t steps_per_epoch = (N + o.batch_size - 1) / o.batch_size;
  const int64_t total = steps_per_epoch * o.epochs;
  const ScheduleConfig sc = finetune_util::schedule_config(o, total);

  TrainModel tm(w);
  Encoder enc(w);
  std::vector<float> grads(w.num_params());
  FinetuneResult res;
  res.metric_name = task == "classification" ? "accuracy"
                    : task == "regression"   ? "pearson"
                    : tokens                 ? "entity_f1"
                                             : "micro_f1";

  auto evaluate_dev = [&]() -> json {
    std::vector<float> hidden;
    std::vector<int64_t> pred;
    std::vector<float> out;  // [n, L] logits
    const size_t n = dv.ids.size();
    for (size_t b0 = 0; b0 < n; b0 += 32) {
      Batch b;
      for (size_t i = b0; i < std::min(n, b0 + 32); ++i) b.add(dv.ids[i]);
      enc.forward(b, hidden);
      auto lg = tokens ? enc.classify_tokens(hidden.data(), b.num_tokens()) : enc.classify(b, hidden.data());
      out.insert(out.end(), lg.begin(), lg.end());
    }
    json j;
    if (tokens) {
      std::vector<std::vector<std::string>> gold(n), pr(n);
      const std::string outside = cfg.label2id.count("O") ? "O" : cfg.id2label.at(0);
      size_t off = 0;
      for (size_t i = 0; i < n; ++i) {
        for (size_t k = 0; k < dv.first_tok[i].size(); ++k) {
          gold[i].push_back(cfg.id2label.at(dv.word_tags[i][k]));
          const int64_t t = dv.first_tok[i][k];
          if (t < 0) {
            pr[i].push_back(outside);
            continue;
          }
          const float* l = out.data() + (off + static_cast<size_t>(t)) * static_cast<size_t>(L);
          pr[i].push_back(cfg.id2label.at(std::max_element(l, l + L) - l));
        }
        off += dv.ids[i].size();
      }
      auto em = entity_metrics(gold, pr);
      // Tags without entities (not BIO): entity F1 is meaningless, select on word accuracy instead.
      j = {{"entity_f1", em.gold_entities > 0 ? json(em.f1) : json(nullptr)},
           {"token_accuracy", em.token_accuracy},
           {"entity_macro_f1", em.macro_f1}};
    } else if (task == "classification") {
      for (size_t i = 0; i < n; ++i) {
        const float* l = out.data() + i * static_cast<size_t>(L);
        pred.push_back(std::max_element(l, l + L) - l);
      }
      auto cm = classification_metrics(dv.cls, pred, L);
      j = {{"accuracy", cm.accuracy}, {"macro_f1", cm.macro_f1}, {"mcc", cm.mcc}};
    } else if (task == "regression") {
      std::vector<double> x(out.begin(), out.end()), y(dv.targets.begin(), dv.targets.end());
      double mse = 0;
      for (size_t i = 0; i < x.size(); ++i) mse += (x[i] - y[i]) * (x[i] - y[i]);
      const double r = pearson(x, y);
      j = {{"pearson", std::isnan(r) ? json(nullptr) : json(r)},
           {"spearman", json(nullptr)},
           {"mse", mse / static_cast<double>(std::max<size_t>(1, x.size()))}};
      const double s = spearman(x, y);
      if (!std::isnan(s)) j["spearman"] = s;
    } else {
      std::vector<uint8_t> g(dv.targets.size()), p(out.size());
      for (size_t i = 0; i < g.size(); ++i) g[i] = dv.targets[i] > 0.5f;
      for (size_t i = 0; i < p.size(); ++i) p[i] = out[i] > 0.0f;  // sigmoid > 0.5
      auto mm = multilabel_metrics(g, p, L);
      j = {{"micro_f1", mm.micro_f1}, {"macro_f1", mm.macro_f1}, {"subset_accuracy", mm.subset_accuracy}};
    }
    return j;
  };

  finetune_util::EpochTracker tracker(res, log, o.patience);
  finetune_util::StepProgress progress(o.progress, total);
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    const auto order = shuffled(static_cast<size_t>(N), o.seed * 1000003ull + static_cast<uint64_t>(epoch));
    double epoch_loss = 0;
    int64_t epoch_batches = 0;
    for (int64_t s = 0; s < steps_per_epoch; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      TrainBatch tb;
      const size_t lo_i = static_cast<size_t>(s * o.batch_size);
      const size_t hi_i = std::min(static_cast<size_t>(N), lo_i + static_cast<size_t>(o.batch_size));
      for (size_t k = lo_i; k < hi_i; ++k) {
        const size_t i = order[k];
        tb.batch.add(tr.ids[i]);
        if (tokens) {
          tb.token_labels.insert(tb.token_labels.end(), tr.tok_labels[i].begin(), tr.tok_labels[i].end());
        } else if (tt == TaskType::kSequenceClassification) {
          tb.class_labels.push_back(static_cast<int32_t>(tr.cls[i]));
        } else {
          tb.targets.insert(tb.targets.end(),
                            tr.targets.begin() + static_cast<std::ptrdiff_t>(i * static_cast<size_t>(L)),
                            tr.targets.begin() + static_cast<std::ptrdiff_t>((i + 1) * static_cast<size_t>(L)));
        }
      }
      std::fill(grads.begin(), grads.end(), 0.0f);
      const LossResult lr_res = tm.forward_backward(tb, tt, grads.data());
      const double lr_t = o.lr * lr_multiplier(sc, static_cast<double>(res.steps));
      opt.step(w.data(), grads.data(), lr_t);
      ++res.steps;
      epoch_loss += lr_res.loss;
      ++epoch_batches;
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tps = static_cast<double>(tb.batch.num_tokens()) / std::max(dt, 1e-9);
      log << json{{"type", "step"},      {"step", res.steps}, {"epoch", epoch},
                  {"loss", lr_res.loss}, {"lr", lr_t},        {"tokens", tb.batch.num_tokens()},
                  {"tokens_per_s", tps}}
                 .dump()
          << "\n";
      progress.step(res.steps, epoch, lr_res.loss, lr_t, tps);
    }
    json m = evaluate_dev();
    const json& mv = m[res.metric_name];
    const double metric = mv.is_number()                              ? mv.get<double>()
                          : tokens && m["token_accuracy"].is_number() ? m["token_accuracy"].get<double>()
                                                                      : -std::numeric_limits<double>::infinity();
    const bool improved =
        tracker.end_epoch(epoch, metric, m, epoch_loss / static_cast<double>(std::max<int64_t>(1, epoch_batches)));
    progress.message("finetune: epoch " + std::to_string(epoch) + " dev " + m.dump() +
                     (improved ? " (best, saved)" : ""));
    if (improved) {
      save_model_dir(o.out, cfg, w);  // each file written atomically
    } else if (tracker.patience_exhausted()) {
      progress.message("finetune: no improvement for " + std::to_string(o.patience) + " epochs, stopping");
      break;
    }
  }
  tracker.finish();
  return res;
}

}  // namespace modernbert
