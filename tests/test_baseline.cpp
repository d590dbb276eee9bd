// Baselines: tokenizers, BM25 scoring by hand, TF-IDF weights by hand, logistic regression
// (separable data, determinism), and the `baseline` command on small slices of the downstream sets
// (the committed subsets in tests/data/downstream).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "modernbert/baselines.h"
#include "modernbert/evaluation.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;

namespace {

// The committed subsets of the downstream sets (tests/data/README.md).
std::string downstream() { return mbtest::test_data() + "/downstream"; }

// The first n non-blank lines of `src` into `dst` (plus, optionally, only lines containing `filter`).
void head_lines(const std::string& src, const std::string& dst, size_t n, const std::string& filter = "") {
  std::ifstream in(src);
  std::ofstream out(dst);
  std::string line;
  size_t k = 0;
  while (k < n && std::getline(in, line)) {
    if (line.empty() || (!filter.empty() && line.find(filter) == std::string::npos)) continue;
    out << line << "\n";
    ++k;
  }
}

json last_json(const std::string& output) {
  // The JSON report is the last top-level object in the output (the table goes to stderr first).
  auto pos = output.find("\n{");
  if (output.rfind("{", 0) == 0) pos = 0;
  else if (pos != std::string::npos) ++pos;
  return json::parse(output.substr(pos));
}

}  // namespace

TEST(Baseline, Tokenizers) {
  EXPECT_EQ(simple_tokenize("getHTTPResponse_code(x2) Ünïcode", false),
            (std::vector<std::string>{"gethttpresponse", "code", "x2", "ünïcode"}));
  EXPECT_EQ(simple_tokenize("getHTTPResponse_code(x2)", true),
            (std::vector<std::string>{"gethttpresponse_code", "get", "http", "response", "code", "x2"}));
  EXPECT_EQ(simple_tokenize("__init__ self.fooBar", true),
            (std::vector<std::string>{"__init__", "self", "foobar", "foo", "bar"}));
  // sklearn's default token pattern: 2+ word characters, lower-cased.
  EXPECT_EQ(tfidf_tokenize("I don't like it, a b cc_d"), (std::vector<std::string>{"don", "like", "it", "cc_d"}));
}

TEST(Baseline, Bm25ScoresByHand) {
  // docs: "a b" (len 2), "a c c" (len 3), "d" (len 1); avgdl = 2; k1 0.9, b 0.4.
  // query "c": df 1, idf = ln(1 + (3 − 1 + 0.5)/(1 + 0.5)) = ln(8/3)
  //   doc 1: tf 2, norm = 0.9·(0.6 + 0.4·3/2) = 1.08 -> idf · 2·1.9/(2 + 1.08)
  Bm25Index idx({"a b", "a c c", "d"}, Bm25Options{0.9, 0.4, false});
  auto s = idx.scores("c");
  EXPECT_NEAR(s[1], std::log(8.0 / 3.0) * 3.8 / 3.08, 1e-5);
  EXPECT_EQ(s[0], 0.0f);
  // query "a": df 2, idf = ln(1 + 1.5/2.5) = ln 1.6; doc 0 (len 2): norm 0.9 -> 1.9/1.9 = 1
  auto sa = idx.scores("A!");
  EXPECT_NEAR(sa[0], std::log(1.6), 1e-5);
  EXPECT_GT(sa[0], sa[1]);  // shorter document wins at equal tf
}

