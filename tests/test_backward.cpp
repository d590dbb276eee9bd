// The training model vs finite differences (the per-kernel checks are in test_backward_kernels.cpp):
// training forward == inference forward, model-level finite differences, determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <tuple>
#include <vector>

#include "fd_util.h"
#include "modernbert/error.h"
#include "modernbert/model.h"
#include "modernbert/train_model.h"
#include "test_util.h"

namespace {

using mbtest::check_fd;
using mbtest::dot;
using mbtest::randn;

// ---- model level ----------------------------------------------------------------------------------

using modernbert::Batch;
using modernbert::HeadSet;
using modernbert::ModelConfig;
using modernbert::TaskType;
using modernbert::TrainBatch;
using modernbert::TrainModel;
using modernbert::Weights;

ModelConfig tiny_config(bool biases) {
  ModelConfig cfg = ModelConfig::preset("tiny");
  cfg.vocab_size = 64;
  cfg.num_hidden_layers = 3;  // layer 0 global, 1-2 sliding
  cfg.layer_types = {modernbert::LayerType::kFullAttention, modernbert::LayerType::kSlidingAttention,
                     modernbert::LayerType::kSlidingAttention};
  cfg.local_attention = 8;
  cfg.norm_bias = cfg.attention_bias = cfg.mlp_bias = cfg.classifier_bias = biases;
  return cfg;
}

// Random weights like make_checkpoint.py --weights random: matrices N(0, 1/in), norms U(0.8,1.2).
void fill_random(Weights& w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (const auto& s : w.specs()) {
    float* p = w.mutable_param(s.name);
    const bool bias = s.name.size() > 5 && s.name.compare(s.name.size() - 5, 5, ".bias") == 0;
    const bool norm = s.shape.size() == 1 && !bias;
    const double sd = bias ? 0.2 : s.shape.size() == 2 ? 1.0 / std::sqrt(static_cast<double>(s.shape[1])) : 0.0;
    std::normal_distribution<double> nd(0.0, sd > 0 ? sd : 1.0);
    std::uniform_real_distribution<double> ud(0.8, 1.2);
    for (int64_t i = 0; i < s.numel(); ++i) p[i] = static_cast<float>(norm ? ud(rng) : nd(rng));
  }
}

TrainBatch mlm_batch(int64_t V) {
  TrainBatch tb;
  std::mt19937_64 rng(5);
  for (int64_t n : {13, 4, 21}) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& x : ids) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(V));
    tb.batch.add(ids);
    for (int64_t i = 0; i < n; ++i)
      tb.token_labels.push_back(rng() % 3 == 0 ? static_cast<int32_t>(rng() % static_cast<uint64_t>(V)) : -100);
  }
  return tb;
}

TEST(TrainModel, ForwardMatchesInferenceEncoder) {
  ModelConfig cfg = tiny_config(true);
  Weights w(cfg, HeadSet::parse("mlm"));
  fill_random(w, 1);
  TrainModel tm(w);
  TrainBatch tb = mlm_batch(cfg.vocab_size);
  tm.forward_loss(tb, TaskType::kMlm);
  modernbert::Encoder enc(w);
  auto ref = enc.forward(tb.batch);
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(ref[i] - tm.last_hidden()[i])));
  EXPECT_EQ(worst, 0.0);  // one forward: the training pass is the inference pass (test_one_forward.cpp)
}

// Central differences of the (float) model loss on a few coordinates of several parameters.
TEST(TrainModel, FiniteDifferencesOnParameters) {
  for (bool biases : {false, true}) {
    ModelConfig cfg = tiny_config(biases);
    cfg.tie_word_embeddings = !biases;
    Weights w(cfg, HeadSet::parse("mlm"));
    fill_random(w, 2);
    TrainModel tm(w);
    TrainBatch tb = mlm_batch(cfg.vocab_size);
    std::vector<float> g(w.num_params(), 0.0f);
    tm.forward_backward(tb, TaskType::kMlm, g.data());
    std::vector<std::string> names = {"model.embeddings.tok_embeddings.weight",
                                      "model.layers.0.attn.Wqkv.weight",
                                      "model.layers.1.attn_norm.weight",
                                      "model.layers.2.mlp.Wi.weight",
                                      "model.layers.1.attn.Wo.weight",
                                      "model.final_norm.weight",
                                      "head.dense.weight"};
    if (biases) {
      names.insert(names.end(), {"model.layers.1.attn.Wqkv.bias", "model.layers.2.mlp.Wo.bias", "decoder.weight",
                                 "model.embeddings.norm.bias"});
    }
    for (const auto& name : names) {
      float* p = w.mutable_param(name);
      const int64_t n = w.spec(name).numel();
      std::vector<float> view(p, p + n);  // check_fd perturbs a copy; mirror it into the weights
      std::vector<float> an(g.begin() + static_cast<long>(w.offset(name)),
                            g.begin() + static_cast<long>(w.offset(name) + n));
      auto f = [&] {
        std::memcpy(p, view.data(), view.size() * sizeof(float));
        return tm.forward_loss(tb, TaskType::kMlm).loss;
      };
      check_fd(name.c_str(), view, an.data(), f, 5e-3f, 5e-3, 8);
      std::memcpy(p, view.data(), view.size() * sizeof(float));
    }
  }
}

