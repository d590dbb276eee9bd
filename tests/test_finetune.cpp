// modernbert finetune: a tiny randomly initialised model learns a trivially separable task
// ("good" vs "bad"), the output directory loads as a 2-label sequence classifier and `classify`
// runs on it; bad inputs give clear errors.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "modernbert/model_dir.h"
#include "test_util.h"

namespace {

std::string tokenizer_json() { return mbtest::tokenizer_json(); }

void write_file(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

// n examples, alternating labels; every text holds exactly one of "good" / "bad" among fillers.
std::string synthetic(int n, int offset, bool names = false) {
  const std::vector<std::string> fill = {"the",   "movie", "was",  "really", "quite", "plot",    "actor", "film",
                                         "story", "very",  "this", "ending", "music", "overall", "scene"};
  std::ostringstream os;
  unsigned s = 12345u + static_cast<unsigned>(offset);
  auto rnd = [&] {
    s = s * 1103515245u + 12345u;
    return (s >> 16) & 0x7fff;
  };
  for (int i = 0; i < n; ++i) {
    const int label = i % 2;
    std::string text;
    const int len = 3 + static_cast<int>(rnd() % 6), pos = static_cast<int>(rnd() % static_cast<unsigned>(len + 1));
    for (int k = 0; k <= len; ++k) {
      if (k == pos) text += std::string(text.empty() ? "" : " ") + (label ? "good" : "bad");
      if (k < len) text += (text.empty() ? "" : " ") + fill[rnd() % fill.size()];
    }
    nlohmann::json j = {{"text", text}};
    if (names)
      j["label"] = label ? "pos" : "neg";
    else
      j["label"] = label;
    os << j.dump() << "\n";
  }
  return os.str();
}

struct Fixture {
  mbtest::TempDir tmp{"finetune"};
  std::string model = tmp / "mlm";
  bool ok = false;
  Fixture() {
    auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 1 --heads mlm --out " + model);
    EXPECT_EQ(r.status, 0) << r.output;
    mbtest::run_command("cp " + tokenizer_json() + " " + model + "/");
    write_file(tmp / "train.jsonl", synthetic(64, 0));
    write_file(tmp / "dev.jsonl", synthetic(32, 1000));
    ok = r.status == 0;
  }
  std::string finetune(const std::string& extra) const {
    return mbtest::cli() + " finetune --task classification --model " + model + " --train " + tmp / "train.jsonl" +
           " --dev " + tmp / "dev.jsonl" + " " + extra;
  }
};

TEST(Finetune, LearnsSyntheticTaskAndLoads) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  const std::string out = f.tmp / "out";
  auto r = mbtest::run_command(
      f.finetune("--out " + out + " --epochs 8 --batch-size 8 --lr 1e-3 --pooling mean --patience 3 --seed 5"));
  ASSERT_EQ(r.status, 0) << r.output;
  // Best dev accuracy from the log.
  std::ifstream log(out + "/finetune_log.jsonl");
  ASSERT_TRUE(log.good());
  std::string line;
  double best = 0;
  int steps = 0;
  while (std::getline(log, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "step") ++steps;
    if (j["type"] == "eval") best = std::max(best, j["dev"]["accuracy"].get<double>());
  }
  EXPECT_GT(steps, 0);
  EXPECT_GE(best, 0.9) << r.output;

  auto m = modernbert::load_model_dir(out);
  EXPECT_EQ(m.weights.heads().classifier, modernbert::HeadSet::Classifier::kSequence);
  EXPECT_EQ(m.weights.heads().num_labels, 2);
  EXPECT_EQ(m.config.problem_type, modernbert::ProblemType::kSingleLabel);
  ASSERT_FALSE(m.config.architectures.empty());
  EXPECT_EQ(m.config.architectures[0], "ModernBertForSequenceClassification");
  EXPECT_TRUE(std::ifstream(out + "/tokenizer.json").good());

  auto c = mbtest::run_command(mbtest::cli() + " classify --model " + out + " --input " + f.tmp / "dev.jsonl" +
                               " 2>/dev/null");
  ASSERT_EQ(c.status, 0) << c.output;
  // One line per dev example; each line's label is the argmax of its scores (which are a softmax:
  // positive, summing to 1), and the labels agree with the gold labels of dev.jsonl (the synthetic
  // task is learned: the eval above measures >= 0.9 on the same file).
  std::vector<int> gold;
  {
    std::ifstream dev(f.tmp / "dev.jsonl");
    for (std::string l; std::getline(dev, l);)
      if (!l.empty()) gold.push_back(nlohmann::json::parse(l)["label"].get<int>());
  }
  std::vector<nlohmann::json> preds;
  {
    std::stringstream ss(c.output);
    for (std::string l; std::getline(ss, l);)
      if (!l.empty()) preds.push_back(nlohmann::json::parse(l));
  }
  ASSERT_EQ(preds.size(), gold.size()) << c.output;
  size_t agree = 0;
  for (size_t i = 0; i < preds.size(); ++i) {
    const auto& sc = preds[i]["scores"];
    ASSERT_EQ(sc.size(), 2u) << preds[i].dump();
    const double s0 = sc["LABEL_0"].get<double>(), s1 = sc["LABEL_1"].get<double>();
    EXPECT_NEAR(s0 + s1, 1.0, 1e-5) << preds[i].dump();
    EXPECT_EQ(preds[i]["label"].get<std::string>(), std::string(s1 > s0 ? "LABEL_1" : "LABEL_0")) << preds[i].dump();
    agree += preds[i]["label"] == "LABEL_" + std::to_string(gold[i]);
  }
  EXPECT_GE(static_cast<double>(agree), 0.9 * static_cast<double>(gold.size())) << c.output;

  // The eval command agrees that it learned the task.
  auto e = mbtest::run_command(mbtest::cli() + " eval --task classification --quiet --model " + out + " --data " +
                               f.tmp / "dev.jsonl");
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_GE(nlohmann::json::parse(e.output)["accuracy"].get<double>(), 0.9);

  // A different label count against the fine-tuned head is refused clearly.
  write_file(f.tmp / "train3.jsonl",
             "{\"text\":\"a\",\"label\":0}\n{\"text\":\"b\",\"label\":1}\n{\"text\":\"c\",\"label\":2}\n");
  auto h = mbtest::run_command(mbtest::cli() + " finetune --model " + out + " --train " + f.tmp / "train3.jsonl" +
                               " --dev " + f.tmp / "train3.jsonl" + " --out " + f.tmp / "out3" + " --quiet");
  EXPECT_NE(h.status, 0);
  EXPECT_NE(h.output.find("already has a classifier with 2 labels"), std::string::npos) << h.output;
}

TEST(Finetune, BadInputs) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  // Empty training file.
  write_file(f.tmp / "empty.jsonl", "");
  auto r = mbtest::run_command(mbtest::cli() + " finetune --model " + f.model + " --train " + f.tmp / "empty.jsonl" +
                               " --dev " + f.tmp / "dev.jsonl" + " --out " + f.tmp / "o1" + " --quiet");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("empty.jsonl"), std::string::npos) << r.output;
  // A dev label outside the training labels: the error names the line.
  write_file(f.tmp / "train_n.jsonl", synthetic(8, 0, true));
  write_file(f.tmp / "dev_n.jsonl",
             "{\"text\":\"good\",\"label\":\"pos\"}\n{\"text\":\"meh\",\"label\":\"neutral\"}\n");
  r = mbtest::run_command(mbtest::cli() + " finetune --model " + f.model + " --train " + f.tmp / "train_n.jsonl" +
                          " --dev " + f.tmp / "dev_n.jsonl" + " --out " + f.tmp / "o2" + " --quiet");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("dev_n.jsonl:2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("neutral"), std::string::npos) << r.output;
  // Integer ids: dev id beyond the training ids.
  write_file(f.tmp / "dev_i.jsonl",
             "{\"text\":\"good\",\"label\":1}\n{\"text\":\"x\",\"label\":0}\n{\"text\":\"x\",\"label\":7}\n");
  r = mbtest::run_command(mbtest::cli() + " finetune --model " + f.model + " --train " + f.tmp / "train.jsonl" +
                          " --dev " + f.tmp / "dev_i.jsonl" + " --out " + f.tmp / "o3" + " --quiet");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("dev_i.jsonl:3"), std::string::npos) << r.output;
  // --help lists every flag.
  auto h = mbtest::run_command(mbtest::cli() + " finetune --help");
  EXPECT_EQ(h.status, 0);
  for (const char* flag : {"--task", "--model", "--train", "--dev", "--out", "--epochs", "--batch-size", "--lr",
                           "--weight-decay", "--optimizer", "--warmup-ratio", "--schedule", "--max-length",
                           "--patience", "--seed", "--num-labels", "--pooling"})
    EXPECT_NE(h.output.find(flag), std::string::npos) << flag;
}

