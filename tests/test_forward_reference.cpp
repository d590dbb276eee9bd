// Exactness of the inference engine against the independent PyTorch reference (tests/reference,
// padded with explicit masks, run in float64): last hidden state, MLM logits, pooled embeddings,
// classifier and token logits, on random checkpoints whose weights make every component matter.
// Our side runs through the `modernbert encode` CLI, so the file contract is tested as well.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/safetensors.h"
#include "test_util.h"

using namespace modernbert;

namespace {

// Relative tolerance: max |ours - ref| / max |ref| per tensor (fp32 engine vs float64 reference).
constexpr double kRelTol = 1e-5;
// And element-wise, |ours - ref| <= atol + kRtol |ref| for every element (mbtest::allclose), so a
// small element cannot hide under a large one (max-normalised, an element 1e-4 of the largest may
// be 10% off). Measured with MB_ALLCLOSE_STATS=1 at kRtol: the atol needed was <= 2.3e-6 on the
// tiny configs, the 8192-token sequence and the half-precision checkpoints (so kAtol = 1e-5), and
// 8.4e-6 on the 22-layer base-shaped model (kAtolDeep = 3e-5); no element needed more than
// 1e-4 relative where |ref| >= atol.
constexpr double kAtol = 1e-5, kAtolDeep = 3e-5, kRtol = 1e-4;

void write_ids(const std::string& path, const std::vector<std::vector<int>>& seqs) {
  std::ofstream f(path);
  for (const auto& s : seqs) {
    f << "{\"input_ids\": [";
    for (size_t i = 0; i < s.size(); ++i) f << (i ? ", " : "") << s[i];
    f << "]}\n";
  }
}

std::vector<std::vector<int>> random_seqs(const std::vector<int>& lengths, int vocab, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int>> out;
  for (int n : lengths) {
    std::vector<int> s(static_cast<size_t>(n));
    for (auto& x : s) x = static_cast<int>(rng() % static_cast<unsigned>(vocab));
    out.push_back(s);
  }
  return out;
}

void make_checkpoint(const std::string& dir, const std::string& args) {
  auto r = mbtest::run_command(mbtest::python() + " " + mbtest::reference_dir() + "/make_checkpoint.py " + args + " --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
}

double compare(const SafeTensorsFile& ours, const SafeTensorsFile& ref, const std::string& name, double atol) {
  const TensorInfo* a = ours.find(name);
  const TensorInfo* b = ref.find(name);
  EXPECT_TRUE(a && b) << name << " missing (ours " << (a != nullptr) << ", ref " << (b != nullptr) << ")";
  if (!a || !b) return 1e30;
  EXPECT_EQ(a->shape, b->shape) << name;
  if (a->shape != b->shape) return 1e30;
  if (a->dtype == DType::kI64) {
    EXPECT_EQ(ours.to_i64(name), ref.to_i64(name)) << name;
    return 0;
  }
  auto x = ours.to_f32(name), y = ref.to_f32(name);
  double diff = 0, scale = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_TRUE(std::isfinite(x[i])) << name << "[" << i << "]";
    diff = std::max(diff, std::fabs(double(x[i]) - y[i]));
    scale = std::max(scale, std::fabs(double(y[i])));
  }
  double rel = diff / std::max(scale, 1e-30);
  EXPECT_LE(rel, kRelTol) << name << ": max abs diff " << diff << " vs max |ref| " << scale;
  mbtest::expect_allclose(x, y, atol, kRtol, name);
  return rel;
}

// Runs both sides on `seqs` and compares `outputs`. Extra flags go to both sides.
void check_model(const std::string& dir, const std::vector<std::vector<int>>& seqs, const std::string& outputs,
                 const std::string& flags = "", const std::string& tag = "", double atol = kAtol) {
  std::string in = dir + "/in" + tag + ".jsonl", ours = dir + "/ours" + tag + ".safetensors", ref = dir + "/ref" + tag + ".safetensors";
  write_ids(in, seqs);
  auto r1 = mbtest::run_command(mbtest::cli() + " encode --model " + dir + " --input " + in + " --output " + ours +
                                " --outputs " + outputs + " " + flags);
  ASSERT_EQ(r1.status, 0) << r1.output;
  auto r2 = mbtest::run_command(mbtest::python() + " " + mbtest::reference_dir() + "/run_reference.py --model " + dir +
                                " --input " + in + " --output " + ref + " --outputs " + outputs + " --dtype float64 " + flags);
  ASSERT_EQ(r2.status, 0) << r2.output;
  auto a = SafeTensorsFile::open(ours), b = SafeTensorsFile::open(ref);
  std::stringstream ss(outputs);
  std::string name;
  while (std::getline(ss, name, ',')) {
    double rel = compare(*a, *b, name, atol);
    ::testing::Test::RecordProperty(tag + name + "_rel_err", std::to_string(rel));
    std::printf("  %s%s: max rel err %.3g\n", tag.c_str(), name.c_str(), rel);
  }
}

}  // namespace

// Window (|i-j| <= 4) much shorter than the inputs; lengths 1 .. several windows; MLM head.
TEST(ForwardReference, TinyWindowShorterThanInputsMixedLengths) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("fwd_tiny");
  make_checkpoint(tmp.path(), "--preset tiny --head mlm --seed 1");
  auto seqs = random_seqs({1, 2, 5, 9, 17, 40, 64, 3, 100}, 512, 7);
  check_model(tmp.path(), seqs, "input_ids,cu_seqlens,last_hidden_state,mlm_logits,embeddings", "", "_mean");
  check_model(tmp.path(), seqs, "embeddings", "--pooling cls", "_cls");
  check_model(tmp.path(), seqs, "embeddings", "--pooling mean --normalize", "_norm");
}

