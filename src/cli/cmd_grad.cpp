// modernbert grad: loss and the gradient of every parameter for one batch, as safetensors
// (`loss` F32 [] and `grad.<HF name>`), the same contract as tests/reference/run_reference.py --grad.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "modernbert/error.h"
#include "modernbert/model_dir.h"
#include "modernbert/safetensors.h"
#include "modernbert/token_ids.h"
#include "modernbert/train_model.h"

namespace modernbert::cli {
namespace {

struct Row {
  std::string where;  // FILE:LINE, for errors
  std::vector<int32_t> ids;
  std::vector<int32_t> labels;  // per token (may be empty)
  nlohmann::json label;         // per sequence (null if absent)
};

std::vector<Row> read_rows(const std::string& path, int64_t vocab_size) {
  std::ifstream f(path);
  if (!f) throw Error("grad: cannot open " + path);
  std::vector<Row> rows;
  std::string line;
  int64_t ln = 0;
  while (std::getline(f, line)) {
    ++ln;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(ln);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw Error(where + ": invalid JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("input_ids") || !j["input_ids"].is_array() || j["input_ids"].empty())
      throw Error(where + ": field input_ids must be a non-empty list of ints");
    Row r;
    r.where = where;
    r.ids = parse_token_ids(j["input_ids"], vocab_size, where + ": field input_ids");
    if (j.contains("labels")) {
      if (!j["labels"].is_array() || j["labels"].size() != r.ids.size())
        throw Error(where + ": field labels must be a list as long as input_ids (" + std::to_string(r.ids.size()) +
                    ")");
      for (const auto& x : j["labels"]) {
        // Checked on the 64-bit value: a label must not wrap into range when narrowed.
        if (!x.is_number_integer() || x.get<int64_t>() < INT32_MIN || x.get<int64_t>() > INT32_MAX ||
            (x.is_number_unsigned() && x.get<uint64_t>() > INT32_MAX))
          throw Error(where + ": field labels must hold ints (-100 = ignored), found " + x.dump());
        r.labels.push_back(static_cast<int32_t>(x.get<int64_t>()));
      }
    }
    if (j.contains("label")) r.label = j["label"];
    if (r.labels.empty() && r.label.is_null())
      throw Error(where + ": needs field labels (per token) or label (per sequence)");
    rows.push_back(std::move(r));
  }
  if (rows.empty()) throw Error("grad: " + path + " has no input lines");
  return rows;
}

TaskType infer_task(const ModelConfig& cfg, const HeadSet& heads, const std::vector<Row>& rows) {
  const bool per_token = !rows.front().labels.empty();
  if (per_token) {
    if (heads.classifier == HeadSet::Classifier::kToken) return TaskType::kTokenClassification;
    if (heads.mlm) return TaskType::kMlm;
    throw Error("grad: per-token labels need an MLM or token-classification checkpoint (heads: " + heads.describe() +
                ")");
  }
  if (heads.classifier != HeadSet::Classifier::kSequence)
    throw Error("grad: sequence labels need a sequence-classification checkpoint (heads: " + heads.describe() + ")");
  switch (cfg.problem_type) {
    case ProblemType::kRegression:
      return TaskType::kRegression;
    case ProblemType::kSingleLabel:
      return TaskType::kSequenceClassification;
    case ProblemType::kMultiLabel:
      return TaskType::kMultiLabel;
    case ProblemType::kUnset:
      break;
  }
  if (heads.num_labels == 1) return TaskType::kRegression;
  bool all_int = true;
  for (const auto& r : rows) all_int = all_int && r.label.is_number_integer();
  return all_int ? TaskType::kSequenceClassification : TaskType::kMultiLabel;
}

int run_grad(int argc, char** argv) {
  ArgParser a("grad", "--model DIR --input F.jsonl --output OUT.safetensors [--task T]",
              "Compute the loss of one batch and the gradient of every parameter (fp32), written as\n"
              "safetensors: `loss` (F32, shape []) and `grad.<name>` for each parameter, named as in the\n"
              "checkpoint. JSONL lines carry `input_ids` and either `labels` (per token, -100 ignored; MLM\n"
              "or token classification) or `label` (per sequence: int class, float / list for regression,\n"
              "list of 0/1 for multi-label). All lines form one unpadded batch; the loss is the mean over\n"
              "counted labels (CE) or elements (MSE, BCE). A tied decoder's gradient is part of the\n"
              "token-embedding gradient.");
  a.option("model", "DIR", "checkpoint directory (config.json + model.safetensors)");
  a.option("input", "FILE", "JSONL input");
  a.option("output", "FILE", "output .safetensors");
  a.option("task", "TASK",
           "mlm | classification | token-classification | regression | multilabel (default: from "
           "the heads, problem_type and label types)");
  if (!a.parse(argc, argv)) return 0;
  LoadOptions lo;
  lo.zero_copy = false;
  lo.allow_quantized = false;  // fp32 only: a quantized checkpoint is an Error
  LoadedModel m = load_model_dir(a.require("model"), lo);
  m.weights.make_contiguous();
  const std::vector<Row> rows = read_rows(a.require("input"), m.config.vocab_size);
  const HeadSet& heads = m.weights.heads();
  const TaskType task = a.has("task") ? parse_task(a.get("task")) : infer_task(m.config, heads, rows);
  const int64_t C = heads.num_labels;

  TrainBatch tb;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const std::string& where = r.where;
    tb.batch.add(r.ids);
    switch (task) {
      case TaskType::kMlm:
      case TaskType::kTokenClassification:
        if (r.labels.empty()) throw Error(where + ": task " + to_string(task) + " needs field labels");
        tb.token_labels.insert(tb.token_labels.end(), r.labels.begin(), r.labels.end());
        break;
      case TaskType::kSequenceClassification:
        // Checked on the 64-bit value so that it cannot wrap when narrowed; the range against the
        // head is checked by the training code.
        if (!r.label.is_number_integer() || (r.label.is_number_unsigned() && r.label.get<uint64_t>() > INT32_MAX) ||
            r.label.get<int64_t>() < INT32_MIN || r.label.get<int64_t>() > INT32_MAX)
          throw Error(where + ": field label must be an int class id, found " + r.label.dump());
        tb.class_labels.push_back(static_cast<int32_t>(r.label.get<int64_t>()));
        break;
      case TaskType::kRegression:
      case TaskType::kMultiLabel: {
        std::vector<float> t;
        if (r.label.is_number()) {
          t.push_back(r.label.get<float>());
        } else if (r.label.is_array()) {
          for (const auto& x : r.label) {
            if (!x.is_number()) throw Error(where + ": field label must hold numbers");
            t.push_back(x.get<float>());
          }
        } else {
          throw Error(where + ": field label must be a number or a list of numbers");
        }
        if (static_cast<int64_t>(t.size()) != C)
          throw Error(where + ": field label has " + std::to_string(t.size()) + " values for " + std::to_string(C) +
                      " labels");
        tb.targets.insert(tb.targets.end(), t.begin(), t.end());
        break;
      }
    }
  }

  TrainModel model(m.weights);
  std::vector<float> grads(m.weights.num_params(), 0.0f);
  const LossResult lr = model.forward_backward(tb, task, grads.data());
  SafeTensorsWriter w;
  w.set_metadata("generator", "modernbert grad");
  w.set_metadata("task", to_string(task));
  const float loss = static_cast<float>(lr.loss);
  w.add_f32("loss", {}, &loss);
  for (const auto& s : m.weights.specs()) {
    std::string name = s.name;
    if (!m.has_prefix && name.rfind("model.", 0) == 0) name = name.substr(6);
    w.add_f32_view("grad." + name, s.shape, grads.data() + m.weights.offset(s.name));  // no copy
  }
  w.write(a.require("output"));
  std::fprintf(stderr, "grad: task %s, %lld sequences, %lld tokens, %lld counted, loss %.6f -> %s\n", to_string(task),
               static_cast<long long>(tb.batch.num_seqs()), static_cast<long long>(tb.batch.num_tokens()),
               static_cast<long long>(lr.count), lr.loss, a.get("output").c_str());
  return 0;
}

CommandRegistrar reg({"grad", "loss and gradients of every parameter for one labelled batch", run_grad});

}  // namespace
}  // namespace modernbert::cli
