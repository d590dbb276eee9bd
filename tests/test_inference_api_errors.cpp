// modernbert::Model's error paths (every one a modernbert::Error with a specific message, an
// input's an InputError with its index and kind), calls from several threads, and the C++ example
// examples/cpp/embed_and_rerank.cpp run on a tiny model.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <thread>

#include "inference_api_test_util.h"
#include "modernbert/inference.h"

using namespace modernbert;
using namespace mbapi;

namespace {

// Runs fn, which must throw an Error whose message contains `part`.
void expect_error(const std::function<void()>& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing '" << part << "'";
  } catch (const InputError& e) {
    ADD_FAILURE() << "an InputError (" << e.what() << "); expected a plain Error containing '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// Runs fn, which must throw InputError(kind, index).
void expect_input_error(const std::function<void()>& fn, InputIssue kind, size_t index, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected InputError at " << index;
  } catch (const InputError& e) {
    EXPECT_EQ(e.kind, kind) << e.what();
    EXPECT_EQ(e.index(), index) << e.what();
    EXPECT_NE(e.detail().find(part), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(InferenceApiErrors, LoadingAndOptions) {
  expect_error([] { Model m(models().tmp / "no-such-dir"); }, "no-such-dir");
  expect_error([] { Model m(models().cls1, {.threads = -1}); }, "threads");
  expect_error([] { Model m(models().cls1, {.max_batch_tokens = 0}); }, "max_batch_tokens");
  expect_error([] { Model m(models().cls1, {.batch_size = -2}); }, "batch_size");
  // A model without tokenizer.json loads; text calls say what is missing.
  const std::string bare = models().tmp / "bare";
  mbtest::run_command("mkdir -p " + bare + " && cp " + models().cls1 + "/config.json " + models().cls1 +
                      "/model.safetensors " + bare + "/");
  Model m(bare);
  EXPECT_FALSE(m.info().has_tokenizer);
  EXPECT_EQ(m.tokenizer(), nullptr);
  expect_error([&] { m.tokenize("x"); }, "tokenizer.json");
  expect_input_error([&] { m.embed({"x"}); }, InputIssue::kTokenizer, 0, "tokenizer.json");
}

TEST(InferenceApiErrors, MissingHeadsAndBadArguments) {
  const Models& ms = models();
  Model cls1(ms.cls1), st(ms.st), tok(ms.tok), mlm(ms.mlm_cls3);
  expect_error([&] { cls1.fill_mask({"a [MASK]"}); }, "MLM head");
  expect_error([&] { st.classify({"a"}); }, "no sequence-classification head");
  expect_error([&] { tok.classify({"a"}); }, "use classify_tokens");
  expect_error([&] { mlm.classify_tokens({"a"}); }, "no token-classification head");
  expect_error([&] { st.rerank("q", {"a"}, {.mode = RerankMode::kCrossEncoder}); }, "sequence-classification head");
  expect_error([&] { mlm.classify({"a", "b"}, {"x"}); }, "1 pairs for 2 texts");
  expect_error([&] { mlm.fill_mask({"a [MASK]"}, 0); }, "top_k");
  expect_error([&] { st.embed({"a"}, {.dim = -1}); }, "dim -1");
  expect_error([&] { st.embed({"a"}, {.dim = 9}); }, "0..8");
  expect_error([&] { st.embed({"a"}, {.prompt_name = "nope"}); }, "prompt 'nope': the model defines no such prompt");
  expect_error([&] { st.rerank("q", {"a"}, {.mode = RerankMode::kEmbedding, .query_prompt_name = "nope"}); },
               "no such prompt");
  expect_error([&] { cls1.rerank("q", {"a"}, {.top_n = -1}); }, "top_n");
  expect_error([&] { cls1.rerank("", {"a"}); }, "empty query");
  expect_error([&] { cls1.rerank("q", {"a"}, {.query_prompt_name = "query"}); }, "embedding mode only");
  expect_input_error([&] { mlm.fill_mask({"a [MASK]", "no mask here"}); }, InputIssue::kNoMask, 1, "[MASK]");
  // The heads that exist still work after an error.
  EXPECT_EQ(st.embed({"a"}).cols, 8);
}

TEST(InferenceApiErrors, Inputs) {
  const Models& ms = models();
  Model m(ms.shortm);  // max_position_embeddings 32
  std::string longer;
  for (int i = 0; i < 40; ++i) longer += "word ";
  // Empty lists are no work, not an error.
  EXPECT_EQ(m.embed({}).rows, 0);
  EXPECT_EQ(m.embed({}).cols, 64);
  EXPECT_TRUE(m.fill_mask({}).empty());
  EXPECT_TRUE(m.hidden_states({}).vectors.data.empty());
  expect_input_error([&] { m.embed({"fine", "", "x"}); }, InputIssue::kEmpty, 1, "empty text");
  expect_input_error(
      [&] {
        m.embed({"fine", "also fine", longer});
      },
      InputIssue::kTooLong, 2, "exceed max_position_embeddings 32");
  expect_input_error([&] { m.embed({"ok", "bad \xff utf-8"}); }, InputIssue::kTokenizer, 1, "UTF-8");
  expect_input_error(
      [&] {
        m.rerank("q", {"ok", longer}, {.mode = RerankMode::kEmbedding});
      },
      InputIssue::kTooLong, 1, "max_position_embeddings");
  expect_error([&] { m.rerank(longer, {"ok"}, {.mode = RerankMode::kEmbedding}); }, "the query");
  Model c(ms.cls1);
  expect_input_error([&] { c.classify({"a", "b"}, {"x", ""}); }, InputIssue::kEmpty, 1, "empty");

  // truncate: cut to 32 tokens keeping [SEP], as `embed --truncate`; lossy_utf8: U+FFFD, as --lossy-utf8.
  Model t(ms.shortm, {.truncate = true, .lossy_utf8 = true});
  const TokenVectors h = t.hidden_states({longer});
  EXPECT_EQ(h.offsets[1], 32);
  const Encoding e = t.tokenize(longer);
  EXPECT_EQ(e.ids.size(), 32u);
  EXPECT_EQ(e.ids.back(), *t.tokenizer()->token_to_id("[SEP]"));
  // The second line as plain text (JSON cannot carry invalid UTF-8).
  const std::string in = ms.tmp / "long.txt";
  write_file(in, json({{"text", longer}}).dump() + "\nbad \xff utf-8\n");
  auto ref = cli_jsonl("embed --truncate --lossy-utf8 --model " + ms.shortm + " --input " + in);
  const Matrix got = t.embed({longer, "bad \xff utf-8"});
  ASSERT_EQ(ref.size(), 2u);
  for (int64_t i = 0; i < 2; ++i)
    expect_close(std::vector<double>(got.row(i), got.row(i) + got.cols),
                 floats(ref[static_cast<size_t>(i)]["embedding"]), "truncated / lossy");
}

TEST(InferenceApiThreads, FourThreadsOnOneModelGetIdenticalResults) {
  Model m(models().mlm_cls3, {.max_batch_tokens = 32});
  const std::vector<std::string> texts = {"one text", "another, longer text than the first", "[MASK] three",
                                          "four [MASK]"};
  const Matrix e0 = m.embed(texts);
  const auto c0 = m.classify(texts);
  const auto f0 = m.fill_mask({"a [MASK] b"}, 3);
  std::vector<int> ok(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      int good = 1;
      for (int rep = 0; rep < 3; ++rep) {
        good &= m.embed(texts).data == e0.data;
        const auto c = m.classify(texts);
        for (size_t i = 0; i < c.size(); ++i) good &= c[i].logits == c0[i].logits;
        good &= m.fill_mask({"a [MASK] b"}, 3)[0][0].predictions[0].token == f0[0][0].predictions[0].token;
      }
      ok[static_cast<size_t>(t)] = good;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, std::vector<int>(4, 1));
}

TEST(InferenceApiExample, EmbedAndRerankRunsOnATinyModel) {
  const Models& ms = models();
  auto r = mbtest::run_command(std::string(MB_EXAMPLE_CPP_EMBED_AND_RERANK) + " " + ms.st);
  ASSERT_EQ(r.status, 0) << r.output;
  // Its numbers are Model's: the shape and cosine of the two embeddings (st: Dense 8, normalised;
  // checked against the CLI in test_inference_api.cpp), and the ranking.
  const std::vector<std::string> pair = {"The cat sat on the mat.", "A cat is sitting on a rug."};
  auto ref = cli_jsonl("embed --model " + ms.st + " --input " + input_file("ex.jsonl", pair));
  ASSERT_EQ(ref.size(), 2u);
  double cosine = 0;
  for (size_t k = 0; k < 8; ++k) cosine += ref[0]["embedding"][k].get<double>() * ref[1]["embedding"][k].get<double>();
  EXPECT_NE(r.output.find("embeddings: 2 x 8\n"), std::string::npos) << r.output;
  const size_t c = r.output.find("cosine: ");
  ASSERT_NE(c, std::string::npos) << r.output;
  EXPECT_NEAR(std::stod(r.output.substr(c + 8)), cosine, 1e-5) << r.output;
  Model m(ms.st);
  const std::vector<std::string> docs = {"Paris is the capital of France.", "Cats like to sleep.",
                                         "The Eiffel Tower is in Paris."};
  std::string expect;
  for (const auto& h : m.rerank("Where is the Eiffel Tower?", docs)) {
    char line[512];
    std::snprintf(line, sizeof line, "%lld\t%.6f\t%s\n", static_cast<long long>(h.index), h.score,
                  docs[static_cast<size_t>(h.index)].c_str());
    expect += line;
  }
  EXPECT_NE(r.output.find(expect), std::string::npos) << r.output << "\nexpected:\n" << expect;
  // A bad directory: non-zero exit and the error message.
  auto bad = mbtest::run_command(std::string(MB_EXAMPLE_CPP_EMBED_AND_RERANK) + " " + ms.tmp / "missing");
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("error: "), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("missing"), std::string::npos) << bad.output;
}

TEST(InferenceApiCli, RerankErrorsNameTheInput) {
  const Models& ms = models();
  std::string longer;
  for (int i = 0; i < 40; ++i) longer += "word ";
  const std::string cli = mbtest::cli() + " rerank --model " + ms.shortm + " --query q ";
  auto r = mbtest::run_command(cli + "ok '" + longer + "'");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("argument:2: 43 tokens exceed"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(use --truncate)"), std::string::npos) << r.output;
  write_file(ms.tmp / "bad.txt", "fine\nbad \xff utf-8\n");
  r = mbtest::run_command(cli + "--input " + ms.tmp / "bad.txt");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("bad.txt:2: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--lossy-utf8"), std::string::npos) << r.output;
  r = mbtest::run_command(cli + "--mode bogus x");
  EXPECT_NE(r.output.find("--mode: expected auto, cross-encoder, colbert or embedding"), std::string::npos) << r.output;
  r = mbtest::run_command(cli + "--top-n -1 x");
  EXPECT_NE(r.output.find("--top-n"), std::string::npos) << r.output;
  r = mbtest::run_command(mbtest::cli() + " rerank --model " + ms.shortm + " --query '' x");
  EXPECT_NE(r.output.find("empty query"), std::string::npos) << r.output;
  // auto on st is ColBERT, where prompts do not apply; embedding mode names the bad prompt.
  r = mbtest::run_command(mbtest::cli() + " rerank --model " + ms.st + " --query q --document-prompt document x");
  EXPECT_NE(r.output.find("prompts apply to the embedding mode only"), std::string::npos) << r.output;
  r = mbtest::run_command(mbtest::cli() + " rerank --mode embedding --model " + ms.st +
                          " --query q --document-prompt nope x");
  EXPECT_NE(r.output.find("prompt 'nope'"), std::string::npos) << r.output;
  // --truncate and --lossy-utf8 make the same inputs work, and every text gets one line.
  auto lines =
      cli_jsonl("rerank --truncate --lossy-utf8 --model " + ms.shortm + " --query q --input " + ms.tmp / "bad.txt");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["index"].get<int>() + lines[1]["index"].get<int>(), 1);
  auto help = mbtest::run_command(mbtest::cli() + " rerank --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("--query-prompt"), std::string::npos);
  EXPECT_NE(mbtest::run_command(mbtest::cli() + " --help").output.find("rerank"), std::string::npos);
}
