// modernbert embed: sentence embeddings (pooled, optional Dense/normalise/Matryoshka) or ColBERT
// per-token vectors, as JSONL or .npy.
#include <cstdio>
#include <cstring>

#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/error.h"
#include "modernbert/tasks.h"

namespace modernbert::cli {
namespace {

using nlohmann::json;

// The .npy header (format 1.0) of a float32 [rows, cols] C-order array; the data follows it.
std::string npy_header(int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(1);
  out.push_back(0);
  uint16_t hl = static_cast<uint16_t>(header.size());
  out.append(reinterpret_cast<const char*>(&hl), 2);
  out += header;
  return out;
}

int run_embed(int argc, char** argv) {
  ArgParser a("embed", "--model DIR [--input F] [--output F] [flags]",
              "Sentence embeddings: pooled final hidden states (pooling from the sentence-transformers\n"
              "config, else config.json classifier_pooling, else --pooling), then the model's Dense module\n"
              "if any, L2 normalisation (a Normalize module or --normalize) and Matryoshka truncation\n"
              "(--dim, re-normalised). With --colbert: per-token vectors (PyLate Dense projection if the\n"
              "model has one), L2-normalised. Output: JSONL {\"embedding\": [...]} / {\"vectors\": [[...]]}\n"
              "or, with --format npy, a float32 [N, D] .npy file.");
  add_common_flags(a);
  a.option("pooling", "MODE", "cls | mean | max (overrides the model's)");
  a.flag("normalize", "L2-normalise the embeddings");
  a.option("dim", "N", "Matryoshka: keep the first N dimensions");
  a.option("prompt", "NAME", "prepend the sentence-transformers prompt NAME (config_sentence_transformers.json)");
  a.option("prefix", "STR", "prepend STR to every text");
  a.flag("colbert", "per-token ColBERT vectors instead of one vector per text");
  a.option("format", "FMT", "jsonl | npy", "jsonl");
  if (!a.parse(argc, argv)) return 0;
  apply_threads(a);
  InferenceContext ctx = load_inference(a.require("model"), dtype_option(a));
  const auto& st = ctx.model.sentence_transformers;
  const std::string prompt_name = a.get_or("prompt", "");
  const std::string prefix = prompt_text(st, a.has("prompt") ? &prompt_name : nullptr) + a.get_or("prefix", "");
  EmbedOptions o;
  o.pooling = model_embed_pooling(ctx.model);
  if (a.has("pooling")) o.pooling = parse_embed_pooling(a.get("pooling"));
  o.normalize = a.has("normalize") || st.normalize;
  o.dim = a.get_int_or("dim", 0);
  if (a.has("dim") && o.dim <= 0) throw Error("--dim must be positive");
  o.dense = st.dense_out > 0 ? &st : nullptr;
  std::string fmt = a.get("format");
  if (fmt != "jsonl" && fmt != "npy") throw Error("--format must be jsonl or npy");
  const bool colbert = a.has("colbert");
  if (colbert && fmt == "npy") throw Error("--colbert writes JSONL (a ragged list of vectors per text)");

  const bool lossy = a.has("lossy-utf8");
  auto recs = read_inputs_from(a.get("input"), ctx.model.config.vocab_size, lossy);
  auto seqs = records_to_ids(ctx, recs, a.has("truncate"), lossy, prefix);
  const int64_t H = ctx.model.config.hidden_size;
  std::string out;
  std::vector<float> all;
  int64_t D = 0;
  for_each_batch(
      *ctx.encoder, seqs, a.get_int("max-batch-tokens"), [&](const Batch& b, size_t, const std::vector<float>& h) {
        if (colbert) {
          auto v = colbert_vectors(h.data(), b.num_tokens(), H, o.dense, &D);
          for (int64_t s = 0; s < b.num_seqs(); ++s) {
            json rows = json::array();
            for (int64_t t = b.cu_seqlens[static_cast<size_t>(s)]; t < b.cu_seqlens[static_cast<size_t>(s + 1)]; ++t)
              rows.push_back(std::vector<float>(v.begin() + t * D, v.begin() + (t + 1) * D));
            out += json({{"vectors", rows}}).dump() + "\n";
          }
          return;
        }
        auto e = sentence_embeddings(b, h.data(), H, o, &D);
        if (fmt == "npy") {
          all.insert(all.end(), e.begin(), e.end());
        } else {
          for (int64_t s = 0; s < b.num_seqs(); ++s)
            out += json({{"embedding", std::vector<float>(e.begin() + s * D, e.begin() + (s + 1) * D)}}).dump() + "\n";
        }
      });
  Output output(a.get("output"));  // a file appears only when complete
  if (fmt == "npy") {
    output.write(npy_header(static_cast<int64_t>(seqs.size()), D));
    output.write(all.data(), all.size() * sizeof(float));  // streamed from the embeddings, no copy
  } else {
    output.write(out);
  }
  output.commit();
  return 0;
}

CommandRegistrar reg({"embed", "sentence embeddings or ColBERT vectors (JSONL / .npy)", run_embed});

}  // namespace
}  // namespace modernbert::cli
