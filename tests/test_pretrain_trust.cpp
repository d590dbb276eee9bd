// Trust in pretraining runs: a damaged or foreign trainer state is refused naming the field, a
// resume must match the run it continues, no command destroys a run, and a kill at any named point
// of checkpoint saving still resumes bit-exactly. Also built into the ASan/UBSan test binary.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "modernbert/safetensors.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace modernbert;

namespace {

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Token-id documents: enough for a few steps of the tiny model.
std::string write_docs(const std::string& path, int docs, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ofstream out(path);
  for (int i = 0; i < docs; ++i) {
    const int n = 5 + static_cast<int>(rng() % 50);
    out << "{\"input_ids\": [1";
    for (int t = 0; t < n; ++t) out << ", " << 3 + static_cast<int>(rng() % 500);
    out << ", 2]}\n";
  }
  return path;
}

// The test run's flags; `extra` adds flags and `over` replaces defaults (e.g. {"seed", "6"}).
std::string pretrain_cmd(const std::string& data, const std::string& out, const std::string& extra,
                         const std::map<std::string, std::string>& over = {}) {
  std::map<std::string, std::string> f = {{"model-config", "tiny"},
                                          {"seq-len", "64"},
                                          {"micro-batch-size", "2"},
                                          {"global-batch-size", "4"},
                                          {"batch-warmup-tokens", "300"},
                                          {"warmup-tokens", "200"},
                                          {"lr", "3e-3"},
                                          {"weight-decay", "0.01"},
                                          {"save-every", "3"},
                                          {"keep-last", "2"},
                                          {"eval-every", "4"},
                                          {"eval-documents", "10"},
                                          {"seed", "5"},
                                          {"mask-token-id", "4"},
                                          {"threads", "2"}};
  for (const auto& [k, v] : over) f[k] = v;
  std::string cmd = mbtest::cli() + " pretrain --data " + data + " --output-dir " + out;
  for (const auto& [k, v] : f) cmd += " --" + k + " " + v;
  return cmd + " " + extra;
}

// Rewrites a safetensors file with its tensors and "state" metadata edited.
void rewrite_state(const std::string& path, const std::function<void(nlohmann::json&)>& edit_state,
                   const std::function<void(TensorInfo&, std::string&)>& edit_tensor = {},
                   const std::function<void(std::map<std::string, std::string>&)>& edit_metadata = {}) {
  std::vector<std::pair<TensorInfo, std::string>> tensors;
  std::map<std::string, std::string> meta;
  {
    auto sf = SafeTensorsFile::open(path);
    meta = sf->metadata();
    for (const auto& t : sf->tensors())
      tensors.emplace_back(t, std::string(reinterpret_cast<const char*>(sf->data(t)), t.end - t.begin));
  }
  SafeTensorsWriter w;
  for (auto& [t, bytes] : tensors) {
    if (edit_tensor) edit_tensor(t, bytes);
    w.add(t.name, t.dtype, t.shape, bytes.data());
  }
  if (edit_state) {
    nlohmann::json st = nlohmann::json::parse(meta.at("state"));
    edit_state(st);
    meta["state"] = st.dump();
  }
  if (edit_metadata) edit_metadata(meta);
  for (const auto& [k, v] : meta) w.set_metadata(k, v);
  w.write(path);
}

// One 3-step run with a checkpoint at step 3, made once and copied by each test.
class PretrainTrust : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new mbtest::TempDir("pretrain_trust");
    data_ = write_docs(*dir_ / "docs.jsonl", 300, 1);
    auto r = mbtest::run_command(pretrain_cmd(data_, *dir_ / "base", "--max-steps 3"));
    ASSERT_EQ(r.status, 0) << r.output;
    ASSERT_TRUE(fs::exists(*dir_ / "base/checkpoint-00000003/trainer_state.safetensors"));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  // A copy of the base run in a new directory.
  std::string copy_run(const std::string& name) {
    const std::string d = *dir_ / name;
    fs::remove_all(d);
    fs::copy(*dir_ / "base", d, fs::copy_options::recursive);
    return d;
  }
  static mbtest::TempDir* dir_;
  static std::string data_;
};
mbtest::TempDir* PretrainTrust::dir_ = nullptr;
std::string PretrainTrust::data_;

struct Corruption {
  const char* name;
  const char* field;  // the error must name it
  std::function<void(nlohmann::json&)> state;
  std::function<void(TensorInfo&, std::string&)> tensor;
};

// Element count changes for a 1-D tensor of `elem` bytes per element.
void resize_1d(TensorInfo& t, std::string& bytes, int64_t delta, size_t elem) {
  t.shape[0] += delta;
  bytes.resize(static_cast<size_t>(t.shape[0]) * elem, '\0');
}
void set_i64(std::string& bytes, size_t k, int64_t v) { std::memcpy(bytes.data() + 8 * k, &v, 8); }

}  // namespace