TEST(Baseline, TfidfWeightsByHand) {
  // train: "aa bb", "aa cc", "aa bb bb"; unigrams only, min_df 1, sublinear tf.
  // df: aa 3, bb 2, cc 1 -> idf = ln(4/4)+1 = 1, ln(4/3)+1, ln(4/2)+1
  TfidfVectorizer v(TfidfOptions{1, 1, true});
  v.fit({"aa bb", "aa cc", "aa bb bb"});
  EXPECT_EQ(v.vocabulary_size(), 3);
  auto X = v.transform({"aa bb bb"});
  // aa: tf 1 -> 1·1; bb: tf 2 -> (1 + ln 2)(ln(4/3) + 1); then l2-normalised. Columns are sorted terms.
  const double a = 1.0, b = (1 + std::log(2.0)) * (std::log(4.0 / 3.0) + 1), n = std::sqrt(a * a + b * b);
  ASSERT_EQ(X.indices.size(), 2u);
  EXPECT_EQ(X.indices[0], 0);
  EXPECT_NEAR(X.values[0], a / n, 1e-6);
  EXPECT_NEAR(X.values[1], b / n, 1e-6);
  // min_df 2 drops cc; bigrams join adjacent words.
  TfidfVectorizer v2(TfidfOptions{2, 2, true});
  v2.fit({"aa bb", "aa cc", "aa bb bb"});
  EXPECT_EQ(v2.vocabulary_size(), 3);  // aa, bb, "aa bb"
}

TEST(Baseline, LogisticRegressionSeparableAndDeterministic) {
  std::vector<std::string> texts{"good great fine", "great good", "good fine", "bad awful", "awful terrible", "terrible bad",
                                 "meh so so", "so so meh", "meh meh"};
  std::vector<int64_t> y{0, 0, 0, 1, 1, 1, 2, 2, 2};
  TfidfVectorizer v(TfidfOptions{1, 1, true});
  v.fit(texts);
  auto X = v.transform(texts);
  LogisticRegression a, b;
  a.fit(X, y, 3, LogRegOptions{});
  b.fit(X, y, 3, LogRegOptions{});
  EXPECT_EQ(a.predict(X), y);
  EXPECT_EQ(a.iterations(), b.iterations());
  EXPECT_EQ(a.final_loss(), b.final_loss());  // bit-identical: fixed order, no randomness
  EXPECT_EQ(a.predict(v.transform({"good", "awful", "meh"})), (std::vector<int64_t>{0, 1, 2}));
  // Stronger regularisation -> higher training loss.
  LogisticRegression c;
  c.fit(X, y, 3, LogRegOptions{0.01, 300, 1e-6, 10});
  EXPECT_GT(c.final_loss(), a.final_loss());
}

TEST(BaselineCli, ClassificationOnSlices) {
  mbtest::TempDir tmp("baseline_cls");
  const std::string d = downstream() + "/rt_polarity";
  // The files list positives first: take both classes of every split (the committed subsets
  // hold the first 1000 / 100 / 100 of each class of train / dev / test).
  auto slice = [&](const std::string& split, size_t per_class) {
    head_lines(d + "/" + split + ".jsonl", tmp / (split + ".jsonl"), per_class, "\"label\": 1");
    head_lines(d + "/" + split + ".jsonl", tmp / (split + "_neg.jsonl"), per_class, "\"label\": 0");
    mbtest::run_command("cat " + tmp / (split + "_neg.jsonl") + " >> " + tmp / (split + ".jsonl"));
  };
  slice("train", 1000);
  slice("dev", 100);
  slice("test", 100);
  auto r = mbtest::run_command(mbtest::cli() + " baseline --task classification --train " + tmp / "train.jsonl" + " --dev " +
                               tmp / "dev.jsonl" + " --test " + tmp / "test.jsonl" + " --c-grid 1,10");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = last_json(r.output);
  const json& maj = j["baselines"]["majority"];
  const json& lr = j["baselines"]["tfidf-lr"];
  EXPECT_EQ(j["labels"], (json{"negative", "positive"}));
  EXPECT_EQ(lr["dev"]["n"], 200);
  EXPECT_GT(lr["test"]["accuracy"].get<double>(), maj["test"]["accuracy"].get<double>() + 0.1) << j.dump(1);
  EXPECT_GT(lr["dev"]["macro_f1"].get<double>(), 0.6);
  EXPECT_TRUE(lr["dev_macro_f1_by_C"].contains("10"));
  EXPECT_NE(r.output.find("tfidf-lr / test"), std::string::npos) << r.output;  // the table
  // Same inputs -> same numbers.
  auto r2 = mbtest::run_command(mbtest::cli() + " baseline --task classification --method tfidf-lr --quiet --train " +
                                tmp / "train.jsonl" + " --dev " + tmp / "dev.jsonl" + " --test " + tmp / "test.jsonl" +
                                " --c-grid 1,10");
  ASSERT_EQ(r2.status, 0) << r2.output;
  EXPECT_EQ(json::parse(r2.output)["baselines"]["tfidf-lr"]["test"], lr["test"]);
  // A label the training set never names consistently is an error naming the line.
  std::ofstream(tmp / "bad.jsonl") << "{\"text\": \"x y\", \"label\": 0, \"label_name\": \"positive\"}\n";
  auto bad = mbtest::run_command(mbtest::cli() + " baseline --task classification --quiet --train " + tmp / "train.jsonl" +
                                 " --dev " + tmp / "bad.jsonl");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("bad.jsonl:1"), std::string::npos) << bad.output;
  // Empty data file.
  std::ofstream(tmp / "empty.jsonl") << "\n";
  auto empty = mbtest::run_command(mbtest::cli() + " baseline --task classification --quiet --train " + tmp / "train.jsonl" +
                                   " --dev " + tmp / "empty.jsonl");
  EXPECT_NE(empty.status, 0);
  EXPECT_NE(empty.output.find("empty file"), std::string::npos) << empty.output;
}

