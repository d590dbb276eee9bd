// Data-parallel fine-tuning (#16) under `mpirun --oversubscribe -np 2` on this machine, for
// classification and contrastive retrieval (embedding InfoNCE, ColBERT MaxSim) with gathered
// in-batch negatives:
//  * 2 ranks x --grad-accumulation 1 equal 1 rank x --grad-accumulation 2 BIT FOR BIT: every
//    step's loss and the dev records in finetune_log.jsonl, and the saved files byte-identical
//    (the same micro-batches, gradients summed in micro-batch order: finetune.h);
//  * 1 rank x accumulation 2 against accumulation 1 (the one-batch path of before) within a stated
//    tolerance: the same math with re-associated sums;
//  * a batch smaller than K x N leaves micro-batches empty (bitwise equal to 1 rank x K N);
//  * ranks whose options or data differ stop with an error naming the rank and the flag (or data
//    set) within bounded time; rank 0 alone writes --out; --grad-accumulation, --zero and
//    --comm-timeout are validated;
//  * --zero 1 (ZeRO-1 moments) equals --zero 0 bit for bit.
// Tiny model, a few dozen examples, 2 epochs, --threads 1 per rank.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "modernbert/model_dir.h"
#include "mpi_util.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void write_file(const std::string& path, const std::string& s) { std::ofstream(path) << s; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A deterministic generator for the synthetic data.
struct Lcg {
  unsigned s;
  unsigned next() {
    s = s * 1103515245u + 12345u;
    return (s >> 16) & 0x7fff;
  }
};

const std::vector<std::string>& fillers() {
  static const std::vector<std::string> f = {"the",   "movie", "was",  "really", "quite", "plot",    "actor", "film",
                                             "story", "very",  "this", "ending", "music", "overall", "scene"};
  return f;
}

// n texts, each with "good" (label 1) or "bad" (label 0) among 3..8 fillers.
std::string classification_data(int n, unsigned seed) {
  Lcg r{seed};
  std::ostringstream os;
  for (int i = 0; i < n; ++i) {
    std::string text;
    const int len = 3 + static_cast<int>(r.next() % 6), pos = static_cast<int>(r.next() % (len + 1));
    for (int k = 0; k <= len; ++k) {
      if (k == pos) text += std::string(text.empty() ? "" : " ") + (i % 2 ? "good" : "bad");
      if (k < len) text += (text.empty() ? "" : " ") + fillers()[r.next() % fillers().size()];
    }
    os << json{{"text", text}, {"label", i % 2}}.dump() << "\n";
  }
  return os.str();
}

// 14 topic documents; a training query per topic (every third one with a second positive, so the
// exclusion of a query's other positives is exercised) and a dev query per topic.
void write_retrieval_data(const mbtest::TempDir& tmp) {
  const std::vector<std::string> topics = {"apple",  "river",  "guitar", "planet", "coffee", "tiger",  "engine",
                                           "violin", "desert", "ocean",  "castle", "rocket", "garden", "winter"};
  Lcg r{77};
  std::ostringstream c, t, v;
  const size_t n = topics.size();
  for (size_t i = 0; i < n; ++i) {
    std::string text;
    for (int k = 0; k < 10; ++k) text += (k ? " " : "") + (k % 4 == 1 ? topics[i] : fillers()[r.next() % 15]);
    const std::string id = std::string("doc").append(std::to_string(i));
    c << json{{"id", id}, {"text", text}}.dump() << "\n";
    json pos = {id};
    if (i % 3 == 0) pos.push_back(std::string("doc").append(std::to_string((i + 1) % n)));
    t << json{{"qid", std::string("t").append(std::to_string(i))},
              {"query", "find " + topics[i] + " " + fillers()[r.next() % 15]},
              {"positive_ids", pos}}
             .dump()
      << "\n";
    v << json{{"qid", std::string("v").append(std::to_string(i))},
              {"query", fillers()[r.next() % 15] + " " + topics[i] + " please"},
              {"positive_ids", {id}}}
             .dump()
      << "\n";
  }
  write_file(tmp / "corpus.jsonl", c.str());
  write_file(tmp / "rtrain.jsonl", t.str());
  write_file(tmp / "rdev.jsonl", v.str());
}

