// Accuracy of bf16 / f16 / int8 against f32 on every head of a model (#15 item 4).
//
// usage: bench_precision --model DIR --input FILE [--dtypes bf16,f16,int8] [--max-texts N]
//          [--max-length N] [--max-batch-tokens N] [--mask-rate R] [--seed S] [--threads N]
//          [--mlm-margin M] [--cls-margin M]
//
// Loads DIR once in f32 (the reference) and once per dtype (LoadOptions::precision: the loader
// converts the float checkpoint at load), tokenizes FILE with DIR/tokenizer.json (JSONL {"text"[,
// "label"]} or plain lines; truncated to --max-length tokens) and runs every head the model has on
// the same batches. Prints one JSON line per dtype (f32 first, as the reference, with its accuracy
// when the input has labels):
//   embedding_mean_pool_cos / embedding_cls_cos: cosine of the L2-normalised sentence embeddings
//     against f32 (mean, min over texts); last_hidden_state_token_cos: per token (mean, min);
//   mlm (MLM head): top-1 agreement and mean top-5 overlap with f32 at the [MASK]ed positions
//     (--mask-rate of the inner tokens of each text, seeded) and at every inner position of the
//     unmasked texts; also top-1 agreement among positions whose f32 top-1 margin >= --mlm-margin;
//   classification (sequence classifier): label agreement, max |delta logit|; accuracy against the
//     input's "label" field (argmax, `modernbert eval`'s rule) next to f32's.
// Progress goes to stderr. A dtype the loader does not produce (LoadedModel::precision differs)
// is an error, never a silently mislabelled row.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "modernbert/batching.h"
#include "modernbert/error.h"
#include "modernbert/eval_data.h"
#include "modernbert/model_dir.h"
#include "modernbert/precision.h"
#include "modernbert/tokenizer.h"
#include "precision_compare.h"

namespace mb = modernbert;
using nlohmann::json;

namespace {

struct Args {
  std::string model, input;
  std::vector<mb::Precision> dtypes{mb::Precision::kBF16, mb::Precision::kF16, mb::Precision::kInt8};
  int64_t max_texts = 256, max_length = 512, max_batch_tokens = 8192, threads = 0;
  double mask_rate = 0.15, mlm_margin = 0.1, cls_margin = 0.1;
  uint64_t seed = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "bench_precision: %s\nusage: bench_precision --model DIR --input FILE [--dtypes bf16,f16,int8] "
               "[--max-texts N] [--max-length N] [--max-batch-tokens N] [--mask-rate R] [--seed S] [--threads N] "
               "[--mlm-margin M] [--cls-margin M]\n",
               why.c_str());
  std::exit(2);
}

int64_t to_int(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  usage(flag + " needs an integer, got '" + v + "'");
}

double to_double(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    double x = std::stod(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  usage(flag + " needs a number, got '" + v + "'");
}

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string f = argv[i];
    if (f == "-h" || f == "--help") usage("help");
    if (i + 1 >= argc) usage(f + " needs a value");
    std::string v = argv[++i];
    if (f == "--model")
      a.model = v;
    else if (f == "--input")
      a.input = v;
    else if (f == "--dtypes") {
      a.dtypes.clear();
      std::stringstream ss(v);
      std::string d;
      while (std::getline(ss, d, ',')) {
        mb::Precision p;
        if (!mb::parse_precision(d, &p) || p == mb::Precision::kF32)
          usage("--dtypes takes a comma list of bf16, f16, int8; got '" + d + "'");
        a.dtypes.push_back(p);
      }
    } else if (f == "--max-texts")
      a.max_texts = to_int(f, v);
    else if (f == "--max-length")
      a.max_length = to_int(f, v);
    else if (f == "--max-batch-tokens")
      a.max_batch_tokens = to_int(f, v);
    else if (f == "--threads")
      a.threads = to_int(f, v);
    else if (f == "--seed")
      a.seed = static_cast<uint64_t>(to_int(f, v));
    else if (f == "--mask-rate")
      a.mask_rate = to_double(f, v);
    else if (f == "--mlm-margin")
      a.mlm_margin = to_double(f, v);
    else if (f == "--cls-margin")
      a.cls_margin = to_double(f, v);
    else
      usage("unknown flag " + f);
  }
  if (a.model.empty() || a.input.empty()) usage("--model and --input are required");
  if (a.max_texts <= 0 || a.max_length < 3 || a.max_batch_tokens <= 0 || a.threads < 0)
    usage("--max-texts and --max-batch-tokens must be positive, --max-length at least 3");
  if (!(a.mask_rate > 0 && a.mask_rate < 1)) usage("--mask-rate must be in (0, 1)");
  return a;
}