// Token classification: city names are B-LOC, every other word O.
std::string synthetic_tokens(int n, int offset) {
  const std::vector<std::string> fill = {"we",     "went", "to",  "see",  "the", "old",
                                         "market", "in",   "and", "then", "home"};
  const std::vector<std::string> cities = {"paris", "london", "berlin", "rome"};
  std::ostringstream os;
  unsigned s = 777u + static_cast<unsigned>(offset);
  auto rnd = [&] {
    s = s * 1103515245u + 12345u;
    return (s >> 16) & 0x7fff;
  };
  for (int i = 0; i < n; ++i) {
    nlohmann::json toks = nlohmann::json::array(), tags = nlohmann::json::array();
    const int len = 4 + static_cast<int>(rnd() % 5);
    for (int k = 0; k < len; ++k) {
      if (rnd() % 3 == 0) {
        toks.push_back(cities[rnd() % cities.size()]);
        tags.push_back("B-LOC");
      } else {
        toks.push_back(fill[rnd() % fill.size()]);
        tags.push_back("O");
      }
    }
    os << nlohmann::json{{"tokens", toks}, {"tags", tags}}.dump() << "\n";
  }
  return os.str();
}

TEST(Finetune, TokenClassification) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  write_file(f.tmp / "ttrain.jsonl", synthetic_tokens(48, 0));
  write_file(f.tmp / "tdev.jsonl", synthetic_tokens(16, 500));
  const std::string out = f.tmp / "tout";
  auto r = mbtest::run_command(mbtest::cli() + " finetune --task token-classification --model " + f.model +
                               " --train " + f.tmp / "ttrain.jsonl" + " --dev " + f.tmp / "tdev.jsonl" + " --out " +
                               out + " --epochs 4 --batch-size 8 --lr 1e-3 --seed 3 --quiet");
  ASSERT_EQ(r.status, 0) << r.output;
  auto m = modernbert::load_model_dir(out);
  EXPECT_EQ(m.weights.heads().classifier, modernbert::HeadSet::Classifier::kToken);
  EXPECT_EQ(m.weights.heads().num_labels, 2);
  EXPECT_EQ(m.config.id2label.at(0), "B-LOC");
  auto e = mbtest::run_command(mbtest::cli() + " eval --task token-classification --quiet --model " + out + " --data " +
                               f.tmp / "tdev.jsonl");
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_GE(nlohmann::json::parse(e.output)["token_accuracy"].get<double>(), 0.8) << e.output;
}

