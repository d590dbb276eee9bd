// Checkpoints cross between us and the PyTorch reference (tests/reference, Debian's python3-torch):
// one we write loads there with the same tensors (and passes its spec §6.6 init-rule check), and ones
// the reference writes (F32/BF16/F16, prefixed or bare, sharded, every head, both config styles)
// load here with the same values.
#include <gtest/gtest.h>

#include <fstream>

#include "modernbert/model_dir.h"
#include "sha256.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;

namespace {

json run_check(const std::string& dir, bool init_rules) {
  std::string out = dir + "/.check.json";
  auto r = mbtest::run_command(mbtest::python() + " " + mbtest::reference_dir() + "/check_checkpoint.py " + dir +
                               (init_rules ? " --init-rules" : "") + " --output " + out);
  EXPECT_EQ(r.status, 0) << r.output;
  std::ifstream in(out);
  if (!in) return json::object();
  json j = json::parse(in);
  std::remove(out.c_str());
  return j;
}

// Every tensor of `m` has the reference's name (as stored), shape and SHA-256 of its F32 values.
void expect_same_tensors(const LoadedModel& m, const json& check) {
  ASSERT_TRUE(check.contains("tensors")) << check.dump();
  EXPECT_TRUE(check["errors"].empty()) << check["errors"].dump();
  std::map<std::string, json> theirs;
  for (const auto& t : check["tensors"]) theirs[t["name"]] = t;
  size_t matched = 0;
  for (const auto& s : m.weights.specs()) {
    std::string stored = (!m.has_prefix && s.name.rfind("model.", 0) == 0) ? s.name.substr(6) : s.name;
    auto it = theirs.find(stored);
    ASSERT_NE(it, theirs.end()) << "reference lacks " << stored;
    EXPECT_EQ(it->second["shape"].get<std::vector<int64_t>>(), s.shape) << stored;
    EXPECT_EQ(it->second["sha256"], mbtest::sha256_hex(m.weights.param(s.name), sizeof(float) * s.numel())) << stored;
    ++matched;
  }
  EXPECT_EQ(matched, theirs.size());
}

}  // namespace

TEST(ReferenceIO, Sha256KnownAnswer) {
  EXPECT_EQ(mbtest::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(mbtest::sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  std::string m(1000, 'a');
  EXPECT_EQ(mbtest::sha256_hex(m.data(), m.size()), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
}

TEST(ReferenceIO, OurCheckpointLoadsInReference) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("refio");
  struct Case { std::string args; };
  std::vector<std::string> cases = {
      "--preset tiny --heads mlm",
      "--preset tiny --heads cls:3 --dtype bf16",
      "--config " + tmp / "cfg.json" + " --heads token:4",
      "--config " + tmp / "cfg.json" + " --heads mlm --dtype f16",
  };
  // Every bias on, untied decoder, custom layer pattern.
  std::ofstream(tmp / "cfg.json") << json({{"vocab_size", 1000}, {"hidden_size", 48}, {"intermediate_size", 80},
                                           {"num_hidden_layers", 5}, {"num_attention_heads", 3}, {"local_attention", 12},
                                           {"global_attn_every_n_layers", 2}, {"attention_bias", true}, {"mlp_bias", true},
                                           {"norm_bias", true}, {"classifier_bias", true}, {"tie_word_embeddings", false},
                                           {"pad_token_id", 3}, {"cls_token_id", 1}, {"sep_token_id", 2}})
                                         .dump();
  int i = 0;
  for (const auto& args : cases) {
    std::string dir = tmp / ("m" + std::to_string(i++));
    auto r = mbtest::run_command(mbtest::cli() + " init " + args + " --seed 3 --out " + dir);
    ASSERT_EQ(r.status, 0) << r.output;
    LoadedModel m = load_model_dir(dir);
    // Only the F32 cases get the statistical init check (half storage is checked for equality only).
    json check = run_check(dir, /*init_rules=*/args.find("--dtype") == std::string::npos);
    expect_same_tensors(m, check);
    if (check.contains("init_rules")) {
      for (const auto& rule : check["init_rules"]) EXPECT_TRUE(rule.value("ok", true)) << rule.dump();
    }
  }
}

TEST(ReferenceIO, ReferenceCheckpointsLoadHere) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("refio2");
  std::vector<std::string> cases = {
      "--preset tiny --head mlm",
      "--preset tiny --head mlm --dtype BF16 --no-prefix --config-style v5 --shards 3",
      "--preset tiny --head cls:3 --dtype F16 --set attention_bias=true --set mlp_bias=true --set norm_bias=true "
      "--set classifier_bias=true",
      "--preset tiny --head mlm --set tie_word_embeddings=false --set decoder_bias=false",
      "--preset tiny --head token:5 --set global_attn_every_n_layers=2",
      "--preset tiny --head none --no-prefix",
  };
  int i = 0;
  for (const auto& args : cases) {
    std::string dir = tmp / ("r" + std::to_string(i++));
    auto r = mbtest::run_command(mbtest::python() + " " + mbtest::reference_dir() + "/make_checkpoint.py " + args +
                                 " --seed 4 --out " + dir);
    ASSERT_EQ(r.status, 0) << args << "\n" << r.output;
    LoadedModel m = load_model_dir(dir);
    json check = run_check(dir, false);
    SCOPED_TRACE(args);
    expect_same_tensors(m, check);
    if (args.find("--head none") != std::string::npos) {
      EXPECT_FALSE(m.weights.heads().any());
    }
    if (args.find("token:5") != std::string::npos) {
      EXPECT_EQ(m.weights.heads().classifier, HeadSet::Classifier::kToken);
    }
  }
}
