// Helpers of the serving-engine tests (test_serve_engine.cpp, test_serve_engine_queue.cpp): the
// tiny models (made once per process), the reference path for one input alone, and the equality
// the engine guarantees.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "modernbert/error.h"
#include "modernbert/model_dir.h"
#include "modernbert/safetensors.h"
#include "modernbert/tasks.h"
#include "serve/engine.h"
#include "test_util.h"

namespace serve_test {

using namespace modernbert;
using namespace modernbert::serve;
using nlohmann::json;

// A sequence's result packed with others is NOT bitwise the result of the same sequence alone
// (ServeEngine.PackedSequenceWithinBoundOfAlone measures it): the hidden states differ in the last
// bits, max |diff| 4.8e-7 on the tiny model (values O(1)), with oneDNN and with OpenBLAS, with 1
// thread and with 2. The cause is the token-wise GEMMs (QKV, output, MLP): BLAS libraries choose
// kernels and blockings by the row count M of the call, so a row's dot products are not summed in
// the same order at every M (one GEMM alone, 1 thread: row 0 of an M-row call differs from the
// 1-row call for 599 of M = 2..600 with oneDNN, 597 with OpenBLAS). Norms, RoPE, attention (per
// sequence) and pooling do not mix rows. So the guarantee is equality within this bound, 20x the
// measured worst case and the same as Forward.SequenceAloneEqualsInBatch's; a request that rides in
// a batch alone is bitwise the CLI's result (ResultsEqualTheInputAloneAndTheCli).
constexpr bool kBitwise = false;
constexpr double kAtol = 1e-5, kRtol = 1e-5;

inline std::string write(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
  return path;
}

inline std::string make_model(const mbtest::TempDir& tmp, const std::string& name, const std::string& heads) {
  std::string dir = tmp / name;
  auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 21 --heads " + heads + " --out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  mbtest::run_command("cp " + mbtest::tokenizer_json() + " " + dir + "/");
  return dir;
}

// The sentence-transformers layout of tests/test_inference_cli.cpp: mean pooling, Dense 64 -> 8,
// Normalize, a "query" prompt.
inline void add_sentence_transformers(const std::string& dir) {
  write(dir + "/modules.json",
        json::array({{{"idx", 0}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
                     {{"idx", 1}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}},
                     {{"idx", 2}, {"path", "2_Dense"}, {"type", "sentence_transformers.models.Dense"}},
                     {{"idx", 3}, {"path", "3_Normalize"}, {"type", "sentence_transformers.models.Normalize"}}})
            .dump());
  mbtest::run_command("mkdir -p " + dir + "/1_Pooling " + dir + "/2_Dense");
  write(dir + "/1_Pooling/config.json", R"({"pooling_mode_mean_tokens": true})");
  write(
      dir + "/2_Dense/config.json",
      R"({"in_features": 64, "out_features": 8, "bias": true, "activation_function": "torch.nn.modules.linear.Identity"})");
  std::vector<float> W(8 * 64), bias(8);
  for (size_t i = 0; i < W.size(); ++i) W[i] = std::sin(0.1f * static_cast<float>(i));
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.01f * static_cast<float>(i);
  SafeTensorsWriter d;
  d.add_f32("linear.weight", {8, 64}, W.data());
  d.add_f32("linear.bias", {8}, bias.data());
  d.write(dir + "/2_Dense/model.safetensors");
  write(dir + "/config_sentence_transformers.json",
        R"({"prompts": {"query": "search_query: ", "doc": "search_document: "}, "default_prompt_name": null})");
}

// Models made once for the whole suite: mlm + cls:3; mlm + sentence-transformers files; cls:3 only;
// mlm without tokenizer.json.
struct Models {
  mbtest::TempDir tmp{"serve_engine"};
  std::string mlm_cls, st, cls_only, no_tokenizer;
  Models() {
    mlm_cls = make_model(tmp, "mlm_cls", "mlm,cls:3");
    st = make_model(tmp, "st", "mlm");
    add_sentence_transformers(st);
    cls_only = make_model(tmp, "cls_only", "cls:3");
    no_tokenizer = make_model(tmp, "no_tokenizer", "mlm");
    mbtest::run_command("rm " + no_tokenizer + "/tokenizer.json");
  }
};
inline const Models& models() {
  static Models m;
  return m;
}

// The inference commands' path for ONE input alone: the library functions on a batch of that one
// input, as cmd_embed / cmd_classify / cmd_fill_mask call them.
struct Reference {
  LoadedModel model;
  Encoder enc;
  explicit Reference(const std::string& dir) : model(load_model_dir(dir)), enc(model.weights) {}
  const SentenceTransformersInfo* dense() const {
    return model.sentence_transformers.dense_out > 0 ? &model.sentence_transformers : nullptr;
  }
  std::vector<float> embed(const std::vector<int32_t>& ids, bool normalize, int64_t dim = 0) {
    Batch b = Batch::from_sequences({ids});
    auto h = enc.forward(b);
    EmbedOptions o;
    o.pooling = EmbedPooling::kMean;  // the tiny preset's classifier_pooling and 1_Pooling's mode
    o.normalize = normalize;
    o.dim = dim;
    o.dense = dense();
    int64_t D = 0;
    return sentence_embeddings(b, h.data(), model.config.hidden_size, o, &D);
  }
  std::vector<float> embed_all(const std::vector<int32_t>& ids) {
    auto h = enc.forward(Batch::from_sequences({ids}));
    if (!dense()) return h;
    int64_t D = 0;
    return colbert_vectors(h.data(), static_cast<int64_t>(ids.size()), model.config.hidden_size, dense(), &D);
  }
  std::vector<float> classify(const std::vector<int32_t>& ids) {
    Batch b = Batch::from_sequences({ids});
    auto h = enc.forward(b);
    return enc.classify(b, h.data());
  }
  std::vector<std::vector<MaskPrediction>> fill(const std::vector<int32_t>& ids, int32_t mask, int64_t top_k) {
    Batch b = Batch::from_sequences({ids});
    auto h = enc.forward(b);
    std::vector<int64_t> rows;
    for (int64_t t = 0; t < b.num_tokens(); ++t)
      if (ids[static_cast<size_t>(t)] == mask) rows.push_back(t);
    return fill_mask(enc, h.data(), b.num_tokens(), rows, top_k);
  }
};

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

inline ::testing::AssertionResult same(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  if (kBitwise) {
    if (got.empty() || std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0)
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "not bitwise equal; max |diff| " << max_abs_diff(got, want);
  }
  return mbtest::allclose(got, want, kAtol, kRtol);
}

// `want` holds top_k + 2 predictions per mask (the reference alone): within the bound a near tie
// may swap neighbours or bring in the next token, so each prediction must be the reference's at
// that rank, or one of its candidates with a score within the bound; the k-th score itself moves
// by at most the bound either way.
inline void expect_same_fills(const SequenceResult& got, const std::vector<std::vector<MaskPrediction>>& want,
                              size_t top_k) {
  ASSERT_EQ(got.masks.size(), want.size());
  for (size_t m = 0; m < want.size(); ++m) {
    ASSERT_EQ(got.masks[m].size(), top_k);
    for (size_t k = 0; k < top_k; ++k) {
      const MaskPrediction& g = got.masks[m][k];
      const double tol = kAtol + kRtol * std::fabs(want[m][k].score);
      if (kBitwise) {
        EXPECT_EQ(g.token, want[m][k].token) << m << "," << k;
        EXPECT_EQ(g.score, want[m][k].score) << m << "," << k;
        continue;
      }
      EXPECT_NEAR(g.score, want[m][k].score, tol) << m << "," << k;
      bool found = false;
      for (const MaskPrediction& w : want[m])
        found = found || (w.token == g.token && std::fabs(w.score - g.score) <= tol);
      EXPECT_TRUE(found) << "mask " << m << " rank " << k << ": token " << g.token;
    }
  }
}

inline std::shared_ptr<Job> run(Engine& e, Request r) {
  auto job = e.submit(std::move(r));
  EXPECT_TRUE(job->wait_for(std::chrono::seconds(120)));
  return job;
}

inline Request embed_request(std::vector<std::vector<int32_t>> seqs, bool normalize = false, int64_t dims = 0) {
  Request r;
  r.task = Task::kEmbed;
  r.seqs = std::move(seqs);
  r.normalize = normalize;
  r.dims = dims;
  return r;
}

// A text of about n words, different for each seed.
inline std::string words(int n, int seed) {
  static const char* kWords[] = {"alpha", "river", "stone", "quiet", "engine", "blue", "token", "seven",
                                 "light", "paper", "cloud", "north", "glass",  "tree", "music", "salt"};
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kWords[static_cast<size_t>((i * 7 + seed * 13 + i * seed) % 16)];
  }
  return s;
}

using mbtest::jsonl;

}  // namespace serve_test