struct Record {
  std::string text;
  std::optional<json> label;
};

// Non-blank lines: a line starting with '{' is a JSON object with "text" (and optionally "label"),
// anything else is a plain text. Stops after max_texts records.
std::vector<Record> read_records(const std::string& path, int64_t max_texts) {
  std::ifstream in(path);
  if (!in) throw mb::Error(path + ": cannot open");
  std::vector<Record> out;
  std::string line;
  size_t lineno = 0;
  while (static_cast<int64_t>(out.size()) < max_texts && std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Record r;
    if (line[0] == '{') {
      json j;
      try {
        j = json::parse(line);
      } catch (const std::exception& e) {
        throw mb::Error(path + ":" + std::to_string(lineno) + ": bad JSON: " + e.what());
      }
      if (!j.contains("text") || !j["text"].is_string())
        throw mb::Error(path + ":" + std::to_string(lineno) + ": no string field \"text\"");
      r.text = j["text"].get<std::string>();
      if (j.contains("label") && !j["label"].is_null()) r.label = j["label"];
    } else {
      r.text = line;
    }
    out.push_back(std::move(r));
  }
  if (out.empty()) throw mb::Error(path + ": no texts");
  return out;
}

// The texts as token ids (tokenizer from the model dir, special tokens, truncated to max_length)
// with the gold labels resolved in the model's label space (-1 where absent).
mbprec::TextSet make_text_set(const mb::LoadedModel& lm, const mb::Tokenizer& tok, const std::vector<Record>& recs,
                              const Args& a, bool has_mlm, bool has_cls, int64_t num_labels) {
  std::vector<mb::SequenceInput> inputs(recs.size());
  for (size_t i = 0; i < recs.size(); ++i) inputs[i].text = recs[i].text;
  mb::SequenceOptions so;
  so.max_position = lm.config.max_position_embeddings;
  so.truncate_to = std::min(a.max_length, lm.config.max_position_embeddings);
  so.vocab_size = lm.config.vocab_size;
  so.lossy_utf8 = true;
  mbprec::TextSet ts;
  try {
    ts.seqs = mb::inputs_to_ids(&tok, inputs, so);
  } catch (const mb::BatchItemError& e) {
    throw mb::Error(a.input + ": text " + std::to_string(e.index() + 1) + ": " + e.what());
  }
  bool any_label = false;
  for (const auto& r : recs) any_label = any_label || r.label.has_value();
  if (has_cls && any_label) {
    const mb::LabelSpace ls = mb::label_space(lm.config, num_labels);
    for (size_t i = 0; i < recs.size(); ++i)
      ts.labels.push_back(
          recs[i].label ? mb::resolve_label(*recs[i].label, ls, a.input + " text " + std::to_string(i + 1)) : -1);
  }
  if (has_mlm) {  // the masked copy is only read by the MLM head
    auto mask = tok.token_to_id("[MASK]");
    if (!mask) throw mb::Error(lm.dir + "/tokenizer.json: no [MASK] token (needed to measure the MLM head)");
    mbprec::add_masks(ts, *mask, a.mask_rate, a.seed);
  }
  return ts;
}

