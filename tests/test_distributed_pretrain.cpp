// Data-parallel pretraining (#16) under `mpirun --oversubscribe -np 2` on this machine: the 2-rank
// run equals the 1-rank run with the same global batch (bitwise when ranks 1.. hold at most one
// micro-batch per step, within a stated bound otherwise), --zero 1 equals --zero 0 bitwise,
// checkpoints resume at another world size, a rank killed mid-run ends the job quickly and the run
// resumes, and ranks started with different settings are stopped. Plus the ZeRO-1 optimizer shard
// itself (no MPI). Tiny model, rows of 64 tokens, --threads 1 per rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "modernbert/file_io.h"
#include "modernbert/optimizer.h"
#include "modernbert/safetensors.h"
#include "mpi_util.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using namespace modernbert;

// 300 documents of 7..56 token ids in [3, 503) (the tiny model's vocabulary is 50368).
std::string write_corpus(const mbtest::TempDir& dir) {
  std::mt19937_64 rng(1);
  std::ostringstream os;
  for (int i = 0; i < 300; ++i) {
    const int n = 5 + static_cast<int>(rng() % 50);
    os << "{\"input_ids\": [1";
    for (int t = 0; t < n; ++t) os << ", " << 3 + static_cast<int>(rng() % 500);
    os << ", 2]}\n";
  }
  const std::string path = dir / "corpus.jsonl";
  std::ofstream(path) << os.str();
  return path;
}

// The flags every run of a test shares (the model, data and schedule; no output dir).
std::string common_flags(const std::string& data, int global_batch, double batch_warmup_tokens, int max_steps) {
  std::ostringstream os;
  os << " pretrain --data " << data << " --model-config tiny --seq-len 64 --micro-batch-size 2"
     << " --global-batch-size " << global_batch << " --batch-warmup-tokens " << batch_warmup_tokens
     << " --warmup-tokens 200 --lr 3e-3 --weight-decay 0.01 --grad-clip 1.0 --max-steps " << max_steps
     << " --seed 5 --mask-token-id 4 --threads 1 --comm-timeout 60 --log-every 0";
  return os.str();
}

// One rank, or N under mpirun; a hang ends after 120 s (the test then fails on the status).
mbtest::RunResult run_ranks(int ranks, const std::string& args) {
  const std::string launcher = ranks == 1 ? std::string() : mb_test::mpirun(ranks);
  return mbtest::run_command("timeout -k 5 120 env " + launcher + mbtest::cli() + args);
}

// The last record of each step in metrics.jsonl (a resumed run re-logs the steps after its checkpoint).
std::map<int64_t, nlohmann::json> steps_of(const std::string& metrics) {
  std::map<int64_t, nlohmann::json> by_step;
  std::ifstream in(metrics);
  std::string l;
  while (std::getline(in, l)) {
    const auto j = nlohmann::json::parse(l);
    if (!j.contains("event")) by_step[j.at("step").get<int64_t>()] = j;
  }
  return by_step;
}

// Records per step (every one, not the last): a second writer would double them.
std::map<int64_t, int> records_per_step(const std::string& metrics) {
  std::map<int64_t, int> n;
  std::ifstream in(metrics);
  std::string l;
  while (std::getline(in, l)) {
    const auto j = nlohmann::json::parse(l);
    if (!j.contains("event")) ++n[j.at("step").get<int64_t>()];
  }
  return n;
}

std::set<std::string> names_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// The F32 tensors of a safetensors file by name.
std::map<std::string, std::vector<float>> tensors_of(const std::string& path) {
  auto sf = SafeTensorsFile::open(path);
  std::map<std::string, std::vector<float>> out;
  for (const auto& t : sf->tensors())
    if (t.dtype == DType::kF32) out[t.name] = sf->to_f32(t.name);
  return out;
}

