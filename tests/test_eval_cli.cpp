// `modernbert eval` end to end on tiny random checkpoints and small slices of the shared sets:
// the numbers agree with what `classify` / `embed` output implies, protocols (closed/full corpus),
// and the bad-input errors (labels that do not fit the head, empty files, unrelevant queries).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "modernbert/baselines.h"
#include "modernbert/evaluation.h"
#include "modernbert/search.h"
#include "modernbert/tasks.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;

namespace {

std::string tokenizer_json() { return mbtest::tokenizer_json(); }
// The committed subsets of the downstream sets (tests/data/README.md).
std::string downstream() { return mbtest::test_data() + "/downstream"; }

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty() && line[0] == '{') out.push_back(json::parse(line));
  return out;
}
std::vector<json> jsonl_text(const std::string& text) {
  std::vector<json> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line))
    if (!line.empty() && line[0] == '{') out.push_back(json::parse(line));
  return out;
}
void write_jsonl(const std::string& path, const std::vector<json>& rows) {
  std::ofstream out(path);
  for (const auto& r : rows) out << r.dump() << "\n";
}

// A tiny model (real tokenizer); `patch` is merged into config.json.
std::string make_model(const mbtest::TempDir& tmp, const std::string& name, const std::string& heads,
                       const json& patch = json::object()) {
  std::string dir = tmp / name;
  auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 3 --heads " + heads + " --out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  mbtest::run_command("cp " + tokenizer_json() + " " + dir + "/");
  if (!patch.empty()) {
    json cfg = json::parse(std::ifstream(dir + "/config.json"));
    cfg.update(patch);
    std::ofstream(dir + "/config.json") << cfg.dump(2);
  }
  return dir;
}

// The JSON report: the part of stdout from the first line that starts with '{'.
json report_of(const std::string& output) {
  size_t pos = output.rfind("\n{\n");
  if (output.rfind("{", 0) == 0) pos = 0;
  else if (pos != std::string::npos) ++pos;
  EXPECT_NE(pos, std::string::npos) << output;
  return json::parse(output.substr(pos == std::string::npos ? 0 : pos));
}

// 15 positive + 15 negative rt_polarity dev sentences.
std::string rt_slice(const mbtest::TempDir& tmp) {
  auto rows = read_jsonl(downstream() + "/rt_polarity/dev.jsonl");
  std::vector<json> pick;
  int pos = 0, neg = 0;
  for (const auto& r : rows) {
    if (r["label"] == 1 && pos < 15) {
      pick.push_back(r);
      ++pos;
    } else if (r["label"] == 0 && neg < 15) {
      pick.push_back(r);
      ++neg;
    }
  }
  write_jsonl(tmp / "rt.jsonl", pick);
  return tmp / "rt.jsonl";
}

}  // namespace

TEST(EvalCli, ClassificationAgreesWithClassify) {
  mbtest::TempDir tmp("eval_cls");
  std::string m = make_model(tmp, "m", "cls:2", {{"id2label", {{"0", "negative"}, {"1", "positive"}}},
                                                 {"label2id", {{"negative", 0}, {"positive", 1}}}});
  std::string data = rt_slice(tmp);
  auto r = mbtest::run_command(mbtest::cli() + " eval --task classification --model " + m + " --data " + data +
                               " --predictions " + tmp / "pred.jsonl");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = report_of(r.output);
  EXPECT_EQ(j["n"], 30);
  EXPECT_EQ(j["num_labels"], 2);
  EXPECT_EQ(j["positive_label"], "positive");
  EXPECT_TRUE(j["per_class"].contains("negative"));
  EXPECT_NE(r.output.find("accuracy="), std::string::npos);  // the table on stderr
  // Recompute from `classify`.
  auto c = mbtest::run_command(mbtest::cli() + " classify --model " + m + " --input " + data + " 2>/dev/null");
  ASSERT_EQ(c.status, 0) << c.output;
  auto preds = jsonl_text(c.output);
  auto gold = read_jsonl(data);
  ASSERT_EQ(preds.size(), gold.size());
  std::vector<int64_t> g, p;
  for (size_t i = 0; i < gold.size(); ++i) {
    g.push_back(gold[i]["label"].get<int64_t>());
    p.push_back(preds[i]["label"] == "positive" ? 1 : 0);
  }
  auto want = classification_metrics(g, p, 2);
  EXPECT_NEAR(j["accuracy"].get<double>(), want.accuracy, 1e-12);
  EXPECT_NEAR(j["macro_f1"].get<double>(), want.macro_f1, 1e-12);
  EXPECT_NEAR(j["mcc"].get<double>(), want.mcc, 1e-12);
  EXPECT_NEAR(j["positive_f1"].get<double>(), want.per_class[1].f1, 1e-12);
  EXPECT_EQ(read_jsonl(tmp / "pred.jsonl").size(), 30u);
  // --format table prints the table only.
  auto t = mbtest::run_command(mbtest::cli() + " eval --task classification --quiet --format table --model " + m +
                               " --data " + data + " 2>/dev/null");
  ASSERT_EQ(t.status, 0);
  EXPECT_EQ(t.output.find('{'), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("macro-F1="), std::string::npos) << t.output;
}

