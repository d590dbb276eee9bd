// modernbert init: write a freshly initialised checkpoint in Hugging Face layout.
#include <cstdio>

#include "cli/args.h"
#include "cli/command.h"
#include "modernbert/error.h"
#include "modernbert/model_dir.h"

namespace modernbert::cli {
namespace {

int run_init(int argc, char** argv) {
  ArgParser a("init", "(--preset tiny|base|large | --config FILE) --out DIR [flags]",
              "Write a new ModernBERT checkpoint (config.json + model.safetensors) initialised by the\n"
              "spec's Megatron-style rules: truncated normal (cutoff initializer_cutoff_factor x std),\n"
              "std 0.02 for Wqkv/Wi/head.dense/embeddings, 0.02/sqrt(2L) for output projections,\n"
              "H^-0.5 for classifiers and an untied decoder; norms 1, biases 0. Same seed -> same bytes.");
  a.option("preset", "NAME", "architecture preset: tiny | base | large");
  a.option("config", "FILE", "config.json to take the architecture from (unknown keys are kept)");
  a.option("out", "DIR", "output directory (created if missing)");
  a.option("seed", "N", "random seed", "0");
  a.option("heads", "LIST", "heads to add: comma list of mlm, cls:N (sequence classification), token:N", "mlm");
  a.option("dtype", "TYPE", "storage dtype: f32 | f16 | bf16", "f32");
  if (!a.parse(argc, argv)) return 0;
  if (a.has("preset") == a.has("config")) throw Error("init: give exactly one of --preset or --config");
  std::string out = a.require("out");
  ModelConfig cfg = a.has("preset") ? ModelConfig::preset(a.get("preset")) : ModelConfig::from_file(a.get("config"));
  HeadSet heads = HeadSet::parse(a.get("heads"));
  if (heads.classifier != HeadSet::Classifier::kNone && !cfg.id2label.empty() &&
      static_cast<int64_t>(cfg.id2label.size()) != heads.num_labels)
    throw Error("init: --heads asks for " + std::to_string(heads.num_labels) + " labels but the config's id2label has " +
                std::to_string(cfg.id2label.size()));
  // The architectures list follows the heads actually written.
  cfg.architectures.clear();
  if (heads.mlm) cfg.architectures.push_back("ModernBertForMaskedLM");
  if (heads.classifier == HeadSet::Classifier::kSequence) cfg.architectures.push_back("ModernBertForSequenceClassification");
  if (heads.classifier == HeadSet::Classifier::kToken) cfg.architectures.push_back("ModernBertForTokenClassification");
  std::string dt = a.get("dtype");
  DType dtype = dt == "f32" ? DType::kF32 : dt == "f16" ? DType::kF16 : dt == "bf16" ? DType::kBF16 : DType::kU8;
  if (dtype == DType::kU8) throw Error("init: --dtype must be f32, f16 or bf16, got '" + dt + "'");
  long long seed = a.get_int("seed");

  Weights w(cfg, heads);
  init_weights(w, static_cast<uint64_t>(seed));
  save_model_dir(out, cfg, w, dtype);
  std::fprintf(stderr, "init: wrote %s (%zu parameters, heads %s, %s, seed %lld)\n", out.c_str(), w.num_params(),
               heads.describe().c_str(), dtype_name(dtype), seed);
  return 0;
}

CommandRegistrar reg({"init", "write a freshly initialised checkpoint (HF layout)", run_init});

}  // namespace
}  // namespace modernbert::cli
