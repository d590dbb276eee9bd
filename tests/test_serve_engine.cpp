// The serving engine (src/serve/engine.h): results equal to running each input alone through the
// inference commands' path, concurrent submitters each get their own results, the token budget,
// cancel / queue limit / shutdown, and the input errors.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "modernbert/error.h"
#include "modernbert/model_dir.h"
#include "modernbert/safetensors.h"
#include "modernbert/tasks.h"
#include "serve/engine.h"
#include "test_util.h"

using namespace modernbert;
using namespace modernbert::serve;
using nlohmann::json;

namespace {

// A sequence's result packed with others is NOT bitwise the result of the same sequence alone:
// ServeEngine.ForwardIsBatchCompositionIndependent measures it. The hidden states differ in the
// last bits (max |diff| 4.8e-7 on the tiny model, values O(1)) with oneDNN and with OpenBLAS, with
// 1 thread and with 2: the GEMMs' results for a row depend on the row count M of the call (the
// libraries pick kernels and blockings by M, so a row's dot products are summed in a different
// order). Everything else in the forward (norms, RoPE, attention, pooling) works per row or per
// sequence. So the engine guarantees equality to running the input alone within this bound,
// 20x the measured worst case, the same as Forward.SequenceAloneEqualsInBatch's 1e-5:
constexpr bool kBitwise = false;
constexpr double kAtol = 1e-5, kRtol = 1e-5;

std::string write(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
  return path;
}

std::string make_model(const mbtest::TempDir& tmp, const std::string& name, const std::string& heads) {
  std::string dir = tmp / name;
  auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 21 --heads " + heads + " --out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  mbtest::run_command("cp " + mbtest::tokenizer_json() + " " + dir + "/");
  return dir;
}

// The sentence-transformers layout of tests/test_inference_cli.cpp: mean pooling, Dense 64 -> 8,
// Normalize, a "query" prompt.
void add_sentence_transformers(const std::string& dir) {
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

// Models made once for the whole suite: mlm + cls:3; mlm + sentence-transformers files; cls:3 only.
struct Models {
  mbtest::TempDir tmp{"serve_engine"};
  std::string mlm_cls, st, cls_only;
  Models() {
    mlm_cls = make_model(tmp, "mlm_cls", "mlm,cls:3");
    st = make_model(tmp, "st", "mlm");
    add_sentence_transformers(st);
    cls_only = make_model(tmp, "cls_only", "cls:3");
  }
};
const Models& models() {
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

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
  return m;
}

::testing::AssertionResult same(const std::vector<float>& got, const std::vector<float>& want) {
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
void expect_same_fills(const SequenceResult& got, const std::vector<std::vector<MaskPrediction>>& want, size_t top_k) {
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

std::shared_ptr<Job> run(Engine& e, Request r) {
  auto job = e.submit(std::move(r));
  EXPECT_TRUE(job->wait_for(std::chrono::seconds(120)));
  return job;
}

Request embed_request(std::vector<std::vector<int32_t>> seqs, bool normalize = false, int64_t dims = 0) {
  Request r;
  r.task = Task::kEmbed;
  r.seqs = std::move(seqs);
  r.normalize = normalize;
  r.dims = dims;
  return r;
}

// A text of about n words, different for each seed.
std::string words(int n, int seed) {
  static const char* kWords[] = {"alpha", "river", "stone", "quiet", "engine", "blue", "token", "seven",
                                 "light", "paper", "cloud", "north", "glass",  "tree", "music", "salt"};
  std::string s;
  for (int i = 0; i < n; ++i) {
    if (i) s += ' ';
    s += kWords[static_cast<size_t>((i * 7 + seed * 13 + i * seed) % 16)];
  }
  return s;
}

std::vector<json> jsonl(const std::string& text) {
  std::vector<json> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line))
    if (!line.empty() && line[0] == '{') out.push_back(json::parse(line));
  return out;
}

}  // namespace

TEST(ServeEngine, LoadsCapabilitiesLikeTheCommands) {
  EngineOptions o;
  o.model_dir = models().mlm_cls;
  Engine e(o);
  EXPECT_TRUE(e.ready());
  const Capabilities& c = e.capabilities();
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.embedding_dim, 64);
  EXPECT_EQ(c.token_vector_dim, 64);
  EXPECT_FALSE(c.has_colbert_projection);
  EXPECT_FALSE(c.normalize_by_default);
  EXPECT_EQ(c.pooling, EmbedPooling::kMean);
  EXPECT_TRUE(c.has_mlm);
  EXPECT_TRUE(c.has_classifier);
  EXPECT_EQ(c.num_labels, 3);
  EXPECT_EQ(c.problem_type, ProblemType::kSingleLabel);
  ASSERT_EQ(c.labels.size(), 3u);
  EXPECT_EQ(c.max_input_length, 8192);
  EXPECT_EQ(c.mask_token_id, *e.tokenizer()->token_to_id("[MASK]"));
  EXPECT_EQ(e.queue_size(), 0u);

