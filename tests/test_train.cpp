// Pre-training recipe components against spec §6 with hand-checked values: StableAdamW / AdamW
// updates, LR schedule, batch-size warm-up thresholds, MLM masking rates, best-fit packing,
// tiling, and the `pretrain` CLI end to end (resume after SIGKILL is bit-identical, spike guard,
// context extension).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/model_dir.h"
#include "modernbert/file_io.h"
#include "modernbert/mlm_data.h"
#include "modernbert/optimizer.h"
#include "modernbert/pretrain.h"
#include "modernbert/safetensors.h"
#include "modernbert/schedule.h"
#include "modernbert/tiling.h"
#include "test_util.h"

namespace {

using namespace modernbert;

std::vector<ParamSpec> two_specs() {
  return {ParamSpec{"w", {2, 2}, InitRule::kIn, true}, ParamSpec{"norm.weight", {2}, InitRule::kOnes, false}};
}

// Straightforward double re-implementation of spec §6.4 (the "numpy" mirror).
struct RefStable {
  std::vector<double> m, v;
  int t = 0;
  void step(std::vector<double>& th, const std::vector<double>& g, const std::vector<size_t>& bounds,
            const std::vector<bool>& decay, double lr, double max_lr, double b1, double b2, double eps, double wd) {
    ++t;
    if (m.empty()) m.assign(th.size(), 0), v.assign(th.size(), 0);
    const double bh1 = (std::pow(b1, t) - b1) / (std::pow(b1, t) - 1),
                 bh2 = (std::pow(b2, t) - b2) / (std::pow(b2, t) - 1);
    for (size_t p = 0; p + 1 < bounds.size(); ++p) {
      double s = 0;
      for (size_t i = bounds[p]; i < bounds[p + 1]; ++i) {
        m[i] = bh1 * m[i] + (1 - bh1) * g[i];
        v[i] = bh2 * v[i] + (1 - bh2) * g[i] * g[i];
        s += g[i] * g[i] / std::max(v[i], eps * eps);
      }
      const double rms = std::sqrt(s / static_cast<double>(bounds[p + 1] - bounds[p]));
      const double lrp = lr / std::max(1.0, rms);
      for (size_t i = bounds[p]; i < bounds[p + 1]; ++i) {
        if (decay[p]) th[i] *= 1 - lrp / max_lr * wd;
        th[i] -= lrp * m[i] / (std::sqrt(v[i]) + eps);
      }
    }
  }
};

TEST(Recipe, StableAdamWFirstStepByHand) {
  OptimizerConfig oc;
  oc.lr = 1e-2;
  oc.weight_decay = 0.1;
  Optimizer opt(two_specs(), oc);
  std::vector<float> th = {1.0f, -2.0f, 0.5f, 3.0f, 1.0f, 1.0f};
  const std::vector<float> g = {0.1f, -0.2f, 0.3f, 0.0f, 0.5f, -0.5f};
  opt.step(th.data(), g.data(), 5e-3);  // scheduled LR half the peak
  // t = 1: β̂ = 0 so m = g, v = g²; RMS over w = sqrt(3/4) < 1 (the zero gradient counts 0) → η' = η.
  // w decays by (1 - (η'/η_max) λ) = 1 - 0.5·0.1 = 0.95, then moves by η' g/(|g| + ε).
  auto upd = [](double theta, double gg, double decay) { return theta * decay - 5e-3 * gg / (std::abs(gg) + 1e-6); };
  EXPECT_NEAR(th[0], upd(1.0, 0.1, 0.95), 1e-6);
  EXPECT_NEAR(th[1], upd(-2.0, -0.2, 0.95), 1e-6);
  EXPECT_NEAR(th[2], upd(0.5, 0.3, 0.95), 1e-6);
  EXPECT_NEAR(th[3], 3.0 * 0.95, 1e-6);
  EXPECT_NEAR(th[4], upd(1.0, 0.5, 1.0), 1e-6);  // norm: no weight decay
  EXPECT_NEAR(th[5], upd(1.0, -0.5, 1.0), 1e-6);
  EXPECT_NEAR(opt.last_rms()[0], std::sqrt(0.75), 1e-6);
}

TEST(Recipe, StableAdamWMatchesReimplementationIncludingUpdateClipping) {
  OptimizerConfig oc;
  oc.lr = 1e-2;
  oc.weight_decay = 0.05;
  Optimizer opt(two_specs(), oc);
  std::vector<float> th = {1.0f, -2.0f, 0.5f, 3.0f, 1.0f, 1.0f};
  std::vector<double> thd(th.begin(), th.end());
  RefStable ref;
  std::mt19937_64 rng(3);
  std::normal_distribution<double> nd;
  bool clipped = false;
  for (int step = 0; step < 6; ++step) {
    // Tiny gradients first, then large ones: g² ≫ v makes RMS > 1 and exercises the clipping.
    const double sc = step < 3 ? 1e-3 : 1.0;
    std::vector<float> g(6);
    std::vector<double> gd(6);
    for (int i = 0; i < 6; ++i) gd[i] = g[i] = static_cast<float>(sc * nd(rng));
    const double lr = 1e-2 * (step + 1) / 6.0;
    opt.step(th.data(), g.data(), lr);
    ref.step(thd, gd, {0, 4, 6}, {true, false}, lr, 1e-2, 0.9, 0.98, 1e-6, 0.05);
    for (double r : opt.last_rms()) clipped = clipped || r > 1.0;
    for (int i = 0; i < 6; ++i) ASSERT_NEAR(th[i], thd[i], 2e-6 * std::max(1.0, std::abs(thd[i]))) << step << " " << i;
    for (int i = 0; i < 6; ++i) ASSERT_NEAR(opt.m()[i], ref.m[i], 1e-6 * std::max(1.0, std::abs(ref.m[i])));
  }
  EXPECT_TRUE(clipped);
  EXPECT_EQ(opt.step_count(), 6);
}

// The vectorised path (8 lanes, chunks of 2^14 split over the pool) on tensors long enough to use
// it, with odd lengths so the scalar tails run too: against the double re-implementation.
TEST(Recipe, StableAdamWVectorPathMatchesReimplementation) {
  const std::vector<size_t> bounds = {0, 40003, 40003 + 1037};
  const std::vector<ParamSpec> specs = {ParamSpec{"w", {40003}, InitRule::kIn, true},
                                        ParamSpec{"norm.weight", {1037}, InitRule::kOnes, false}};
  OptimizerConfig oc;
  oc.lr = 1e-2;
  oc.weight_decay = 0.05;
  Optimizer opt(specs, oc);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> nd;
  std::vector<float> th(bounds.back());
  for (auto& x : th) x = static_cast<float>(nd(rng));
  std::vector<double> thd(th.begin(), th.end());
  RefStable ref;
  bool clipped = false;
  for (int step = 0; step < 5; ++step) {
    const double sc = step < 2 ? 1e-3 : 1.0;
    std::vector<float> g(th.size());
    std::vector<double> gd(th.size());
    for (size_t i = 0; i < g.size(); ++i) gd[i] = g[i] = static_cast<float>(sc * nd(rng));
    const double lr = 1e-2 * (step + 1) / 5.0;
    opt.step(th.data(), g.data(), lr);
    ref.step(thd, gd, bounds, {true, false}, lr, 1e-2, 0.9, 0.98, 1e-6, 0.05);
    for (double r : opt.last_rms()) clipped = clipped || r > 1.0;
    for (size_t i = 0; i < th.size(); ++i)
      ASSERT_NEAR(th[i], thd[i], 2e-6 * std::max(1.0, std::abs(thd[i]))) << step << " " << i;
  }
  EXPECT_TRUE(clipped);
}

// AdamW's vectorised path (a long odd-length tensor) against the double formula.
TEST(Recipe, AdamWVectorPathMatchesFormula) {
  const int64_t n = 40003;
  OptimizerConfig oc;
  oc.type = OptimizerType::kAdamW;
  oc.lr = 1e-2;
  oc.beta2 = 0.999;
  oc.eps = 1e-8;
  oc.weight_decay = 0.01;
  Optimizer opt({ParamSpec{"w", {n}, InitRule::kIn, true}}, oc);
  std::mt19937_64 rng(9);
  std::normal_distribution<double> nd;
  std::vector<float> th(static_cast<size_t>(n));
  for (auto& x : th) x = static_cast<float>(nd(rng));
  std::vector<double> thd(th.begin(), th.end()), m(th.size(), 0), v(th.size(), 0);
  for (int t = 1; t <= 3; ++t) {
    std::vector<float> g(th.size());
    for (auto& x : g) x = static_cast<float>(0.1 * nd(rng));
    opt.step(th.data(), g.data(), 1e-2);
    for (size_t i = 0; i < th.size(); ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * static_cast<double>(g[i]) * g[i];
      thd[i] *= 1 - 1e-2 * 0.01;
      thd[i] -= 1e-2 * (m[i] / (1 - std::pow(0.9, t))) / (std::sqrt(v[i] / (1 - std::pow(0.999, t))) + 1e-8);
    }
    for (size_t i = 0; i < th.size(); ++i)
      ASSERT_NEAR(th[i], thd[i], 2e-6 * std::max(1.0, std::abs(thd[i]))) << t << " " << i;
  }
}

TEST(Recipe, AdamWMatchesPyTorchFormula) {
  OptimizerConfig oc;
  oc.type = OptimizerType::kAdamW;
  oc.lr = 1e-2;
  oc.beta2 = 0.999;
  oc.eps = 1e-8;
  oc.weight_decay = 0.01;
  Optimizer opt(two_specs(), oc);
  std::vector<float> th = {1, 1, 1, 1, 1, 1};
  std::vector<double> m(6, 0), v(6, 0), thd(6, 1.0);
  const std::vector<float> g = {0.1f, -0.3f, 0.2f, 0.05f, -1.0f, 0.4f};
  for (int t = 1; t <= 3; ++t) {
    opt.step(th.data(), g.data(), 1e-2);
    for (int i = 0; i < 6; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * g[i];
      v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
      if (i < 4) thd[i] *= 1 - 1e-2 * 0.01;
      thd[i] -= 1e-2 * (m[i] / (1 - std::pow(0.9, t))) / (std::sqrt(v[i] / (1 - std::pow(0.999, t))) + 1e-8);
    }
  }
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(th[i], thd[i], 1e-6);
}

TEST(Recipe, ScheduleKeyPoints) {
  ScheduleConfig s;
  s.warmup_tokens = 100;
  s.total_tokens = 1000;
  s.decay_tokens = 400;
  s.alpha_f = 0.001;
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 0), 0.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 50), 0.5);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 100), 1.0);
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 600), 1.0);
  EXPECT_NEAR(lr_multiplier(s, 700), 0.001 + 0.999 * 0.5, 1e-12);  // 1 - sqrt(1/4)
  EXPECT_NEAR(lr_multiplier(s, 1000), 0.001, 1e-12);
  EXPECT_NEAR(lr_multiplier(s, 5000), 0.001, 1e-12);
  s.decay_shape = DecayShape::kLinear;
  EXPECT_NEAR(lr_multiplier(s, 700), 0.001 + 0.999 * 0.75, 1e-12);
  s.decay_tokens = 0;  // phase 1: constant after warm-up
  EXPECT_DOUBLE_EQ(lr_multiplier(s, 1e12), 1.0);
  // An unknown shape: refused by the parser (configs, flags), and by the schedule itself.
  EXPECT_THROW(parse_decay_shape("cosine"), Error);
  s.decay_shape = static_cast<DecayShape>(7);
  s.decay_tokens = 10;
  EXPECT_THROW(lr_multiplier(s, 995), Error);
}

