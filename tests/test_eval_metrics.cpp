// Metric functions of modernbert/metrics.h, search.h, baselines.h on small examples worked out by hand (the arithmetic
// is in the comments), plus exact search and MaxSim search against brute force.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "modernbert/baselines.h"
#include "modernbert/error.h"
#include "modernbert/eval_data.h"
#include "modernbert/metrics.h"
#include "modernbert/search.h"
#include "modernbert/tasks.h"

using namespace modernbert;

TEST(EvalMetrics, BinaryAccuracyF1Mcc) {
  // gold 1 1 1 1 0 0 0 0 0 0
  // pred 1 1 1 0 1 1 0 0 0 0   -> TP 3, FN 1, FP 2, TN 4
  std::vector<int64_t> gold{1, 1, 1, 1, 0, 0, 0, 0, 0, 0}, pred{1, 1, 1, 0, 1, 1, 0, 0, 0, 0};
  auto m = classification_metrics(gold, pred, 2);
  EXPECT_DOUBLE_EQ(m.accuracy, 0.7);  // 7/10
  // class 1: P = 3/5, R = 3/4, F1 = 2·0.6·0.75/1.35 = 2/3
  EXPECT_NEAR(m.per_class[1].precision, 0.6, 1e-12);
  EXPECT_NEAR(m.per_class[1].recall, 0.75, 1e-12);
  EXPECT_NEAR(m.per_class[1].f1, 2.0 / 3.0, 1e-12);
  // class 0: P = 4/5, R = 4/6, F1 = 2·0.8·(2/3)/(0.8 + 2/3) = 8/11
  EXPECT_NEAR(m.per_class[0].f1, 8.0 / 11.0, 1e-12);
  EXPECT_NEAR(m.macro_f1, (2.0 / 3.0 + 8.0 / 11.0) / 2, 1e-12);  // 23/33
  // MCC = (TP·TN − FP·FN)/sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (12 − 2)/sqrt(5·4·6·5) = 10/sqrt(600)
  EXPECT_NEAR(m.mcc, 10.0 / std::sqrt(600.0), 1e-12);
  EXPECT_EQ(m.per_class[1].support, 4);
  EXPECT_EQ(m.per_class[1].predicted, 5);
  EXPECT_EQ(m.confusion, (std::vector<int64_t>{4, 2, 1, 3}));  // rows gold: [TN FP; FN TP]
}