// 22 layers, hidden 768, 12 heads, intermediate 1152, window 128 — base-shaped (small vocabulary).
TEST(ForwardReference, BaseShaped22Layers) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("fwd_base");
  make_checkpoint(tmp.path(), "--preset base --set vocab_size=2048 --set pad_token_id=0 --set cls_token_id=1 "
                              "--set bos_token_id=1 --set sep_token_id=2 --set eos_token_id=2 --head mlm --seed 2");
  check_model(tmp.path(), random_seqs({300, 7, 129, 1}, 2048, 8), "last_hidden_state,mlm_logits,embeddings", "", "",
              kAtolDeep);
}

TEST(ForwardReference, HalfPrecisionCheckpoints) {
  MB_REQUIRE_TORCH();
  for (const char* dt : {"BF16", "F16"}) {
    mbtest::TempDir tmp(std::string("fwd_") + dt);
    make_checkpoint(tmp.path(), std::string("--preset tiny --head mlm --seed 3 --dtype ") + dt);
    SCOPED_TRACE(dt);
    check_model(tmp.path(), random_seqs({33, 12, 1}, 512, 9), "last_hidden_state,mlm_logits");
  }
}

// Every bias on, untied decoder, tanh-GELU, bare names (ModernBertModel style) — MLM head.
TEST(ForwardReference, AllBiasesUntiedDecoder) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("fwd_bias");
  make_checkpoint(tmp.path(), "--preset tiny --head mlm --seed 4 --set attention_bias=true --set mlp_bias=true "
                              "--set norm_bias=true --set classifier_bias=true --set tie_word_embeddings=false "
                              "--set hidden_activation='\"gelu_pytorch_tanh\"' --config-style v5");
  check_model(tmp.path(), random_seqs({20, 1, 45}, 512, 10), "last_hidden_state,mlm_logits,embeddings");
}

TEST(ForwardReference, SequenceClassificationHeads) {
  MB_REQUIRE_TORCH();
  for (const char* pool : {"mean", "cls"}) {
    mbtest::TempDir tmp(std::string("fwd_cls_") + pool);
    make_checkpoint(tmp.path(), std::string("--preset tiny --head cls:3 --seed 5 --set norm_bias=true --set classifier_bias=true "
                                            "--set classifier_pooling='\"") + pool + "\"'");
    SCOPED_TRACE(pool);
    check_model(tmp.path(), random_seqs({15, 1, 30, 9}, 512, 11), "last_hidden_state,logits,embeddings");
  }
}

TEST(ForwardReference, TokenClassificationHead) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("fwd_tok");
  make_checkpoint(tmp.path(), "--preset tiny --head token:5 --seed 6 --set global_attn_every_n_layers=2");
  check_model(tmp.path(), random_seqs({25, 3, 11}, 512, 12), "last_hidden_state,token_logits");
}

// One 8192-token sequence on a small config (window 128 as in ModernBERT).
TEST(ForwardReference, LongSequence8192) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("fwd_long");
  make_checkpoint(tmp.path(), "--preset tiny --head none --seed 7 --set num_hidden_layers=3 --set local_attention=128 "
                              "--set max_position_embeddings=8192 --set hidden_size=32 --set num_attention_heads=2 "
                              "--set intermediate_size=48");
  check_model(tmp.path(), random_seqs({8192}, 512, 13), "last_hidden_state,embeddings");
}

// A sequence alone equals the same sequence inside any batch; batch order does not matter.
TEST(ForwardInvariance, AloneEqualsInBatchAndOrderFree) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("fwd_inv");
  make_checkpoint(tmp.path(), "--preset tiny --head mlm --seed 8");
  LoadedModel m = load_model_dir(tmp.path());
  Encoder enc(m.weights);
  auto seqs = random_seqs({37, 1, 80, 9, 16}, 512, 14);
  std::vector<std::vector<int32_t>> s32;
  for (auto& s : seqs) s32.emplace_back(s.begin(), s.end());
  Batch all = Batch::from_sequences(s32);
  auto h_all = enc.forward(all);
  const int64_t H = m.config.hidden_size;
  for (size_t i = 0; i < s32.size(); ++i) {
    auto h1 = enc.forward(Batch::from_sequences({s32[i]}));
    for (int64_t t = 0; t < static_cast<int64_t>(s32[i].size()); ++t)
      for (int64_t c = 0; c < H; ++c)
        ASSERT_NEAR(h1[t * H + c], h_all[(all.cu_seqlens[i] + t) * H + c], 1e-5f) << "seq " << i << " token " << t;
  }
  std::vector<std::vector<int32_t>> rev(s32.rbegin(), s32.rend());
  Batch rb = Batch::from_sequences(rev);
  auto h_rev = enc.forward(rb);
  for (size_t i = 0; i < s32.size(); ++i) {
    size_t j = s32.size() - 1 - i;
    for (int64_t t = 0; t < static_cast<int64_t>(s32[i].size()); ++t)
      for (int64_t c = 0; c < H; ++c)
        ASSERT_NEAR(h_rev[(rb.cu_seqlens[j] + t) * H + c], h_all[(all.cu_seqlens[i] + t) * H + c], 1e-5f);
  }
}