TEST(Recipe, BatchSizeWarmupThresholdsBase) {
  // Base: 8 devices, 50B warm-up tokens, 1..6 micro-batches: per-device W = 6.25e9, S = 15,
  // thresholds ceil(W·{1,3,6,10,15}/15) = 0.4167e9, 1.25e9, 2.5e9, 4.1667e9, 6.25e9 (spec §6.3).
  BatchWarmup bw;
  bw.min_batches = 1;
  bw.max_batches = 6;
  bw.warmup_tokens = 6.25e9;
  EXPECT_EQ(bw.batches_at(0), 1);
  EXPECT_EQ(bw.batches_at(416666666), 1);
  EXPECT_EQ(bw.batches_at(416666667), 2);
  EXPECT_EQ(bw.batches_at(1249999999), 2);
  EXPECT_EQ(bw.batches_at(1.25e9), 3);
  EXPECT_EQ(bw.batches_at(2.5e9 - 1), 3);
  EXPECT_EQ(bw.batches_at(2.5e9), 4);
  EXPECT_EQ(bw.batches_at(4166666666), 4);
  EXPECT_EQ(bw.batches_at(4166666667), 5);
  EXPECT_EQ(bw.batches_at(6.25e9 - 1), 5);
  EXPECT_EQ(bw.batches_at(6.25e9), 6);
  EXPECT_EQ(bw.batches_at(1e15), 6);
  bw.warmup_tokens = 0;
  EXPECT_EQ(bw.batches_at(0), 6);
}

