// modernbert::Model (inference.h) against the CLI: every method's result equals the matching
// command's output for the same inputs (floats within 1e-5 + 1e-4 |ref|, since batching differs;
// ids, labels and decoded strings exactly), and rerank's scores equal ones computed here from the
// CLI's classify / embed outputs. Errors, threads and the C++ example: test_inference_api_errors.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "inference_api_test_util.h"
#include "modernbert/inference.h"

using namespace modernbert;
using namespace mbapi;

namespace {

const std::vector<std::string> kTexts = {"hello world, how are you", "The quick brown fox jumps over the lazy dog.",
                                         "a", "ModernBERT is a modern encoder; it reads 8192 tokens of context!"};

// Small budgets so that the API batches differently from the CLI's single batch.
ModelOptions small_batches() {
  ModelOptions o;
  o.max_batch_tokens = 24;
  o.batch_size = 2;
  return o;
}

std::vector<double> row(const Matrix& m, int64_t r) { return std::vector<double>(m.row(r), m.row(r) + m.cols); }

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

// Ranking expected from scores: descending, ties in input order.
std::vector<size_t> ranking(const std::vector<double>& score) {
  std::vector<size_t> order(score.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return score[x] > score[y]; });
  return order;
}

void expect_hits(const std::vector<RerankHit>& hits, const std::vector<double>& ref, const std::string& what) {
  const auto order = ranking(ref);
  ASSERT_EQ(hits.size(), order.size()) << what;
  for (size_t k = 0; k < hits.size(); ++k) {
    EXPECT_TRUE(close(hits[k].score, ref[static_cast<size_t>(hits[k].index)])) << what << " hit " << k;
    // The order follows the scores (equal up to the tolerance where two are that close).
    if (!close(ref[order[k]], ref[static_cast<size_t>(hits[k].index)])) {
      EXPECT_EQ(hits[k].index, static_cast<int64_t>(order[k])) << what << " hit " << k;
    }
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  return std::inner_product(a.begin(), a.end(), b.begin(), 0.0);
}

}  // namespace