// Retrieval: 24 documents, each about one topic word; queries name the topic among other words.
// Training queries and dev queries use different filler words.
struct RetrievalData {
  std::string corpus, train, dev;
};
RetrievalData synthetic_retrieval() {
  const std::vector<std::string> topics = {"apple",   "river",  "engine", "violin", "castle", "garden",
                                           "rocket",  "winter", "pepper", "harbor", "falcon", "marble",
                                           "thunder", "candle", "desert", "ladder", "orange", "silver",
                                           "tunnel",  "basket", "forest", "hammer", "island", "mirror"};
  const std::vector<std::string> fill = {"the",  "a",    "of",   "and",  "with", "some",
                                         "very", "many", "this", "that", "about"};
  unsigned s = 4242u;
  auto rnd = [&] {
    s = s * 1103515245u + 12345u;
    return (s >> 16) & 0x7fff;
  };
  // "x" + std::to_string(i) inlines into a GCC 12 -Wrestrict false positive here; append instead.
  auto name = [](const char* prefix, size_t i) { return std::string(prefix).append(std::to_string(i)); };
  RetrievalData d;
  std::ostringstream c, t, v;
  for (size_t i = 0; i < topics.size(); ++i) {
    std::string text;
    for (int k = 0; k < 12; ++k) text += (k ? " " : "") + (k % 4 == 1 ? topics[i] : fill[rnd() % fill.size()]);
    c << nlohmann::json{{"id", name("doc", i)}, {"text", text}}.dump() << "\n";
    const std::string query = "find " + topics[i] + " " + fill[rnd() % fill.size()];
    t << nlohmann::json{{"qid", name("t", i)}, {"query", query}, {"positive_ids", {name("doc", i)}}}.dump() << "\n";
    v << nlohmann::json{{"qid", name("v", i)},
                        {"query", fill[rnd() % fill.size()] + " " + topics[i] + " please"},
                        {"positive_ids", {name("doc", i)}}}
             .dump()
      << "\n";
  }
  d.corpus = c.str();
  d.train = t.str();
  d.dev = v.str();
  return d;
}

