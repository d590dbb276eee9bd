// modernbert finetune: classification / regression / multi-label / token-classification fine-tuning
// of a checkpoint (see include/modernbert/finetune.h). The data and label space are read here; the
// steps are train::run_training_loop's, with HeadsTask supplying batches, loss and dev metrics.
#include "modernbert/finetune.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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
#include "modernbert/optimizer.h"
#include "modernbert/tokenizer.h"
#include "modernbert/train_model.h"
#include "modernbert/weights.h"
#include "tasks/finetune_run.h"
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

ProblemType problem_of(FinetuneTask task) {
  if (task == FinetuneTask::kTokenClassification) return ProblemType::kUnset;
  if (task == FinetuneTask::kClassification) return ProblemType::kSingleLabel;
  if (task == FinetuneTask::kRegression) return ProblemType::kRegression;
  return ProblemType::kMultiLabel;
}

// The task's constants: its loss, data fields and dev metric.
struct HeadsSpec {
  FinetuneTask task;
  bool tokens;              // token classification
  std::string label_field;  // default: "labels" for multilabel, "tags" for tokens, else "label"
  TaskType loss;
  std::string metric;  // accuracy | pearson | entity_f1 | micro_f1
};

HeadsSpec heads_spec(const FinetuneOptions& o) {
  HeadsSpec h;
  h.task = o.task;
  h.tokens = o.task == FinetuneTask::kTokenClassification;
  const bool multi = o.task == FinetuneTask::kMultiLabel;
  h.label_field = !o.label_field.empty() ? o.label_field : multi ? "labels" : h.tokens ? "tags" : "label";
  h.loss = o.task == FinetuneTask::kClassification ? TaskType::kSequenceClassification
           : o.task == FinetuneTask::kRegression   ? TaskType::kRegression
           : h.tokens                              ? TaskType::kTokenClassification
                                                   : TaskType::kMultiLabel;
  h.metric = o.task == FinetuneTask::kClassification ? "accuracy"
             : o.task == FinetuneTask::kRegression   ? "pearson"
             : h.tokens                              ? "entity_f1"
                                                     : "micro_f1";
  return h;
}

void check_options(const FinetuneOptions& o) {
  if (o.epochs < 1) throw Error("finetune: --epochs must be >= 1");
  if (o.batch_size < 1) throw Error("finetune: --batch-size must be >= 1");
  if (o.max_length < 2) throw Error("finetune: --max-length must be >= 2");
  if (!(o.lr > 0)) throw Error("finetune: --lr must be > 0");
  if (o.warmup_ratio < 0 || o.warmup_ratio > 1) throw Error("finetune: --warmup-ratio must be in [0, 1]");
  if (o.pooling == EmbedPooling::kMax) throw Error("finetune: --pooling must be cls or mean");
  if (o.out.empty()) throw Error("finetune: --out is required");
  finetune_util::check_parallel_options(o);
}

std::string where(const std::string& f, const Example& e) { return f + ":" + std::to_string(e.line); }