TEST(BaselineCli, Bm25OnManPagesClosedAndFull) {
  // Expected sizes from the fixture files themselves (scripts/make_test_fixtures.sh keeps the
  // first documents of each split and the queries whose positives are all among them).
  const std::string d = downstream() + "/manpages_retrieval";
  std::ifstream cf(d + "/corpus.jsonl");
  size_t n_docs = 0, n_test_docs = 0;
  for (std::string line; std::getline(cf, line);)
    if (!line.empty()) ++n_docs, n_test_docs += json::parse(line)["split"] == "test";
  auto count_lines = [](const std::string& path) {
    std::ifstream f(path);
    size_t n = 0;
    for (std::string line; std::getline(f, line);) n += !line.empty();
    return n;
  };
  const size_t n_test_q = count_lines(d + "/queries_test.jsonl"), n_dev_q = count_lines(d + "/queries_dev.jsonl");
  ASSERT_GT(n_test_docs, 20u);
  ASSERT_GT(n_docs, n_test_docs);
  ASSERT_GT(n_test_q, 20u);
  ASSERT_GT(n_dev_q, 5u);
  auto r = mbtest::run_command(mbtest::cli() + " baseline --task retrieval --data " + d +
                               " --split test --scope both --quiet");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output);
  const json& closed = j["scopes"]["closed:test"];
  const json& full = j["scopes"]["full"];
  EXPECT_EQ(closed["corpus_size"], n_test_docs);
  EXPECT_EQ(full["corpus_size"], n_docs);
  EXPECT_EQ(closed["queries"], n_test_q);
  EXPECT_EQ(closed["evaluated"], n_test_q);
  EXPECT_EQ(closed["skipped_no_relevant"], 0);
  // A larger corpus can only make it harder for the same queries (not a law for BM25, whose idf
  // changes, but true by a wide margin here).
  EXPECT_GT(closed["mrr@10"].get<double>(), full["mrr@10"].get<double>());
  EXPECT_GT(closed["recall@10"].get<double>(), 0.3);
  // Queries whose positives are not in the searched corpus: dev queries against the test documents.
  auto x = mbtest::run_command(mbtest::cli() + " baseline --task retrieval --quiet --corpus " + d +
                               "/corpus.jsonl --queries " + d + "/queries_dev.jsonl --split test --scope closed");
  ASSERT_EQ(x.status, 0) << x.output;
  json jx = json::parse(x.output)["scopes"]["closed:test"];
  EXPECT_EQ(jx["evaluated"], 0);
  EXPECT_EQ(jx["skipped_no_relevant"], n_dev_q);
  EXPECT_TRUE(jx["mrr@10"].is_null());  // no silent 0
}
