// modernbert rerank: texts ordered by relevance to a query (modernbert::Model::rerank), best first.
#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/error.h"
#include "modernbert/inference.h"

namespace modernbert::cli {
namespace {

using nlohmann::json;

RerankMode parse_mode(const std::string& s) {
  if (s == "auto") return RerankMode::kAuto;
  if (s == "cross-encoder") return RerankMode::kCrossEncoder;
  if (s == "colbert") return RerankMode::kColBERT;
  if (s == "embedding") return RerankMode::kEmbedding;
  throw Error("--mode: expected auto, cross-encoder, colbert or embedding, got '" + s + "'");
}

// The texts to rank: the TEXT arguments, else the --input records (text only).
std::vector<InputRecord> read_texts(const ArgParser& a, int64_t vocab_size) {
  std::vector<InputRecord> recs;
  if (a.positionals().empty()) {
    recs = read_inputs_from(a.get("input"), vocab_size, a.has("lossy-utf8"));
  } else {
    for (const auto& t : a.positionals()) {
      InputRecord r;
      r.source = "argument";
      r.line = recs.size() + 1;
      r.text = t;
      if (t.empty()) throw Error(r.where() + ": empty text");
      recs.push_back(r);
    }
  }
  for (const auto& r : recs)
    if (r.has_ids || r.has_pair) throw Error(r.where() + ": rerank takes texts (no input_ids or text_pair)");
  return recs;
}

int run_rerank(int argc, char** argv) {
  ArgParser a("rerank", "--model DIR --query Q [TEXT... | --input F] [flags]",
              "Rank texts by relevance to a query, best first. Modes: cross-encoder (the model's sequence\n"
              "classifier on (query, text): sigmoid of its one logit, else the last label's softmax\n"
              "probability, as TEI's /rerank), colbert (MaxSim of ColBERT token vectors), embedding (cosine\n"
              "of sentence embeddings, with --query-prompt / --document-prompt); auto picks the first the\n"
              "model supports in that order. Prints JSONL {\"index\", \"score\", \"text\"} (index into the\n"
              "inputs; ties keep input order).");
  add_common_flags(a);
  a.option("query", "Q", "the query");
  a.option("top-n", "N", "print only the best N (0 = all)", "0");
  a.option("mode", "MODE", "auto | cross-encoder | colbert | embedding", "auto");
  a.option("query-prompt", "NAME", "embedding mode: sentence-transformers prompt for the query (default: the model's)");
  a.option("document-prompt", "NAME", "embedding mode: prompt for the texts (default: the model's)");
  a.positional("TEXT", "texts to rank (instead of --input)");
  if (!a.parse(argc, argv)) return 0;
  apply_threads(a);
  const std::string query = a.require("query");
  if (query.empty()) throw Error("--query: empty query");
  RerankParams p;
  p.mode = parse_mode(a.get("mode"));
  p.top_n = a.get_int("top-n");
  if (p.top_n < 0) throw Error("--top-n must be >= 0");
  p.query_prompt_name = a.get_or("query-prompt", "");
  p.document_prompt_name = a.get_or("document-prompt", "");
  ModelOptions mo;
  mo.precision = dtype_option(a);
  mo.max_batch_tokens = a.get_int("max-batch-tokens");
  if (mo.max_batch_tokens <= 0) throw Error("--max-batch-tokens must be positive");
  mo.truncate = a.has("truncate");
  mo.lossy_utf8 = a.has("lossy-utf8");
  Model model(a.require("model"), mo);
  const std::vector<InputRecord> recs = read_texts(a, model.info().vocab_size);
  std::vector<std::string> texts;
  for (const auto& r : recs) texts.push_back(r.text);
  std::vector<RerankHit> hits;
  try {
    hits = model.rerank(query, texts, p);
  } catch (const BatchItemError& e) {
    std::string msg = e.detail();
    if (const size_t h = msg.find("(enable truncation)"); h != std::string::npos)
      msg.replace(h, 19, "(use --truncate)");
    if (const size_t h = msg.find("use lossy mode"); h != std::string::npos) msg.replace(h, 14, "use --lossy-utf8");
    throw Error(recs.at(e.index()).where() + ": " + msg);
  }
  std::string out;
  for (const RerankHit& h : hits) {
    json line = {{"index", h.index}, {"score", h.score}, {"text", texts[static_cast<size_t>(h.index)]}};
    // The echoed text may hold invalid UTF-8 (--lossy-utf8): write U+FFFD for it.
    out += line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  write_output(a.get("output"), out);
  return 0;
}

CommandRegistrar reg({"rerank", "texts ordered by relevance to a query (cross-encoder, ColBERT or embeddings)",
                      run_rerank});

}  // namespace
}  // namespace modernbert::cli
