// modernbert finetune: a tiny randomly initialised model learns a trivially separable task
// ("good" vs "bad"), the output directory loads as a 2-label sequence classifier and `classify`
// runs on it; bad inputs give clear errors.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modernbert/model_dir.h"
#include "test_util.h"

namespace {

std::string tokenizer_json() { return mbtest::shared_data() + "/modernbert-tokenizer/tokenizer.json"; }
bool have_tokenizer() { return std::ifstream(tokenizer_json()).good(); }

void write_file(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

// n examples, alternating labels; every text holds exactly one of "good" / "bad" among fillers.
std::string synthetic(int n, int offset, bool names = false) {
  const std::vector<std::string> fill = {"the", "movie", "was", "really", "quite", "plot", "actor", "film",
                                         "story", "very", "this", "ending", "music", "overall", "scene"};
  std::ostringstream os;
  unsigned s = 12345u + static_cast<unsigned>(offset);
  auto rnd = [&] { s = s * 1103515245u + 12345u; return (s >> 16) & 0x7fff; };
  for (int i = 0; i < n; ++i) {
    const int label = i % 2;
    std::string text;
    const int len = 3 + static_cast<int>(rnd() % 6), pos = static_cast<int>(rnd() % static_cast<unsigned>(len + 1));
    for (int k = 0; k <= len; ++k) {
      if (k == pos) text += std::string(text.empty() ? "" : " ") + (label ? "good" : "bad");
      if (k < len) text += (text.empty() ? "" : " ") + fill[rnd() % fill.size()];
    }
    nlohmann::json j = {{"text", text}};
    if (names) j["label"] = label ? "pos" : "neg";
    else j["label"] = label;
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
  if (!have_tokenizer()) GTEST_SKIP() << "no " << tokenizer_json();
  Fixture f;
  ASSERT_TRUE(f.ok);
  const std::string out = f.tmp / "out";
  auto r = mbtest::run_command(f.finetune("--out " + out +
                                          " --epochs 8 --batch-size 8 --lr 1e-3 --pooling mean --patience 3 --seed 5"));
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
  EXPECT_NE(c.output.find("LABEL_1"), std::string::npos) << c.output;

  // The eval command agrees that it learned the task.
  auto e = mbtest::run_command(mbtest::cli() + " eval --task classification --quiet --model " + out + " --data " +
                               f.tmp / "dev.jsonl");
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_GE(nlohmann::json::parse(e.output)["accuracy"].get<double>(), 0.9);

  // A different label count against the fine-tuned head is refused clearly.
  write_file(f.tmp / "train3.jsonl", "{\"text\":\"a\",\"label\":0}\n{\"text\":\"b\",\"label\":1}\n{\"text\":\"c\",\"label\":2}\n");
  auto h = mbtest::run_command(mbtest::cli() + " finetune --model " + out + " --train " + f.tmp / "train3.jsonl" +
                               " --dev " + f.tmp / "train3.jsonl" + " --out " + f.tmp / "out3" + " --quiet");
  EXPECT_NE(h.status, 0);
  EXPECT_NE(h.output.find("already has a classifier with 2 labels"), std::string::npos) << h.output;
}

TEST(Finetune, BadInputs) {
  if (!have_tokenizer()) GTEST_SKIP() << "no " << tokenizer_json();
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
  write_file(f.tmp / "dev_n.jsonl", "{\"text\":\"good\",\"label\":\"pos\"}\n{\"text\":\"meh\",\"label\":\"neutral\"}\n");
  r = mbtest::run_command(mbtest::cli() + " finetune --model " + f.model + " --train " + f.tmp / "train_n.jsonl" +
                          " --dev " + f.tmp / "dev_n.jsonl" + " --out " + f.tmp / "o2" + " --quiet");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("dev_n.jsonl:2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("neutral"), std::string::npos) << r.output;
  // Integer ids: dev id beyond the training ids.
  write_file(f.tmp / "dev_i.jsonl", "{\"text\":\"good\",\"label\":1}\n{\"text\":\"x\",\"label\":0}\n{\"text\":\"x\",\"label\":7}\n");
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
  const std::vector<std::string> fill = {"we", "went", "to", "see", "the", "old", "market", "in", "and", "then", "home"};
  const std::vector<std::string> cities = {"paris", "london", "berlin", "rome"};
  std::ostringstream os;
  unsigned s = 777u + static_cast<unsigned>(offset);
  auto rnd = [&] { s = s * 1103515245u + 12345u; return (s >> 16) & 0x7fff; };
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
  if (!have_tokenizer()) GTEST_SKIP() << "no " << tokenizer_json();
  Fixture f;
  ASSERT_TRUE(f.ok);
  write_file(f.tmp / "ttrain.jsonl", synthetic_tokens(48, 0));
  write_file(f.tmp / "tdev.jsonl", synthetic_tokens(16, 500));
  const std::string out = f.tmp / "tout";
  auto r = mbtest::run_command(mbtest::cli() + " finetune --task token-classification --model " + f.model + " --train " +
                               f.tmp / "ttrain.jsonl" + " --dev " + f.tmp / "tdev.jsonl" + " --out " + out +
                               " --epochs 4 --batch-size 8 --lr 1e-3 --seed 3 --quiet");
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

}  // namespace