mb::LoadedModel load_as(const std::string& dir, mb::Precision p) {
  mb::LoadOptions lo;
  lo.precision = p;
  mb::LoadedModel lm = mb::load_model_dir(dir, lo);
  if (lm.precision != p)
    throw mb::Error(dir + ": asked the loader for " + std::string(mb::precision_name(p)) + ", got " +
                    mb::precision_name(lm.precision) + " (is reduced-precision loading built in?)");
  return lm;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int run(const Args& a) {
  if (a.threads > 0) mb::kernels::set_num_threads(static_cast<int>(a.threads));
  const mb::Tokenizer tok = mb::Tokenizer::from_file(a.model + "/tokenizer.json");
  const auto recs = read_records(a.input, a.max_texts);

  double t0 = now_s();
  mbprec::Outputs ref;
  mbprec::TextSet ts;
  bool has_mlm = false, has_cls = false;
  {
    mb::LoadedModel lm = load_as(a.model, mb::Precision::kF32);
    const double load_s = now_s() - t0;
    const mb::HeadSet& heads = lm.weights.heads();
    has_mlm = heads.mlm;
    has_cls = heads.classifier == mb::HeadSet::Classifier::kSequence;
    mb::Encoder enc(lm.weights);
    ts = make_text_set(lm, tok, recs, a, has_mlm, has_cls, enc.num_labels());
    std::fprintf(stderr, "bench_precision: %s: %zu texts, %lld tokens, heads %s; f32 reference...\n", a.model.c_str(),
                 ts.seqs.size(), static_cast<long long>(ts.num_tokens()), heads.describe().c_str());
    ref = mbprec::run_outputs(enc, ts, has_mlm, has_cls, a.max_batch_tokens);
    json line = {{"dtype", "f32"},
                 {"reference", true},
                 {"model", a.model},
                 {"input", a.input},
                 {"texts", ts.seqs.size()},
                 {"tokens", ts.num_tokens()},
                 {"heads", heads.describe()},
                 {"hidden_size", lm.config.hidden_size},
                 {"layers", lm.config.num_hidden_layers},
                 {"gemm", mb::kernels::linear_path(mb::Precision::kF32)},
                 {"load_s", load_s},
                 {"forward_s", ref.seconds}};
    const double acc = mbprec::accuracy(ref, ts.labels);
    if (acc >= 0) line["accuracy"] = acc;
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
  const double acc_f32 = mbprec::accuracy(ref, ts.labels);
  for (mb::Precision p : a.dtypes) {
    std::fprintf(stderr, "bench_precision: %s...\n", mb::precision_name(p));
    t0 = now_s();
    mb::LoadedModel lm = load_as(a.model, p);
    const double load_s = now_s() - t0;
    mb::Encoder enc(lm.weights);
    mbprec::Outputs got = mbprec::run_outputs(enc, ts, has_mlm, has_cls, a.max_batch_tokens);
    mbprec::Comparison c = mbprec::compare(ref, got, a.mlm_margin, a.cls_margin);
    json line = {{"dtype", mb::precision_name(p)},
                 {"model", a.model},
                 {"texts", ts.seqs.size()},
                 {"tokens", ts.num_tokens()},
                 {"gemm", mb::kernels::linear_path(p)},
                 {"bf16_activations", p == mb::Precision::kBF16 && mb::kernels::linear_rounds_x_bf16()},
                 {"load_s", load_s},
                 {"forward_s", got.seconds}};
    line.update(c.to_json());
    const double acc = mbprec::accuracy(got, ts.labels);
    if (acc >= 0) {
      line["accuracy"] = acc;
      line["accuracy_f32"] = acc_f32;
      line["accuracy_delta_points"] = 100.0 * (acc - acc_f32);
      line["labelled"] = std::count_if(ts.labels.begin(), ts.labels.end(), [](int64_t l) { return l >= 0; });
    }
    std::printf("%s\n", line.dump().c_str());
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_precision: %s\n", e.what());
    return 1;
  }
}
