// modernbert encode: run the model over inputs and write the requested tensors as safetensors.
// This file format is our contract for comparing with other implementations (docs/encode.md):
//   input_ids I64 [T], cu_seqlens I64 [B+1], last_hidden_state F32 [T,H], mlm_logits F32 [T,V],
//   embeddings F32 [B,H], logits F32 [B,num_labels], token_logits F32 [T,num_labels]
// T = all tokens of all inputs concatenated (no padding), in input order.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <sstream>

#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/error.h"
#include "modernbert/safetensors.h"

namespace modernbert::cli {
namespace {

const std::vector<std::string> kAllOutputs = {"input_ids",  "cu_seqlens", "last_hidden_state", "mlm_logits",
                                              "embeddings", "logits",     "token_logits"};

int run_encode(int argc, char** argv) {
  ArgParser a("encode", "--model DIR [--input F] --output OUT.safetensors [--outputs LIST] [flags]",
              "Run ModernBERT on the inputs (one unpadded pass) and write, in safetensors, exactly the\n"
              "requested tensors: input_ids I64 [T], cu_seqlens I64 [B+1], last_hidden_state F32 [T,H],\n"
              "mlm_logits F32 [T,V], embeddings F32 [B,H] (raw pooled final hidden states; no head),\n"
              "logits F32 [B,num_labels] (sequence classification head), token_logits F32 [T,num_labels].\n"
              "Text is tokenized with the model's tokenizer.json (special tokens added); {\"input_ids\": [...]}\n"
              "lines are used exactly as given.");
  add_common_flags(a, /*with_output=*/false);
  a.option("output", "FILE", "output safetensors file");
  a.option("outputs", "LIST", "comma-separated tensors to write", "input_ids,cu_seqlens,last_hidden_state");
  a.option("pooling", "MODE", "cls | mean: pooling for embeddings and logits (default: config classifier_pooling)");
  a.flag("normalize", "L2-normalise embeddings");
  if (!a.parse(argc, argv)) return 0;
  apply_threads(a);
  std::string out_path = a.require("output");
  std::set<std::string> want;
  {
    std::stringstream ss(a.get("outputs"));
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) {
        if (std::find(kAllOutputs.begin(), kAllOutputs.end(), item) == kAllOutputs.end())
          throw Error(
              "--outputs: unknown tensor '" + item +
              "' (one of input_ids, cu_seqlens, last_hidden_state, mlm_logits, embeddings, logits, token_logits)");
        want.insert(item);
      }
  }
  std::optional<Pooling> pooling;
  if (a.has("pooling")) {
    std::string p = a.get("pooling");
    if (p == "cls")
      pooling = Pooling::kCls;
    else if (p == "mean")
      pooling = Pooling::kMean;
    else
      throw Error("--pooling must be cls or mean, got '" + p + "'");
  }
  InferenceContext ctx = load_inference(a.require("model"), dtype_option(a));
  const HeadSet& heads = ctx.model.weights.heads();
  if (want.count("mlm_logits") && !heads.mlm)
    throw Error("--outputs mlm_logits: " + ctx.model.dir + " has no MLM head");
  if (want.count("logits") && heads.classifier != HeadSet::Classifier::kSequence)
    throw Error("--outputs logits: " + ctx.model.dir + " has no sequence-classification head");
  if (want.count("token_logits") && heads.classifier != HeadSet::Classifier::kToken)
    throw Error("--outputs token_logits: " + ctx.model.dir + " has no token-classification head");