TEST(Recipe, MaskingRatesAndDeterminism) {
  MaskingConfig mc;
  mc.probability = 0.3;
  mc.mask_token_id = 999;
  mc.excluded_ids = {7};
  std::mt19937_64 rng(1);
  const size_t n = 200000;
  std::vector<int32_t> orig(n);
  for (auto& x : orig) x = static_cast<int32_t>(rng() % 900);
  auto ids = orig;
  std::vector<int32_t> labels;
  mlm_mask(ids, labels, mc, 42, 0);
  size_t masked = 0, as_mask = 0, unchanged = 0, random = 0, eligible = 0;
  for (size_t i = 0; i < n; ++i) {
    if (orig[i] == 7) {
      EXPECT_EQ(labels[i], -100);
      EXPECT_EQ(ids[i], 7);
      continue;
    }
    ++eligible;
    if (labels[i] == -100) {
      ASSERT_EQ(ids[i], orig[i]);
      continue;
    }
    ASSERT_EQ(labels[i], orig[i]);
    ++masked;
    if (ids[i] == 999)
      ++as_mask;
    else if (ids[i] == orig[i])
      ++unchanged;
    else
      ++random;
    ASSERT_LE(ids[i], 999);  // random ids in [0, max id after substitution]
  }
  const double rate = static_cast<double>(masked) / static_cast<double>(eligible);
  EXPECT_NEAR(rate, 0.3, 0.005);
  EXPECT_NEAR(static_cast<double>(as_mask) / masked, 0.8, 0.01);
  // Random draws hit the original id with probability ~1/1000, counted as unchanged.
  EXPECT_NEAR(static_cast<double>(random) / masked, 0.1, 0.01);
  EXPECT_NEAR(static_cast<double>(unchanged) / masked, 0.1, 0.01);
  std::printf("  [mask] rate %.4f, [MASK] %.4f, random %.4f, unchanged %.4f\n", rate,
              static_cast<double>(as_mask) / masked, static_cast<double>(random) / masked,
              static_cast<double>(unchanged) / masked);
  // Same (seed, stream) → same mask; another stream → another.
  auto ids2 = orig;
  std::vector<int32_t> l2;
  mlm_mask(ids2, l2, mc, 42, 0);
  EXPECT_EQ(ids2, ids);
  EXPECT_EQ(l2, labels);
  auto ids3 = orig;
  mlm_mask(ids3, l2, mc, 42, 1);
  EXPECT_NE(ids3, ids);
}

