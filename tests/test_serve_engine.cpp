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

namespace {

// The batches a scheduler ran, as its observer saw them.
struct BatchLog {
  std::mutex mu;
  std::vector<BatchStats> batches;
  void add(const BatchStats& b) {
    std::lock_guard<std::mutex> l(mu);
    batches.push_back(b);
  }
  int64_t seqs() {
    std::lock_guard<std::mutex> l(mu);
    int64_t n = 0;
    for (const auto& b : batches) n += b.seqs;
    return n;
  }
};

// An observer that holds the scheduler after each batch until opened: what is submitted meanwhile
// stays queued, deterministically.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int seen = 0;
  void on_batch() {
    std::unique_lock<std::mutex> l(mu);
    ++seen;
    cv.notify_all();
    cv.wait(l, [&] { return open; });
  }
  // Waits until the scheduler has finished `n` batches in all (and now sits in the observer).
  bool wait_seen(int n) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, std::chrono::seconds(60), [&] { return seen >= n; });
  }
  void release() {
    std::lock_guard<std::mutex> l(mu);
    open = true;
    cv.notify_all();
  }
};

template <class F>
void expect_input_error(F&& f, InputErrorKind kind, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << what << ": no InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(static_cast<int>(e.kind), static_cast<int>(kind)) << what << ": " << e.what();
    EXPECT_NE(std::string(e.what()), "") << what;
  }
}

}  // namespace

// (2) + (3): 16 threads submit mixed-length, multi-input requests of every task at once, with a
// budget that makes requests span batches; each gets exactly its own results, and the observer
// sees every batch within the budget and every sequence once.
TEST(ServeEngine, ConcurrentSubmittersEachGetTheirOwnResults) {
  const std::string dir = models().mlm_cls;
  EngineOptions o;
  o.model_dir = dir;
  o.max_batch_tokens = 96;
  Engine e(o);
  BatchLog log;
  e.set_batch_observer([&](const BatchStats& b) { log.add(b); });
  Reference ref(dir);
  const int32_t mask = e.capabilities().mask_token_id;
  // 40 distinct inputs of 3..~75 tokens; every 4th has a [MASK] (for fill-mask requests).
  std::vector<std::vector<int32_t>> inputs;
  for (int i = 0; i < 40; ++i) {
    std::string t = words(1 + (i * 17) % 70, i);
    if (i % 4 == 0) t = "[MASK] " + t + " [MASK]";
    inputs.push_back(e.tokenize(t, nullptr, "", false));
  }
  std::vector<std::vector<float>> want_embed, want_cls, want_all;
  for (const auto& s : inputs) {
    want_embed.push_back(ref.embed(s, true));
    want_cls.push_back(ref.classify(s));
    want_all.push_back(ref.embed_all(s));
  }
  struct Sent {
    Task task;
    std::vector<size_t> idx;
    std::shared_ptr<Job> job;
  };
  constexpr int kThreads = 16, kPerThread = 6;
  std::vector<std::vector<Sent>> sent(kThreads);
  std::atomic<int> timeouts{0};
  std::vector<std::thread> threads;
  size_t total_seqs = 0, total_tokens = 0;
  for (int t = 0; t < kThreads; ++t)
    for (int j = 0; j < kPerThread; ++j) {
      Sent s;
      const int kind = (t + j) % 4;
      s.task = kind == 0 ? Task::kEmbed : kind == 1 ? Task::kClassify : kind == 2 ? Task::kEmbedAll : Task::kFillMask;
      const size_t n = 1 + static_cast<size_t>((t * 5 + j) % 4);
      for (size_t m = 0; m < n; ++m) {
        size_t i = static_cast<size_t>(t * 7 + j * 3) + m * 11;
        if (s.task == Task::kFillMask) i = (i % 10) * 4;  // the inputs with a [MASK]
        s.idx.push_back(i % inputs.size());
        total_tokens += inputs[s.idx.back()].size();
      }
      total_seqs += n;
      sent[static_cast<size_t>(t)].push_back(std::move(s));
    }
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (Sent& s : sent[static_cast<size_t>(t)]) {
        Request r;
        r.task = s.task;
        r.normalize = true;
        r.top_k = 3;
        for (size_t i : s.idx) r.seqs.push_back(inputs[i]);
        s.job = e.submit(std::move(r));
      }
      for (Sent& s : sent[static_cast<size_t>(t)])
        if (!s.job->wait_for(std::chrono::seconds(120))) ++timeouts;
    });
  for (auto& th : threads) th.join();
  ASSERT_EQ(timeouts.load(), 0);
  for (int t = 0; t < kThreads; ++t)
    for (const Sent& s : sent[static_cast<size_t>(t)]) {
      const auto& res = s.job->results();
      ASSERT_EQ(res.size(), s.idx.size());
      for (size_t m = 0; m < s.idx.size(); ++m) {
        SCOPED_TRACE(mbtest::str("thread ", t, " task ", static_cast<int>(s.task), " input ", s.idx[m]));
        const size_t i = s.idx[m];
        switch (s.task) {
          case Task::kEmbed:
            EXPECT_TRUE(same(res[m].values, want_embed[i]));
            break;
          case Task::kClassify:
            EXPECT_TRUE(same(res[m].values, want_cls[i]));
            break;
          case Task::kEmbedAll:
            EXPECT_TRUE(same(res[m].values, want_all[i]));
            break;
          case Task::kFillMask:
            expect_same_fills(res[m], ref.fill(inputs[i], mask, 5), 3);
            break;
        }
      }
      EXPECT_GT(s.job->inference_seconds(), 0.0);
    }
  e.shutdown();  // the observer has seen every batch once the scheduler is joined
  int64_t seqs = 0, tokens = 0;
  for (const BatchStats& b : log.batches) {
    EXPECT_LE(b.tokens, o.max_batch_tokens);
    EXPECT_GE(b.seqs, 1);
    EXPECT_GE(b.seconds, 0.0);
    seqs += b.seqs;
    tokens += b.tokens;
  }
  EXPECT_EQ(seqs, static_cast<int64_t>(total_seqs));
  EXPECT_EQ(tokens, static_cast<int64_t>(total_tokens));
  EXPECT_GT(log.batches.size(), total_tokens / 96);  // the budget split the work
  EXPECT_EQ(e.queue_size(), 0u);
}

