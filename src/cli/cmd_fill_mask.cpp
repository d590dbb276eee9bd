// modernbert fill-mask: top-k fills for every [MASK] in each text, decoded as Hugging Face does.
#include <cstdio>

#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/tasks.h"

namespace modernbert::cli {
namespace {

using nlohmann::json;


bool wants_cleanup(const std::string& dir) {
  try {
    json j = json::parse(read_file(dir + "/tokenizer_config.json"));
    return j.value("clean_up_tokenization_spaces", false);
  } catch (const std::exception&) {
    return false;  // no tokenizer_config.json: the tokenizers library never cleans up
  }
}

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
  const bool cleanup = wants_cleanup(ctx.model.dir);
  auto decode = [&](const std::vector<int32_t>& ids, bool skip) {
    std::string t = ctx.tokenizer->decode(ids, skip);
    return cleanup ? clean_up_tokenization(t) : t;
  };
  std::string out;
  for_each_batch(*ctx.encoder, seqs, a.get_int("max-batch-tokens"),
                 [&](const Batch& b, size_t first, const std::vector<float>& h) {
                   std::vector<int64_t> rows;
                   for (int64_t t = 0; t < b.num_tokens(); ++t)
                     if (b.ids[static_cast<size_t>(t)] == *mask_id) rows.push_back(t);
                   auto preds = rows.empty() ? std::vector<std::vector<MaskPrediction>>{}
                                             : fill_mask(*ctx.encoder, h.data(), b.num_tokens(), rows, top_k);
                   size_t r = 0;
                   for (int64_t s = 0; s < b.num_seqs(); ++s) {
                     const InputRecord& rec = recs[first + static_cast<size_t>(s)];
                     const int64_t s0 = b.cu_seqlens[static_cast<size_t>(s)],
                                   s1 = b.cu_seqlens[static_cast<size_t>(s + 1)];
                     std::vector<int32_t> ids(b.ids.begin() + s0, b.ids.begin() + s1);
                     json masks = json::array();
                     for (; r < rows.size() && rows[r] < s1; ++r) {
                       json pj = json::array();
                       for (const auto& p : preds[r]) {
                         std::vector<int32_t> filled = ids;
                         filled[static_cast<size_t>(rows[r] - s0)] = p.token;
                         pj.push_back({{"token", p.token},
                                       {"token_str", decode({p.token}, false)},
                                       {"score", p.score},
                                       {"sequence", decode(filled, /*skip_special_tokens=*/true)}});
                       }
                       masks.push_back({{"position", rows[r] - s0}, {"predictions", pj}});
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