TEST(InferenceApi, InfoDescribesTheModels) {
  const Models& m = models();
  Model a(m.mlm_cls3);
  const ModelInfo& i = a.info();
  EXPECT_EQ(i.dir, m.mlm_cls3);
  EXPECT_EQ(i.hidden_size, 64);
  EXPECT_EQ(i.vocab_size, 50368);
  EXPECT_EQ(i.max_length, 8192);
  EXPECT_EQ(i.stored_dtype, "F32");
  EXPECT_EQ(i.precision, Precision::kF32);
  EXPECT_TRUE(i.has_tokenizer && i.has_mlm && i.has_classifier);
  EXPECT_FALSE(i.has_token_classifier || i.has_colbert || i.normalize);
  EXPECT_EQ(i.num_labels, 3);
  EXPECT_EQ(i.problem_type, ProblemType::kSingleLabel);
  EXPECT_EQ(i.labels, (std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"}));
  EXPECT_EQ(i.pooling, EmbedPooling::kMean);  // config.json classifier_pooling
  EXPECT_EQ(i.embedding_dim, 64);
  ASSERT_NE(a.tokenizer(), nullptr);

  Model c(m.cls1);
  EXPECT_EQ(c.info().problem_type, ProblemType::kRegression);  // unset + 1 label, as `classify`
  EXPECT_FALSE(c.info().has_mlm);
  Model t(m.tok);
  EXPECT_TRUE(t.info().has_token_classifier);
  EXPECT_FALSE(t.info().has_classifier);
  EXPECT_EQ(t.info().num_labels, 5);

  Model s(m.st, {.precision = Precision::kBF16});
  EXPECT_EQ(s.info().precision, Precision::kBF16);
  EXPECT_TRUE(s.info().has_colbert && s.info().normalize);
  EXPECT_EQ(s.info().pooling, EmbedPooling::kCls);  // 1_Pooling wins over config.json
  EXPECT_EQ(s.info().embedding_dim, 8);
  EXPECT_EQ(s.info().default_prompt_name, "document");
  EXPECT_EQ(s.info().prompts.at("query"), "search_query: ");
  EXPECT_EQ(s.info().query_prefix, "");
  Model e(m.emb);
  EXPECT_EQ(e.info().default_prompt_name, "");
  EXPECT_FALSE(e.info().has_colbert);
}

TEST(InferenceApi, TokenizeMatchesCli) {
  Model a(models().mlm_cls3);
  const std::string in = input_file("tok.jsonl", kTexts);
  auto with = cli_jsonl("tokenize --model " + models().mlm_cls3 + " --input " + in);
  auto without = cli_jsonl("tokenize --no-special --model " + models().mlm_cls3 + " --input " + in);
  ASSERT_EQ(with.size(), kTexts.size());
  ASSERT_EQ(without.size(), kTexts.size());
  for (size_t i = 0; i < kTexts.size(); ++i) {
    const Encoding e = a.tokenize(kTexts[i]);
    EXPECT_EQ(e.ids, with[i]["input_ids"].get<std::vector<int32_t>>()) << i;
    ASSERT_EQ(e.offsets.size(), with[i]["offsets"].size());
    for (size_t k = 0; k < e.offsets.size(); ++k) {
      EXPECT_EQ(e.offsets[k].first, with[i]["offsets"][k][0].get<size_t>());
      EXPECT_EQ(e.offsets[k].second, with[i]["offsets"][k][1].get<size_t>());
    }
    EXPECT_EQ(a.tokenize(kTexts[i], false).ids, without[i]["input_ids"].get<std::vector<int32_t>>()) << i;
  }
}

TEST(InferenceApi, HiddenStatesMatchCliEncode) {
  Model a(models().mlm_cls3, small_batches());
  const std::string out = models().tmp / "hidden.safetensors";
  cli_jsonl("encode --model " + models().mlm_cls3 + " --input " + input_file("hs.jsonl", kTexts) + " --output " + out +
            " --outputs last_hidden_state,cu_seqlens");
  auto f = SafeTensorsFile::open(out);
  const std::vector<float> ref = f->to_f32("last_hidden_state");
  const TokenVectors h = a.hidden_states(kTexts);
  EXPECT_EQ(h.vectors.cols, 64);
  ASSERT_EQ(h.offsets.size(), kTexts.size() + 1);
  for (size_t i = 0; i < kTexts.size(); ++i)
    EXPECT_EQ(h.offsets[i + 1] - h.offsets[i], static_cast<int64_t>(a.tokenize(kTexts[i]).ids.size()));
  expect_close(h.vectors.data, ref, "last_hidden_state");
}

TEST(InferenceApi, EmbedMatchesCli) {
  const Models& m = models();
  const std::string in = input_file("embed.jsonl", kTexts);
  struct Case {
    std::string dir, flags;
    EmbedParams p;
  };
  std::vector<Case> cases = {
      {m.st, "", {}},                                                 // default prompt, CLS, Dense, Normalize
      {m.st, "--prompt query", {.prompt_name = "query"}},             // a named prompt
      {m.st, "--prefix 'x: ' --dim 4", {.prefix = "x: ", .dim = 4}},  // Matryoshka, re-normalised
      {m.st, "--pooling mean", {.pooling = EmbedPooling::kMean, .batch_size = 1}},
      {m.mlm_cls3, "", {}},  // config.json pooling, no normalisation
      {m.mlm_cls3, "--normalize --dim 16", {.normalize = true, .dim = 16}},
      {m.mlm_cls3, "--pooling max", {.pooling = EmbedPooling::kMax}},
      {m.emb, "--prompt document", {.prompt_name = "document"}},
  };
  for (const Case& c : cases) {
    Model a(c.dir, small_batches());
    auto ref = cli_jsonl("embed --model " + c.dir + " --input " + in + " " + c.flags);
    const Matrix e = a.embed(kTexts, c.p);
    ASSERT_EQ(e.rows, static_cast<int64_t>(kTexts.size())) << c.flags;
    ASSERT_EQ(ref.size(), kTexts.size());
    for (size_t i = 0; i < kTexts.size(); ++i)
      expect_close(row(e, static_cast<int64_t>(i)), floats(ref[i]["embedding"]), c.dir + " " + c.flags);
  }
}

TEST(InferenceApi, EmbedTokensMatchCliColbert) {
  const Models& m = models();
  const std::string in = input_file("colbert.jsonl", kTexts);
  // The CLI prepends st's default prompt; embed_tokens only TokenParams::prefix.
  for (const auto& [dir, prefix, flags] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {m.st, "search_document: [D] ", "--prefix '[D] '"}, {m.mlm_cls3, "q: ", "--prefix 'q: '"}}) {
    Model a(dir, small_batches());
    auto ref = cli_jsonl("embed --colbert --model " + dir + " --input " + in + " " + flags);
    const TokenVectors v = a.embed_tokens(kTexts, {.prefix = prefix});
    ASSERT_EQ(ref.size(), kTexts.size());
    ASSERT_EQ(v.offsets.size(), kTexts.size() + 1);
    EXPECT_EQ(v.vectors.cols, a.info().embedding_dim);
    for (size_t i = 0; i < kTexts.size(); ++i) {
      const json& rows = ref[i]["vectors"];
      ASSERT_EQ(v.offsets[i + 1] - v.offsets[i], static_cast<int64_t>(rows.size())) << dir << " " << i;
      for (size_t t = 0; t < rows.size(); ++t)
        expect_close(row(v.vectors, v.offsets[i] + static_cast<int64_t>(t)), floats(rows[t]), dir);
    }
  }
}

TEST(InferenceApi, ClassifyMatchesCli) {
  const Models& m = models();
  const std::vector<std::string> pairs = {"fine, thanks", "a dog", "b", "how long?"};
  Model a(m.mlm_cls3, small_batches());
  for (bool with_pairs : {false, true}) {
    auto ref = cli_jsonl("classify --model " + m.mlm_cls3 + " --input " +
                         input_file("cls.jsonl", kTexts, with_pairs ? pairs : std::vector<std::string>{}));
    auto got = a.classify(kTexts, with_pairs ? pairs : std::vector<std::string>{});
    ASSERT_EQ(got.size(), kTexts.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ("LABEL_" + std::to_string(got[i].label), ref[i]["label"].get<std::string>()) << i;
      for (int k = 0; k < 3; ++k)
        EXPECT_TRUE(close(got[i].scores[static_cast<size_t>(k)], ref[i]["scores"]["LABEL_" + std::to_string(k)]));
      EXPECT_TRUE(close(got[i].scores[static_cast<size_t>(got[i].label)], ref[i]["score"].get<double>()));
      // The scores are the softmax of the logits.
      double z = 0;
      for (float l : got[i].logits) z += std::exp(double(l));
      EXPECT_NEAR(got[i].scores[0], std::exp(double(got[i].logits[0])) / z, 1e-6);
      EXPECT_TRUE(got[i].labels.empty());
    }
  }
  // One label and no problem_type: regression, {"value"} in the CLI.
  Model r(m.cls1, small_batches());
  auto ref = cli_jsonl("classify --model " + m.cls1 + " --input " + input_file("reg.jsonl", kTexts, pairs));
  auto got = r.classify(kTexts, pairs);
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].label, -1);
    ASSERT_EQ(got[i].scores.size(), 1u);
    EXPECT_EQ(got[i].scores[0], got[i].logits[0]);
    EXPECT_TRUE(close(got[i].scores[0], ref[i]["value"].get<double>()));
  }
}