// ---- label space from the training data ----
LabelSet label_space(const FinetuneOptions& o, const HeadsSpec& h, const std::vector<Example>& train) {
  LabelSet ls;
  if (h.task == FinetuneTask::kRegression) {
    int64_t width = -1;
    for (const auto& e : train) {
      const json& v = field_of(e, h.label_field, where(o.train, e));
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
    return ls;
  }
  std::set<std::string> names;
  int64_t max_id = -1;
  bool any_int = false;
  for (const auto& e : train) {
    const json& v = field_of(e, h.label_field, where(o.train, e));
    if (h.task == FinetuneTask::kMultiLabel || h.tokens) {
      if (!v.is_array()) throw Error(where(o.train, e) + ": multilabel \"" + h.label_field + "\" must be an array");
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
        throw Error("finetune: --num-labels " + std::to_string(o.num_labels) + " but the training data has label id " +
                    std::to_string(max_id));
      ls.count = o.num_labels;
    }
  }
  if (h.task == FinetuneTask::kClassification && ls.count < 2)
    throw Error(o.train + ": classification needs at least 2 labels, the training data has " +
                std::to_string(ls.count));
  return ls;
}

// The labels of a data set in the label space (dev labels outside it are errors naming the line).
void labels_of(const HeadsSpec& h, const LabelSet& ls, const std::vector<Example>& ex, const std::string& file,
               Labelled& d) {
  const int64_t L = ls.count;
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
  for (const auto& e : ex) {
    const std::string w = where(file, e);
    const json& v = field_of(e, h.label_field, w);
    if (h.tokens) {
      std::vector<int64_t> tags;
      for (const auto& x : v) tags.push_back(resolve(x, w));
      d.word_tags.push_back(std::move(tags));
    } else if (h.task == FinetuneTask::kClassification) {
      d.cls.push_back(resolve(v, w));
    } else if (h.task == FinetuneTask::kRegression) {
      const int64_t n = v.is_array() ? static_cast<int64_t>(v.size()) : 1;
      if (n != L) throw Error(w + ": " + std::to_string(n) + " regression targets, the model has " + std::to_string(L));
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
      if (!v.is_array()) throw Error(w + ": multilabel \"" + h.label_field + "\" must be an array");
      std::vector<float> row(static_cast<size_t>(L), 0.0f);
      for (const auto& x : v) row[static_cast<size_t>(resolve(x, w))] = 1.0f;
      d.targets.insert(d.targets.end(), row.begin(), row.end());
    }
  }
}

// Token ids of a data set; token classification also labels the first sub-token of each word.
void tokenize_set(const Tokenizer& tok, const HeadsSpec& h, int64_t max_length, const std::vector<Example>& ex,
                  Labelled& d) {
  if (!h.tokens) {
    d.ids = tokenize(tok, ex, max_length);
    return;
  }
  EncodeOptions eo;
  eo.max_length = static_cast<size_t>(max_length);
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
}

// What a rank trains on (token ids and labels), for check_same_job.
uint64_t fingerprint(const Labelled& d) {
  finetune_util::Fingerprint f;
  f.add(d.ids);
  f.add(d.tok_labels);
  f.add(d.first_tok);
  f.add(d.word_tags);
  f.add(d.cls);
  f.add(d.targets);
  return f.value();
}

// ---- model ----

// The classifier the checkpoint may already have must fit the task and the label count.
void check_source_head(const FinetuneOptions& o, const HeadsSpec& h, const HeadSet& sh, int64_t L) {
  const HeadSet::Classifier want = h.tokens ? HeadSet::Classifier::kToken : HeadSet::Classifier::kSequence;
  if (sh.classifier != HeadSet::Classifier::kNone && sh.classifier != want)
    throw Error(o.model_dir + std::string(": has a ") + (h.tokens ? "sequence" : "token") + "-classification head; " +
                to_string(h.task) + " fine-tuning needs an MLM checkpoint or one with a " +
                (h.tokens ? "token" : "sequence") + "-classification head");
  if (sh.classifier == want && sh.num_labels != L)
    throw Error(o.model_dir + ": the checkpoint already has a classifier with " + std::to_string(sh.num_labels) +
                " labels but the training data has " + std::to_string(L) +
                " (start from the MLM checkpoint, or pass data with the same label set)");
}

ModelConfig head_config(const FinetuneOptions& o, const HeadsSpec& h, const ModelConfig& src, const LabelSet& ls) {
  ModelConfig cfg = src;
  cfg.architectures = {h.tokens ? "ModernBertForTokenClassification" : "ModernBertForSequenceClassification"};
  cfg.problem_type = problem_of(h.task);
  if (o.pooling == EmbedPooling::kCls) cfg.classifier_pooling = Pooling::kCls;
  if (o.pooling == EmbedPooling::kMean) cfg.classifier_pooling = Pooling::kMean;
  cfg.id2label.clear();
  cfg.label2id.clear();
  for (int64_t i = 0; i < ls.count; ++i) {
    const std::string nm = ls.named ? ls.names[static_cast<size_t>(i)] : "LABEL_" + std::to_string(i);
    cfg.id2label[i] = nm;
    cfg.label2id[nm] = i;
  }
  cfg.raw.erase("num_labels");
  return cfg;
}

// The checkpoint's encoder (and head.dense / head.norm, and a fitting classifier), a fresh
// classifier otherwise: truncated normal (sd 1/sqrt(H)) weights, zero bias.
void copy_or_init(const FinetuneOptions& o, const ModelConfig& cfg, const Weights& src, Weights& w) {
  for (const auto& sp : w.specs()) {
    if (src.has(sp.name) && src.spec(sp.name).shape == sp.shape) {
      std::copy_n(src.param(sp.name), sp.numel(), w.mutable_param(sp.name));
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
}

// ---- the task of the training loop ----

// One step per batch of batch_size examples in a per-epoch shuffled order, split into M = K x N
// micro-batches (finetune.h); dev metrics by the inference encoder after each epoch; the best
// epoch is written to o.out (rank 0).
class HeadsTask final : public train::TrainingTask {
 public:
  HeadsTask(const FinetuneOptions& o, const HeadsSpec& h, const Labelled& tr, const Labelled& dv,
            const ModelConfig& cfg, Weights& w, int64_t num_labels, Communicator& comm)
      : o_(o),
        h_(h),
        tr_(tr),
        dv_(dv),
        cfg_(cfg),
        w_(w),
        L_(num_labels),
        comm_(comm),
        M_(finetune_util::micro_batches_per_step(o, comm)),
        tm_(w),
        enc_(w) {}

  void begin_epoch(int64_t epoch) override {
    order_ = shuffled(tr_.ids.size(), o_.seed * 1000003ull + static_cast<uint64_t>(epoch));
  }

  // Micro-batch m holds the examples rank_share(batch, m, M) of the step; every rank builds them
  // all (the denominator is the whole step's count) and runs its share.
  train::StepPlan plan_step(const train::LoopState&, int64_t slot) override {
    const int64_t lo_i = slot * o_.batch_size;
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(tr_.ids.size()) - lo_i, o_.batch_size);
    const size_t L = static_cast<size_t>(L_);
    micro_.assign(static_cast<size_t>(M_), TrainBatch{});
    denominator_ = 0;
    train::StepPlan plan;
    for (int64_t m = 0; m < M_; ++m) {
      TrainBatch& tb = micro_[static_cast<size_t>(m)];
      const Share part = rank_share(n, static_cast<int>(m), static_cast<int>(M_));
      for (int64_t k = lo_i + part.first; k < lo_i + part.last; ++k) {
        const size_t i = order_[static_cast<size_t>(k)];
        tb.batch.add(tr_.ids[i]);
        if (h_.tokens) {
          tb.token_labels.insert(tb.token_labels.end(), tr_.tok_labels[i].begin(), tr_.tok_labels[i].end());
        } else if (h_.loss == TaskType::kSequenceClassification) {
          tb.class_labels.push_back(static_cast<int32_t>(tr_.cls[i]));
        } else {
          tb.targets.insert(tb.targets.end(), tr_.targets.begin() + static_cast<std::ptrdiff_t>(i * L),
                            tr_.targets.begin() + static_cast<std::ptrdiff_t>((i + 1) * L));
        }
      }
      denominator_ += TrainModel::count_items(tb, h_.loss, L_);
      plan.tokens += tb.batch.num_tokens();
    }
    plan.micro_batches = M_;
    return plan;
  }

  // The whole step's count as the denominator, so the micro-batches sum to the step's mean (0 when
  // nothing in the step counts: each micro-batch's loss is then NaN, as a batch without labels).
  train::MicroResult forward_backward(const train::LoopState&, int64_t micro, float* grads) override {
    const TrainBatch& tb = micro_[static_cast<size_t>(micro)];
    if (tb.batch.num_seqs() == 0) return {};  // a batch smaller than M: nothing to contribute
    const LossResult r = tm_.forward_backward(tb, h_.loss, grads, static_cast<double>(denominator_));
    return {r.loss, r.correct};
  }

  void add_step_fields(const train::LoopState&, const train::StepReport& r, json& rec) override {
    rec["tokens"] = r.tokens;
  }

  // Dev logits in shards, scored on rank 0; rank 0's score on every rank.
  train::EvalResult evaluate(const train::LoopState& s) override {
    train::EvalResult e;
    const std::vector<float> logits = dev_logits();
    e.score = -std::numeric_limits<double>::infinity();
    if (comm_.is_root()) {
      e.metrics = dev_metrics(logits);
      const json& mv = e.metrics[h_.metric];
      e.score = mv.is_number()                                         ? mv.get<double>()
                : h_.tokens && e.metrics["token_accuracy"].is_number() ? e.metrics["token_accuracy"].get<double>()
                                                                       : -std::numeric_limits<double>::infinity();
      e.message = "finetune: epoch " + std::to_string(s.epoch) + " dev " + e.metrics.dump();
    }
    e.score = finetune_util::root_score(e.score, comm_);
    return e;
  }

  void save(const train::LoopState&) override {
    if (comm_.is_root()) save_model_dir(o_.out, cfg_, w_);  // each file atomically
  }

 private:
  std::vector<float> dev_logits();
  json dev_metrics(const std::vector<float>& logits) const;
  json token_metrics(const std::vector<float>& logits) const;

  const FinetuneOptions& o_;
  const HeadsSpec& h_;
  const Labelled &tr_, &dv_;
  const ModelConfig& cfg_;
  Weights& w_;
  const int64_t L_;
  Communicator& comm_;
  const int64_t M_;  // micro-batches per step
  TrainModel tm_;
  Encoder enc_;
  std::vector<size_t> order_;
  // The planned step: its micro-batches and the count its loss is divided by.
  std::vector<TrainBatch> micro_;
  int64_t denominator_ = 0;
};

// Dev logits [n, L] (tokens: [T, L]) by the inference encoder in batches of 32, each rank its share
// of the batches; the whole on rank 0 (empty elsewhere).
std::vector<float> HeadsTask::dev_logits() {
  constexpr int64_t kBatch = 32;
  const int64_t n = static_cast<int64_t>(dv_.ids.size());
  std::vector<float> hidden;
  const std::string bytes = finetune_util::encode_shards(
      (n + kBatch - 1) / kBatch,
      [&](int64_t part) {
        Batch b;
        for (int64_t i = part * kBatch; i < std::min(n, (part + 1) * kBatch); ++i)
          b.add(dv_.ids[static_cast<size_t>(i)]);
        enc_.forward(b, hidden);
        const auto lg =
            h_.tokens ? enc_.classify_tokens(hidden.data(), b.num_tokens()) : enc_.classify(b, hidden.data());
        return std::string(reinterpret_cast<const char*>(lg.data()), lg.size() * sizeof(float));
      },
      comm_);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

// The task's metrics from the dev logits.
json HeadsTask::dev_metrics(const std::vector<float>& out) const {
  const size_t n = dv_.ids.size();
  if (h_.tokens) return token_metrics(out);
  const int64_t L = L_;
  if (h_.task == FinetuneTask::kClassification) {
    std::vector<int64_t> pred;
    for (size_t i = 0; i < n; ++i) {
      const float* l = out.data() + i * static_cast<size_t>(L);
      pred.push_back(std::max_element(l, l + L) - l);
    }
    auto cm = classification_metrics(dv_.cls, pred, L);
    return {{"accuracy", cm.accuracy}, {"macro_f1", cm.macro_f1}, {"mcc", cm.mcc}};
  }
  if (h_.task == FinetuneTask::kRegression) {
    std::vector<double> x(out.begin(), out.end()), y(dv_.targets.begin(), dv_.targets.end());
    double mse = 0;
    for (size_t i = 0; i < x.size(); ++i) mse += (x[i] - y[i]) * (x[i] - y[i]);
    const double r = pearson(x, y);
    json j = {{"pearson", std::isnan(r) ? json(nullptr) : json(r)},
              {"spearman", json(nullptr)},
              {"mse", mse / static_cast<double>(std::max<size_t>(1, x.size()))}};
    const double s = spearman(x, y);
    if (!std::isnan(s)) j["spearman"] = s;
    return j;
  }
  std::vector<uint8_t> g(dv_.targets.size()), p(out.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = dv_.targets[i] > 0.5f;
  for (size_t i = 0; i < p.size(); ++i) p[i] = out[i] > 0.0f;  // sigmoid > 0.5
  auto mm = multilabel_metrics(g, p, L);
  return {{"micro_f1", mm.micro_f1}, {"macro_f1", mm.macro_f1}, {"subset_accuracy", mm.subset_accuracy}};
}

// Entity metrics over words: each word's tag is the argmax at its first sub-token ("O" when the
// word was truncated away).
json HeadsTask::token_metrics(const std::vector<float>& out) const {
  const size_t n = dv_.ids.size();
  std::vector<std::vector<std::string>> gold(n), pr(n);
  const std::string outside = cfg_.label2id.count("O") ? "O" : cfg_.id2label.at(0);
  size_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < dv_.first_tok[i].size(); ++k) {
      gold[i].push_back(cfg_.id2label.at(dv_.word_tags[i][k]));
      const int64_t t = dv_.first_tok[i][k];
      if (t < 0) {
        pr[i].push_back(outside);
        continue;
      }
      const float* l = out.data() + (off + static_cast<size_t>(t)) * static_cast<size_t>(L_);
      pr[i].push_back(cfg_.id2label.at(std::max_element(l, l + L_) - l));
    }
    off += dv_.ids[i].size();
  }
  auto em = entity_metrics(gold, pr);
  // Tags without entities (not BIO): entity F1 is meaningless, select on word accuracy instead.
  return {{"entity_f1", em.gold_entities > 0 ? json(em.f1) : json(nullptr)},
          {"token_accuracy", em.token_accuracy},
          {"entity_macro_f1", em.macro_f1}};
}

}  // namespace

FinetuneResult finetune(const FinetuneOptions& o, Communicator& comm) {
  if (o.task == FinetuneTask::kEmbedding || o.task == FinetuneTask::kColbert) return finetune_retrieval(o, comm);
  check_options(o);
  const HeadsSpec h = heads_spec(o);

  // ---- data and label space ----
  auto read = [&](const std::string& path) {
    return h.tokens ? read_token_examples(path, h.label_field, o.lossy_utf8)
                    : read_examples(path, o.text_field, o.pair_field, o.lossy_utf8);  // empty -> error
  };
  const auto train = read(o.train);
  if (train.empty()) throw Error(o.train + ": no training examples");
  const auto dev = read(o.dev);
  const LabelSet ls = label_space(o, h, train);
  if (ls.count < 1) throw Error(o.train + ": no labels");
  Labelled tr, dv;
  labels_of(h, ls, train, o.train, tr);
  labels_of(h, ls, dev, o.dev, dv);

  // ---- model ----
  LoadOptions lo;
  lo.zero_copy = false;
  lo.allow_quantized = false;  // fp32 only: a quantized checkpoint is an Error
  LoadedModel src = load_model_dir(o.model_dir, lo);
  check_source_head(o, h, src.weights.heads(), ls.count);
  const std::string tok_path = o.model_dir + "/tokenizer.json";
  if (!fs::exists(tok_path)) throw Error(o.model_dir + ": finetune needs tokenizer.json in the model directory");
  const Tokenizer tok = Tokenizer::from_file(tok_path);
  tokenize_set(tok, h, o.max_length, train, tr);
  tokenize_set(tok, h, o.max_length, dev, dv);
  const ModelConfig cfg = head_config(o, h, src.config, ls);
  HeadSet heads;
  heads.classifier = h.tokens ? HeadSet::Classifier::kToken : HeadSet::Classifier::kSequence;
  heads.num_labels = ls.count;
  Weights w(cfg, heads);
  copy_or_init(o, cfg, src.weights, w);
  { LoadedModel drop = std::move(src); }  // free the source copy

  // ---- data parallel: every rank runs this job ----
  finetune_util::check_same_job(
      o, {{"training data (--train)", fingerprint(tr)}, {"dev data (--dev)", fingerprint(dv)}}, comm);

  // ---- training ----
  std::ofstream log = finetune_util::open_output(o, tok_path, comm);
  const train::ZeroShards zero = train::zero_shards(w.specs(), o.zero_stage, comm.size(), "finetune");
  Optimizer opt(w.specs(), finetune_util::optimizer_config(o), zero.first_tensor(comm.rank()),
                zero.last_tensor(comm.rank(), w.specs().size()));
  train::report_optimizer_memory("finetune", zero, w.num_params(), o.zero_stage, comm);
  const int64_t N = static_cast<int64_t>(tr.ids.size());
  const int64_t steps_per_epoch = (N + o.batch_size - 1) / o.batch_size;
  HeadsTask task(o, h, tr, dv, cfg, w, ls.count, comm);
  std::vector<float> grads(w.num_params());
  const std::vector<train::ParamGroup> groups = {{&opt, w.data(), grads.data(), grads.size(), zero.elements}};
  const train::LoopConfig lc = finetune_util::loop_config(o, steps_per_epoch, log, h.metric, comm);
  return finetune_util::result_of(train::run_training_loop(lc, task, groups), h.metric);
}

}  // namespace modernbert