// (3): whole sequences are packed FIFO up to the budget; one longer than the budget runs alone.
TEST(ServeEngine, BatchesFollowTheTokenBudget) {
  EngineOptions o;
  o.model_dir = models().mlm_cls;
  o.max_batch_tokens = 16;
  Engine e(o);
  Gate gate;
  BatchLog log;
  e.set_batch_observer([&](const BatchStats& b) {
    log.add(b);
    gate.on_batch();
  });
  auto seq = [](size_t n) { return std::vector<int32_t>(n, 100); };
  auto first = e.submit(embed_request({seq(3)}));
  ASSERT_TRUE(gate.wait_seen(1));  // the scheduler is held: the next three requests queue up
  auto a = e.submit(embed_request({seq(40), seq(5), seq(6)}));
  auto b = e.submit(embed_request({seq(4), seq(16)}));
  auto c = e.submit(embed_request({seq(1)}));
  EXPECT_EQ(e.queue_size(), 3u);
  gate.release();
  for (auto* j : {&a, &b, &c}) ASSERT_TRUE((*j)->wait_for(std::chrono::seconds(60)));
  e.shutdown();
  std::vector<std::pair<int64_t, int64_t>> got;
  for (const auto& s : log.batches) got.emplace_back(s.seqs, s.tokens);
  // [3] | [40] alone | [5 6 4] = 15 | [16] | [1]
  std::vector<std::pair<int64_t, int64_t>> want{{1, 3}, {1, 40}, {3, 15}, {1, 16}, {1, 1}};
  EXPECT_EQ(got, want);
  EXPECT_EQ(log.batches.back().queued_after, 0u);
}

