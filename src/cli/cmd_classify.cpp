// modernbert classify: labels and scores per input (sequence classification), or per token (--tokens).
#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/error.h"
#include "modernbert/inference.h"
#include "modernbert/tasks.h"

namespace modernbert::cli {
namespace {

using nlohmann::json;

int run_classify(int argc, char** argv) {
  ArgParser a("classify", "--model DIR [--input F] [--output F] [--tokens]",
              "Classify each input with the checkpoint's classifier head. Sequence classification prints\n"
              "{\"label\", \"score\", \"scores\": {label: p}} (softmax; sigmoid and a label list for\n"
              "multi-label; {\"value\"} for regression). With --tokens (token classification) prints\n"
              "{\"tokens\": [{\"token\", \"start\", \"end\", \"label\", \"score\"}]} for the non-special tokens.");
  add_common_flags(a);
  a.flag("tokens", "token classification (the model must have a token-classification head)");
  if (!a.parse(argc, argv)) return 0;
  apply_threads(a);
  InferenceContext ctx = load_inference(a.require("model"), dtype_option(a));
  const HeadSet& heads = ctx.model.weights.heads();
  const bool tokens = a.has("tokens");
  if (tokens && heads.classifier != HeadSet::Classifier::kToken)
    throw Error(ctx.model.dir + ": --tokens needs a token-classification head (ModernBertForTokenClassification)");
  if (!tokens && heads.classifier != HeadSet::Classifier::kSequence)
    throw Error(ctx.model.dir + ": no sequence-classification head" +
                (heads.classifier == HeadSet::Classifier::kToken ? " (it has a token head: use --tokens)" : ""));
  const ModelConfig& cfg = ctx.model.config;
  const int64_t L = ctx.encoder->num_labels();
  const ProblemType pt = resolve_problem_type(cfg.problem_type, L);
  const bool lossy = a.has("lossy-utf8");
  auto recs = read_inputs_from(a.get("input"), ctx.model.config.vocab_size, lossy);
  std::vector<Encoding> encs;
  auto seqs = records_to_ids(ctx, recs, a.has("truncate"), lossy, "", &encs);
  std::string out;
  for_each_batch(
      *ctx.encoder, seqs, a.get_int("max-batch-tokens"),
      [&](const Batch& b, size_t first, const std::vector<float>& h) {
        if (tokens) {
          auto lg = ctx.encoder->classify_tokens(h.data(), b.num_tokens());
          for (int64_t s = 0; s < b.num_seqs(); ++s) {
            const size_t idx = first + static_cast<size_t>(s);
            json toks = json::array();
            const int64_t s0 = b.cu_seqlens[static_cast<size_t>(s)];
            const Encoding* e = recs[idx].has_ids ? nullptr : &encs[idx];
            const Tokenizer* tk = ctx.tokenizer ? &*ctx.tokenizer : nullptr;
            for (const TokenLabel& t : token_labels(lg.data() + s0 * L, L, b.ids.data() + s0,
                                                    b.cu_seqlens[static_cast<size_t>(s + 1)] - s0, e, tk)) {
              json tj = {{"index", t.index}, {"id", t.id}, {"label", label_name(cfg, t.label)}, {"score", t.score}};
              if (tk) tj["token"] = t.token;
              if (e) {
                tj["start"] = t.start;
                tj["end"] = t.end;
              }
              toks.push_back(tj);
            }
            out += json({{"tokens", toks}}).dump() + "\n";
          }
          return;
        }
        auto lg = ctx.encoder->classify(b, h.data());
        for (int64_t s = 0; s < b.num_seqs(); ++s) {
          const Classification c = classification_from_logits(lg.data() + s * L, L, pt);
          const std::vector<float>& sc = c.scores;
          json line;
          if (pt == ProblemType::kRegression) {
            line["value"] = L == 1 ? json(sc[0]) : json(sc);
          } else {
            json scores = json::object();
            for (int64_t i = 0; i < L; ++i) scores[label_name(cfg, i)] = sc[static_cast<size_t>(i)];
            if (pt == ProblemType::kMultiLabel) {
              json labels = json::array();
              for (int64_t i : c.labels) labels.push_back(label_name(cfg, i));
              line["labels"] = labels;
            } else {
              line["label"] = label_name(cfg, c.label);
              line["score"] = sc[static_cast<size_t>(c.label)];
            }
            line["scores"] = scores;
          }
          out += line.dump() + "\n";
        }
      });
  write_output(a.get("output"), out);
  return 0;
}

CommandRegistrar reg({"classify", "labels and scores per input (or per token with --tokens)", run_classify});

}  // namespace
}  // namespace modernbert::cli