// Trains embedding / ColBERT models on the synthetic set: the training loss falls, dev nDCG@10
// ends well above chance, the output directory is a sentence-transformers (PyLate) model that
// `eval` scores exactly as the fine-tuning run did.
void retrieval_case(const std::string& task) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  const RetrievalData d = synthetic_retrieval();
  write_file(f.tmp / "corpus.jsonl", d.corpus);
  write_file(f.tmp / "rtrain.jsonl", d.train);
  write_file(f.tmp / "rdev.jsonl", d.dev);
  const std::string out = f.tmp / task;
  auto r = mbtest::run_command(mbtest::cli() + " finetune --task " + task + " --model " + f.model + " --train " +
                               f.tmp / "rtrain.jsonl" + " --dev " + f.tmp / "rdev.jsonl" + " --corpus " +
                               f.tmp / "corpus.jsonl" + " --out " + out +
                               " --epochs 8 --batch-size 8 --lr 2e-3 --seed 3 --colbert-dim 16 --quiet" +
                               (task == "colbert" ? " --temperature 0.1" : ""));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto summary = nlohmann::json::parse(r.output.substr(r.output.rfind("{\"")));
  EXPECT_EQ(summary["metric"], "ndcg@10");
  std::ifstream log(out + "/finetune_log.jsonl");
  std::string line;
  std::vector<double> epoch_loss;
  while (std::getline(log, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["type"] == "eval") epoch_loss.push_back(j["train_loss"].get<double>());
  }
  ASSERT_EQ(epoch_loss.size(), 8u);
  EXPECT_LT(epoch_loss.back(), 0.5 * epoch_loss.front()) << task;
  // Chance nDCG@10 over 24 documents is ~0.2.
  EXPECT_GE(summary["best"].get<double>(), 0.6) << r.output;

  for (const char* file : {"config.json", "model.safetensors", "tokenizer.json", "modules.json",
                           "config_sentence_transformers.json", "sentence_bert_config.json"})
    EXPECT_TRUE(std::ifstream(out + "/" + file).good()) << file;
  auto m = modernbert::load_model_dir(out);
  EXPECT_FALSE(m.weights.heads().any());  // encoder only
  EXPECT_TRUE(m.sentence_transformers.present);
  if (task == "colbert") {
    EXPECT_EQ(m.sentence_transformers.dense_out, 16);
    EXPECT_EQ(m.sentence_transformers.dense_in, m.config.hidden_size);
  } else {
    EXPECT_EQ(m.sentence_transformers.pooling_mode, "mean");
    EXPECT_TRUE(m.sentence_transformers.normalize);
  }
  auto e = mbtest::run_command(mbtest::cli() + " eval --quiet --task " + (task == "colbert" ? "colbert" : "retrieval") +
                               " --model " + out + " --corpus " + f.tmp / "corpus.jsonl" + " --queries " +
                               f.tmp / "rdev.jsonl" + " --query-max-length 64 2>/dev/null");
  ASSERT_EQ(e.status, 0) << e.output;
  const auto rep = nlohmann::json::parse(e.output);
  EXPECT_NEAR(rep["scopes"]["full"]["ndcg@10"].get<double>(), summary["best"].get<double>(), 1e-6) << e.output;
}

