// The serving engine (src/serve/engine.h): its capabilities, and results equal to running each input
// alone through the inference commands' path (the library functions and the CLI itself). The
// queue, the scheduler and the input errors: test_serve_engine_queue.cpp.
#include <gtest/gtest.h>

#include "serve_engine_test_util.h"

using namespace serve_test;

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
  EXPECT_EQ(c.problem_type, ProblemType::kUnset);  // config.json's: the HTTP layer applies TEI's rule
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
  auto probs = logits_to_scores(logits.data(), 3, ProblemType::kSingleLabel);  // `classify`'s for 3 labels
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

// --dtype reaches the server (#15): the engine loads the weights in the requested precision, says
// so in its capabilities, and a request alone is bitwise what `embed --dtype` prints.
TEST(ServeEngine, RunsInTheRequestedPrecisionLikeTheCli) {
  const std::string dir = models().mlm_cls;
  EngineOptions o;
  o.model_dir = dir;
  o.precision = Precision::kInt8;
  Engine e(o);
  EXPECT_EQ(e.capabilities().precision, "int8");
  const std::string text = words(23, 3);
  auto job = run(e, embed_request({e.tokenize(text, nullptr, "", false)}));
  std::string in = write(models().tmp / "one_int8.jsonl", json({{"text", text}}).dump() + "\n");
  auto q = mbtest::run_command(mbtest::cli() + " embed --dtype int8 --model " + dir + " --input " + in + " 2>/dev/null");
  ASSERT_EQ(q.status, 0) << q.output;
  EXPECT_EQ(job->results()[0].values, jsonl(q.output).at(0)["embedding"].get<std::vector<float>>());
  auto f = mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " 2>/dev/null");
  ASSERT_EQ(f.status, 0) << f.output;
  EXPECT_NE(job->results()[0].values, jsonl(f.output).at(0)["embedding"].get<std::vector<float>>());
  EngineOptions d = o;
  d.precision.reset();
  EXPECT_EQ(Engine(d).capabilities().precision, "f32");
}
