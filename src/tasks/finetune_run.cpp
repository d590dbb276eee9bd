// Fine-tuning options (parsed once into enums) and the loop setup both fine-tuning paths share
// (finetune_run.h).
#include "tasks/finetune_run.h"

#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/hash.h"
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

std::ofstream open_output(const FinetuneOptions& o, const std::string& tokenizer_path, const Communicator& comm) {
  namespace fs = std::filesystem;
  if (!comm.is_root()) return {};
  fs::create_directories(o.out);
  fs::copy_file(tokenizer_path, o.out + "/tokenizer.json", fs::copy_options::overwrite_existing);
  std::ofstream log(o.out + "/finetune_log.jsonl", std::ios::trunc);
  if (!log) throw Error(o.out + "/finetune_log.jsonl: cannot open for writing");
  return log;
}

train::LoopConfig loop_config(const FinetuneOptions& o, int64_t steps_per_epoch, std::ostream& log,
                              const std::string& metric_name, Communicator& comm) {
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
  c.comm = &comm;
  return c;
}

void check_parallel_options(const FinetuneOptions& o) {
  if (o.grad_accumulation < 1 || o.grad_accumulation > 4096)
    throw Error("finetune: --grad-accumulation must be in [1, 4096], got " + std::to_string(o.grad_accumulation));
  if (o.zero_stage != 0 && o.zero_stage != 1)
    throw Error("finetune: --zero must be 0 or 1, got " + std::to_string(o.zero_stage));
}

int64_t micro_batches_per_step(const FinetuneOptions& o, const Communicator& comm) {
  return o.grad_accumulation * comm.size();
}

void Fingerprint::add_bytes(const void* p, size_t n) {
  const uint64_t len = n;
  h_ = fnv1a64(&len, sizeof len, h_);
  h_ = fnv1a64(p, n, h_);
}

namespace {

// The flags that shape a run, by CLI name (paths and --out may differ between hosts; the data
// they name is compared by fingerprint).
nlohmann::json job_options(const FinetuneOptions& o) {
  nlohmann::json j = {{"task", to_string(o.task)},
                      {"epochs", o.epochs},
                      {"batch-size", o.batch_size},
                      {"grad-accumulation", o.grad_accumulation},
                      {"zero", o.zero_stage},
                      {"lr", o.lr},
                      {"weight-decay", o.weight_decay},
                      {"optimizer", static_cast<int>(o.optimizer)},
                      {"warmup-ratio", o.warmup_ratio},
                      {"schedule", static_cast<int>(o.schedule)},
                      {"max-length", o.max_length},
                      {"patience", o.patience},
                      {"seed", o.seed},
                      {"num-labels", o.num_labels},
                      {"pooling", o.pooling ? static_cast<int>(*o.pooling) : -1},
                      {"text-field", o.text_field},
                      {"pair-field", o.pair_field},
                      {"label-field", o.label_field},
                      {"lossy-utf8", o.lossy_utf8},
                      {"temperature", o.temperature},
                      {"query-max-length", o.query_max_length},
                      {"doc-max-length", o.doc_max_length},
                      {"query-prompt", o.query_prompt},
                      {"document-prompt", o.document_prompt},
                      {"colbert-dim", o.colbert_dim},
                      {"eval-depth", o.eval_depth}};
  return j;
}

}  // namespace

void check_same_job(const FinetuneOptions& o, const std::vector<std::pair<std::string, uint64_t>>& data,
                    Communicator& comm) {
  if (comm.size() == 1) return;
  nlohmann::json mine = {{"options", job_options(o)}, {"data", nlohmann::json::array()}};
  for (const auto& [name, fp] : data) mine["data"].push_back({name, fp});
  const std::vector<std::string> all = comm.allgather_bytes(mine.dump());
  const nlohmann::json root = nlohmann::json::parse(all[0]);
  const std::string advice = ": every rank must run the same command on the same data";
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r] == all[0]) continue;
    const nlohmann::json other = nlohmann::json::parse(all[r]);
    const std::string who = "finetune: rank " + std::to_string(r) + " of " + std::to_string(all.size());
    const nlohmann::json& theirs = other.at("options");
    for (const auto& [flag, value] : root.at("options").items()) {
      const nlohmann::json v = theirs.contains(flag) ? theirs.at(flag) : nlohmann::json();
      if (v != value) throw Error(who + " has --" + flag + " " + v.dump() + " but rank 0 has " + value.dump() + advice);
    }
    const nlohmann::json &ours = root.at("data"), &their_data = other.at("data");
    for (size_t i = 0; i < ours.size(); ++i)
      if (i >= their_data.size() || their_data[i] != ours[i])
        throw Error(who + " read different " + ours[i][0].get<std::string>() + " than rank 0" + advice);
    throw Error(who + " differs from rank 0" + advice);
  }
}

std::string encode_shards(int64_t parts, const std::function<std::string(int64_t)>& encode, Communicator& comm) {
  const Share mine = rank_share(parts, comm.rank(), comm.size());
  std::string out;
  for (int64_t p = mine.first; p < mine.last; ++p) out += encode(p);
  if (comm.size() == 1) return out;
  std::string all;
  for (const std::string& s : comm.gather_bytes(out, 0)) all += s;
  return all;
}

double root_score(double score, Communicator& comm) {
  if (comm.size() > 1) comm.broadcast(&score, sizeof score, 0);
  return score;
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