std::function<std::vector<int32_t>()> source_of(std::vector<std::vector<int32_t>> seqs) {
  auto data = std::make_shared<std::vector<std::vector<int32_t>>>(std::move(seqs));
  auto pos = std::make_shared<size_t>(0);
  return [data, pos] { return *pos < data->size() ? (*data)[(*pos)++] : std::vector<int32_t>{}; };
}

std::vector<int32_t> seq(int len, int tag) { return std::vector<int32_t>(static_cast<size_t>(len), tag); }

TEST(Recipe, PackingBestFit) {
  // Rows of 10: 6 → row 0 (tie: lowest index); 5 → row 1; 4 → row 0 (exact fit, least room);
  // 3 → row 1; 2 → row 1 (now 10); both full → stop.
  SequencePacker p(10, 100, source_of({seq(6, 1), seq(5, 2), seq(4, 3), seq(3, 4), seq(2, 5), seq(1, 6)}));
  std::vector<PackedRow> rows;
  ASSERT_TRUE(p.next(2, rows));
  EXPECT_EQ(rows[0].cu_seqlens, (std::vector<int64_t>{0, 6, 10}));
  EXPECT_EQ(rows[1].cu_seqlens, (std::vector<int64_t>{0, 5, 8, 10}));
  EXPECT_EQ(rows[0].ids[6], 3);
  EXPECT_EQ(rows[1].ids[9], 5);
  // What is left stays buffered for the next batch, in order.
  ASSERT_EQ(p.buffer().size(), 1u);
  EXPECT_EQ(p.buffer()[0], seq(1, 6));
}

TEST(Recipe, PackingSetAsideGoesBackReversed) {
  // One row of 10: 8 fits (room 2); 5 and 4 are set aside; 2 fills the row. The buffer then holds
  // the set-aside sequences first in reverse (deque.extendleft), then the unread rest.
  SequencePacker p(10, 100, source_of({seq(8, 1), seq(5, 2), seq(4, 3), seq(2, 4), seq(3, 5)}));
  std::vector<PackedRow> rows;
  ASSERT_TRUE(p.next(1, rows));
  EXPECT_EQ(rows[0].cu_seqlens, (std::vector<int64_t>{0, 8, 10}));
  const auto b = p.buffer();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0], seq(4, 3));
  EXPECT_EQ(b[1], seq(5, 2));
  EXPECT_EQ(b[2], seq(3, 5));
  // Next: 4 → room 6; 5 → room 1; 3 set aside → not full, source exhausted → row [4,5].
  ASSERT_TRUE(p.next(1, rows));
  EXPECT_EQ(rows[0].cu_seqlens, (std::vector<int64_t>{0, 4, 9}));
  EXPECT_EQ(rows[0].capacity, 10);
  // Two rows but one sequence left: a row would stay empty → no batch.
  EXPECT_FALSE(p.next(2, rows));
}