TEST(EvalCli, LabelsThatDoNotFitTheHeadAreErrors) {
  mbtest::TempDir tmp("eval_bad");
  std::string m = make_model(tmp, "m", "cls:2", {{"id2label", {{"0", "negative"}, {"1", "positive"}}}});
  auto run = [&](const std::string& content, const std::string& extra = "") {
    std::ofstream(tmp / "d.jsonl") << content;
    return mbtest::run_command(mbtest::cli() + " eval --task classification --quiet --model " + m + " --data " +
                               tmp / "d.jsonl " + extra);
  };
  auto r = run("{\"text\": \"fine\", \"label\": 1}\n{\"text\": \"meh\", \"label\": 2}\n");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("d.jsonl:2: label id 2 does not fit the checkpoint's head (2 labels"), std::string::npos) << r.output;
  r = run("{\"text\": \"fine\", \"label\": \"neutral\"}\n");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("\"neutral\" is not in the checkpoint's id2label"), std::string::npos) << r.output;
  r = run("{\"text\": \"fine\", \"label\": 1, \"label_name\": \"negative\"}\n");  // head and data disagree
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("\"negative\" in the data but \"positive\" in the checkpoint"), std::string::npos) << r.output;
  r = run("{\"text\": \"fine\"}\n");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("missing label field \"label\""), std::string::npos) << r.output;
  r = run("\n\n");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("empty file"), std::string::npos) << r.output;
  r = run("{\"text\": \"fine\", \"label\": \"positive\"}\n");  // names work
  EXPECT_EQ(r.status, 0) << r.output;
  // Wrong kind of head / task.
  r = run("{\"text\": \"fine\", \"label\": 1.5}\n", "");
  EXPECT_NE(r.status, 0);
  std::string tok = make_model(tmp, "tok", "token:3");
  auto w = mbtest::run_command(mbtest::cli() + " eval --task classification --quiet --model " + tok + " --data " + tmp / "d.jsonl");
  EXPECT_NE(w.status, 0);
  EXPECT_NE(w.output.find("needs a sequence-classification head"), std::string::npos) << w.output;
  auto u = mbtest::run_command(mbtest::cli() + " eval --task nonsense --quiet --model " + m + " --data " + tmp / "d.jsonl");
  EXPECT_NE(u.status, 0);
  EXPECT_NE(u.output.find("unknown --task"), std::string::npos) << u.output;
}