// Two runs' final checkpoints hold the same weights (byte for byte) and optimizer state (the
// moments; the state's metadata records the world size and may differ).
void expect_same_checkpoint(const std::string& a, const std::string& b) {
  EXPECT_TRUE(read_file(a + "/model.safetensors") == read_file(b + "/model.safetensors"))
      << a << " and " << b << ": model.safetensors differ";
  const auto sa = tensors_of(a + "/trainer_state.safetensors"), sb = tensors_of(b + "/trainer_state.safetensors");
  for (const char* name : {"optimizer.m", "optimizer.v"}) {
    ASSERT_TRUE(sa.count(name) && sb.count(name)) << name;
    EXPECT_TRUE(sa.at(name) == sb.at(name)) << name << " differs between " << a << " and " << b;
  }
}

// Every step's loss and grad norm equal (the JSON numbers round-trip doubles exactly).
void expect_same_losses(const std::string& metrics_a, const std::string& metrics_b, size_t steps) {
  const auto ma = steps_of(metrics_a), mb = steps_of(metrics_b);
  ASSERT_EQ(ma.size(), steps);
  ASSERT_EQ(mb.size(), steps);
  for (const auto& [step, ra] : ma) {
    const auto& rb = mb.at(step);
    EXPECT_EQ(ra["loss"], rb["loss"]) << "step " << step;
    EXPECT_EQ(ra["grad_norm"], rb["grad_norm"]) << "step " << step;
    EXPECT_EQ(ra["rows"], rb["rows"]) << "step " << step;
  }
}

// (a) 2 ranks x 1 micro-batch == 1 rank x 2 micro-batches per step, bit for bit; only rank 0 writes.
TEST(DistributedPretrain, TwoRanksEqualOneProcessBitwise) {
  mbtest::TempDir tmp("dp_pretrain_a");
  const std::string data = write_corpus(tmp);
  // Global batch 4 rows = 2 micro-batches of 2; no batch warm-up: every step has 2 micro-batches,
  // one per rank. Held-out evaluation at step 2 (rank 0 alone evaluates).
  const std::string common = common_flags(data, 4, 0, 4) + " --save-every 2 --eval-every 2 --eval-documents 10";
  auto a = run_ranks(1, common + " --output-dir " + (tmp / "a"));
  ASSERT_EQ(a.status, 0) << a.output;
  auto b = run_ranks(2, common + " --output-dir " + (tmp / "b"));
  ASSERT_EQ(b.status, 0) << b.output;

  expect_same_losses(tmp / "a/metrics.jsonl", tmp / "b/metrics.jsonl", 4);
  expect_same_checkpoint(tmp / "a/checkpoint-00000004", tmp / "b/checkpoint-00000004");
  const auto mb = steps_of(tmp / "b/metrics.jsonl");
  EXPECT_EQ(mb.at(2)["eval_loss"], steps_of(tmp / "a/metrics.jsonl").at(2)["eval_loss"]);
  EXPECT_EQ(mb.at(1)["ranks"], 2);
  EXPECT_TRUE(mb.at(1).contains("allreduce_s"));
  EXPECT_EQ(mb.at(1)["rows"], 4);
  // Rank 0 alone wrote: the same files as the one-process run, one record per step, nothing else
  // in the test's directory, one "done" line.
  EXPECT_EQ(names_in(tmp / "a"), names_in(tmp / "b"));
  for (const auto& [step, n] : records_per_step(tmp / "b/metrics.jsonl")) EXPECT_EQ(n, 1) << "step " << step;
  EXPECT_EQ(names_in(tmp.path()), (std::set<std::string>{"a", "b", "corpus.jsonl"}));
  size_t done = 0;
  for (size_t at = 0; (at = b.output.find("pretrain: done:", at)) != std::string::npos; ++at) ++done;
  EXPECT_EQ(done, 1u) << b.output;
  // The trainer state records the world size (information only).
  auto sf = SafeTensorsFile::open(tmp / "b/checkpoint-00000004/trainer_state.safetensors");
  EXPECT_EQ(nlohmann::json::parse(sf->metadata().at("state"))["world_size"], 2);
}