TEST(Recipe, PackingTruncatesLongSequencesAndCountsEfficiency) {
  std::mt19937_64 rng(9);
  std::vector<std::vector<int32_t>> s;
  for (int i = 0; i < 2000; ++i) s.push_back(seq(static_cast<int>(5 + rng() % 120), i));
  s.insert(s.begin() + 3, seq(1500, 7));  // longer than a row: truncated to 1024
  // Rows of 1024 holding many documents (as the reference's long packed rows), buffer 5 x 40.
  SequencePacker p(1024, 5 * 40, source_of(s));
  std::vector<PackedRow> rows;
  int64_t used = 0, cap = 0;
  for (int b = 0; b < 6; ++b) {
    ASSERT_TRUE(p.next(8, rows));
    for (const auto& r : rows) {
      used += static_cast<int64_t>(r.ids.size());
      cap += r.capacity;
      EXPECT_LE(static_cast<int64_t>(r.ids.size()), 1024);
      EXPECT_EQ(r.cu_seqlens.back(), static_cast<int64_t>(r.ids.size()));
    }
  }
  const double eff = static_cast<double>(used) / static_cast<double>(cap);
  std::printf("  [pack] efficiency %.4f\n", eff);
  EXPECT_GT(eff, 0.99);  // spec §6.2: > 99%
}

TEST(Recipe, TilingLayerMapAndRule) {
  EXPECT_EQ(tiling_layer_map(22, 28), (std::vector<int64_t>{0,  1,  2,  2,  3,  4,  5,  6,  6,  7,  8,  9,  9,  10,
                                                            11, 12, 13, 13, 14, 15, 16, 16, 17, 18, 19, 20, 20, 21}));
  const std::vector<float> B = {0, 1, 2, 3, 4, 5};  // [2, 3]
  std::vector<float> N(20);
  tile_tensor(B.data(), {2, 3}, N.data(), {4, 5});  // r0 = 1, c0 = 1
  EXPECT_EQ(N, (std::vector<float>{5, 3, 4, 5, 3, 2, 0, 1, 2, 0, 5, 3, 4, 5, 3, 2, 0, 1, 2, 0}));
  std::vector<float> n1(5);
  tile_tensor(B.data(), {3}, n1.data(), {5});  // r0 = 1: [B2, B0, B1, B2, B0]
  EXPECT_EQ(n1, (std::vector<float>{2, 0, 1, 2, 0}));
}

TEST(Recipe, TileWeightsBlocksAndLayers) {
  ModelConfig small = ModelConfig::preset("tiny");  // H 64, I 96, 4 layers
  ModelConfig big = small;
  big.hidden_size = 96;
  big.intermediate_size = 128;
  big.num_attention_heads = 6;
  big.num_hidden_layers = 6;
  big.layer_types.clear();
  for (int l = 0; l < 6; ++l)
    big.layer_types.push_back(l % 3 == 0 ? LayerType::kFullAttention : LayerType::kSlidingAttention);
  Weights ws(small, HeadSet::parse("mlm")), wb(big, HeadSet::parse("mlm"));
  init_weights(ws, 1);
  init_weights(wb, 2);
  std::vector<float> final_before(wb.param("model.final_norm.weight"), wb.param("model.final_norm.weight") + 96);
  tile_weights(ws, wb);
  const auto lmap = tiling_layer_map(4, 6);  // [0, 1, 1, 2, 3, 3]
  EXPECT_EQ(lmap, (std::vector<int64_t>{0, 1, 1, 2, 3, 3}));
  // K block of layer 4's Wqkv = tile of source layer 3's K block (r0 = c0 = 16).
  const float* s = ws.param("model.layers.3.attn.Wqkv.weight");
  const float* d = wb.param("model.layers.4.attn.Wqkv.weight");
  for (int r = 0; r < 96; r += 7)
    for (int c = 0; c < 96; c += 5)
      ASSERT_EQ(d[(96 + r) * 96 + c], s[(64 + (r - 16 + 64) % 64) * 64 + (c - 16 + 64) % 64]);
  // Gate half of Wi: r0 = (128 - 96)/2 = 16.
  const float* si = ws.param("model.layers.1.mlp.Wi.weight");
  const float* di = wb.param("model.layers.2.mlp.Wi.weight");
  EXPECT_EQ(di[(128 + 0) * 96 + 0], si[(96 + 80) * 64 + 48]);
  EXPECT_EQ(std::vector<float>(wb.param("model.final_norm.weight"), wb.param("model.final_norm.weight") + 96),
            final_before);
  // Embeddings: rows unchanged, columns shifted by c0 = 16.
  EXPECT_EQ(wb.param("model.embeddings.tok_embeddings.weight")[5 * 96 + 16],
            ws.param("model.embeddings.tok_embeddings.weight")[5 * 64 + 0]);
}