TEST(InferenceApi, ClassifyTokensMatchesCli) {
  Model a(models().tok, small_batches());
  auto ref = cli_jsonl("classify --tokens --model " + models().tok + " --input " + input_file("tokcls.jsonl", kTexts));
  auto got = a.classify_tokens(kTexts);
  ASSERT_EQ(got.size(), kTexts.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const json& toks = ref[i]["tokens"];
    ASSERT_EQ(got[i].size(), toks.size()) << i;  // the non-special tokens
    for (size_t k = 0; k < toks.size(); ++k) {
      const TokenLabel& t = got[i][k];
      EXPECT_EQ(t.index, toks[k]["index"].get<int64_t>());
      EXPECT_EQ(t.id, toks[k]["id"].get<int32_t>());
      EXPECT_EQ(t.token, toks[k]["token"].get<std::string>());
      EXPECT_EQ(t.start, toks[k]["start"].get<size_t>());
      EXPECT_EQ(t.end, toks[k]["end"].get<size_t>());
      EXPECT_EQ("LABEL_" + std::to_string(t.label), toks[k]["label"].get<std::string>());
      EXPECT_TRUE(close(t.score, toks[k]["score"].get<double>()));
    }
  }
}

TEST(InferenceApi, FillMaskMatchesCli) {
  const std::vector<std::string> texts = {"The capital of France is [MASK].", "Paris [MASK] a [MASK] city, isn't it?",
                                          "[MASK]"};
  Model a(models().mlm_cls3, small_batches());
  auto ref =
      cli_jsonl("fill-mask --top-k 3 --model " + models().mlm_cls3 + " --input " + input_file("fm.jsonl", texts));
  auto got = a.fill_mask(texts, 3);
  ASSERT_EQ(got.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const json& masks = ref[i]["masks"];
    ASSERT_EQ(got[i].size(), masks.size()) << i;
    for (size_t k = 0; k < masks.size(); ++k) {
      EXPECT_EQ(got[i][k].position, masks[k]["position"].get<int64_t>());
      const json& preds = masks[k]["predictions"];
      ASSERT_EQ(got[i][k].predictions.size(), 3u);
      for (size_t j = 0; j < preds.size(); ++j) {
        const MaskFill& f = got[i][k].predictions[j];
        EXPECT_EQ(f.token, preds[j]["token"].get<int32_t>());
        EXPECT_EQ(f.token_str, preds[j]["token_str"].get<std::string>());
        EXPECT_EQ(f.sequence, preds[j]["sequence"].get<std::string>());
        EXPECT_TRUE(close(f.score, preds[j]["score"].get<double>()));
      }
    }
  }
}