struct Fixture {
  mbtest::TempDir tmp{"dist_finetune"};
  std::string model = tmp / "mlm";
  bool ok = false;
  Fixture() {
    auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 1 --heads mlm --out " + model);
    EXPECT_EQ(r.status, 0) << r.output;
    mbtest::run_command("cp " + mbtest::tokenizer_json() + " " + model + "/");
    write_file(tmp / "train.jsonl", classification_data(21, 12345u));  // batches of 8: 8, 8, 5
    write_file(tmp / "dev.jsonl", classification_data(40, 999u));      // 2 dev batches of 32: one per rank
    write_retrieval_data(tmp);
    ok = r.status == 0;
  }
  // The flags of a run (no --out, no --grad-accumulation); batch 0: 8 examples | 6 queries.
  std::string args(const std::string& task, int batch = 0) const {
    if (task == "classification")
      return " finetune --task classification --model " + model + " --train " + tmp / "train.jsonl" + " --dev " +
             tmp / "dev.jsonl" + " --epochs 2 --batch-size " + std::to_string(batch ? batch : 8) +
             " --lr 1e-3 --pooling mean --seed 5 --threads 1 --quiet --comm-timeout 60";
    return " finetune --task " + task + " --model " + model + " --train " + tmp / "rtrain.jsonl" + " --dev " +
           tmp / "rdev.jsonl" + " --corpus " + tmp / "corpus.jsonl" + " --epochs 2 --batch-size " +
           std::to_string(batch ? batch : 6) +
           " --lr 1e-3 --seed 3 --colbert-dim 16 --threads 1 --quiet --comm-timeout 60" +
           (task == "colbert" ? " --temperature 0.1" : "");
  }
};

// One rank, or N under mpirun; a hang ends after 120 s (the test then fails on the status). `env`
// runs the launcher's variable assignments under timeout.
mbtest::RunResult run_ranks(int ranks, const std::string& args) {
  const std::string launcher = ranks == 1 ? std::string() : mb_test::mpirun(ranks);
  return mbtest::run_command("timeout -k 5 120 env " + launcher + mbtest::cli() + args);
}

std::vector<json> log_records(const std::string& out, const std::string& type) {
  std::vector<json> recs;
  std::ifstream in(out + "/finetune_log.jsonl");
  for (std::string l; std::getline(in, l);) {
    const json j = json::parse(l);
    if (j.value("type", "") == type) recs.push_back(j);
  }
  return recs;
}

// Every step's loss, and the dev metrics of every epoch, are the same doubles; the saved files
// the same bytes.
void expect_identical_runs(const std::string& a, const std::string& b, const std::vector<std::string>& files) {
  const auto sa = log_records(a, "step"), sb = log_records(b, "step");
  ASSERT_FALSE(sa.empty());
  ASSERT_EQ(sa.size(), sb.size()) << a << " vs " << b;
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(sa[i]["step"], sb[i]["step"]);
    EXPECT_EQ(sa[i]["loss"], sb[i]["loss"]) << "step " << i + 1 << ": " << sa[i].dump() << " vs " << sb[i].dump();
    EXPECT_EQ(sa[i]["tokens"], sb[i]["tokens"]);
  }
  const auto ea = log_records(a, "eval"), eb = log_records(b, "eval");
  ASSERT_EQ(ea.size(), eb.size());
  for (size_t i = 0; i < ea.size(); ++i) EXPECT_EQ(ea[i]["dev"], eb[i]["dev"]) << "epoch " << i + 1;
  for (const auto& f : files) {
    const std::string fa = read_file(a + "/" + f);
    EXPECT_FALSE(fa.empty()) << a << "/" << f;
    EXPECT_TRUE(fa == read_file(b + "/" + f)) << f << " differs between " << a << " and " << b;
  }
}

