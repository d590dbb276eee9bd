// modernbert eval: score a checkpoint on a labelled set or a retrieval set; one JSON object on
// stdout (or --output) and a readable table on stderr (--format table: the table only, on stdout).
#include <sys/stat.h>

#include <cstdio>

#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/error.h"
#include "modernbert/evaluation.h"

namespace modernbert::cli {
namespace {

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

int run_eval(int argc, char** argv) {
  ArgParser a("eval", "--task TASK --model DIR (--data F | --corpus F --queries F | --data DIR --split S) [flags]",
              "Evaluate a checkpoint. Tasks and data (JSONL, one object per line):\n"
              "  classification        {\"text\"[, \"text_pair\"], \"label\": id|name}: accuracy, macro-F1, per-class\n"
              "                        F1, MCC, F1 of the positive class (binary: id 1, or --positive-label)\n"
              "  multilabel            {\"text\", \"labels\": [ids|names]}: micro/macro F1 at --threshold\n"
              "  regression            {\"text\", \"label\": x | [x...]}: Pearson, Spearman (average ranks), MSE\n"
              "  token-classification  {\"tokens\": [words], \"tags\": [names|ids]}: word accuracy, entity F1\n"
              "                        (seqeval-style exact spans over BIO/IOB2 tags; first sub-token per word)\n"
              "  retrieval             corpus {\"id\", \"text\", \"split\"} + queries {\"qid\", \"query\",\n"
              "                        \"positive_ids\"}: pooled embeddings as `embed`, exact search;\n"
              "                        nDCG@10, MRR@10, Recall@1/10/100\n"
              "  colbert               as retrieval, with per-token vectors and exact MaxSim\n"
              "Labels must fit the checkpoint's head (ids < num_labels, names in id2label). Queries without\n"
              "any relevant document in the searched corpus are excluded from the means and counted.");
  a.option("task", "TASK", "classification | multilabel | regression | token-classification | retrieval | colbert");
  a.option("model", "DIR", "model directory (config.json, model.safetensors, tokenizer.json)");
  a.option("data", "F|DIR", "labelled JSONL; for retrieval a directory with corpus.jsonl and queries_SPLIT.jsonl");
  a.option("corpus", "F", "retrieval: corpus JSONL");
  a.option("queries", "F", "retrieval: queries JSONL");
  a.option("split", "S", "retrieval: the queries' split (closed corpus = the documents of this split)");
  a.option("scope", "S", "retrieval: closed | full | both (default: closed with --split, else full)");
  a.option("format", "FMT", "json (JSON on stdout, table on stderr) | table (table on stdout)", "json");
  a.option("output", "F", "write the JSON report here instead of stdout");
  a.option("predictions", "F", "write per-example predictions (JSONL) here");
  a.option("text-field", "NAME", "field holding the text", "text");
  a.option("pair-field", "NAME", "field holding the second text of a pair", "text_pair");
  a.option("label-field", "NAME", "field holding the label (default: label; labels for multilabel; tags for tokens)");
  a.option("group-field", "NAME", "classification: also report accuracy per value of this field (e.g. group)");
  a.option("positive-label", "L", "classification: report F1 of this class (name or id)");
  a.option("threshold", "P", "multilabel: decision threshold on sigmoid scores", "0.5");
  a.option("max-length", "N", "truncate inputs to N tokens (default: error above max_position_embeddings)");
  a.option("query-max-length", "N", "retrieval: truncate queries to N tokens");
  a.option("doc-max-length", "N", "retrieval: truncate documents to N tokens");
  a.option("pooling", "MODE", "retrieval: cls | mean | max (default: as `embed`)");
  a.option("similarity", "S", "retrieval: cos | dot", "cos");
  a.option("query-prefix", "STR", "retrieval: prepend STR to every query");
  a.option("doc-prefix", "STR", "retrieval: prepend STR to every document");
  a.option("query-prompt", "NAME", "retrieval: sentence-transformers prompt for queries (default: 'query' if defined)");
  a.option("doc-prompt", "NAME",
           "retrieval: sentence-transformers prompt for documents (default: 'document' if defined)");
  a.option("depth", "K", "retrieval: ranking depth kept per query (at least 100)", "100");
  a.option("max-batch-tokens", "N", "token budget of one unpadded batch", "16384");
  a.option("threads", "N", "compute threads (default: all cores)");
  a.option("dtype", "TYPE", "weights and compute: f32 | bf16 | f16 | int8 (docs/precision.md)");
  a.flag("lossy-utf8", "replace invalid UTF-8 in the data with U+FFFD instead of failing");
  a.flag("quiet", "nothing on stderr (no progress lines, no table)");
  if (!a.parse(argc, argv)) return 0;
  apply_threads(a);
  const std::optional<Precision> dtype = dtype_option(a);  // checked before the data is read
  const std::string fmt = a.get("format");
  if (fmt != "json" && fmt != "table") throw Error("--format must be json or table");

  EvalOptions o;
  o.task = parse_eval_task(a.require("task"));
  const bool retrieval = is_retrieval(o.task);
  o.split = a.get_or("split", "");
  // Retrieval settings are read (and checked) only for the tasks that use them.
  if (retrieval && a.has("scope") && !a.get("scope").empty()) o.scope = parse_scope_mode(a.get("scope"));
  if (retrieval) {
    if (a.has("data")) {
      const std::string d = a.get("data");
      if (!is_dir(d)) throw Error("--data for retrieval must be a directory (or give --corpus and --queries)");
      if (o.split.empty()) throw Error("--data DIR needs --split (queries_SPLIT.jsonl)");
      o.corpus = d + "/corpus.jsonl";
      o.queries = d + "/queries_" + o.split + ".jsonl";
    }
    if (a.has("corpus")) o.corpus = a.get("corpus");
    if (a.has("queries")) o.queries = a.get("queries");
  } else {
    o.data = a.require("data");
  }
  o.text_field = a.get("text-field");
  o.pair_field = a.get("pair-field");
  o.label_field = a.get_or("label-field", o.task == EvalTask::kMultiLabel            ? "labels"
                                          : o.task == EvalTask::kTokenClassification ? "tags"
                                                                                     : "label");
  o.group_field = a.get_or("group-field", "");
  o.positive_label = a.get_or("positive-label", "");
  o.threshold = a.get_double("threshold");
  o.max_length = a.get_int_or("max-length", 0);
  o.query_max_length = a.get_int_or("query-max-length", 0);
  o.doc_max_length = a.get_int_or("doc-max-length", 0);
  if (o.max_length < 0 || o.query_max_length < 0 || o.doc_max_length < 0) throw Error("max lengths must be positive");
  o.max_batch_tokens = a.get_int("max-batch-tokens");
  o.predictions_path = a.get_or("predictions", "");
  if (o.task == EvalTask::kRetrieval) o.similarity = parse_similarity(a.get("similarity"));
  o.depth = a.get_int("depth");
  o.progress = !a.has("quiet");
  o.lossy_utf8 = a.has("lossy-utf8");
  if (a.has("pooling")) o.pooling = parse_embed_pooling(a.get("pooling"));

  InferenceContext ctx = load_inference(a.require("model"), dtype);
  if (!ctx.tokenizer) throw Error(ctx.model.dir + ": eval needs tokenizer.json in the model directory");
  const auto& st = ctx.model.sentence_transformers;
  auto prompt = [&](const char* flag, std::initializer_list<const char*> defaults) -> std::string {
    if (a.has(flag)) {
      auto it = st.prompts.find(a.get(flag));
      if (it == st.prompts.end())
        throw Error(std::string("--") + flag + " " + a.get(flag) + ": the model defines no such prompt");
      return it->second;
    }
    for (const char* d : defaults)
      if (auto it = st.prompts.find(d); it != st.prompts.end()) return it->second;
    return "";
  };
  if (retrieval) {
    o.query_prefix = prompt("query-prompt", {"query"}) + a.get_or("query-prefix", "");
    o.doc_prefix = prompt("doc-prompt", {"document", "passage", "corpus"}) + a.get_or("doc-prefix", "");
  }
  EvalModel m{&ctx.model, &*ctx.tokenizer, ctx.encoder.get()};
  nlohmann::json report = evaluate(m, o);
  const std::string table = format_report_table(report);
  if (fmt == "table") {
    write_output("-", table);
    if (a.has("output")) write_output(a.get("output"), report.dump(2) + "\n");
  } else {
    if (o.progress) std::fputs(table.c_str(), stderr);
    write_output(a.get_or("output", "-"), report.dump(2) + "\n");
  }
  return 0;
}

CommandRegistrar reg({"eval", "evaluate a checkpoint (classification, regression, tokens, retrieval, ColBERT)",
                      run_eval});

}  // namespace
}  // namespace modernbert::cli