TEST(Finetune, EmbeddingContrastive) { retrieval_case("embedding"); }
TEST(Finetune, ColbertContrastive) { retrieval_case("colbert"); }

TEST(Finetune, RetrievalBadInputs) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  const RetrievalData d = synthetic_retrieval();
  write_file(f.tmp / "corpus.jsonl", d.corpus);
  write_file(f.tmp / "rtrain.jsonl", d.train);
  auto ft = [&](const std::string& train, const std::string& extra) {
    return mbtest::run_command(mbtest::cli() + " finetune --task embedding --quiet --model " + f.model + " --train " +
                               train + " --dev " + f.tmp / "rtrain.jsonl" + " --out " + f.tmp / "o" + " " + extra);
  };
  // positive_ids without a corpus.
  auto r = ft(f.tmp / "rtrain.jsonl", "");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("pass --corpus"), std::string::npos) << r.output;
  // A positive id missing from the corpus: named, with the query.
  write_file(f.tmp / "missing.jsonl", d.train + "{\"qid\": \"qx\", \"query\": \"x\", \"positive_ids\": [\"nope\"]}\n");
  r = ft(f.tmp / "missing.jsonl", "--corpus " + f.tmp / "corpus.jsonl");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("'nope' is not in the corpus"), std::string::npos) << r.output;
  // A query without positives.
  write_file(f.tmp / "nopos.jsonl", "{\"qid\": \"q1\", \"query\": \"x\", \"positive_ids\": []}\n");
  r = ft(f.tmp / "nopos.jsonl", "--corpus " + f.tmp / "corpus.jsonl");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no positive document"), std::string::npos) << r.output;
  // Empty training file; batch of one (no negatives).
  write_file(f.tmp / "empty.jsonl", "");
  r = ft(f.tmp / "empty.jsonl", "--corpus " + f.tmp / "corpus.jsonl");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("empty file"), std::string::npos) << r.output;
  r = ft(f.tmp / "rtrain.jsonl", "--corpus " + f.tmp / "corpus.jsonl --batch-size 1");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("in-batch negatives"), std::string::npos) << r.output;
  // Pairs without a corpus work ({"query", "positive"}).
  write_file(f.tmp / "pairs.jsonl",
             "{\"query\": \"red fruit\", \"positive\": \"an apple is red\"}\n"
             "{\"query\": \"big water\", \"positive\": \"the ocean is wide\"}\n"
             "{\"query\": \"cold\", \"positive\": [\"ice\", \"snow\"]}\n");
  r = mbtest::run_command(mbtest::cli() + " finetune --task embedding --quiet --model " + f.model + " --train " +
                          f.tmp / "pairs.jsonl" + " --dev " + f.tmp / "pairs.jsonl" + " --out " +
                          f.tmp / "op --epochs 1 --batch-size 3");
  EXPECT_EQ(r.status, 0) << r.output;
}

}  // namespace