// Accumulation K against the one-batch run: the same sums re-associated. Losses within 1e-5
// relative (measured: ~1e-7); weights within 1e-5 absolute (1% of the learning rate; measured
// ~1e-7): Adam normalises each parameter's step, so float noise in a near-zero gradient can move a
// weight by up to about lr x that noise, while a wrongly weighted micro-batch moves weights by O(lr)
// and the loss by O(1).
void expect_close_runs(const std::string& a, const std::string& b) {
  const auto sa = log_records(a, "step"), sb = log_records(b, "step");
  ASSERT_FALSE(sa.empty());
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) {
    const double x = sa[i]["loss"].get<double>(), y = sb[i]["loss"].get<double>();
    EXPECT_NEAR(x, y, 1e-5 * std::fabs(x)) << "step " << i + 1;
  }
  modernbert::LoadOptions lo;
  lo.zero_copy = false;  // the contiguous buffer
  const auto ma = modernbert::load_model_dir(a, lo), mb = modernbert::load_model_dir(b, lo);
  ASSERT_EQ(ma.weights.num_params(), mb.weights.num_params());
  double worst = 0;
  for (size_t i = 0; i < ma.weights.num_params(); ++i)
    worst = std::max(worst, static_cast<double>(std::fabs(ma.weights.data()[i] - mb.weights.data()[i])));
  EXPECT_LE(worst, 1e-5) << a << " vs " << b;
}

// The four runs of a task: 1 rank x K 1 (the reference), 1 rank x K 2, 2 ranks x K 1, and 2 ranks
// with --zero 1 (each rank updates half of the encoder's tensors, then all-gathers: bitwise the
// same run, with the optimizer memory per rank reported).
void equal_runs_case(const std::string& task, const std::vector<std::string>& files) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  const std::string k1 = f.tmp / "k1", k2 = f.tmp / "k2", n2 = f.tmp / "n2", z2 = f.tmp / "z2";
  auto r = run_ranks(1, f.args(task) + " --out " + k1);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_ranks(1, f.args(task) + " --grad-accumulation 2 --out " + k2);
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_ranks(2, f.args(task) + " --out " + n2);
  ASSERT_EQ(r.status, 0) << r.output;
  // Rank 0 alone reports: one summary line on stdout, one record per step.
  EXPECT_EQ(r.output.find("\"out\""), r.output.rfind("\"out\"")) << r.output;
  const auto steps = log_records(n2, "step");
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i]["step"].get<int64_t>(), static_cast<int64_t>(i + 1)) << steps[i].dump();
    EXPECT_EQ(steps[i]["ranks"], 2);
  }
  expect_identical_runs(k2, n2, files);
  expect_close_runs(k1, k2);
  r = run_ranks(2, f.args(task) + " --zero 1 --out " + z2);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("finetune: optimizer state per rank: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("(--zero 1; largest of 2 shards"), std::string::npos) << r.output;
  expect_identical_runs(n2, z2, files);
}

const std::vector<std::string> kHeadFiles = {"model.safetensors", "config.json"};

TEST(DistributedFinetune, ClassificationTwoRanksEqualAccumulation) { equal_runs_case("classification", kHeadFiles); }

TEST(DistributedFinetune, EmbeddingGatheredNegativesEqualAccumulation) {
  equal_runs_case("embedding", {"model.safetensors", "modules.json", "1_Pooling/config.json"});
}

TEST(DistributedFinetune, ColbertGatheredNegativesEqualAccumulation) {
  equal_runs_case("colbert", {"model.safetensors", "1_Dense/model.safetensors"});
}

// A step of fewer examples than K x N micro-batches: the empty ones contribute nothing. Batch 4
// over 2 ranks x K 3 (M = 6: micro-batches 4 and 5 are empty, rank 1 holds 3, 4 and 5; the last
// step of an epoch has 1 example) equals 1 rank x K 6 bitwise, since rank 1 holds at most one
// micro-batch that is not empty (with several the rank's sum is re-associated); the contrastive
// case runs 6 queries in M = 10 (rank 1: micro-batch 5 and four empty ones).
TEST(DistributedFinetune, EmptyMicroBatches) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  auto r = run_ranks(1, f.args("classification", 4) + " --grad-accumulation 6 --out " + f.tmp / "a");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_ranks(2, f.args("classification", 4) + " --grad-accumulation 3 --out " + f.tmp / "b");
  ASSERT_EQ(r.status, 0) << r.output;
  expect_identical_runs(f.tmp / "a", f.tmp / "b", kHeadFiles);
  r = run_ranks(2, f.args("embedding") + " --grad-accumulation 5 --out " + f.tmp / "e");
  ASSERT_EQ(r.status, 0) << r.output;
  r = run_ranks(1, f.args("embedding") + " --grad-accumulation 10 --out " + f.tmp / "e1");
  ASSERT_EQ(r.status, 0) << r.output;
  expect_identical_runs(f.tmp / "e", f.tmp / "e1", {"model.safetensors"});
}