TEST(EvalCli, RegressionAndMultiLabel) {
  mbtest::TempDir tmp("eval_reg");
  std::string reg = make_model(tmp, "reg", "cls:1", {{"problem_type", "regression"}});
  std::vector<json> rows;
  const char* texts[] = {"a fine film", "terrible", "so so", "great fun", "boring and long", "a delight"};
  for (int i = 0; i < 6; ++i) rows.push_back({{"text", texts[i]}, {"label", 0.5 * i}});
  rows.push_back({{"text", "tie"}, {"label", 1.0}});
  write_jsonl(tmp / "reg.jsonl", rows);
  auto r = mbtest::run_command(mbtest::cli() + " eval --task regression --quiet --model " + reg + " --data " + tmp / "reg.jsonl");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output);
  auto c = jsonl_text(mbtest::run_command(mbtest::cli() + " classify --model " + reg + " --input " + tmp / "reg.jsonl" + " 2>/dev/null").output);
  ASSERT_EQ(c.size(), 7u);
  std::vector<double> g, p;
  for (size_t i = 0; i < 7; ++i) {
    g.push_back(rows[i]["label"].get<double>());
    p.push_back(c[i]["value"].get<double>());
  }
  EXPECT_NEAR(j["pearson"].get<double>(), pearson(g, p), 1e-6);
  EXPECT_NEAR(j["spearman"].get<double>(), spearman(g, p), 1e-6);
  EXPECT_EQ(j["n"], 7);

  std::string ml = make_model(tmp, "ml", "cls:3", {{"problem_type", "multi_label_classification"},
                                                   {"id2label", {{"0", "a"}, {"1", "b"}, {"2", "c"}}}});
  write_jsonl(tmp / "ml.jsonl", {{{"text", "x"}, {"labels", {"a", "c"}}}, {{"text", "y"}, {"labels", json::array()}},
                                 {{"text", "z"}, {"labels", {1}}}});
  auto m = mbtest::run_command(mbtest::cli() + " eval --task multilabel --quiet --model " + ml + " --data " + tmp / "ml.jsonl");
  ASSERT_EQ(m.status, 0) << m.output;
  json jm = json::parse(m.output);
  EXPECT_EQ(jm["n"], 3);
  EXPECT_TRUE(jm["per_label"].contains("c"));
  EXPECT_GE(jm["micro_f1"].get<double>(), 0.0);
  write_jsonl(tmp / "ml_bad.jsonl", {{{"text", "x"}, {"labels", {"a", "d"}}}});
  auto mb = mbtest::run_command(mbtest::cli() + " eval --task multilabel --quiet --model " + ml + " --data " + tmp / "ml_bad.jsonl");
  EXPECT_NE(mb.status, 0);
  EXPECT_NE(mb.output.find("\"d\" is not in the checkpoint's id2label"), std::string::npos) << mb.output;
  // A regression head evaluated as classification: refused.
  auto wrong = mbtest::run_command(mbtest::cli() + " eval --task classification --quiet --model " + reg + " --data " + tmp / "reg.jsonl");
  EXPECT_NE(wrong.status, 0);
}

TEST(EvalCli, TokenClassificationEntities) {
  mbtest::TempDir tmp("eval_tok");
  std::string m = make_model(tmp, "m", "token:5", {{"id2label", {{"0", "O"}, {"1", "B-PER"}, {"2", "I-PER"}, {"3", "B-LOC"}, {"4", "I-LOC"}}}});
  write_jsonl(tmp / "t.jsonl", {{{"tokens", {"John", "Smith", "lives", "in", "New", "York"}},
                                 {"tags", {"B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"}}},
                                {{"tokens", {"Ünïcödé", "words", "here."}}, {"tags", {0, 0, 3}}}});
  auto r = mbtest::run_command(mbtest::cli() + " eval --task token-classification --quiet --model " + m + " --data " +
                               tmp / "t.jsonl --predictions " + tmp / "p.jsonl");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output);
  EXPECT_EQ(j["n"], 2);
  EXPECT_EQ(j["words"], 9);
  EXPECT_EQ(j["gold_entities"], 3);
  EXPECT_EQ(j["words_truncated"], 0);
  // The metrics agree with the predictions written next to them.
  auto preds = read_jsonl(tmp / "p.jsonl");
  ASSERT_EQ(preds.size(), 2u);
  std::vector<std::vector<std::string>> gold{{"B-PER", "I-PER", "O", "O", "B-LOC", "I-LOC"}, {"O", "O", "B-LOC"}}, pred;
  for (const auto& p : preds) pred.push_back(p["pred"].get<std::vector<std::string>>());
  auto em = entity_metrics(gold, pred);
  EXPECT_NEAR(j["entity_f1"].get<double>(), em.f1, 1e-12);
  EXPECT_NEAR(j["token_accuracy"].get<double>(), em.token_accuracy, 1e-12);
  write_jsonl(tmp / "bad.jsonl", {{{"tokens", {"a", "b"}}, {"tags", {"O"}}}});
  auto b = mbtest::run_command(mbtest::cli() + " eval --task token-classification --quiet --model " + m + " --data " + tmp / "bad.jsonl");
  EXPECT_NE(b.status, 0);
  EXPECT_NE(b.output.find("bad.jsonl:1: 2 words but 1 tags"), std::string::npos) << b.output;
  write_jsonl(tmp / "bad2.jsonl", {{{"tokens", {"a"}}, {"tags", {"B-ORG"}}}});
  b = mbtest::run_command(mbtest::cli() + " eval --task token-classification --quiet --model " + m + " --data " + tmp / "bad2.jsonl");
  EXPECT_NE(b.status, 0);
  EXPECT_NE(b.output.find("\"B-ORG\" is not in the checkpoint's id2label"), std::string::npos) << b.output;
}