// Encoder-only API: L = Σ w ⊙ last_hidden_state (an external loss), FD on a few parameters.
TEST(TrainModel, EncoderBackwardFromHiddenFiniteDifferences) {
  ModelConfig cfg = tiny_config(true);
  Weights w(cfg, HeadSet{});
  fill_random(w, 4);
  TrainModel tm(w);
  TrainBatch tb = mlm_batch(cfg.vocab_size);
  const int64_t TH = tb.batch.num_tokens() * cfg.hidden_size;
  auto wv = randn(static_cast<size_t>(TH), 77);
  tm.forward_hidden(tb.batch);
  std::vector<float> g(w.num_params(), 0.0f);
  tm.backward_hidden(tb.batch, wv.data(), g.data());
  for (const std::string name :
       {"model.layers.2.attn.Wqkv.weight", "model.embeddings.tok_embeddings.weight", "model.layers.0.mlp.Wo.bias"}) {
    float* p = w.mutable_param(name);
    const int64_t n = w.spec(name).numel();
    std::vector<float> view(p, p + n);
    std::vector<float> an(g.begin() + static_cast<long>(w.offset(name)),
                          g.begin() + static_cast<long>(w.offset(name) + n));
    auto f = [&] {
      std::memcpy(p, view.data(), view.size() * sizeof(float));
      return dot(wv, tm.forward_hidden(tb.batch), static_cast<size_t>(TH));
    };
    check_fd(name.c_str(), view, an.data(), f, 5e-3f, 5e-3, 8);
    std::memcpy(p, view.data(), view.size() * sizeof(float));
  }
}

// Attention-output dropout: the loss with a fixed mask is a smooth function of the parameters, so
// finite differences check that the backward applies the same mask and scale as the forward; the
// mask is reproducible from the seed, changes with it, and p = 0 restores the plain model.
TEST(TrainModel, AttentionOutputDropoutFiniteDifferencesAndDeterminism) {
  ModelConfig cfg = tiny_config(true);
  Weights w(cfg, HeadSet::parse("mlm"));
  fill_random(w, 6);
  TrainModel tm(w);
  TrainBatch tb = mlm_batch(cfg.vocab_size);
  const double plain = tm.forward_loss(tb, TaskType::kMlm).loss;
  tm.set_attention_output_dropout(0.3, 1234);
  std::vector<float> g(w.num_params(), 0.0f);
  const double dropped = tm.forward_backward(tb, TaskType::kMlm, g.data()).loss;
  EXPECT_NE(dropped, plain);
  EXPECT_EQ(tm.forward_loss(tb, TaskType::kMlm).loss, dropped);  // same seed, same mask
  for (const std::string name : {"model.layers.1.attn.Wo.weight", "model.layers.0.attn.Wo.bias",
                                 "model.layers.2.attn.Wqkv.weight", "model.embeddings.tok_embeddings.weight"}) {
    float* p = w.mutable_param(name);
    const int64_t n = w.spec(name).numel();
    std::vector<float> view(p, p + n);
    std::vector<float> an(g.begin() + static_cast<long>(w.offset(name)),
                          g.begin() + static_cast<long>(w.offset(name) + n));
    auto f = [&] {
      std::memcpy(p, view.data(), view.size() * sizeof(float));
      return tm.forward_loss(tb, TaskType::kMlm).loss;
    };
    check_fd(name.c_str(), view, an.data(), f, 5e-3f, 5e-3, 8);
    std::memcpy(p, view.data(), view.size() * sizeof(float));
  }
  tm.set_attention_output_dropout(0.3, 1235);
  EXPECT_NE(tm.forward_loss(tb, TaskType::kMlm).loss, dropped);
  tm.set_attention_output_dropout(0.0, 1235);
  EXPECT_EQ(tm.forward_loss(tb, TaskType::kMlm).loss, plain);
  EXPECT_THROW(tm.set_attention_output_dropout(1.0, 0), modernbert::Error);
}

TEST(TrainModel, GradientsAreDeterministicAndAccumulate) {
  ModelConfig cfg = tiny_config(false);
  Weights w(cfg, HeadSet::parse("mlm"));
  fill_random(w, 3);
  TrainModel tm(w);
  TrainBatch tb = mlm_batch(cfg.vocab_size);
  std::vector<float> g1(w.num_params(), 0.0f), g2(w.num_params(), 0.0f);
  tm.forward_backward(tb, TaskType::kMlm, g1.data());
  tm.forward_backward(tb, TaskType::kMlm, g2.data());
  EXPECT_EQ(0, std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)));
  tm.forward_backward(tb, TaskType::kMlm, g2.data());  // accumulates: 2 g1
  for (size_t i = 0; i < g1.size(); i += 97) ASSERT_NEAR(g2[i], 2 * g1[i], 1e-6 + 1e-5 * std::abs(g1[i]));
  // A batch with nothing to predict: NaN loss, no gradient.
  TrainBatch none = tb;
  std::fill(none.token_labels.begin(), none.token_labels.end(), -100);
  std::vector<float> g3(w.num_params(), 0.0f);
  auto r = tm.forward_backward(none, TaskType::kMlm, g3.data());
  EXPECT_TRUE(std::isnan(r.loss));
  for (float x : g3) ASSERT_EQ(x, 0.0f);
}

}  // namespace