  EngineOptions s;
  s.model_dir = models().st;
  s.pooling = "cls";
  Engine st(s);
  const Capabilities& sc = st.capabilities();
  EXPECT_EQ(sc.embedding_dim, 8);
  EXPECT_EQ(sc.token_vector_dim, 8);
  EXPECT_TRUE(sc.has_colbert_projection);
  EXPECT_TRUE(sc.normalize_by_default);
  EXPECT_EQ(sc.pooling, EmbedPooling::kCls);  // the option overrides 1_Pooling
  EXPECT_FALSE(sc.has_classifier);
  EXPECT_EQ(sc.prompts.size(), 2u);
  EXPECT_EQ(st.prompt_text("query"), "search_query: ");
  EXPECT_EQ(st.prompt_text(""), "");

  s.pooling = "";
  s.default_prompt_name = "doc";
  Engine st2(s);
  EXPECT_EQ(st2.prompt_text(""), "search_document: ");
  EXPECT_EQ(st2.capabilities().default_prompt_name, "doc");

  EngineOptions bad = o;
  bad.pooling = "weighted";
  EXPECT_THROW(Engine{bad}, Error);
  bad = s;
  bad.default_prompt_name = "nope";
  EXPECT_THROW(Engine{bad}, Error);
  bad = o;
  bad.model_dir = models().tmp / "missing";
  EXPECT_THROW(Engine{bad}, Error);
}

// The finding behind kBitwise: the hidden rows of a sequence packed with others (before, after,
// different lengths) against the same sequence alone.
TEST(ServeEngine, PackedSequenceWithinBoundOfAlone) {
  Reference ref(models().mlm_cls);
  const Tokenizer tok = Tokenizer::from_file(mbtest::tokenizer_json());
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 12; ++i) seqs.push_back(tok.encode(words(3 + 37 * i % 150, i)).ids);
  const int64_t H = ref.model.config.hidden_size;
  double worst = 0;
  for (size_t lo = 0; lo < seqs.size(); lo += 3) {
    std::vector<std::vector<int32_t>> packed(seqs.begin() + static_cast<std::ptrdiff_t>(lo), seqs.end());
    Batch b = Batch::from_sequences(packed);
    auto all = ref.enc.forward(b);
    for (size_t s = 0; s < packed.size(); ++s) {
      auto alone = ref.enc.forward(Batch::from_sequences({packed[s]}));
      std::vector<float> rows(all.begin() + b.cu_seqlens[s] * H, all.begin() + b.cu_seqlens[s + 1] * H);
      worst = std::max(worst, max_abs_diff(rows, alone));
      EXPECT_TRUE(same(rows, alone)) << "sequence " << lo + s << " in a batch of " << b.num_tokens() << " tokens";
    }
  }
  std::printf("  max |packed - alone| over the hidden states: %.3g\n", worst);
}

TEST(ServeEngine, ResultsEqualTheInputAloneAndTheCli) {
  const std::string dir = models().mlm_cls;
  EngineOptions o;
  o.model_dir = dir;
  o.max_batch_tokens = 256;
  Engine e(o);
  Reference ref(dir);
  std::vector<std::string> texts;
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 9; ++i) {
    texts.push_back(words(2 + 19 * i % 60, i));
    seqs.push_back(e.tokenize(texts.back(), nullptr, "", false));
    EXPECT_EQ(seqs.back(), e.tokenizer()->encode(texts.back()).ids);
  }
  // One request with every input: packed together (and over several batches of 256 tokens).
  auto emb = run(e, embed_request(seqs));
  auto emb_n = run(e, embed_request(seqs, true, 16));
  Request cr;
  cr.task = Task::kClassify;
  cr.seqs = seqs;
  auto cls = run(e, cr);
  Request ar = cr;
  ar.task = Task::kEmbedAll;
  auto all = run(e, ar);
  ASSERT_EQ(emb->results().size(), seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    SCOPED_TRACE("input " + std::to_string(i));
    const SequenceResult& r = emb->results()[i];
    EXPECT_EQ(r.rows, 1);
    EXPECT_EQ(r.cols, 64);
    EXPECT_TRUE(same(r.values, ref.embed(seqs[i], false)));
    EXPECT_TRUE(same(emb_n->results()[i].values, ref.embed(seqs[i], true, 16)));
    EXPECT_EQ(emb_n->results()[i].cols, 16);
    EXPECT_TRUE(same(cls->results()[i].values, ref.classify(seqs[i])));
    EXPECT_EQ(cls->results()[i].cols, 3);
    EXPECT_TRUE(same(all->results()[i].values, ref.embed_all(seqs[i])));
    EXPECT_EQ(all->results()[i].rows, static_cast<int64_t>(seqs[i].size()));
    EXPECT_EQ(all->results()[i].cols, 64);
  }
  EXPECT_GT(emb->num_tokens(), 0u);
  EXPECT_GE(emb->queue_seconds(), 0.0);
  EXPECT_GT(emb->inference_seconds(), 0.0);

  // And the commands themselves, one input per run: `embed` and `classify` print the same numbers.
  std::string in = write(models().tmp / "one.jsonl", json({{"text", texts[4]}}).dump() + "\n");
  auto em = mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " 2>/dev/null");
  ASSERT_EQ(em.status, 0) << em.output;
  auto cli_vec = jsonl(em.output).at(0)["embedding"].get<std::vector<float>>();
  EXPECT_TRUE(same(emb->results()[4].values, cli_vec));
  // A request that rides in a batch alone is bitwise what the command prints.
  auto alone = run(e, embed_request({seqs[4]}));
  EXPECT_EQ(alone->results()[0].values, cli_vec);
  auto cl = mbtest::run_command(mbtest::cli() + " classify --model " + dir + " --input " + in + " 2>/dev/null");
  ASSERT_EQ(cl.status, 0) << cl.output;
  const json scores = jsonl(cl.output).at(0)["scores"];
  const auto& logits = cls->results()[4].values;
  auto probs = logits_to_scores(logits.data(), 3, e.capabilities().problem_type);
  std::vector<float> cli_probs;
  for (const auto& label : e.capabilities().labels) cli_probs.push_back(scores.at(label).get<float>());
  EXPECT_TRUE(same(probs, cli_probs));
}

