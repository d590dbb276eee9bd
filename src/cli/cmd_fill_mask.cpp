// modernbert fill-mask: top-k fills for every [MASK] in each text, decoded as Hugging Face does.
#include <cstdio>

#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/error.h"
#include "modernbert/inference.h"
#include "modernbert/tasks.h"

namespace modernbert::cli {
namespace {

using nlohmann::json;

int run_fill_mask(int argc, char** argv) {
  ArgParser a("fill-mask", "--model DIR [--top-k K] [TEXT... | --input FILE]",
              "Predict the tokens behind every [MASK] of each text with the MLM head. Prints one JSON\n"
              "line per text: {\"text\", \"masks\": [{\"position\", \"predictions\": [{\"token\", \"token_str\",\n"
              "\"score\", \"sequence\"}]}]} where token_str is decoded as Hugging Face decodes it (a leading\n"
              "space included) and sequence is the text with that fill, special tokens skipped.");
  add_common_flags(a);
  a.option("top-k", "K", "predictions per mask", "5");
  a.positional("TEXT", "texts to fill (instead of --input)");
  if (!a.parse(argc, argv)) return 0;
  apply_threads(a);
  InferenceContext ctx = load_inference(a.require("model"), dtype_option(a));
  if (!ctx.tokenizer) throw Error(ctx.model.dir + ": fill-mask needs tokenizer.json");
  if (!ctx.model.weights.heads().mlm) throw Error(ctx.model.dir + ": fill-mask needs a checkpoint with the MLM head");
  auto mask_id = ctx.tokenizer->token_to_id("[MASK]");
  if (!mask_id) throw Error("tokenizer has no [MASK] token");
  std::vector<InputRecord> recs;
  if (!a.positionals().empty()) {
    size_t i = 0;
    for (const auto& t : a.positionals()) {
      InputRecord r;
      r.source = "argument";
      r.line = ++i;
      r.text = t;
      if (t.empty()) throw Error("argument " + std::to_string(i) + ": empty text");
      recs.push_back(r);
    }
  } else {
    recs = read_inputs_from(a.get("input"), ctx.model.config.vocab_size, a.has("lossy-utf8"));
  }
  auto seqs = records_to_ids(ctx, recs, a.has("truncate"), a.has("lossy-utf8"));
  const int64_t top_k = a.get_int("top-k");
  if (top_k <= 0) throw Error("--top-k must be positive");
  const bool cleanup = tokenizer_cleans_up(ctx.model.dir);
  std::string out;
  for_each_batch(
      *ctx.encoder, seqs, a.get_int("max-batch-tokens"),
      [&](const Batch& b, size_t first, const std::vector<float>& h) {
        auto results = fill_mask_batch(*ctx.encoder, *ctx.tokenizer, cleanup, b, h.data(), *mask_id, top_k);
        for (size_t s = 0; s < results.size(); ++s) {
          const InputRecord& rec = recs[first + s];
          json masks = json::array();
          for (const MaskResult& m : results[s]) {
            json pj = json::array();
            for (const MaskFill& p : m.predictions)
              pj.push_back(
                  {{"token", p.token}, {"token_str", p.token_str}, {"score", p.score}, {"sequence", p.sequence}});
            masks.push_back({{"position", m.position}, {"predictions", pj}});
          }
          if (masks.empty()) throw Error(rec.where() + ": no [MASK] token in the input");
          json line = {{"masks", masks}};
          if (!rec.has_ids) line["text"] = rec.text;
          // The echoed text may hold invalid UTF-8 (--lossy-utf8): write U+FFFD for it.
          out += line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
        }
      });
  write_output(a.get("output"), out);
  return 0;
}

CommandRegistrar reg({"fill-mask", "predict the tokens behind [MASK] (MLM head)", run_fill_mask});

}  // namespace
}  // namespace modernbert::cli