// (4): cancel drops what is not yet in a batch; the queue limit; shutdown refuses new requests and
// finishes the queued ones.
TEST(ServeEngine, CancelQueueFullAndShutdown) {
  const std::string dir = models().mlm_cls;
  EngineOptions o;
  o.model_dir = dir;
  o.max_batch_tokens = 64;
  o.max_queued_requests = 3;
  Engine e(o);
  Gate gate;
  BatchLog log;
  e.set_batch_observer([&](const BatchStats& b) {
    log.add(b);
    gate.on_batch();
  });
  Reference ref(dir);
  std::vector<std::vector<int32_t>> in;
  for (int i = 0; i < 6; ++i) in.push_back(e.tokenize(words(40 + i, i), nullptr, "", false));  // ~42 tokens each

  // A job of 3 sequences, one per batch (budget 64): cancelled after its first batch.
  auto part = e.submit(embed_request({in[0], in[1], in[2]}));
  ASSERT_TRUE(gate.wait_seen(1));
  EXPECT_FALSE(part->done());
  EXPECT_FALSE(part->wait_for(std::chrono::milliseconds(20)));
  part->cancel();
  EXPECT_TRUE(part->done());  // nothing of it in flight: done at once
  EXPECT_TRUE(part->cancelled());
  EXPECT_THROW(part->results(), std::runtime_error);
  EXPECT_EQ(e.queue_size(), 0u);

  // The limit counts requests waiting or running.
  auto b = e.submit(embed_request({in[3], in[4], in[5]}));
  auto c = e.submit(embed_request({in[3]}));
  auto d = e.submit(embed_request({in[4]}));
  EXPECT_THROW(e.submit(embed_request({in[5]})), QueueFull);
  EXPECT_EQ(e.queue_size(), 3u);
  b->cancel();  // never started: dropped whole
  EXPECT_TRUE(b->done());
  EXPECT_EQ(b->inference_seconds(), 0.0);
  EXPECT_EQ(e.queue_size(), 2u);
  auto f = e.submit(embed_request({in[5]}));

  // shutdown() from another thread: it refuses new work at once and returns when drained.
  std::thread stopper([&] { e.shutdown(); });
  bool refused = false;
  for (int tries = 0; tries < 60000 && !refused; ++tries) {
    try {
      e.submit(embed_request({in[0]}));
      ADD_FAILURE() << "accepted while full";
    } catch (const ShuttingDown&) {
      refused = true;
    } catch (const QueueFull&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));  // shutdown() has not begun yet
    }
  }
  EXPECT_TRUE(refused);
  gate.release();
  stopper.join();
  for (auto* j : {&c, &d, &f}) {
    ASSERT_TRUE((*j)->done());
    EXPECT_FALSE((*j)->cancelled());
  }
  EXPECT_TRUE(same(c->results()[0].values, ref.embed(in[3], false)));
  EXPECT_TRUE(same(d->results()[0].values, ref.embed(in[4], false)));
  EXPECT_TRUE(same(f->results()[0].values, ref.embed(in[5], false)));
  EXPECT_EQ(log.seqs(), 1 + 3);  // part's first sequence, then c, d, f: nothing of b
  EXPECT_EQ(e.queue_size(), 0u);
  EXPECT_THROW(e.submit(embed_request({in[0]})), ShuttingDown);
  e.shutdown();  // idempotent
}