namespace {

// A small man-page retrieval set: 12 test-split documents + 6 train-split ones; the test queries
// whose positives are among them, plus one query whose positive is absent.
struct SmallRetrieval {
  std::string corpus, queries;
  std::vector<json> docs, qs;
};
SmallRetrieval small_retrieval(const mbtest::TempDir& tmp) {
  SmallRetrieval s;
  std::set<std::string> ids;
  int test = 0, train = 0;
  for (auto& d : read_jsonl(downstream() + "/manpages_retrieval/corpus.jsonl")) {
    if (d["text"].get<std::string>().size() > 3000) continue;  // keep it fast
    if (d["split"] == "test" && test < 12) ++test;
    else if (d["split"] == "train" && train < 6) ++train;
    else continue;
    ids.insert(d["id"].get<std::string>());
    s.docs.push_back(d);
  }
  for (auto& q : read_jsonl(downstream() + "/manpages_retrieval/queries_test.jsonl")) {
    bool in = false;
    for (const auto& p : q["positive_ids"]) in |= ids.count(p.get<std::string>()) > 0;
    if (in) s.qs.push_back(q);
  }
  s.qs.push_back({{"qid", "q:missing"}, {"query", "a query whose page is not here"}, {"positive_ids", {"nonexistent.1"}}});
  s.corpus = tmp / "corpus.jsonl";
  s.queries = tmp / "queries.jsonl";
  write_jsonl(s.corpus, s.docs);
  write_jsonl(s.queries, s.qs);
  return s;
}

std::vector<std::vector<float>> embed(const std::string& model, const std::vector<std::string>& texts,
                                      const mbtest::TempDir& tmp, bool colbert) {
  std::vector<json> rows;
  for (const auto& t : texts) rows.push_back({{"text", t}});
  write_jsonl(tmp / "embed_in.jsonl", rows);
  auto r = mbtest::run_command(mbtest::cli() + " embed --model " + model + " --input " + tmp / "embed_in.jsonl" +
                               (colbert ? " --colbert" : " --normalize") + " 2>/dev/null");
  EXPECT_EQ(r.status, 0) << r.output;
  std::vector<std::vector<float>> out;
  for (const auto& j : jsonl_text(r.output)) {
    if (colbert) {
      std::vector<float> flat;
      for (const auto& v : j["vectors"]) for (const auto& x : v) flat.push_back(x.get<float>());
      out.push_back(flat);
    } else {
      out.push_back(j["embedding"].get<std::vector<float>>());
    }
  }
  return out;
}

// MRR@10 over the queries with a positive in `docs`, from a score function.
double mrr(const SmallRetrieval& s, const std::vector<size_t>& doc_rows,
           const std::function<float(size_t, size_t)>& score) {
  double sum = 0;
  int n = 0;
  for (size_t q = 0; q < s.qs.size(); ++q) {
    std::vector<int64_t> rel;
    std::vector<float> sc;
    for (size_t i = 0; i < doc_rows.size(); ++i) {
      sc.push_back(score(q, doc_rows[i]));
      for (const auto& p : s.qs[q]["positive_ids"])
        if (p == s.docs[doc_rows[i]]["id"]) rel.push_back(static_cast<int64_t>(i));
    }
    if (rel.empty()) continue;
    sum += mrr_at_k(top_k_indices(sc.data(), static_cast<int64_t>(sc.size()), 10), rel, 10);
    ++n;
  }
  return sum / n;
}

}  // namespace

