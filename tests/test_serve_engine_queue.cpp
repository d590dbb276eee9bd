// The serving engine's queue and scheduler (src/serve/engine.h): concurrent submitters each get their
// own results, the token budget, cancel / queue limit / shutdown, and every InputError kind.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "serve_engine_test_util.h"

using namespace serve_test;

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

// Each batch is logged, then the scheduler is held in the gate until it opens.
void log_and_hold(Engine& e, BatchLog& log, Gate& gate) {
  e.set_batch_observer([&log, &gate](const BatchStats& b) {
    log.add(b);
    gate.on_batch();
  });
}

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
        if (!s.job->wait_for(std::chrono::seconds(300))) ++timeouts;  // generous: the test took 250 s under TSan
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
  log_and_hold(e, log, gate);
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
  log_and_hold(e, log, gate);
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

// A failure while serving fails only the jobs it touches (results() rethrows it) and the engine
// goes on. The model's Dense module has an activation the library does not support, so its
// embeddings fail (post-processing) while fill-mask on the same model works; with warm-up on (an
// embedding) the engine refuses to start instead.
TEST(ServeEngine, AFailureFailsOnlyItsJobs) {
  mbtest::TempDir tmp("serve_fail");
  const std::string dir = make_model(tmp, "m", "mlm");
  add_sentence_transformers(dir);
  write(
      dir + "/2_Dense/config.json",
      R"({"in_features": 64, "out_features": 8, "bias": true, "activation_function": "torch.nn.modules.activation.ReLU"})");
  EngineOptions o;
  o.model_dir = dir;
  try {
    Engine bad(o);
    ADD_FAILURE() << "started with a Dense module it cannot run";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("warm-up"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ReLU"), std::string::npos) << e.what();
  }
  o.warmup = false;
  Engine e(o);
  EXPECT_TRUE(e.ready());
  Gate gate;
  BatchLog log;
  log_and_hold(e, log, gate);
  const auto text = e.tokenize("the [MASK] is blue", nullptr, "", false);
  Request fm;
  fm.task = Task::kFillMask;
  fm.seqs = {text};
  auto first = e.submit(fm);
  ASSERT_TRUE(gate.wait_seen(1));
  // Queued together: one batch holds both.
  auto emb = e.submit(embed_request({text, text}, true));
  auto fill = e.submit(fm);
  gate.release();
  ASSERT_TRUE(emb->wait_for(std::chrono::seconds(60)));
  ASSERT_TRUE(fill->wait_for(std::chrono::seconds(60)));
  EXPECT_THROW(emb->results(), Error);
  EXPECT_EQ(fill->results().at(0).masks.size(), 1u);
  auto again = run(e, fm);
  EXPECT_EQ(again->results().at(0).masks.size(), 1u);
  e.shutdown();
  ASSERT_EQ(log.batches.size(), 3u);
  EXPECT_EQ(log.batches[1].seqs, 3);  // the failing embeddings rode with the fill-mask
}

// A forward that fails for one sequence of a batch (here an f16 model whose activations leave the
// f16 range for inputs holding one token) fails only the requests of that sequence: the scheduler
// runs each sequence of the failed batch again alone, and the others' results equal the engine's
// own for them alone.
TEST(ServeEngine, AForwardFailureInABatchFailsOnlyItsSequence) {
  mbtest::TempDir tmp("serve_f16ovf");
  const std::string dir = make_model(tmp, "m", "mlm");
  // Token 7's embedding row: all its mass in channel 0, so that after the embedding LayerNorm that
  // channel is sqrt(63) ~ 7.9 (any other row's channel 0 is a few units at most); the norm's
  // weight 9000 there takes it to ~71,000, past f16's 65,504, for that token only.
  constexpr int32_t kPoison = 7;
  {
    auto f = SafeTensorsFile::open(dir + "/model.safetensors");
    SafeTensorsWriter w;
    std::vector<std::vector<float>> keep;
    for (const auto& t : f->tensors()) {
      keep.push_back(f->to_f32(t.name));
      std::vector<float>& v = keep.back();
      if (t.name == "model.embeddings.tok_embeddings.weight") {
        const int64_t H = t.shape[1];
        std::fill(v.begin() + kPoison * H, v.begin() + (kPoison + 1) * H, 0.0f);
        v[static_cast<size_t>(kPoison * H)] = 1.0f;
      }
      if (t.name == "model.embeddings.norm.weight") v[0] = 9000.0f;
      w.add_f32(t.name, t.shape, v.data());
    }
    w.write(dir + "/model.safetensors");
  }
  EngineOptions o;
  o.model_dir = dir;
  o.precision = Precision::kF16;
  Engine e(o);
  Gate gate;
  BatchLog log;
  log_and_hold(e, log, gate);
  const std::vector<int32_t> good1{1, 100, 200, 300, 2}, good2{1, 400, 500, 2}, poisoned{1, 100, kPoison, 300, 2};
  auto first = e.submit(embed_request({good1}));
  ASSERT_TRUE(gate.wait_seen(1));
  auto a = e.submit(embed_request({good1}));
  auto bad = e.submit(embed_request({poisoned}));
  auto b = e.submit(embed_request({good2}));
  gate.release();
  for (auto* j : {&a, &bad, &b}) ASSERT_TRUE((*j)->wait_for(std::chrono::seconds(60)));
  try {
    (void)bad->results();
    ADD_FAILURE() << "the poisoned input did not fail";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("f16 range"), std::string::npos) << err.what();
  }
  const auto alone_b = run(e, embed_request({good2}))->results().at(0).values;
  e.shutdown();
  ASSERT_EQ(log.batches.size(), 3u);
  EXPECT_EQ(log.batches[1].seqs, 3);  // the three rode in one batch
  // The other two were run again alone: bitwise the results of the same inputs alone.
  EXPECT_EQ(a->results().at(0).values, first->results().at(0).values);
  EXPECT_EQ(b->results().at(0).values, alone_b);
}