// (b) Batch-size warm-up (1 -> 4 micro-batches per step) on 2 ranks: steps of 1..3 micro-batches
// split [1,0], [1,1], [2,1] (rank 1 holds at most one: bit-identical to one process); steps of 4
// split [2,2], whose sum (g0+g1)+(g2+g3) re-associates one process's ((g0+g1)+g2)+g3. Bound, for
// every loss and every weight: |2 ranks - 1 rank| <= 1e-5 + 1e-4 |1 rank| (float rounding through
// a few steps of StableAdamW at lr 3e-3 stays orders of magnitude below it).
TEST(DistributedPretrain, WarmupUnevenSplitWithinTolerance) {
  mbtest::TempDir tmp("dp_pretrain_b");
  const std::string data = write_corpus(tmp);
  // 8 rows (4 micro-batches) after 1200 warm-up tokens: 1, 2, 3 then 4 micro-batches per step.
  const std::string common = common_flags(data, 8, 1200, 8) + " --save-every 8";
  auto a = run_ranks(1, common + " --output-dir " + (tmp / "a"));
  ASSERT_EQ(a.status, 0) << a.output;
  auto b = run_ranks(2, common + " --output-dir " + (tmp / "b"));
  ASSERT_EQ(b.status, 0) << b.output;

  const auto ma = steps_of(tmp / "a/metrics.jsonl"), mb = steps_of(tmp / "b/metrics.jsonl");
  ASSERT_EQ(ma.size(), 8u);
  ASSERT_EQ(mb.size(), 8u);
  auto close = [](double x, double ref) { return std::abs(x - ref) <= 1e-5 + 1e-4 * std::abs(ref); };
  std::set<int64_t> micro_counts;
  bool exact_so_far = true;  // until the first step with 2 micro-batches on rank 1
  for (const auto& [step, ra] : ma) {
    const auto& rb = mb.at(step);
    ASSERT_EQ(ra["rows"], rb["rows"]) << "step " << step;
    const int64_t micro = ra["rows"].get<int64_t>() / 2;
    micro_counts.insert(micro);
    if (micro == 4) exact_so_far = false;
    const double la = ra["loss"].get<double>(), lb = rb["loss"].get<double>();
    EXPECT_TRUE(close(lb, la)) << "step " << step << ": " << lb << " vs " << la;
    if (exact_so_far) {
      EXPECT_EQ(la, lb) << "step " << step << " (" << micro << " micro-batches) should be bitwise";
    }
  }
  EXPECT_EQ(micro_counts, (std::set<int64_t>{1, 2, 3, 4})) << "the warm-up should pass through every split";
  const auto wa = tensors_of(tmp / "a/checkpoint-00000008/model.safetensors");
  const auto wb = tensors_of(tmp / "b/checkpoint-00000008/model.safetensors");
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, va] : wa) {
    const auto& vb = wb.at(name);
    ASSERT_EQ(va.size(), vb.size()) << name;
    size_t bad = 0;
    for (size_t i = 0; i < va.size(); ++i) bad += !close(vb[i], va[i]);
    EXPECT_EQ(bad, 0u) << name << ": " << bad << " weights outside the bound";
  }
}

