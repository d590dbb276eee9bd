// One forward for inference and training (issue #13, item 1): TrainModel runs Encoder::forward in
// its saving mode, so with dropout off its last_hidden_state is the inference result BIT FOR BIT
// (same kernels, same order, same inputs; only extra copies into the activation store), and the
// head of a training step computes the inference head's numbers.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "model/activation_store.h"
#include "modernbert/model.h"
#include "modernbert/train_model.h"
#include "modernbert/weights.h"

namespace {

using namespace modernbert;

ModelConfig config_with_windows() {
  ModelConfig cfg = ModelConfig::preset("tiny");
  cfg.vocab_size = 97;
  cfg.num_hidden_layers = 3;  // global, local, local
  cfg.layer_types = {LayerType::kFullAttention, LayerType::kSlidingAttention, LayerType::kSlidingAttention};
  cfg.local_attention = 8;    // half window 4: sequences below are longer, so the band matters
  return cfg;
}

void fill(Weights& w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.2f);
  for (const auto& s : w.specs()) {
    float* p = w.mutable_param(s.name);
    const bool norm = s.shape.size() == 1 && s.name.find("norm") != std::string::npos;
    for (int64_t i = 0; i < s.numel(); ++i) p[i] = norm ? 1.0f + nd(rng) : nd(rng);
  }
}

Batch make_batch(int64_t V, std::initializer_list<int64_t> lens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Batch b;
  for (int64_t n : lens) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& x : ids) x = static_cast<int32_t>(rng() % static_cast<uint64_t>(V));
    b.add(ids);
  }
  return b;
}

bool bitwise_equal(const std::vector<float>& a, const float* b, size_t n) {
  return a.size() >= n && std::memcmp(a.data(), b, n * sizeof(float)) == 0;
}

TEST(OneForward, TrainingHiddenStatesEqualInferenceBitwise) {
  for (bool biases : {false, true}) {
    ModelConfig cfg = config_with_windows();
    cfg.norm_bias = cfg.attention_bias = cfg.mlp_bias = biases;
    Weights w(cfg, HeadSet::parse("mlm"));
    fill(w, biases ? 3 : 4);
    TrainModel tm(w);
    TrainBatch tb;
    tb.batch = make_batch(cfg.vocab_size, {19, 3, 33}, 7);
    tb.token_labels.assign(tb.batch.ids.size(), -100);
    tb.token_labels[5] = 11;
    tm.forward_loss(tb, TaskType::kMlm);
    Encoder enc(w);
    const std::vector<float> inference = enc.forward(tb.batch);
    ASSERT_EQ(tm.last_hidden().size(), inference.size());
    EXPECT_TRUE(bitwise_equal(inference, tm.last_hidden().data(), inference.size())) << "biases=" << biases;
    // The forward_hidden entry point (contrastive fine-tuning) is the same pass.
    const float* h = tm.forward_hidden(tb.batch);
    EXPECT_TRUE(bitwise_equal(inference, h, inference.size()));
  }
}

TEST(OneForward, SavingModeKeepsTheActivationsTheBackwardReads) {
  ModelConfig cfg = config_with_windows();
  Weights w(cfg, HeadSet::parse("mlm"));
  fill(w, 5);
  Encoder enc(w);
  const Batch b = make_batch(cfg.vocab_size, {9, 14}, 8);
  const int64_t T = b.num_tokens(), H = cfg.hidden_size;
  ActivationStore st;
  std::vector<float> saved_out, plain_out;
  enc.forward(b, saved_out, &st);
  enc.forward(b, plain_out);
  EXPECT_EQ(saved_out, plain_out);
  ASSERT_EQ(st.layers.size(), static_cast<size_t>(cfg.num_hidden_layers));
  // Layer 0's residual input is LN(E[ids]) and the last residual (final_norm's input) with its
  // statistics reproduces the output: out = (h_last - mean) * rstd * gamma.
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < H; c += 7) {
      const float* hl = st.h_last.data() + t * H;
      const double want = (hl[c] - st.f_mean[static_cast<size_t>(t)]) * st.f_rstd[static_cast<size_t>(t)] *
                          w.views().final_norm_w[c];
      EXPECT_NEAR(plain_out[static_cast<size_t>(t * H + c)], want, 1e-5);
    }
  // The residual stream entering layer l+1 is what left layer l: hs[l+1] = hmid[l] + MLP(m[l]).
  for (size_t l = 0; l < st.layers.size(); ++l) {
    EXPECT_GE(st.layers[l].hs.size(), static_cast<size_t>(T * H));
    EXPECT_GE(st.layers[l].qkv.size(), static_cast<size_t>(T * 3 * H));
    EXPECT_NE(st.layers[l].rope, nullptr);
  }
}

TEST(OneForward, ClassificationHeadOfATrainingStepIsTheInferenceHead) {
  for (Pooling pooling : {Pooling::kMean, Pooling::kCls}) {
    ModelConfig cfg = config_with_windows();
    cfg.classifier_pooling = pooling;
    cfg.id2label = {{0, "a"}, {1, "b"}, {2, "c"}};
    HeadSet heads = HeadSet::parse("mlm");
    heads.classifier = HeadSet::Classifier::kSequence;
    heads.num_labels = 3;
    Weights w(cfg, heads);
    fill(w, 6);
    TrainModel tm(w);
    TrainBatch tb;
    tb.batch = make_batch(cfg.vocab_size, {12, 30, 5}, 9);
    tb.class_labels = {0, 2, 1};
    const LossResult lr = tm.forward_loss(tb, TaskType::kSequenceClassification);
    Encoder enc(w);
    const std::vector<float> hidden = enc.forward(tb.batch);
    const std::vector<float> logits = enc.classify(tb.batch, hidden.data());
    // Cross-entropy of the inference logits, in double: the training loss must be the same number.
    double nll = 0;
    for (int64_t b = 0; b < 3; ++b) {
      const float* z = logits.data() + b * 3;
      const double m = std::max({z[0], z[1], z[2]});
      const double lse = m + std::log(std::exp(z[0] - m) + std::exp(z[1] - m) + std::exp(z[2] - m));
      nll += lse - z[tb.class_labels[static_cast<size_t>(b)]];
    }
    EXPECT_NEAR(lr.loss, nll / 3, 1e-6 * (1 + std::abs(nll))) << "pooling " << static_cast<int>(pooling);
  }
}

TEST(OneForward, DropoutChangesOnlyTrainingAndIsReproducible) {
  ModelConfig cfg = config_with_windows();
  Weights w(cfg, HeadSet::parse("mlm"));
  fill(w, 10);
  TrainModel tm(w);
  Batch b = make_batch(cfg.vocab_size, {16, 8}, 11);
  Encoder enc(w);
  const std::vector<float> inference = enc.forward(b);
  tm.set_attention_output_dropout(0.1, 1234);
  const std::vector<float> d1(tm.forward_hidden(b), tm.forward_hidden(b) + inference.size());
  const std::vector<float> d2(tm.forward_hidden(b), tm.forward_hidden(b) + inference.size());
  EXPECT_EQ(d1, d2);
  EXPECT_NE(d1, inference);
  tm.set_attention_output_dropout(0.0, 1234);
  EXPECT_TRUE(bitwise_equal(inference, tm.forward_hidden(b), inference.size()));
}

}  // namespace