// ---- CLI end to end ---------------------------------------------------------------------------------

std::string write_corpus(const mbtest::TempDir& dir, int docs, uint64_t seed, bool repetitive = false) {
  std::mt19937_64 rng(seed);
  std::ostringstream os;
  for (int i = 0; i < docs; ++i) {
    const int n = 5 + static_cast<int>(rng() % 50);
    os << "{\"input_ids\": [1";
    for (int t = 0; t < n; ++t) os << ", " << (repetitive ? 10 + (t % 7) : 3 + static_cast<int>(rng() % 500));
    os << ", 2]}\n";
  }
  const std::string path = dir / "corpus.jsonl";
  std::ofstream(path) << os.str();
  return path;
}

TEST(Pretrain, ResumeAfterSigkillIsBitIdentical) {
  mbtest::TempDir tmp("pretrain_resume");
  const std::string data = write_corpus(tmp, 300, 1);
  const std::string common = " pretrain --data " + data +
                             " --model-config tiny --seq-len 64 --micro-batch-size 2 --global-batch-size 4"
                             " --batch-warmup-tokens 300 --warmup-tokens 200 --lr 3e-3 --weight-decay 0.01"
                             " --max-steps 8 --save-every 3 --keep-last 2 --eval-every 4 --eval-documents 10"
                             " --seed 5 --mask-token-id 4";
  auto a = mbtest::run_command(mbtest::cli() + common + " --output-dir " + (tmp / "a"));
  ASSERT_EQ(a.status, 0) << a.output;
  // Run B dies by SIGKILL in the middle of step 5 (after checkpoint 3), then resumes.
  auto b1 = mbtest::run_command(mbtest::cli() + common + " --output-dir " + (tmp / "b") + " --kill-at-step 5");
  ASSERT_NE(b1.status, 0);
  ASSERT_FALSE(std::ifstream(tmp / "b/checkpoint-00000006/model.safetensors").good());
  auto b2 = mbtest::run_command(mbtest::cli() + common + " --output-dir " + (tmp / "b") + " --resume");
  ASSERT_EQ(b2.status, 0) << b2.output;
  EXPECT_NE(b2.output.find("resumed from"), std::string::npos) << b2.output;
  for (const char* f : {"model.safetensors", "trainer_state.safetensors"}) {
    const std::string fa = read_file(tmp / ("a/checkpoint-00000008/" + std::string(f)));
    const std::string fb = read_file(tmp / ("b/checkpoint-00000008/" + std::string(f)));
    EXPECT_TRUE(fa == fb) << f << " differs after resume";
  }
  // keep_last 2: checkpoints 6 and 8 remain.
  EXPECT_FALSE(std::ifstream(tmp / "a/checkpoint-00000003/config.json").good());
  EXPECT_TRUE(std::ifstream(tmp / "a/checkpoint-00000006/config.json").good());
  // Metrics: one line per step in both runs, identical losses; eval at steps 4 and 8.
  // B's log is appended to: steps 1-4 of the killed process, a resume record, then steps 4-8; the
  // last record of each step counts.
  auto lines = [](const std::string& p) {
    std::map<int64_t, nlohmann::json> by_step;
    std::ifstream in(p);
    std::string l;
    while (std::getline(in, l)) {
      const auto j = nlohmann::json::parse(l);
      if (!j.contains("event")) by_step[j.at("step").get<int64_t>()] = j;
    }
    std::vector<nlohmann::json> v;
    for (auto& [step, j] : by_step) v.push_back(j);
    return v;
  };
  const auto ma = lines(tmp / "a/metrics.jsonl"), mb = lines(tmp / "b/metrics.jsonl");
  ASSERT_EQ(ma.size(), 8u);
  ASSERT_EQ(mb.size(), 8u);
  EXPECT_NE(read_file(tmp / "b/metrics.jsonl")
                .find("{\"checkpoint\":\"checkpoint-00000003\",\"event\":\"resume\",\"step\":3}"),
            std::string::npos);
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(ma[i]["loss"], mb[i]["loss"]) << i;
  EXPECT_TRUE(ma[3].contains("eval_loss"));
  EXPECT_TRUE(ma[7].contains("eval_accuracy"));
  // Batch-size warm-up: 1 micro-batch (2 rows) at first, 2 (4 rows) after 300 tokens.
  EXPECT_EQ(ma[0]["rows"], 2);
  EXPECT_EQ(ma[7]["rows"], 4);
  // The saved checkpoint loads as a normal HF model directory.
  LoadedModel m = load_model_dir(tmp / "a/checkpoint-00000008");
  EXPECT_TRUE(m.weights.heads().mlm);
}