// (c) --zero 1 (each rank updates its tensors, then all-gathers the weights; checkpoints gather the
// moments) equals --zero 0 bit for bit, at 2 ranks; the optimizer memory per rank is reported.
TEST(DistributedPretrain, Zero1EqualsZero0Bitwise) {
  mbtest::TempDir tmp("dp_pretrain_c");
  const std::string data = write_corpus(tmp);
  const std::string common = common_flags(data, 4, 0, 4) + " --save-every 2 --sync-check-every 1";
  auto z0 = run_ranks(2, common + " --output-dir " + (tmp / "z0"));
  ASSERT_EQ(z0.status, 0) << z0.output;
  auto z1 = run_ranks(2, common + " --zero 1 --output-dir " + (tmp / "z1"));
  ASSERT_EQ(z1.status, 0) << z1.output;
  expect_same_losses(tmp / "z0/metrics.jsonl", tmp / "z1/metrics.jsonl", 4);
  expect_same_checkpoint(tmp / "z0/checkpoint-00000002", tmp / "z1/checkpoint-00000002");
  expect_same_checkpoint(tmp / "z0/checkpoint-00000004", tmp / "z1/checkpoint-00000004");
  EXPECT_NE(z1.output.find("pretrain: optimizer state per rank: "), std::string::npos) << z1.output;
  EXPECT_NE(z1.output.find("(--zero 1"), std::string::npos) << z1.output;
  const auto m1 = steps_of(tmp / "z1/metrics.jsonl");
  const double total = m1.at(1)["optimizer_state_bytes"].get<double>();
  const double per_rank = m1.at(1)["optimizer_state_bytes_per_rank"].get<double>();
  // The tiny model: 2 moments x 4 bytes per parameter; the largest shard is the token embedding
  // (50368 x 64 of ~3.4M parameters), so a rank holds less than the whole but more than half.
  EXPECT_GT(total, 2.0 * 4 * 3e6);
  EXPECT_LT(per_rank, total);
  EXPECT_GE(per_rank, total / 2);
  EXPECT_TRUE(m1.at(1).contains("allgather_s"));
  EXPECT_FALSE(m1.at(2).contains("optimizer_state_bytes")) << "only the first record of an invocation";
  EXPECT_EQ(steps_of(tmp / "z0/metrics.jsonl").at(1)["optimizer_state_bytes_per_rank"].get<double>(), total);
}

TEST(DistributedPretrain, ZeroStagesOtherThanOneAreRejected) {
  mbtest::TempDir tmp("dp_pretrain_z");
  auto r = mbtest::run_command(mbtest::cli() + " pretrain --data x.jsonl --output-dir " + (tmp / "o") + " --zero 2");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--zero must be 0 or 1, got 2"), std::string::npos) << r.output;
  const std::string cfg = tmp / "train.json";
  std::ofstream(cfg) << R"({"data": "x.jsonl", "output_dir": "o", "zero_stage": 3})";
  r = mbtest::run_command(mbtest::cli() + " pretrain --config " + cfg);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("field zero_stage must be 0 or 1, got 3"), std::string::npos) << r.output;
}

// The uninterrupted run that (d) and (e) continue to: 1 rank, 2 micro-batches per step, 6 steps,
// checkpoints every 2. Made once for the suite.
class DistributedPretrainResume : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new mbtest::TempDir("dp_pretrain_resume");
    data_ = write_corpus(*tmp_);
    common_ = common_flags(data_, 4, 0, 6) + " --save-every 2 --keep-last 5";
    ref_status_ = run_ranks(1, common_ + " --output-dir " + (*tmp_ / "ref"));
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  void SetUp() override { ASSERT_EQ(ref_status_.status, 0) << ref_status_.output; }

  // A resumed run ended where the reference did, with the same weights, moments and losses.
  static void expect_equals_reference(const std::string& dir) {
    expect_same_checkpoint(*tmp_ / "ref/checkpoint-00000006", dir + "/checkpoint-00000006");
    expect_same_losses(*tmp_ / "ref/metrics.jsonl", dir + "/metrics.jsonl", 6);
  }

  static inline mbtest::TempDir* tmp_ = nullptr;
  static inline std::string data_, common_;
  static inline mbtest::RunResult ref_status_;
};

// (d) A checkpoint saved by 1 rank resumes at 2 ranks (with --zero 1: each rank keeps its shard of
// the saved moments) and continues the same data order and schedule, bit for bit.
TEST_F(DistributedPretrainResume, SavedAtOneRankResumesAtTwo) {
  const std::string dir = *tmp_ / "one_then_two";
  auto killed = run_ranks(1, common_ + " --output-dir " + dir + " --kill-at-step 3");
  ASSERT_NE(killed.status, 0) << killed.output;
  ASSERT_TRUE(fs::exists(dir + "/checkpoint-00000002/trainer_state.safetensors"));
  auto resumed = run_ranks(2, common_ + " --output-dir " + dir + " --resume --zero 1");
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("the run was saved by 1 rank(s), this job has 2"), std::string::npos) << resumed.output;
  expect_equals_reference(dir);
}

