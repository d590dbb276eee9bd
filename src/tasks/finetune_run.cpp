// Fine-tuning options (parsed once into enums) and the loop setup both fine-tuning paths share
// (finetune_run.h).
#include "tasks/finetune_run.h"

#include <filesystem>

#include "modernbert/error.h"
#include "tasks/finetune_util.h"

namespace modernbert {

const char* to_string(FinetuneTask t) {
  switch (t) {
    case FinetuneTask::kClassification:
      return "classification";
    case FinetuneTask::kRegression:
      return "regression";
    case FinetuneTask::kMultiLabel:
      return "multilabel";
    case FinetuneTask::kTokenClassification:
      return "token-classification";
    case FinetuneTask::kEmbedding:
      return "embedding";
    case FinetuneTask::kColbert:
      return "colbert";
  }
  return "?";
}

FinetuneTask parse_finetune_task(const std::string& s) {
  for (FinetuneTask t : {FinetuneTask::kClassification, FinetuneTask::kRegression, FinetuneTask::kMultiLabel,
                         FinetuneTask::kTokenClassification, FinetuneTask::kEmbedding, FinetuneTask::kColbert})
    if (s == to_string(t)) return t;
  throw Error(
      "finetune: --task must be classification, regression, multilabel, token-classification, embedding or colbert, "
      "got '" +
      s + "'");
}

FinetuneSchedule parse_finetune_schedule(const std::string& s) {
  if (s == "linear") return FinetuneSchedule::kLinear;
  if (s == "wsd") return FinetuneSchedule::kWsd;
  throw Error("finetune: --schedule must be linear or wsd");
}

OptimizerType parse_finetune_optimizer(const std::string& s) {
  if (s == "adamw") return OptimizerType::kAdamW;
  if (s == "stableadamw") return OptimizerType::kStableAdamW;
  throw Error("finetune: --optimizer must be adamw or stableadamw");
}

std::optional<EmbedPooling> parse_finetune_pooling(const std::string& s, FinetuneTask task) {
  if (s.empty()) return std::nullopt;
  if (task == FinetuneTask::kColbert) return parse_embed_pooling(s);  // ColBERT pools nothing
  if (s == "cls") return EmbedPooling::kCls;
  if (s == "mean") return EmbedPooling::kMean;
  throw Error("finetune: --pooling must be cls or mean");
}

namespace finetune_util {

std::ofstream open_output(const FinetuneOptions& o, const std::string& tokenizer_path) {
  namespace fs = std::filesystem;
  fs::create_directories(o.out);
  fs::copy_file(tokenizer_path, o.out + "/tokenizer.json", fs::copy_options::overwrite_existing);
  std::ofstream log(o.out + "/finetune_log.jsonl", std::ios::trunc);
  if (!log) throw Error(o.out + "/finetune_log.jsonl: cannot open for writing");
  return log;
}

train::LoopConfig loop_config(const FinetuneOptions& o, int64_t steps_per_epoch, std::ostream& log,
                              const std::string& metric_name) {
  train::LoopConfig c;
  c.label = "finetune";
  c.peak_lr = o.lr;
  c.schedule = schedule_config(o, steps_per_epoch * o.epochs);
  c.clock = train::LoopConfig::Clock::kSteps;
  c.epochs = o.epochs;
  c.steps_per_epoch = steps_per_epoch;
  c.eval_each_epoch = true;
  c.patience = o.patience;
  c.metric_name = metric_name;
  c.log = &log;
  c.progress = o.progress;
  return c;
}

FinetuneResult result_of(const train::LoopResult& r, const std::string& metric_name) {
  FinetuneResult res;
  res.steps = r.state.step;
  res.epochs_run = r.epochs_run;
  res.best_epoch = r.best_epoch;
  res.best_metric = r.best_score;
  res.metric_name = metric_name;
  res.history = r.history;
  return res;
}

}  // namespace finetune_util
}  // namespace modernbert