// MPMD: rank 1 started with another --seed (or other training data) stops the job before the
// first step with an error naming the rank and the flag; every rank exits (mpirun non-zero) within
// bounded time. Another --out on rank 1 only: rank 0 alone writes.
TEST(DistributedFinetune, RanksThatDifferAreStoppedAndRankZeroAloneWrites) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  const std::string base = f.args("embedding");
  auto mpmd = [&](const std::string& rank0, const std::string& rank1) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = mbtest::run_command("timeout -k 5 120 env " + mb_test::mpirun(1) + mbtest::cli() + rank0 + " : -np 1 " +
                                 mbtest::cli() + rank1);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_pair(r, s);
  };
  // `args` with `from` replaced by `to`.
  auto with = [](std::string args, const std::string& from, const std::string& to) {
    const size_t at = args.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? args : args.replace(at, from.size(), to);
  };
  // Another seed (the embedding model's parameters start equal: only this check sees it).
  auto [r, seconds] =
      mpmd(base + " --out " + f.tmp / "s0", with(base, " --seed 3", " --seed 4") + " --out " + f.tmp / "s1");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 of 2 has --seed 4 but rank 0 has 3"), std::string::npos) << r.output;
  EXPECT_LT(seconds, 60.0) << r.output;
  EXPECT_FALSE(fs::exists(f.tmp / "s0" + "/model.safetensors"));  // stopped before training
  EXPECT_FALSE(fs::exists(f.tmp / "s1"));

  // Other training data (one label flipped) on rank 1.
  std::string other = read_file(f.tmp / "train.jsonl");
  other.replace(other.find("\"label\":0"), 9, "\"label\":1");
  write_file(f.tmp / "train_other.jsonl", other);
  const std::string cls = f.args("classification");
  std::tie(r, seconds) = mpmd(cls + " --out " + f.tmp / "d0",
                              with(cls, f.tmp / "train.jsonl", f.tmp / "train_other.jsonl") + " --out " + f.tmp / "d1");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 of 2 read different training data (--train) than rank 0"), std::string::npos)
      << r.output;
  EXPECT_LT(seconds, 60.0) << r.output;

  // Identical jobs but for --out: rank 0's directory is complete, rank 1's never created.
  std::tie(r, seconds) = mpmd(cls + " --out " + f.tmp / "w0", cls + " --out " + f.tmp / "w1");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* file : {"model.safetensors", "config.json", "tokenizer.json", "finetune_log.jsonl"})
    EXPECT_TRUE(fs::exists(f.tmp / "w0" + "/" + file)) << file;
  EXPECT_FALSE(fs::exists(f.tmp / "w1")) << r.output;
}

TEST(DistributedFinetune, ParallelOptionsValidated) {
  Fixture f;
  ASSERT_TRUE(f.ok);
  for (const char* z : {"2", "-1"}) {
    auto r = run_ranks(1, f.args("classification") + " --zero " + std::string(z) + " --out " + f.tmp / "o");
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("finetune: --zero must be 0 or 1, got " + std::string(z)), std::string::npos) << r.output;
  }
  for (const char* t : {"-1", "1e8"}) {
    std::string args = f.args("classification");
    args.replace(args.find(" --comm-timeout 60"), 18, " --comm-timeout " + std::string(t));
    auto r = run_ranks(1, args + " --out " + f.tmp / "o");
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("--comm-timeout must be in [0, 1e7] seconds"), std::string::npos) << r.output;
  }
  for (const char* k : {"0", "4097", "-1"}) {
    for (const char* task : {"classification", "embedding"}) {
      auto r = run_ranks(1, f.args(task) + " --grad-accumulation " + k + " --out " + f.tmp / "o");
      EXPECT_NE(r.status, 0) << r.output;
      EXPECT_NE(r.output.find("--grad-accumulation must be in [1, 4096]"), std::string::npos) << r.output;
    }
  }
  EXPECT_FALSE(fs::exists(f.tmp / "o"));
}

}  // namespace