TEST_F(PretrainTrust, DamagedTrainerStateIsRefusedNamingTheFieldAndChangesNothing) {
  const std::vector<Corruption> cases = {
      {"m_longer",
       "optimizer.m",
       {},
       [](TensorInfo& t, std::string& b) {
         if (t.name == "optimizer.m") resize_1d(t, b, 1, 4);
       }},
      {"v_shorter",
       "optimizer.v",
       {},
       [](TensorInfo& t, std::string& b) {
         if (t.name == "optimizer.v") resize_1d(t, b, -7, 4);
       }},
      {"m_dtype",
       "optimizer.m",
       {},
       [](TensorInfo& t, std::string& b) {
         if (t.name == "optimizer.m") {
           t.dtype = DType::kI32;
         }
         (void)b;
       }},
      {"len_huge",
       "packer.lengths[0]",
       {},
       [](TensorInfo& t, std::string& b) {
         if (t.name == "packer.lengths") set_i64(b, 0, 50000000);
       }},
      {"len_negative",
       "packer.lengths[0]",
       {},
       [](TensorInfo& t, std::string& b) {
         if (t.name == "packer.lengths") set_i64(b, 0, -3);
       }},
      {"len_sum",
       "packer.lengths",
       {},
       [](TensorInfo& t, std::string& b) {
         if (t.name == "packer.ids") resize_1d(t, b, -1, 8);
       }},
      {"id_range",
       "packer.ids[0]",
       {},
       [](TensorInfo& t, std::string& b) {
         if (t.name == "packer.ids") set_i64(b, 0, 99999999);
       }},
      {"cursor_negative", "cursor", [](nlohmann::json& s) { s["cursor"] = -5; }, {}},
      {"cursor_past_end", "cursor", [](nlohmann::json& s) { s["cursor"] = 1000000; }, {}},
      {"epoch_negative", "epoch", [](nlohmann::json& s) { s["epoch"] = -1; }, {}},
      {"step_negative", "step", [](nlohmann::json& s) { s["step"] = -2; }, {}},
      {"optimizer_step", "optimizer_step", [](nlohmann::json& s) { s["optimizer_step"] = 99; }, {}},
      {"skipped", "skipped", [](nlohmann::json& s) { s["skipped"] = 9; }, {}},
      {"tokens_nan", "tokens", [](nlohmann::json& s) { s["tokens"] = "nan"; }, {}},
      {"tokens_too_many", "tokens", [](nlohmann::json& s) { s["tokens"] = "0x1p+40"; }, {}},
      {"row_serial", "row_serial", [](nlohmann::json& s) { s["row_serial"] = 1; }, {}},
      {"missing_epoch", "epoch", [](nlohmann::json& s) { s.erase("epoch"); }, {}},
      {"wrong_type", "step", [](nlohmann::json& s) { s["step"] = "three"; }, {}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string d = copy_run(std::string("corrupt_") + c.name);
    const std::string state = d + "/checkpoint-00000003/trainer_state.safetensors";
    rewrite_state(
        state, c.state ? c.state : [](nlohmann::json&) {}, c.tensor);
    const std::string before_state = slurp(state), before_metrics = slurp(d + "/metrics.jsonl");
    auto r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 5 --resume"));
    EXPECT_EQ(r.status, 1) << r.output;
    EXPECT_NE(r.output.find("field " + std::string(c.field)), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("trainer_state.safetensors"), std::string::npos) << r.output;
    // Nothing changed: no new checkpoint, metrics and state as they were.
    EXPECT_FALSE(fs::exists(d + "/checkpoint-00000005"));
    EXPECT_EQ(slurp(state), before_state);
    EXPECT_EQ(slurp(d + "/metrics.jsonl"), before_metrics);
  }
}

TEST_F(PretrainTrust, MissingOrInvalidStateMetadataIsNamed) {
  const std::string d = copy_run("no_state");
  rewrite_state(d + "/checkpoint-00000003/trainer_state.safetensors", {}, {},
                [](std::map<std::string, std::string>& meta) { meta["state"] = "{not json"; });
  auto r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 5 --resume"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("field state: invalid JSON"), std::string::npos) << r.output;
}

TEST_F(PretrainTrust, ResumeRefusesAChangedRunNamingEachDifference) {
  const std::string d = copy_run("identity");
  const std::string metrics = slurp(d + "/metrics.jsonl");
  // Another seed and another learning rate: both named, nothing written.
  auto r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 5 --resume", {{"lr", "1e-3"}, {"seed", "6"}}));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("seed: 5 (saved) vs 6 (now)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("optimizer.lr"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--ignore-run-mismatch"), std::string::npos) << r.output;
  EXPECT_EQ(slurp(d + "/metrics.jsonl"), metrics);
  // The same path with other content: the data file's size and hash differ.
  const std::string other = write_docs(*dir_ / "docs_other.jsonl", 300, 2);
  r = mbtest::run_command(pretrain_cmd(other, d, "--max-steps 5 --resume"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("data[0].hash"), std::string::npos) << r.output;
  // A different model config is a difference too.
  r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 5 --resume --global-rope-theta 20000"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("model.global_rope_theta"), std::string::npos) << r.output;
  // Stopping and logging fields may change; the explicit override resumes a changed run.
  r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 4 --resume --log-every 2", {{"keep-last", "5"}}));
  EXPECT_EQ(r.status, 0) << r.output;
  r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 5 --resume --ignore-run-mismatch", {{"seed", "6"}}));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("warning: --ignore-run-mismatch"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(d + "/checkpoint-00000005/trainer_state.safetensors"));
}

TEST_F(PretrainTrust, NoCommandDestroysARun) {
  const std::string d = copy_run("guard");
  const std::string ckpt = slurp(d + "/checkpoint-00000003/model.safetensors");
  const std::string metrics = slurp(d + "/metrics.jsonl");
  // Without --resume or --overwrite: refused, everything intact.
  auto r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 3"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("already holds a run"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("checkpoint-00000003"), std::string::npos) << r.output;
  EXPECT_EQ(slurp(d + "/checkpoint-00000003/model.safetensors"), ckpt);
  EXPECT_EQ(slurp(d + "/metrics.jsonl"), metrics);
  r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 3 --resume --overwrite"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(slurp(d + "/metrics.jsonl"), metrics);
  // An --overwrite that cannot start (no such data; initial weights that do not load) fails before
  // it removes anything; a new --output-dir is not even created.
  r = mbtest::run_command(pretrain_cmd(*dir_ / "no_such_data.jsonl", d, "--max-steps 2 --overwrite"));
  EXPECT_EQ(r.status, 1) << r.output;
  r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 2 --overwrite --init-from " + (*dir_ / "no_such_model")));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(slurp(d + "/checkpoint-00000003/model.safetensors"), ckpt);
  EXPECT_EQ(slurp(d + "/metrics.jsonl"), metrics);
  const std::string fresh = *dir_ / "never_created";
  r = mbtest::run_command(pretrain_cmd(data_, fresh, "--max-steps 2 --tile-from " + (*dir_ / "no_such_model")));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_FALSE(fs::exists(fresh));
  // --overwrite replaces it explicitly: a fresh run of 2 steps, the old checkpoint gone.
  r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 2 --overwrite"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(d + "/checkpoint-00000003"));
  EXPECT_TRUE(fs::exists(d + "/checkpoint-00000002/model.safetensors"));
}

TEST_F(PretrainTrust, KeepLastPrunesOnlyThisRunsCheckpointsAndMetricsAreAppended) {
  const std::string d = copy_run("prune");
  // A checkpoint of another run (other seed) lands in the directory under an older step's name.
  const std::string foreign = *dir_ / "foreign";
  auto r = mbtest::run_command(pretrain_cmd(data_, foreign, "--max-steps 1", {{"seed", "9"}}));
  ASSERT_EQ(r.status, 0) << r.output;
  fs::copy(foreign + "/checkpoint-00000001", d + "/checkpoint-00000001", fs::copy_options::recursive);
  const std::string metrics = slurp(d + "/metrics.jsonl");
  r = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 9 --resume", {{"keep-last", "1"}}));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(fs::exists(d + "/checkpoint-00000001/model.safetensors")) << "another run's checkpoint was pruned";
  EXPECT_FALSE(fs::exists(d + "/checkpoint-00000003"));
  EXPECT_FALSE(fs::exists(d + "/checkpoint-00000006"));
  EXPECT_TRUE(fs::exists(d + "/checkpoint-00000009"));
  // metrics.jsonl: the old bytes untouched, then a resume record, then steps 4..9.
  const std::string now = slurp(d + "/metrics.jsonl");
  ASSERT_GT(now.size(), metrics.size());
  EXPECT_EQ(now.substr(0, metrics.size()), metrics);
  std::istringstream rest(now.substr(metrics.size()));
  std::string line;
  ASSERT_TRUE(std::getline(rest, line));
  const auto ev = nlohmann::json::parse(line);
  EXPECT_EQ(ev.value("event", ""), "resume");
  EXPECT_EQ(ev.value("step", -1), 3);
  int64_t expect_step = 4;
  while (std::getline(rest, line)) EXPECT_EQ(nlohmann::json::parse(line).value("step", -1), expect_step++);
  EXPECT_EQ(expect_step, 10);
}

// Uninterrupted 8-step run vs runs killed at each named point of the step-6 checkpoint (and mid-step
// 5), each resumed: the final checkpoint is byte-identical and every step's loss equal.
TEST_F(PretrainTrust, KillAtAnyPointOfCheckpointSavingResumesBitExactly) {
  const std::string ref = *dir_ / "kill_ref";
  auto r = mbtest::run_command(pretrain_cmd(data_, ref, "--max-steps 8"));
  ASSERT_EQ(r.status, 0) << r.output;
  auto last_loss_per_step = [](const std::string& path) {
    std::map<int64_t, nlohmann::json> m;
    std::ifstream in(path);
    std::string l;
    while (std::getline(in, l)) {
      const auto j = nlohmann::json::parse(l);
      if (!j.contains("event")) m[j.at("step").get<int64_t>()] = j.at("loss");
    }
    return m;
  };
  const auto ref_losses = last_loss_per_step(ref + "/metrics.jsonl");
  ASSERT_EQ(ref_losses.size(), 8u);
  for (const std::string point :
       {"step@5", "before_state_write@6", "mid_state_write@6", "before_rename@6", "after_rename@6"}) {
    SCOPED_TRACE(point);
    const std::string d = *dir_ / ("kill_" + point.substr(0, point.find('@')));
    auto k = mbtest::run_command("MODERNBERT_TEST_KILL_AT=" + point + " " + pretrain_cmd(data_, d, "--max-steps 8"));
    ASSERT_NE(k.status, 0) << k.output;
    EXPECT_NE(k.output.find("test kill point " + point.substr(0, point.find('@'))), std::string::npos) << k.output;
    EXPECT_FALSE(fs::exists(d + "/checkpoint-00000008"));
    if (point == "mid_state_write@6") {  // the kill landed inside the write: a partial temp file is left
      bool partial = false;
      for (const auto& e : fs::directory_iterator(d + "/.tmp-checkpoint-00000006"))
        if (e.path().filename().string().rfind("trainer_state.safetensors.tmp", 0) == 0)
          partial = fs::file_size(e.path()) > 0 &&
                    fs::file_size(e.path()) < fs::file_size(ref + "/checkpoint-00000006/trainer_state.safetensors");
      EXPECT_TRUE(partial);
    }
    // Only after_rename has left a complete step-6 checkpoint.
    EXPECT_EQ(fs::exists(d + "/checkpoint-00000006/trainer_state.safetensors"), point == "after_rename@6");
    auto res = mbtest::run_command(pretrain_cmd(data_, d, "--max-steps 8 --resume"));
    ASSERT_EQ(res.status, 0) << res.output;
    EXPECT_FALSE(fs::exists(d + "/.tmp-checkpoint-00000006"));
    for (const char* f : {"model.safetensors", "trainer_state.safetensors"})
      EXPECT_TRUE(slurp(ref + "/checkpoint-00000008/" + f) == slurp(d + "/checkpoint-00000008/" + f))
          << f << " differs after the resume";
    EXPECT_EQ(last_loss_per_step(d + "/metrics.jsonl"), ref_losses);
  }
}

// Data errors name FILE:LINE (ids that would wrap, invalid UTF-8), and --lossy-utf8 reads the text.
TEST_F(PretrainTrust, DataErrorsNameFileAndLineAndLossyUtf8ReadsText) {
  const std::string ids = *dir_ / "ids_bad.jsonl";
  std::ofstream(ids) << "{\"input_ids\": [1, 5, 2]}\n{\"input_ids\": [1, 5, 2]}\n{\"input_ids\": [1, 4294967807, 2]}\n";
  auto r = mbtest::run_command(pretrain_cmd(ids, *dir_ / "ids_out", "--max-steps 1"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(ids + ":3: field input_ids[1]: id 4294967807"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(*dir_ / "ids_out/metrics.jsonl"));

  const std::string tokjson = std::string(MB_SOURCE_DIR) + "/tests/data/tokenizer/trained_small/tokenizer.json";
  const std::string txt = *dir_ / "bad_utf8.txt";
  {
    std::ofstream out(txt, std::ios::binary);
    for (int i = 0; i < 40; ++i)
      out << (i == 2 ? std::string("caf\xC3 au lait \xFF") : "the quick brown fox number " + std::to_string(i)) << "\n";
  }
  r = mbtest::run_command(pretrain_cmd(txt, *dir_ / "utf8_out", "--max-steps 1 --tokenizer " + tokjson));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(txt + ":3: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--lossy-utf8"), std::string::npos) << r.output;
  r = mbtest::run_command(pretrain_cmd(txt, *dir_ / "utf8_out", "--max-steps 1 --lossy-utf8 --tokenizer " + tokjson));
  EXPECT_EQ(r.status, 0) << r.output;
}