TEST(Pretrain, LearnsARepetitiveCorpusAndGuardsSpikes) {
  mbtest::TempDir tmp("pretrain_learn");
  const std::string data = write_corpus(tmp, 200, 2, /*repetitive=*/true);
  auto r = mbtest::run_command(mbtest::cli() + " pretrain --data " + data + " --output-dir " + (tmp / "o") +
                               " --model-config tiny --seq-len 64 --micro-batch-size 4 --global-batch-size 4"
                               " --batch-warmup-tokens 0 --warmup-tokens 500 --lr 5e-3 --max-steps 40 --save-every 0"
                               " --seed 3 --mask-token-id 4");
  ASSERT_EQ(r.status, 0) << r.output;
  std::ifstream in(tmp / "o/metrics.jsonl");
  std::string l;
  std::vector<double> loss;
  while (std::getline(in, l)) loss.push_back(nlohmann::json::parse(l)["loss"].get<double>());
  ASSERT_EQ(loss.size(), 40u);
  const double first = (loss[0] + loss[1] + loss[2]) / 3, last = (loss[37] + loss[38] + loss[39]) / 3;
  std::printf("  [pretrain] loss %.3f -> %.3f\n", first, last);
  EXPECT_LT(last, 0.5 * first);
  // Spike guard: a factor below 1 marks every step after the EMA warm-up (2 steps) as a spike;
  // those steps are skipped (logged, weights untouched) while the data still advances.
  std::ofstream(tmp / "spike.json") << "{\"spike_factor\": 0.01, \"spike_warmup_steps\": 2}";
  auto s = mbtest::run_command(mbtest::cli() + " pretrain --config " + (tmp / "spike.json") + " --data " + data +
                               " --output-dir " + (tmp / "s") +
                               " --model-config tiny --seq-len 64 --micro-batch-size 4 --global-batch-size 4"
                               " --batch-warmup-tokens 0 --max-steps 4 --save-every 0 --mask-token-id 4");
  ASSERT_EQ(s.status, 0) << s.output;
  EXPECT_NE(s.output.find("step 3 skipped (loss spike"), std::string::npos) << s.output;
  std::ifstream sin(tmp / "s/metrics.jsonl");
  std::vector<nlohmann::json> sm;
  while (std::getline(sin, l)) sm.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(sm.size(), 4u);
  EXPECT_FALSE(sm[1].contains("skipped"));
  EXPECT_EQ(sm[2]["skipped"], "loss spike");
  EXPECT_EQ(sm[3]["skipped"], "loss spike");
}