TEST(EvalCli, RetrievalClosedAndFullCorpus) {
  mbtest::TempDir tmp("eval_ret");
  std::string m = make_model(tmp, "m", "mlm");
  auto s = small_retrieval(tmp);
  ASSERT_GE(s.qs.size(), 5u);
  auto r = mbtest::run_command(mbtest::cli() + " eval --task retrieval --quiet --model " + m + " --corpus " + s.corpus +
                               " --queries " + s.queries + " --split test --scope both");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output);
  const json& closed = j["scopes"]["closed:test"];
  const json& full = j["scopes"]["full"];
  EXPECT_EQ(closed["corpus_size"], 12);
  EXPECT_EQ(full["corpus_size"], 18);
  EXPECT_EQ(closed["queries"], static_cast<int64_t>(s.qs.size()));
  EXPECT_EQ(closed["skipped_no_relevant"], 1);  // the query whose document is absent: counted, not scored 0
  EXPECT_EQ(closed["evaluated"], static_cast<int64_t>(s.qs.size()) - 1);
  EXPECT_EQ(closed["skipped_examples"][0], "q:missing");
  // Brute force from `embed --normalize` (cosine).
  std::vector<std::string> qt, dt;
  for (const auto& q : s.qs) qt.push_back(q["query"]);
  for (const auto& d : s.docs) dt.push_back(d["text"]);
  auto qe = embed(m, qt, tmp, false), de = embed(m, dt, tmp, false);
  auto cosine = [&](size_t q, size_t d) {
    double acc = 0;
    for (size_t k = 0; k < qe[q].size(); ++k) acc += double(qe[q][k]) * de[d][k];
    return static_cast<float>(acc);
  };
  std::vector<size_t> closed_rows, all_rows;
  for (size_t i = 0; i < s.docs.size(); ++i) {
    all_rows.push_back(i);
    if (s.docs[i]["split"] == "test") closed_rows.push_back(i);
  }
  EXPECT_NEAR(closed["mrr@10"].get<double>(), mrr(s, closed_rows, cosine), 1e-6);
  EXPECT_NEAR(full["mrr@10"].get<double>(), mrr(s, all_rows, cosine), 1e-6);
  // --data DIR needs --split; a closed scope without --split is an error.
  auto e = mbtest::run_command(mbtest::cli() + " eval --task retrieval --quiet --model " + m + " --corpus " + s.corpus +
                               " --queries " + s.queries + " --scope closed");
  EXPECT_NE(e.status, 0);
  EXPECT_NE(e.output.find("needs --split"), std::string::npos) << e.output;
}

TEST(EvalCli, ColbertMaxSimAgreesWithEmbed) {
  mbtest::TempDir tmp("eval_colbert");
  std::string m = make_model(tmp, "m", "mlm");
  auto s = small_retrieval(tmp);
  auto r = mbtest::run_command(mbtest::cli() + " eval --task colbert --quiet --model " + m + " --corpus " + s.corpus +
                               " --queries " + s.queries + " --split test");
  ASSERT_EQ(r.status, 0) << r.output;
  json j = json::parse(r.output);
  const json& closed = j["scopes"]["closed:test"];
  EXPECT_FALSE(j["scopes"].contains("full"));
  EXPECT_EQ(closed["skipped_no_relevant"], 1);
  std::vector<std::string> qt, dt;
  for (const auto& q : s.qs) qt.push_back(q["query"]);
  for (const auto& d : s.docs) dt.push_back(d["text"]);
  auto qv = embed(m, qt, tmp, true), dv = embed(m, dt, tmp, true);
  const int64_t D = j["settings"]["dim"].get<int64_t>();
  auto ms = [&](size_t q, size_t d) {
    return maxsim(qv[q].data(), static_cast<int64_t>(qv[q].size()) / D, dv[d].data(), static_cast<int64_t>(dv[d].size()) / D, D);
  };
  std::vector<size_t> closed_rows;
  for (size_t i = 0; i < s.docs.size(); ++i)
    if (s.docs[i]["split"] == "test") closed_rows.push_back(i);
  EXPECT_NEAR(closed["mrr@10"].get<double>(), mrr(s, closed_rows, ms), 1e-6);
}