// (e) Rank 1 of 2 (--zero 1) is SIGKILLed in the middle of step 3: the job ends within a bounded
// time, non-zero, naming the rank; the last checkpoint (step 2, moments gathered from both ranks)
// then resumes at 1 rank and at 2 ranks, each equal to the uninterrupted run (a checkpoint saved at
// 2 resumes at 1).
TEST_F(DistributedPretrainResume, KillOneRankThenResumeAtOneAndTwoRanks) {
  const std::string dir = *tmp_ / "killed";
  const auto t0 = std::chrono::steady_clock::now();
  auto killed = run_ranks(2, common_ + " --zero 1 --output-dir " + dir + " --kill-at-step 3 --kill-rank 1");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(killed.status, 0) << killed.output;
  EXPECT_NE(killed.status, 124) << "timed out: the job hung after losing a rank\n" << killed.output;
  EXPECT_LT(seconds, 60.0) << killed.output;
  EXPECT_NE(killed.output.find("rank 1: --kill-at-step 3: SIGKILL"), std::string::npos) << killed.output;
  // Open MPI names the dead rank ("process rank 1 with PID ... exited on signal 9").
  EXPECT_NE(killed.output.find("rank 1"), killed.output.rfind("rank 1")) << killed.output;
  EXPECT_NE(killed.output.find("signal 9"), std::string::npos) << killed.output;
  // The survivor says why it ends (the launcher's SIGTERM; distributed.h).
  EXPECT_NE(killed.output.find("rank 0 of 2: ended by the launcher"), std::string::npos) << killed.output;
  ASSERT_TRUE(fs::exists(dir + "/checkpoint-00000002/trainer_state.safetensors"));
  EXPECT_FALSE(fs::exists(dir + "/checkpoint-00000004"));

  for (int ranks : {1, 2}) {
    const std::string copy = dir + "_resumed_at_" + std::to_string(ranks);
    fs::copy(dir, copy, fs::copy_options::recursive);
    auto resumed = run_ranks(ranks, common_ + " --output-dir " + copy + " --resume");
    ASSERT_EQ(resumed.status, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
    if (ranks == 1) {
      EXPECT_NE(resumed.output.find("the run was saved by 2 rank(s), this job has 1"), std::string::npos)
          << resumed.output;
    }
    expect_equals_reference(copy);
  }
}

// (f) Ranks started with different flags (MPI's MPMD syntax: rank 0 --seed 1, rank 1 --seed 2) are
// stopped before the first step with an error naming the field, and the job exits non-zero.
TEST(DistributedPretrain, DifferentSettingsPerRankAreCaught) {
  mbtest::TempDir tmp("dp_pretrain_f");
  const std::string data = write_corpus(tmp);
  std::string common = common_flags(data, 4, 0, 2) + " --output-dir " + (tmp / "o");
  common.replace(common.find(" --seed 5"), 9, "");
  auto r = mbtest::run_command("timeout -k 5 120 env " + mb_test::mpirun(1) + mbtest::cli() + common +
                               " --seed 1 : -np 1 " + mbtest::cli() + common + " --seed 2");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.status, 124) << "timed out\n" << r.output;
  EXPECT_NE(r.output.find("the ranks of this job were started with different settings"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("identity.seed: 1 (rank 0) vs 2 (rank 1)"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "o/metrics.jsonl")) << "no step may run";
}

// An error only rank 0 can find (it alone reads the output directory: here, a run is already there)
// ends the whole job at once: rank 1, waiting in a collective, is ended by the launcher.
TEST(DistributedPretrain, AnErrorOnRankZeroOnlyEndsTheJob) {
  mbtest::TempDir tmp("dp_pretrain_g");
  const std::string data = write_corpus(tmp);
  fs::create_directories(tmp / "o");
  std::ofstream(tmp / "o/metrics.jsonl") << "{}\n";
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_ranks(2, common_flags(data, 4, 0, 2) + " --output-dir " + (tmp / "o"));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(seconds, 60.0) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2: modernbert pretrain: error: pretrain: " + (tmp / "o") + " already holds a run"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(read_file(tmp / "o/metrics.jsonl"), "{}\n");
}

// ---- the ZeRO-1 optimizer shard (no MPI) ---------------------------------------------------------

std::vector<ParamSpec> five_specs() {
  return {ParamSpec{"emb", {40, 8}, InitRule::kIn, true}, ParamSpec{"norm", {8}, InitRule::kOnes, false},
          ParamSpec{"w1", {8, 12}, InitRule::kIn, true}, ParamSpec{"b1", {12}, InitRule::kZeros, false},
          ParamSpec{"w2", {12, 8}, InitRule::kIn, true}};
}

TEST(ZeroShard, SplitTensorsBalancesAtTensorBoundaries) {
  const auto specs = five_specs();  // 320, 8, 96, 12, 96 elements (532)
  EXPECT_EQ(split_tensors(specs, 1), (std::vector<size_t>{0, 5}));
  // Half of 532 is 266: the nearest boundary is after the embedding (320).
  EXPECT_EQ(split_tensors(specs, 2), (std::vector<size_t>{0, 1, 5}));
  EXPECT_EQ(tensor_element_bounds(specs, split_tensors(specs, 2)), (std::vector<size_t>{0, 320, 532}));
  // Thirds at 177.3 and 354.7: after the embedding (320), then after w1 (424) vs norm (328): 328 is nearer.
  EXPECT_EQ(split_tensors(specs, 3), (std::vector<size_t>{0, 1, 2, 5}));
  // More parts than tensors: some ranges are empty, all are contiguous and cover everything.
  const auto many = split_tensors(specs, 8);
  ASSERT_EQ(many.size(), 9u);
  EXPECT_EQ(many.front(), 0u);
  EXPECT_EQ(many.back(), 5u);
  EXPECT_TRUE(std::is_sorted(many.begin(), many.end()));
  EXPECT_THROW(split_tensors(specs, 0), std::exception);
}

// Optimizers over the tensor ranges of a 3-way split, stepping the same parameters, give bit for
// bit the whole optimizer's weights and moments (StableAdamW's per-tensor RMS included), and each
// holds only its range's moments.
TEST(ZeroShard, ShardedOptimizersEqualTheWholeOne) {
  const auto specs = five_specs();
  const size_t n = 532;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> whole_params(n);
  for (float& x : whole_params) x = 0.1f * nd(rng);
  std::vector<float> shard_params = whole_params;
  for (OptimizerType type : {OptimizerType::kStableAdamW, OptimizerType::kAdamW}) {
    OptimizerConfig oc;
    oc.type = type;
    oc.lr = 1e-2;
    oc.weight_decay = 0.1;
    Optimizer whole(specs, oc);
    const auto t = split_tensors(specs, 3);
    std::vector<Optimizer> shards;
    for (size_t r = 0; r < 3; ++r) shards.emplace_back(specs, oc, t[r], t[r + 1]);
    EXPECT_EQ(shards[0].size() + shards[1].size() + shards[2].size(), n);
    EXPECT_EQ(shards[1].offset(), 320u);
    for (int step = 0; step < 4; ++step) {
      std::vector<float> g(n);
      for (float& x : g) x = nd(rng) * (step == 2 ? 1e-4f : 1.0f);  // small gradients: RMS > 1 somewhere
      whole.step(whole_params.data(), g.data(), oc.lr);
      for (auto& o : shards) o.step(shard_params.data(), g.data(), oc.lr);
      ASSERT_TRUE(whole_params == shard_params) << "step " << step;
    }
    for (size_t r = 0; r < 3; ++r) {
      const size_t lo = shards[r].offset();
      for (size_t i = 0; i < shards[r].size(); ++i) {
        ASSERT_EQ(shards[r].m()[i], whole.m()[lo + i]);
        ASSERT_EQ(shards[r].v()[i], whole.v()[lo + i]);
      }
      for (size_t p = t[r]; p < t[r + 1]; ++p) EXPECT_EQ(shards[r].last_rms()[p], whole.last_rms()[p]);
    }
  }
  EXPECT_THROW(Optimizer(specs, OptimizerConfig{}, 3, 2), std::exception);
  EXPECT_THROW(Optimizer(specs, OptimizerConfig{}, 0, 6), std::exception);
}

}  // namespace