TEST(InferenceApi, RerankCrossEncoderIsSigmoidOfTheCliLogit) {
  const Models& m = models();
  const std::string query = "where is the eiffel tower?";
  const std::vector<std::string> docs = {"Paris is in France.", "Cats sleep a lot.", "The tower is in Paris.", "Berlin",
                                         "Eiffel built it."};
  const std::vector<std::string> queries(docs.size(), query);
  // One logit: sigmoid of the value `classify` prints for (query, doc).
  auto reg = cli_jsonl("classify --model " + m.cls1 + " --input " + input_file("ce1.jsonl", queries, docs));
  std::vector<double> ref;
  for (const json& r : reg) ref.push_back(sigmoid(r["value"].get<double>()));
  Model ce(m.cls1, small_batches());
  expect_hits(ce.rerank(query, docs), ref, "cls:1 auto");
  expect_hits(ce.rerank(query, docs, {.mode = RerankMode::kCrossEncoder}), ref, "cls:1 cross-encoder");
  auto top2 = ce.rerank(query, docs, {.top_n = 2});
  ASSERT_EQ(top2.size(), 2u);
  EXPECT_EQ(top2[0].index, static_cast<int64_t>(ranking(ref)[0]));
  // Three labels: the softmax probability of the last.
  auto cls3 = cli_jsonl("classify --model " + m.mlm_cls3 + " --input " + input_file("ce3.jsonl", queries, docs));
  ref.clear();
  for (const json& r : cls3) ref.push_back(r["scores"]["LABEL_2"].get<double>());
  Model c3(m.mlm_cls3);
  expect_hits(c3.rerank(query, docs), ref, "cls:3");
  // The CLI's rerank prints the same.
  auto cli = cli_jsonl("rerank --model " + m.cls1 + " --query '" + query + "' --input " + input_file("docs.txt", docs));
  ASSERT_EQ(cli.size(), docs.size());
  auto hits = ce.rerank(query, docs);
  for (size_t k = 0; k < hits.size(); ++k) {
    EXPECT_EQ(cli[k]["index"].get<int64_t>(), hits[k].index);
    EXPECT_TRUE(close(cli[k]["score"].get<double>(), hits[k].score));
    EXPECT_EQ(cli[k]["text"].get<std::string>(), docs[static_cast<size_t>(hits[k].index)]);
  }
}

// MaxSim in double: the sum over query tokens of the best dot product with a document token.
double maxsim_ref(const std::vector<std::vector<double>>& q, const std::vector<std::vector<double>>& d) {
  double s = 0;
  for (const auto& qt : q) {
    double best = -1e300;
    for (const auto& dt : d) best = std::max(best, dot(qt, dt));
    s += best;
  }
  return s;
}

std::vector<std::vector<double>> token_rows(const json& rows) {
  std::vector<std::vector<double>> v;
  for (const json& r : rows) v.push_back(floats(r));
  return v;
}
std::vector<std::vector<double>> token_rows(const TokenVectors& t, size_t i) {
  std::vector<std::vector<double>> v;
  for (int64_t r = t.offsets[i]; r < t.offsets[i + 1]; ++r) v.push_back(row(t.vectors, r));
  return v;
}