// (5): every refusal with its kind.
TEST(ServeEngine, InputErrorKinds) {
  EngineOptions o;
  o.model_dir = models().mlm_cls;
  Engine e(o);
  const Capabilities& c = e.capabilities();
  using K = InputErrorKind;
  // Empty.
  expect_input_error([&] { e.check_ids({}, false); }, K::kEmpty, "check_ids({})");
  expect_input_error([&] { e.submit(Request{}); }, K::kEmpty, "no inputs");
  expect_input_error([&] { e.submit(embed_request({{1, 2}, {}})); }, K::kEmpty, "an empty sequence");
  // Too long, and truncation.
  const std::string text = words(8400, 5);
  const std::vector<int32_t> full = e.tokenizer()->encode(text).ids;
  ASSERT_GT(full.size(), 8200u);
  const auto cls = full.front(), sep = full.back();
  expect_input_error([&] { e.tokenize(text, nullptr, "", false); }, K::kTooLong, "long text");
  expect_input_error([&] { e.tokenize(text, nullptr, "", false, true); }, K::kTooLong, "long text, left, off");
  auto right = e.tokenize(text, nullptr, "", true);
  ASSERT_EQ(right.size(), 8192u);
  EXPECT_EQ(right.front(), cls);
  EXPECT_EQ(right.back(), sep);
  EXPECT_TRUE(std::equal(right.begin(), right.end() - 1, full.begin()));  // the start of the text
  auto left = e.tokenize(text, nullptr, "", true, true);
  ASSERT_EQ(left.size(), 8192u);
  EXPECT_EQ(left.front(), cls);
  EXPECT_EQ(left.back(), sep);
  EXPECT_TRUE(std::equal(left.begin() + 1, left.end(), full.end() - 8191));  // the end of the text
  const std::string shorter = "a short text";
  EXPECT_EQ(e.tokenize(shorter, nullptr, "", true, true), e.tokenizer()->encode(shorter).ids);
  const std::string pair_b = "the second text";
  auto pair = e.tokenize(text, &pair_b, "", true);
  EXPECT_EQ(pair.size(), 8192u);
  EXPECT_EQ(pair.back(), sep);
  expect_input_error([&] { e.tokenize(text, &pair_b, "", false); }, K::kTooLong, "long pair");
  expect_input_error([&] { e.tokenize(shorter, &pair_b, "", true, true); }, K::kValidation, "left-truncated pair");
  std::vector<int32_t> long_ids(8193, 100);
  expect_input_error([&] { e.check_ids(long_ids, false); }, K::kTooLong, "long ids");
  EXPECT_EQ(e.check_ids(long_ids, true).size(), 8192u);
  expect_input_error([&] { e.submit(embed_request({long_ids})); }, K::kTooLong, "submit long ids");
  // Ids out of range.
  const int32_t V = static_cast<int32_t>(c.vocab_size);
  expect_input_error([&] { e.check_ids({1, V}, false); }, K::kIdOutOfRange, "id V");
  expect_input_error([&] { e.check_ids({-1}, true); }, K::kIdOutOfRange, "id -1");
  expect_input_error([&] { e.submit(embed_request({{1, 2}, {3, V + 7}})); }, K::kIdOutOfRange, "submit id");
  EXPECT_EQ(e.check_ids({0, 5, V - 1}, false), (std::vector<int32_t>{0, 5, V - 1}));
  // The tokenizer's refusal.
  expect_input_error([&] { e.tokenize("bad \xff\xfe utf-8", nullptr, "", false); }, K::kTokenizer, "invalid UTF-8");
  // Prompts.
  expect_input_error([&] { e.prompt_text("query"); }, K::kValidation, "unknown prompt (none defined)");
  EXPECT_EQ(e.prompt_text(""), "");
  // Dimensions.
  for (int64_t bad : {int64_t{-1}, c.embedding_dim + 1})
    expect_input_error([&] { e.submit(embed_request({{1, 2}}, true, bad)); }, K::kValidation, "dims");
  EXPECT_EQ(run(e, embed_request({{1, 2}}, true, c.embedding_dim))->results()[0].cols, c.embedding_dim);
  EXPECT_EQ(run(e, embed_request({{1, 2}}, true, 1))->results()[0].cols, 1);
  // Fill-mask knobs.
  Request fm;
  fm.task = Task::kFillMask;
  fm.seqs = {{1, 2, 3}};
  expect_input_error([&] { e.submit(fm); }, K::kValidation, "no [MASK] in the input");
  fm.seqs = {{1, c.mask_token_id, 3}};
  fm.top_k = 0;
  expect_input_error([&] { e.submit(fm); }, K::kValidation, "top_k 0");

  // Unsupported tasks.
  EngineOptions so;
  so.model_dir = models().st;  // no classifier
  Engine st(so);
  Request cr;
  cr.task = Task::kClassify;
  cr.seqs = {{1, 2, 3}};
  expect_input_error([&] { st.submit(cr); }, K::kValidation, "classify without a classifier");
  expect_input_error([&] { st.prompt_text("nope"); }, K::kValidation, "unknown prompt");
  so.model_dir = models().cls_only;  // no MLM head
  Engine co(so);
  fm.top_k = 5;
  expect_input_error([&] { co.submit(fm); }, K::kValidation, "fill-mask without an MLM head");
  EXPECT_EQ(run(co, cr)->results()[0].cols, 3);
  so.model_dir = models().no_tokenizer;
  Engine nt(so);
  EXPECT_EQ(nt.tokenizer(), nullptr);
  EXPECT_EQ(nt.capabilities().mask_token_id, -1);
  expect_input_error([&] { nt.tokenize("text", nullptr, "", false); }, K::kValidation, "no tokenizer");
  expect_input_error([&] { nt.submit(fm); }, K::kValidation, "fill-mask without [MASK] in the vocabulary");
  EXPECT_EQ(run(nt, embed_request({nt.check_ids({1, 2, 3}, false)}))->results()[0].cols, 64);
}
