// Smoke test of `modernbert bench` (no timing assertions): on a tiny random model, the JSON line
// has every key, counts the input's tokens/sequences/batches, counts useful FLOPs as documented
// (checked against a brute-force count), and --dump-hidden writes the hidden states per token.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modernbert/config.h"
#include "modernbert/safetensors.h"
#include "test_util.h"

namespace {

using mbtest::cli;
using mbtest::run_command;

using mbtest::last_json_line;

// Brute force: per layer, linears + 4·d·heads·(visible keys summed over queries).
double brute_flops(const modernbert::ModelConfig& c, const std::vector<int>& lens) {
  const double H = c.hidden_size, I = c.intermediate_size;
  double f = 0;
  for (int n : lens)
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      f += 2.0 * (3 * H * H + H * H + 2 * I * H + I * H) * n;
      const int64_t hw = c.half_window(l);
      double keys = 0;
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j) keys += (hw < 0 || std::abs(i - j) <= hw) ? 1 : 0;
      f += 4.0 * static_cast<double>(c.head_dim()) * static_cast<double>(c.num_attention_heads) * keys;
    }
  return f;
}

TEST(BenchCli, HelpListsEveryFlag) {
  auto r = run_command(cli() + " bench --help");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"--model", "--input", "--threads", "--repeat", "--warmup", "--max-batch-tokens", "--dump-hidden"})
    EXPECT_NE(r.output.find(f), std::string::npos) << f;
}

TEST(BenchCli, TinyModelJsonLine) {
  mbtest::TempDir tmp("bench_cli");
  ASSERT_FALSE(tmp.path().empty());
  auto r = run_command(cli() + " init --preset tiny --out " + (tmp / "model"));
  ASSERT_EQ(r.status, 0) << r.output;
  const auto cfg = modernbert::ModelConfig::from_file(tmp / "model/config.json");
  // Budget 20: [5, 7] | [30] (longer than the budget: alone) | [3, 9]  ->  3 batches.
  const std::vector<int> lens{5, 7, 30, 3, 9};
  {
    std::ofstream f(tmp / "in.jsonl");
    int id = 0;
    for (int n : lens) {
      f << "{\"input_ids\": [";
      for (int k = 0; k < n; ++k) f << (k ? ", " : "") << (id++ * 7 + 3) % std::min<int64_t>(cfg.vocab_size, 200);
      f << "]}\n";
    }
    f << "\n";  // blank lines are skipped
  }
  r = run_command(cli() + " bench --model " + (tmp / "model") + " --input " + (tmp / "in.jsonl") +
                  " --threads 2 --warmup 1 --repeat 3 --max-batch-tokens 20 --dump-hidden " + (tmp / "h.safetensors"));
  ASSERT_EQ(r.status, 0) << r.output;
  nlohmann::json j = last_json_line(r.output);
  for (const char* k : {"tokens", "sequences", "batches", "seconds_median", "seconds_min", "tokens_per_s", "gflops",
                        "peak_rss_mib", "threads", "gflop_per_pass"})
    EXPECT_TRUE(j.contains(k)) << k << " in " << r.output;
  EXPECT_EQ(j["tokens"].get<int>(), 54);
  EXPECT_EQ(j["sequences"].get<int>(), 5);
  EXPECT_EQ(j["batches"].get<int>(), 3);
  EXPECT_EQ(j["threads"].get<int>(), 2);
  EXPECT_EQ(j["seconds_all"].size(), 3u);
  EXPECT_LE(j["seconds_min"].get<double>(), j["seconds_median"].get<double>());
  EXPECT_GT(j["tokens_per_s"].get<double>(), 0);
  EXPECT_GT(j["peak_rss_mib"].get<double>(), 0);
  EXPECT_NEAR(j["gflop_per_pass"].get<double>(), brute_flops(cfg, lens) * 1e-9, 1e-9);

  auto st = modernbert::SafeTensorsFile::open(tmp / "h.safetensors");
  EXPECT_EQ(st->at("last_hidden_state").shape, (std::vector<int64_t>{54, cfg.hidden_size}));
  EXPECT_EQ(st->to_i64("cu_seqlens"), (std::vector<int64_t>{0, 5, 12, 42, 45, 54}));
  EXPECT_EQ(st->to_i64("input_ids").size(), 54u);
}

TEST(BenchCli, RejectsBadInput) {
  mbtest::TempDir tmp("bench_cli_bad");
  auto r = run_command(cli() + " init --preset tiny --out " + (tmp / "model"));
  ASSERT_EQ(r.status, 0) << r.output;
  {
    std::ofstream f(tmp / "in.jsonl");
    f << "{\"input_ids\": [1, 2]}\n{\"input_ids\": []}\n";
  }
  r = run_command(cli() + " bench --model " + (tmp / "model") + " --input " + (tmp / "in.jsonl"));
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("in.jsonl:2: field input_ids: empty list of token ids"), std::string::npos) << r.output;
  r = run_command(cli() + " bench --model " + (tmp / "model") + " --input " + (tmp / "in.jsonl") + " --repeat 0");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--repeat"), std::string::npos) << r.output;
}

}  // namespace