TEST(ServeEngine, SentenceTransformersPromptsDenseColbertAndCli) {
  const std::string dir = models().st;
  EngineOptions o;
  o.model_dir = dir;
  Engine e(o);
  Reference ref(dir);
  const std::string text = "what is rope";
  auto ids = e.tokenize(text, nullptr, e.prompt_text("query"), false);
  EXPECT_EQ(ids, e.tokenizer()->encode("search_query: " + text).ids);
  auto emb = run(e, embed_request({ids, e.tokenize("a second, longer text about other things", nullptr, "", false)},
                                  e.capabilities().normalize_by_default));
  EXPECT_EQ(emb->results()[0].cols, 8);
  EXPECT_TRUE(same(emb->results()[0].values, ref.embed(ids, true)));
  std::string in = write(models().tmp / "st.txt", text + "\n");
  auto em =
      mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " --prompt query 2>/dev/null");
  ASSERT_EQ(em.status, 0) << em.output;
  EXPECT_TRUE(same(emb->results()[0].values, jsonl(em.output).at(0)["embedding"].get<std::vector<float>>()));
  // Matryoshka within the Dense output.
  auto m4 = run(e, embed_request({ids}, true, 4));
  EXPECT_TRUE(same(m4->results()[0].values, ref.embed(ids, true, 4)));
  // embed_all: the ColBERT vectors of `embed --colbert`.
  Request ar;
  ar.task = Task::kEmbedAll;
  ar.seqs = {e.tokenize(text, nullptr, "", false), ids};
  auto all = run(e, ar);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(all->results()[i].rows, static_cast<int64_t>(ar.seqs[i].size()));
    EXPECT_EQ(all->results()[i].cols, 8);
    EXPECT_TRUE(same(all->results()[i].values, ref.embed_all(ar.seqs[i])));
  }
  auto cb = mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " --colbert 2>/dev/null");
  ASSERT_EQ(cb.status, 0) << cb.output;
  std::vector<float> cli_rows;
  const auto lines = jsonl(cb.output);
  ASSERT_EQ(lines.size(), 1u);
  for (const auto& row : lines[0]["vectors"])
    for (float f : row.get<std::vector<float>>()) cli_rows.push_back(f);
  EXPECT_TRUE(same(all->results()[0].values, cli_rows));
}

TEST(ServeEngine, FillMaskEqualsTheCliFunction) {
  const std::string dir = models().mlm_cls;
  EngineOptions o;
  o.model_dir = dir;
  Engine e(o);
  Reference ref(dir);
  const int32_t mask = e.capabilities().mask_token_id;
  Request r;
  r.task = Task::kFillMask;
  r.top_k = 4;
  r.seqs = {e.tokenize("The capital of France is [MASK].", nullptr, "", false),
            e.tokenize("[MASK] and [MASK] went up the " + words(20, 3), nullptr, "", false),
            e.tokenize("one more [MASK]", nullptr, "", false)};
  auto job = run(e, r);
  ASSERT_EQ(job->results().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE("input " + std::to_string(i));
    const SequenceResult& got = job->results()[i];
    expect_same_fills(got, ref.fill(r.seqs[i], mask, 6), 4);
    std::vector<int64_t> pos;
    for (size_t t = 0; t < r.seqs[i].size(); ++t)
      if (r.seqs[i][t] == mask) pos.push_back(static_cast<int64_t>(t));
    EXPECT_EQ(got.mask_positions, pos);
  }
  EXPECT_EQ(job->results()[1].masks.size(), 2u);
  EXPECT_EQ(job->results()[0].mask_positions, std::vector<int64_t>{6});  // [CLS] The capital of France is [MASK]
}