  const bool lossy = a.has("lossy-utf8");
  std::vector<InputRecord> recs = read_inputs_from(a.get("input"), ctx.model.config.vocab_size, lossy);
  std::vector<std::vector<int32_t>> seqs = records_to_ids(ctx, recs, a.has("truncate"), lossy);
  const int64_t H = ctx.model.config.hidden_size, V = ctx.model.config.vocab_size;
  const int64_t L = ctx.encoder->num_labels();
  int64_t T = 0;
  std::vector<int64_t> ids, cu{0};
  for (const auto& s : seqs) {
    for (int32_t id : s) ids.push_back(id);
    T += static_cast<int64_t>(s.size());
    cu.push_back(T);
  }
  const int64_t B = static_cast<int64_t>(seqs.size());
  std::vector<float> hidden_all, mlm, emb, logits, token_logits;
  if (want.count("last_hidden_state")) hidden_all.resize(static_cast<size_t>(T * H));
  if (want.count("mlm_logits")) mlm.resize(static_cast<size_t>(T * V));
  if (want.count("embeddings")) emb.resize(static_cast<size_t>(B * H));
  if (want.count("logits")) logits.resize(static_cast<size_t>(B * L));
  if (want.count("token_logits")) token_logits.resize(static_cast<size_t>(T * L));

  Encoder& enc = *ctx.encoder;
  for_each_batch(enc, seqs, a.get_int("max-batch-tokens"),
                 [&](const Batch& b, size_t first, const std::vector<float>& h) {
                   const int64_t t0 = cu[first], bt = b.num_tokens(), bb = b.num_seqs();
                   if (!hidden_all.empty())
                     std::memcpy(hidden_all.data() + t0 * H, h.data(), sizeof(float) * static_cast<size_t>(bt * H));
                   if (!mlm.empty()) {
                     // Row blocks of 256 tokens keep the head's temporary small next to the [T, V] output.
                     for (int64_t r0 = 0; r0 < bt; r0 += 256) {
                       std::vector<int64_t> rows;
                       for (int64_t t = r0; t < std::min(bt, r0 + 256); ++t) rows.push_back(t);
                       auto lg = enc.mlm_logits(h.data(), bt, rows);
                       std::memcpy(mlm.data() + (t0 + r0) * V, lg.data(), sizeof(float) * lg.size());
                     }
                   }
                   if (!emb.empty()) {
                     auto p = enc.pool(b, h.data(), pooling);
                     if (a.has("normalize"))
                       for (int64_t s = 0; s < bb; ++s) l2_normalize(p.data() + s * H, H);
                     std::memcpy(emb.data() + first * H, p.data(), sizeof(float) * p.size());
                   }
                   if (!logits.empty()) {
                     auto lg = enc.classify(b, h.data(), pooling);
                     std::memcpy(logits.data() + first * L, lg.data(), sizeof(float) * lg.size());
                   }
                   if (!token_logits.empty()) {
                     auto lg = enc.classify_tokens(h.data(), bt);
                     std::memcpy(token_logits.data() + t0 * L, lg.data(), sizeof(float) * lg.size());
                   }
                 });

  // The writer only points at the buffers above (views), and write_to streams the header and then
  // each tensor from its buffer: the output is never held a second (or third) time in memory.
  SafeTensorsWriter w;
  w.set_metadata("format", "modernbert.cpp encode");
  if (want.count("input_ids")) w.add_i64_view("input_ids", {T}, ids.data());
  if (want.count("cu_seqlens")) w.add_i64_view("cu_seqlens", {B + 1}, cu.data());
  if (want.count("last_hidden_state")) w.add_f32_view("last_hidden_state", {T, H}, hidden_all.data());
  if (want.count("mlm_logits")) w.add_f32_view("mlm_logits", {T, V}, mlm.data());
  if (want.count("embeddings")) w.add_f32_view("embeddings", {B, H}, emb.data());
  if (want.count("logits")) w.add_f32_view("logits", {B, L}, logits.data());
  if (want.count("token_logits")) w.add_f32_view("token_logits", {T, L}, token_logits.data());
  Output out(out_path);
  w.write_to([&](const void* p, size_t n) { out.write(p, n); });
  out.commit();
  std::fprintf(stderr, "encode: %lld sequences, %lld tokens -> %s\n", (long long)B, (long long)T, out_path.c_str());
  return 0;
}

CommandRegistrar reg({"encode", "run the model and write hidden states / logits / embeddings (safetensors)",
                      run_encode});

}  // namespace
}  // namespace modernbert::cli