TEST(EvalMetrics, MultiClassMccGorodkinAndMacroF1) {
  // gold 0 0 0 1 1 2 2 2 2 / pred 0 0 1 1 2 2 2 0 2
  // confusion (rows gold): [2 1 0; 0 1 1; 1 0 3]; c = 6, s = 9, t = p = (3, 2, 4)
  // R_K = (c·s − Σ t_k p_k)/sqrt((s² − Σp²)(s² − Σt²)) = (54 − 29)/sqrt(52·52) = 25/52
  std::vector<int64_t> gold{0, 0, 0, 1, 1, 2, 2, 2, 2}, pred{0, 0, 1, 1, 2, 2, 2, 0, 2};
  auto m = classification_metrics(gold, pred, 3);
  EXPECT_NEAR(m.mcc, 25.0 / 52.0, 1e-12);
  EXPECT_NEAR(m.accuracy, 6.0 / 9.0, 1e-12);
  // per-class F1: 2/3 (P=R=2/3), 1/2 (P=R=1/2), 3/4 (P=R=3/4) -> macro 23/36
  EXPECT_NEAR(m.per_class[0].f1, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(m.per_class[1].f1, 0.5, 1e-12);
  EXPECT_NEAR(m.per_class[2].f1, 0.75, 1e-12);
  EXPECT_NEAR(m.macro_f1, 23.0 / 36.0, 1e-12);
  // A 4th class that occurs in neither gold nor predictions is left out of the macro mean (sklearn).
  auto m4 = classification_metrics(gold, pred, 4);
  EXPECT_NEAR(m4.macro_f1, 23.0 / 36.0, 1e-12);
  EXPECT_NEAR(m4.mcc, 25.0 / 52.0, 1e-12);
  // An asymmetric confusion: rows [3 1 0; 2 2 0; 0 1 1] (n = 10), c = 6, t = (4, 4, 2), p = (5, 4, 1)
  // Σ t p = 20 + 16 + 2 = 38, Σp² = 42, Σt² = 36 -> (60 − 38)/sqrt((100 − 42)(100 − 36)) = 22/sqrt(58·64)
  std::vector<int64_t> g2{0, 0, 0, 0, 1, 1, 1, 1, 2, 2}, p2{0, 0, 0, 1, 0, 0, 1, 1, 1, 2};
  EXPECT_NEAR(classification_metrics(g2, p2, 3).mcc, 22.0 / std::sqrt(58.0 * 64.0), 1e-12);
  // Binary MCC equals the Gorodkin form on 2 classes (previous test's numbers).
  EXPECT_NEAR(matthews_corrcoef({4, 2, 1, 3}, 2), 10.0 / std::sqrt(600.0), 1e-12);
  // Undefined (all predictions one class) -> 0, as sklearn.
  EXPECT_EQ(classification_metrics({0, 1, 1}, {1, 1, 1}, 2).mcc, 0.0);
  // A class never predicted has F1 0 (zero_division = 0) and stays in the macro mean.
  auto z = classification_metrics({0, 1, 1}, {1, 1, 1}, 2);
  EXPECT_EQ(z.per_class[0].f1, 0.0);
  EXPECT_NEAR(z.macro_f1, (0.0 + 0.8) / 2, 1e-12);  // class 1: P 2/3, R 1 -> F1 0.8
}

TEST(EvalMetrics, ClassificationRejectsBadInput) {
  EXPECT_THROW(classification_metrics({}, {}, 2), Error);
  EXPECT_THROW(classification_metrics({0, 1}, {0}, 2), Error);
  EXPECT_THROW(classification_metrics({0, 2}, {0, 1}, 2), Error);
}

TEST(EvalMetrics, PearsonSpearmanWithTies) {
  // x = 1 2 2 3, y = 2 1 4 8
  // Pearson: dx = (−1, 0, 0, 1), dy = (−1.75, −2.75, 0.25, 4.25); Σdxdy = 6, Σdx² = 2, Σdy² = 28.75
  //   r = 6/sqrt(57.5)
  // Spearman: ranks x = (1, 2.5, 2.5, 4), ranks y = (2, 1, 3, 4); d = (−1.5, 0, 0, 1.5), (−0.5, −1.5, 0.5, 1.5)
  //   Σ = 0.75 + 2.25 = 3, Σdx² = 4.5, Σdy² = 5 -> ρ = 3/sqrt(22.5)
  std::vector<double> x{1, 2, 2, 3}, y{2, 1, 4, 8};
  EXPECT_NEAR(pearson(x, y), 6.0 / std::sqrt(57.5), 1e-12);
  EXPECT_NEAR(spearman(x, y), 3.0 / std::sqrt(22.5), 1e-12);
  EXPECT_EQ(average_ranks({3, 1, 3, 3, 2}), (std::vector<double>{4, 1, 4, 4, 2}));
  EXPECT_NEAR(spearman({1, 2, 3}, {10, 20, 1000}), 1.0, 1e-12);  // monotone
  EXPECT_NEAR(pearson({1, 2, 3}, {3, 2, 1}), -1.0, 1e-12);
  EXPECT_TRUE(std::isnan(pearson({1, 1, 1}, {1, 2, 3})));  // constant side: undefined
  EXPECT_TRUE(std::isnan(spearman({5}, {6})));
}

TEST(EvalMetrics, MultiLabelMicroMacro) {
  // gold [1 0 1; 0 1 0], pred [1 1 0; 0 1 0]
  // label 0: TP 1 -> F1 1; label 1: TP 1, FP 1 -> P 1/2, R 1, F1 2/3; label 2: FN 1 -> F1 0
  // micro: TP 2, FP 1, FN 1 -> P = R = F1 = 2/3; macro = (1 + 2/3 + 0)/3 = 5/9
  auto m = multilabel_metrics({1, 0, 1, 0, 1, 0}, {1, 1, 0, 0, 1, 0}, 3);
  EXPECT_NEAR(m.micro_f1, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(m.macro_f1, 5.0 / 9.0, 1e-12);
  EXPECT_NEAR(m.subset_accuracy, 0.5, 1e-12);
  EXPECT_NEAR(m.hamming_loss, 2.0 / 6.0, 1e-12);
  EXPECT_THROW(multilabel_metrics({1, 0}, {1, 0, 1}, 2), Error);
}

TEST(EvalMetrics, EntitySpansSeqevalStyle) {
  auto e = extract_entities({"B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG"});
  ASSERT_EQ(e.size(), 3u);
  EXPECT_EQ(e[0], (EntitySpan{"PER", 0, 1}));
  EXPECT_EQ(e[1], (EntitySpan{"LOC", 3, 5}));
  EXPECT_EQ(e[2], (EntitySpan{"ORG", 7, 7}));
  // I- without B- starts a chunk; B- inside a chunk closes it; a type change closes it.
  EXPECT_EQ(extract_entities({"I-PER", "I-PER", "B-PER"}),
            (std::vector<EntitySpan>{{"PER", 0, 1}, {"PER", 2, 2}}));
  EXPECT_EQ(extract_entities({"B-PER", "I-LOC"}), (std::vector<EntitySpan>{{"PER", 0, 0}, {"LOC", 1, 1}}));
  EXPECT_TRUE(extract_entities({"O", "O"}).empty());
}

TEST(EvalMetrics, EntityF1WithPartialOverlaps) {
  // Sentence 1: gold PER[0,1] LOC[3,5] ORG[7,7]; pred PER[0,0] (partial: wrong) LOC[3,5] (right) LOC[7,7] (wrong type)
  // Sentence 2: gold MISC[1,2]; pred "O I-MISC I-MISC" -> MISC[1,2] (I- after O opens a chunk): right
  // gold 4, predicted 4, correct 2 -> P = R = F1 = 1/2
  std::vector<std::vector<std::string>> gold{{"B-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "O", "B-ORG"},
                                             {"O", "B-MISC", "I-MISC"}};
  std::vector<std::vector<std::string>> pred{{"B-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "O", "B-LOC"},
                                             {"O", "I-MISC", "I-MISC"}};
  auto m = entity_metrics(gold, pred);
  EXPECT_EQ(m.gold_entities, 4);
  EXPECT_EQ(m.predicted_entities, 4);
  EXPECT_EQ(m.correct_entities, 2);
  EXPECT_NEAR(m.precision, 0.5, 1e-12);
  EXPECT_NEAR(m.recall, 0.5, 1e-12);
  EXPECT_NEAR(m.f1, 0.5, 1e-12);
  // Token accuracy: 6/8 + 2/3 -> 8/11
  EXPECT_NEAR(m.token_accuracy, 8.0 / 11.0, 1e-12);
  // Per type: LOC P 1/2 R 1 F1 2/3; PER 0; ORG 0; MISC 1 -> macro (2/3 + 1)/4
  EXPECT_NEAR(m.per_type.at("LOC").f1, 2.0 / 3.0, 1e-12);
  EXPECT_EQ(m.per_type.at("PER").f1, 0.0);
  EXPECT_EQ(m.per_type.at("ORG").predicted, 0);
  EXPECT_NEAR(m.macro_f1, (2.0 / 3.0 + 1.0) / 4.0, 1e-12);
  EXPECT_THROW(entity_metrics({{"O"}}, {{"O", "O"}}), Error);
}

TEST(EvalMetrics, RankingNdcgMrrRecall) {
  // Relevant {5, 7, 9}; ranking 5 1 7 2 3 4 6 8 0 10 9: hits at ranks 1 and 3 in the top 10, 9 at rank 11.
  // DCG@10 = 1/log2(2) + 1/log2(4) = 1.5; IDCG@10 = 1 + 1/log2(3) + 1/log2(4)
  std::vector<int64_t> ranking{5, 1, 7, 2, 3, 4, 6, 8, 0, 10, 9}, rel{5, 7, 9};
  EXPECT_NEAR(ndcg_at_k(ranking, rel, 10), 1.5 / (1.5 + 1.0 / std::log2(3.0)), 1e-12);
  EXPECT_NEAR(mrr_at_k(ranking, rel, 10), 1.0, 1e-12);
  EXPECT_NEAR(recall_at_k(ranking, rel, 1), 1.0 / 3.0, 1e-12);
  EXPECT_NEAR(recall_at_k(ranking, rel, 10), 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(recall_at_k(ranking, rel, 100), 1.0, 1e-12);
  // First relevant at rank 4 -> MRR 1/4; nDCG = (1/log2(5)) / 1 with one relevant doc.
  std::vector<int64_t> r2{0, 1, 2, 3, 4};
  EXPECT_NEAR(mrr_at_k(r2, {3}, 10), 0.25, 1e-12);
  EXPECT_NEAR(ndcg_at_k(r2, {3}, 10), 1.0 / std::log2(5.0), 1e-12);
  // Beyond the cut-off -> 0.
  std::vector<int64_t> r3{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  EXPECT_EQ(mrr_at_k(r3, {10}, 10), 0.0);
  EXPECT_EQ(ndcg_at_k(r3, {10}, 10), 0.0);
  // Means over queries; a query without relevant documents is skipped and counted.
  auto m = ranking_metrics({r2, r2, r2}, {{3}, {}, {0}});
  EXPECT_EQ(m.queries, 3);
  EXPECT_EQ(m.evaluated, 2);
  EXPECT_EQ(m.skipped_no_relevant, 1);
  EXPECT_NEAR(m.mrr10, (0.25 + 1.0) / 2, 1e-12);
  EXPECT_NEAR(m.recall1, 0.5, 1e-12);
  auto none = ranking_metrics({r2}, {{}});
  EXPECT_TRUE(std::isnan(none.ndcg10));
  EXPECT_THROW(ndcg_at_k(r2, {}, 10), Error);
}

TEST(EvalMetrics, TopKTiesAndExactSearch) {
  float s[] = {1, 3, 3, 2};
  EXPECT_EQ(top_k_indices(s, 4, 3), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(top_k_indices(s, 4, 10).size(), 4u);
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  const int64_t nq = 5, nc = 37, dim = 8;
  std::vector<float> Q(nq * dim), C(nc * dim);
  for (auto& v : Q) v = nd(rng);
  for (auto& v : C) v = nd(rng);
  auto got = exact_search(Q.data(), nq, C.data(), nc, dim, 10);
  for (int64_t q = 0; q < nq; ++q) {
    std::vector<float> sc(nc);
    for (int64_t c = 0; c < nc; ++c) {
      double acc = 0;
      for (int64_t k = 0; k < dim; ++k) acc += double(Q[q * dim + k]) * C[c * dim + k];
      sc[c] = static_cast<float>(acc);
    }
    auto want = top_k_indices(sc.data(), nc, 10);
    EXPECT_EQ(got[q], want) << q;
  }
}

TEST(EvalMetrics, MaxSimSearchMatchesMaxSim) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd;
  const int64_t dim = 6;
  std::vector<int64_t> q_off{0, 3, 7}, d_off{0};
  for (int64_t len : {5, 1, 9, 2, 4000, 3}) d_off.push_back(d_off.back() + len);  // one block boundary
  std::vector<float> qv(q_off.back() * dim), dv(d_off.back() * dim);
  for (auto& v : qv) v = nd(rng);
  for (auto& v : dv) v = nd(rng);
  std::vector<float> scores;
  auto ranks = maxsim_search(qv, q_off, dv, d_off, dim, 6, &scores);
  const int64_t ndocs = static_cast<int64_t>(d_off.size()) - 1;
  for (int64_t q = 0; q < 2; ++q)
    for (int64_t d = 0; d < ndocs; ++d) {
      float want = maxsim(qv.data() + q_off[q] * dim, q_off[q + 1] - q_off[q], dv.data() + d_off[d] * dim,
                          d_off[d + 1] - d_off[d], dim);
      EXPECT_NEAR(scores[q * ndocs + d], want, 1e-4) << q << " " << d;
    }
  EXPECT_EQ(ranks[0].size(), 6u);
}

TEST(EvalMetrics, LabelSpaceResolution) {
  ModelConfig cfg;
  cfg.id2label = {{0, "ham"}, {1, "spam"}};
  cfg.label2id = {{"ham", 0}, {"spam", 1}};
  auto ls = label_space(cfg, 2);
  EXPECT_TRUE(ls.named);
  EXPECT_EQ(resolve_label(1, ls, "x"), 1);
  EXPECT_EQ(resolve_label("ham", ls, "x"), 0);
  try {
    resolve_label(2, ls, "data.jsonl:7");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.jsonl:7: label id 2 does not fit"), std::string::npos) << e.what();
  }
  EXPECT_THROW(resolve_label("eggs", ls, "x"), Error);
  EXPECT_THROW(resolve_label(nlohmann::json::array(), ls, "x"), Error);
  ModelConfig plain;
  auto ls2 = label_space(plain, 3);
  EXPECT_FALSE(ls2.named);
  EXPECT_EQ(ls2.names[2], "LABEL_2");
}