TEST(Pretrain, ContextExtensionChangesThetaAndSeqLen) {
  mbtest::TempDir tmp("pretrain_ctx");
  const std::string data = write_corpus(tmp, 100, 4);
  auto r = mbtest::run_command(mbtest::cli() + " pretrain --data " + data + " --output-dir " + (tmp / "p1") +
                               " --model-config tiny --seq-len 32 --micro-batch-size 2 --global-batch-size 2"
                               " --batch-warmup-tokens 0 --max-steps 2 --global-rope-theta 10000 --mask-token-id 4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(ModelConfig::from_file(tmp / "p1/checkpoint-00000002/config.json").global_rope_theta, 10000.0);
  r = mbtest::run_command(mbtest::cli() + " pretrain --data " + data + " --output-dir " + (tmp / "p2") +
                          " --init-from " + (tmp / "p1/checkpoint-00000002") +
                          " --seq-len 128 --micro-batch-size 1 --global-batch-size 1 --batch-warmup-tokens 0"
                          " --max-steps 2 --global-rope-theta 160000 --warmup-tokens 0 --mask-token-id 4");
  ASSERT_EQ(r.status, 0) << r.output;
  const ModelConfig c2 = ModelConfig::from_file(tmp / "p2/checkpoint-00000002/config.json");
  EXPECT_EQ(c2.global_rope_theta, 160000.0);
  EXPECT_EQ(c2.local_rope_theta, 10000.0);
  // The sequence length changed too: the saved run configurations say 32 then 128, the model
  // config still admits the new length, and the rows really got longer: at 32 a step of 2 rows
  // holds at most 64 tokens, at 128 the one packed row holds more than the old length (documents
  // are 7..56 tokens, so packing fills a 128-token row past 32).
  auto json_file = [](const std::string& p) {
    std::ifstream in(p);
    EXPECT_TRUE(in.good()) << p;
    return nlohmann::json::parse(in);
  };
  EXPECT_EQ(json_file(tmp / "p1/train_config.json")["seq_len"], 32);
  EXPECT_EQ(json_file(tmp / "p2/train_config.json")["seq_len"], 128);
  EXPECT_GE(c2.max_position_embeddings, 128);
  auto step_tokens = [](const std::string& p) {
    std::vector<double> t;
    std::ifstream in(p);
    double prev = 0;
    for (std::string l; std::getline(in, l);) {
      const double now = nlohmann::json::parse(l)["tokens"].get<double>();
      t.push_back(now - prev);
      prev = now;
    }
    return t;
  };
  const auto t1 = step_tokens(tmp / "p1/metrics.jsonl"), t2 = step_tokens(tmp / "p2/metrics.jsonl");
  ASSERT_EQ(t1.size(), 2u);
  ASSERT_EQ(t2.size(), 2u);
  for (double t : t1) EXPECT_LE(t, 64.0);
  for (double t : t2) {
    EXPECT_GT(t, 32.0);
    EXPECT_LE(t, 128.0);
  }
}

TEST(Pretrain, TextDataWithTokenizerThenTiling) {
  const std::string tokjson = mbtest::tokenizer_json();
  mbtest::TempDir tmp("pretrain_text");
  {
    std::ofstream txt(tmp / "docs.txt"), jl(tmp / "docs.jsonl");
    for (int i = 0; i < 30; ++i) {
      txt << "Document number " << i << " talks about packing, masking and the optimizer step " << i * 7 << ".\n";
      jl << "{\"text\": \"A JSON line with text " << i << ": the quick brown fox jumps over the lazy dog.\"}\n";
    }
  }
  auto r = mbtest::run_command(mbtest::cli() + " pretrain --data " + (tmp / "docs.txt") + "," + (tmp / "docs.jsonl") +
                               " --tokenizer " + tokjson + " --output-dir " + (tmp / "o") +
                               " --model-config tiny --seq-len 64 --micro-batch-size 2 --global-batch-size 2"
                               " --batch-warmup-tokens 0 --max-steps 2 --eval-every 2 --eval-documents 4");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("eval loss"), std::string::npos) << r.output;
  // Grow the result (4 layers, H 64) into 6 layers, H 96 by tiling (spec §6.7).
  nlohmann::json big = ModelConfig::preset("tiny").to_json();
  big["hidden_size"] = 96;
  big["intermediate_size"] = 128;
  big["num_attention_heads"] = 6;
  big["num_hidden_layers"] = 6;
  big.erase("layer_types");
  big.erase("rope_parameters");
  std::ofstream(tmp / "big.json") << big.dump();
  r = mbtest::run_command(mbtest::cli() + " pretrain --data " + (tmp / "docs.txt") + " --tokenizer " + tokjson +
                          " --output-dir " + (tmp / "big") + " --model-config " + (tmp / "big.json") + " --tile-from " +
                          (tmp / "o/checkpoint-00000002") +
                          " --seq-len 64 --micro-batch-size 2 --global-batch-size 2 --batch-warmup-tokens 0"
                          " --max-steps 1");
  ASSERT_EQ(r.status, 0) << r.output;
  LoadedModel m = load_model_dir(tmp / "big/checkpoint-00000001");
  EXPECT_EQ(m.config.hidden_size, 96);
  EXPECT_EQ(m.config.num_hidden_layers, 6);
}

TEST(Pretrain, ConfigErrorsNameTheField) {
  EXPECT_THROW(PretrainConfig::from_json({{"seq_len", 0}}, "t.json"), Error);
  try {
    PretrainConfig::from_json({{"lerning_rate", 1}}, "t.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lerning_rate"), std::string::npos);
  }
  try {
    PretrainConfig::from_json({{"global_batch_size", 5}, {"micro_batch_size", 2}}, "t.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("global_batch_size"), std::string::npos);
  }
}

}  // namespace
