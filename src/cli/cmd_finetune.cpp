// modernbert finetune: fine-tune a checkpoint on a labelled JSONL task (classification,
// regression, multi-label, token classification) or for retrieval (embedding, ColBERT); the best
// dev epoch is saved as an HF-layout model directory.
#include <cstdio>

#include "cli/command.h"
#include "cli/infer_common.h"
#include "cli/world_flags.h"
#include "modernbert/error.h"
#include "modernbert/finetune.h"

namespace modernbert::cli {
namespace {

int run(int argc, char** argv) {
  ArgParser a("finetune", "--task TASK --model DIR --train F --dev F --out DIR [flags]",
              "Fine-tune a checkpoint (e.g. an MLM model) on a labelled task. The encoder and head.dense/\n"
              "head.norm come from DIR, a fresh classifier [num_labels, hidden] is added (a classifier DIR\n"
              "already has is reused when its label count matches). Data (JSONL):\n"
              "  classification  {\"text\"[, \"text_pair\"], \"label\": id|name}  dev metric: accuracy (and macro-F1)\n"
              "  regression      {\"text\", \"label\": x | [x...]}              dev metric: Pearson\n"
              "  multilabel      {\"text\", \"labels\": [ids|names]}            dev metric: micro-F1\n"
              "  token-classification {\"tokens\": [words], \"tags\": [names|ids]}  dev metric: entity F1\n"
              "                  (first sub-token of each word is labelled; word accuracy when tags have no entities)\n"
              "  embedding       {\"query\", \"positive_ids\": [ids]} + --corpus {\"id\", \"text\"}, or {\"query\", "
              "\"positive\": text}\n"
              "                  InfoNCE over cosine / temperature with in-batch negatives; dev metric: nDCG@10\n"
              "  colbert         same data; projection to --colbert-dim, MaxSim with in-batch negatives\n"
              "Retrieval models are saved encoder-only with sentence-transformers files (modules.json,\n"
              "1_Pooling + 2_Normalize, or PyLate's 1_Dense), so embed/eval use them as they are.\n"
              "Label names are sorted into id2label; integer ids give max+1 labels (or --num-labels).\n"
              "Each epoch is scored on --dev; the best epoch is written to --out (config.json,\n"
              "model.safetensors, tokenizer.json) with a JSONL log in --out/finetune_log.jsonl.\n"
              "Data parallel: `mpirun -np N modernbert finetune ...` splits each step's --batch-size examples\n"
              "over the ranks (x --grad-accumulation micro-batches each) and sums the gradients; the run equals\n"
              "the one-process run with --grad-accumulation N (contrastive tasks gather the in-batch negatives\n"
              "of the whole step). Rank 0 alone writes --out.");
  a.option("task", "TASK", "classification | regression | multilabel | token-classification | embedding | colbert",
           "classification");
  a.option("model", "DIR", "starting checkpoint (config.json, model.safetensors, tokenizer.json)");
  a.option("train", "F", "training JSONL");
  a.option("dev", "F", "dev JSONL (scored after every epoch)");
  a.option("out", "DIR", "output directory (best checkpoint + finetune_log.jsonl)");
  a.option("epochs", "N", "training epochs", "3");
  a.option("batch-size", "N", "sequences (queries) per optimizer step, over all ranks", "16");
  a.option("grad-accumulation", "K",
           "micro-batches per rank and step (the step's batch is split into K x ranks; memory per pass / K)", "1");
  a.option("zero", "STAGE",
           "MPI runs: 1 = each rank keeps 1/N of the encoder's optimizer state (ZeRO stage 1), 0 = all", "0");
  a.option("lr", "X", "peak learning rate", "5e-5");
  a.option("weight-decay", "X", "decoupled weight decay (not applied to norms and biases)", "0.01");
  a.option("optimizer", "NAME", "adamw | stableadamw", "adamw");
  a.option("warmup-ratio", "X", "fraction of the steps spent in linear warm-up", "0.1");
  a.option("schedule", "S",
           "linear (warm-up, linear decay to 0) | wsd (warm-up, stable, 1-sqrt decay over the last 20%)", "linear");
  a.option("max-length", "N", "truncate inputs to N tokens (special tokens included)", "512");
  a.option("patience", "N", "stop after N epochs without a dev improvement (0 = never)", "0");
  a.option("seed", "N", "seed of the classifier init and the shuffling", "42");
  a.option("num-labels", "N", "number of labels (default: from the training data)");
  a.option("pooling", "MODE", "cls | mean (default: the config's classifier_pooling)");
  a.option("text-field", "NAME", "field holding the text", "text");
  a.option("pair-field", "NAME", "field holding the second text of a pair", "text_pair");
  a.option("label-field", "NAME",
           "field holding the label (default: label; labels for multilabel; tags for token-classification)");
  a.option("corpus", "F", "embedding/colbert: corpus JSONL {\"id\", \"text\"} that positive_ids refer to");
  a.option("temperature", "X", "embedding/colbert: softmax temperature (default 0.05 embedding, 1.0 colbert)");
  a.option("query-max-length", "N", "embedding/colbert: truncate queries to N tokens", "64");
  a.option("doc-max-length", "N", "embedding/colbert: truncate documents to N tokens (default --max-length)");
  a.option("query-prompt", "TEXT", "embedding/colbert: prefix for queries (saved as the ST prompt \"query\")");
  a.option("document-prompt", "TEXT", "embedding/colbert: prefix for documents (saved as the ST prompt \"document\")");
  a.option("colbert-dim", "N", "colbert: projection size", "128");
  a.option("threads", "N", "compute threads (default: all cores)");
  a.flag("lossy-utf8", "replace invalid UTF-8 in the data with U+FFFD instead of failing");
  a.flag("quiet", "no progress lines on stderr");
  add_world_flags(a);
  if (!a.parse(argc, argv)) return 0;
  apply_threads(a);
  Communicator& world = open_command_world(a);
  FinetuneOptions o;
  o.model_dir = a.require("model");
  o.train = a.require("train");
  o.dev = a.require("dev");
  o.out = a.require("out");
  o.epochs = a.get_int("epochs");
  o.batch_size = a.get_int("batch-size");
  o.grad_accumulation = a.get_int("grad-accumulation");
  o.zero_stage = a.get_int("zero");
  o.lr = a.get_double("lr");
  o.weight_decay = a.get_double("weight-decay");
  o.warmup_ratio = a.get_double("warmup-ratio");
  o.max_length = a.get_int("max-length");
  o.patience = a.get_int("patience");
  const long long seed = a.get_int("seed");
  if (seed < 0) throw Error("--seed must be >= 0");
  o.seed = static_cast<uint64_t>(seed);
  o.num_labels = a.get_int_or("num-labels", 0);
  if (o.num_labels < 0) throw Error("--num-labels must be positive");
  o.text_field = a.get("text-field");
  o.pair_field = a.get("pair-field");
  o.label_field = a.get_or("label-field", "");
  o.progress = !a.has("quiet");
  o.lossy_utf8 = a.has("lossy-utf8");
  o.corpus = a.get_or("corpus", "");
  o.temperature = a.get_double_or("temperature", 0.0);
  if (a.has("temperature") && !(o.temperature > 0)) throw Error("--temperature must be > 0");
  o.query_max_length = a.get_int("query-max-length");
  o.doc_max_length = a.get_int_or("doc-max-length", 0);
  o.query_prompt = a.get_or("query-prompt", "");
  o.document_prompt = a.get_or("document-prompt", "");
  o.colbert_dim = a.get_int("colbert-dim");
  // Option strings become enums here, once (the task first: its error comes before the others').
  o.task = parse_finetune_task(a.get("task"));
  o.schedule = parse_finetune_schedule(a.get("schedule"));
  o.optimizer = parse_finetune_optimizer(a.get("optimizer"));
  o.pooling = parse_finetune_pooling(a.get_or("pooling", ""), o.task);
  FinetuneResult r = finetune(o, world);
  if (!world.is_root()) return 0;  // rank 0 reports the run
  std::printf("%s\n", nlohmann::json{{"out", o.out},
                                     {"steps", r.steps},
                                     {"epochs", r.epochs_run},
                                     {"best_epoch", r.best_epoch},
                                     {"metric", r.metric_name},
                                     {"best", r.best_metric}}
                          .dump()
                          .c_str());
  return 0;
}

static CommandRegistrar reg(
    {"finetune",
     "fine-tune a checkpoint: classification, regression, multi-label, token classification, embeddings, ColBERT",
     run});

}  // namespace
}  // namespace modernbert::cli