TEST(InferenceApi, RerankColbertIsMaxSimOfTheCliVectors) {
  const Models& m = models();
  const std::string query = "where is the eiffel tower?";
  const std::vector<std::string> docs = {"Paris is in France.", "Cats sleep a lot.", "The tower is in Paris.",
                                         "Berlin"};
  // mlm_cls3 forced to ColBERT (no projection: normalised hidden states), against `embed --colbert`.
  auto qv = cli_jsonl("embed --colbert --model " + m.mlm_cls3 + " --input " + input_file("q.jsonl", {query}));
  auto dv = cli_jsonl("embed --colbert --model " + m.mlm_cls3 + " --input " + input_file("d.jsonl", docs));
  std::vector<double> ref;
  for (const json& d : dv) ref.push_back(maxsim_ref(token_rows(qv[0]["vectors"]), token_rows(d["vectors"])));
  Model a(m.mlm_cls3, small_batches());
  expect_hits(a.rerank(query, docs, {.mode = RerankMode::kColBERT}), ref, "mlm_cls3 colbert");
  // st: a projection and no classifier, so auto = ColBERT, on embed_tokens' vectors (which equal
  // the CLI's, EmbedTokensMatchCliColbert; the CLI would add st's default prompt, rerank does not).
  Model s(m.st, small_batches());
  const TokenVectors q = s.embed_tokens({query}, {.is_query = true});
  const TokenVectors d = s.embed_tokens(docs);
  ref.clear();
  for (size_t i = 0; i < docs.size(); ++i) ref.push_back(maxsim_ref(token_rows(q, 0), token_rows(d, i)));
  expect_hits(s.rerank(query, docs), ref, "st auto");
  auto cli = cli_jsonl("rerank --model " + m.st + " --query '" + query + "' --mode colbert --input " +
                       input_file("cd.txt", docs));
  ASSERT_EQ(cli.size(), docs.size());
  for (size_t k = 0; k < cli.size(); ++k)
    EXPECT_TRUE(close(cli[k]["score"].get<double>(), ref[cli[k]["index"].get<size_t>()]));
}

TEST(InferenceApi, RerankEmbeddingIsCosineOfTheCliEmbeddings) {
  const Models& m = models();
  const std::string query = "where is the eiffel tower?";
  const std::vector<std::string> docs = {"Paris is in France.", "Cats sleep a lot.", "The tower is in Paris.",
                                         "Berlin"};
  // emb: no classifier, no projection: auto = embeddings, with the query / document prompts.
  auto qe =
      cli_jsonl("embed --normalize --prompt query --model " + m.emb + " --input " + input_file("eq.jsonl", {query}));
  auto de =
      cli_jsonl("embed --normalize --prompt document --model " + m.emb + " --input " + input_file("ed.jsonl", docs));
  std::vector<double> ref;
  for (const json& d : de) ref.push_back(dot(floats(qe[0]["embedding"]), floats(d["embedding"])));
  Model a(m.emb, small_batches());
  expect_hits(a.rerank(query, docs, {.query_prompt_name = "query", .document_prompt_name = "document"}), ref, "emb");
  auto cli =
      cli_jsonl("rerank --model " + m.emb + " --query '" + query +
                "' --query-prompt query --document-prompt document --top-n 3 --input " + input_file("ed.txt", docs));
  ASSERT_EQ(cli.size(), 3u);
  const auto order = ranking(ref);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(cli[k]["index"].get<size_t>(), order[k]);
    EXPECT_TRUE(close(cli[k]["score"].get<double>(), ref[order[k]]));
  }
  // st forced to embedding mode: its Dense + Normalize sentence embeddings (default prompt both sides).
  auto se = cli_jsonl("embed --model " + m.st + " --input " + input_file("sq.jsonl", {query}));
  auto sd = cli_jsonl("embed --model " + m.st + " --input " + input_file("sd.jsonl", docs));
  ref.clear();
  for (const json& d : sd) ref.push_back(dot(floats(se[0]["embedding"]), floats(d["embedding"])));
  Model s(m.st);
  expect_hits(s.rerank(query, docs, {.mode = RerankMode::kEmbedding}), ref, "st embedding");
}

TEST(InferenceApi, RerankTiesKeepInputOrder) {
  // batch_size 1: each text alone, so equal texts get bit-identical scores.
  Model a(models().cls1, {.batch_size = 1});
  auto hits = a.rerank("q", {"b", "a", "b", "a", "b"});
  ASSERT_EQ(hits.size(), 5u);
  std::vector<int64_t> a_idx, b_idx;
  for (const auto& h : hits) (h.index % 2 ? a_idx : b_idx).push_back(h.index);
  EXPECT_TRUE(std::is_sorted(a_idx.begin(), a_idx.end()));
  EXPECT_TRUE(std::is_sorted(b_idx.begin(), b_idx.end()));
  for (size_t k = 1; k < hits.size(); ++k) EXPECT_GE(hits[k - 1].score, hits[k].score);
  EXPECT_TRUE(a.rerank("q", {}).empty());
}
