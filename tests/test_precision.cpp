// Accuracy of the reduced-precision inference paths against the f32 forward of the same model
// (#15 item 4): the goals asserted on small models, through the same measurement as
// bench/bench_precision.cpp (bench/precision_compare.h):
//   bf16 / f16: cosine (sentence embeddings with mean and CLS pooling, last_hidden_state per token)
//               mean >= 0.9999 (and min >= 0.999)
//   int8:       mean >= 0.999 and min >= 0.99
//   every dtype: MLM top-1 agreement >= 97% at [MASK]ed positions and at every position (except
//               int8 on the scaled model, which misses it: see MeetsTheGoals), top-5 overlap, and
//               sequence-classification labels all agree
// (top-1 agreements counted where the f32 top-1 leads by >= 0.1: see MeetsTheGoals). The models:
// hidden 256, 4 layers (global + sliding-window attention), intermediate 384, vocabulary 4096,
// MLM head and a 3-label classifier, once with the library's init (init_weights, what `modernbert
// init` writes) and once with larger random weights (scale_up); texts are random token ids
// (Zipf-like, 12..100 tokens). docs/precision.md has the same statistics on a base-shaped model
// and on the project's spam classifier.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "../bench/precision_compare.h"
#include "modernbert/config.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/precision.h"
#include "modernbert/weights.h"
#include "test_util.h"

using modernbert::Encoder;
using modernbert::HeadSet;
using modernbert::LoadedModel;
using modernbert::LoadOptions;
using modernbert::ModelConfig;
using modernbert::Precision;
using modernbert::Weights;

namespace {

constexpr int32_t kPad = 0, kCls = 1, kSep = 2, kMask = 3;
constexpr int64_t kVocab = 4096;

ModelConfig small_config() {
  ModelConfig c = ModelConfig::preset("tiny");
  c.vocab_size = kVocab;
  c.hidden_size = 256;
  c.intermediate_size = 384;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.local_attention = 32;  // shorter than most texts: the sliding-window layers really slide
  c.layer_types.clear();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    c.layer_types.push_back(l % c.global_attn_every_n_layers == 0 ? modernbert::LayerType::kFullAttention
                                                                  : modernbert::LayerType::kSlidingAttention);
  c.pad_token_id = kPad;
  c.bos_token_id = c.cls_token_id = kCls;
  c.eos_token_id = c.sep_token_id = kSep;
  c.classifier_pooling = modernbert::Pooling::kMean;
  c.id2label = {{0, "a"}, {1, "b"}, {2, "c"}};
  c.label2id = {{"a", 0}, {"b", 1}, {"c", 2}};
  c.architectures = {"ModernBertForMaskedLM", "ModernBertForSequenceClassification"};
  c.validate();
  return c;
}

// 48 texts of 12..100 tokens: [CLS] ids [SEP], ids Zipf-like over [4, V) so some tokens repeat.
mbprec::TextSet make_texts() {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> len(10, 98);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  mbprec::TextSet ts;
  for (int i = 0; i < 48; ++i) {
    std::vector<int32_t> s{kCls};
    const int n = len(rng);
    for (int k = 0; k < n; ++k) {
      const double r = std::pow(u(rng), 2.5);  // skewed towards small ids
      s.push_back(4 + static_cast<int32_t>(r * static_cast<double>(kVocab - 5)));
    }
    s.push_back(kSep);
    ts.seqs.push_back(std::move(s));
  }
  mbprec::add_masks(ts, kMask, 0.15, 11);
  return ts;
}

enum class Init { kLibrary, kScaled };

// Overwrites every parameter with U(-1, 1) draws scaled like test_forward.cpp's models: matrices
// * 1.5 / sqrt(in), embeddings as drawn, norm weights 1 +- 0.3, biases * 0.2. With the library's
// init (std 0.02) each layer adds little to the residual stream, so the hidden state is mostly the
// embedding and every cosine is close to 1 whatever the GEMMs do; here each layer changes it
// substantially and the MLM logits have real margins (a harder test of the same bounds).
void scale_up(Weights& w, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const auto& s : w.specs()) {
    float* p = w.mutable_param(s.name);
    const bool bias = s.name.size() > 5 && s.name.compare(s.name.size() - 5, 5, ".bias") == 0;
    const bool norm = s.name.find("norm") != std::string::npos;
    const bool emb = s.name.find("tok_embeddings") != std::string::npos;
    for (int64_t i = 0; i < s.numel(); ++i) {
      float v = u(rng);
      if (bias)
        v *= 0.2f;
      else if (norm)
        v = 1.0f + 0.3f * v;
      else if (!emb && s.shape.size() == 2)
        v *= 1.5f / std::sqrt(static_cast<float>(s.shape[1]));
      p[i] = v;
    }
  }
}

// One checkpoint per kind for the whole suite (written once, like `modernbert init` writes it)
// and its f32 reference outputs.
struct Reference {
  std::string dir;
  mbprec::Outputs out;
};

class PrecisionAccuracy : public ::testing::TestWithParam<std::tuple<Init, Precision>> {
 protected:
  static void TearDownTestSuite() {
    refs_.clear();
    tmp_.reset();
  }

  static const Reference& reference(Init kind) {
    auto it = refs_.find(kind);
    if (it != refs_.end()) return it->second;
    if (!tmp_) tmp_ = std::make_unique<mbtest::TempDir>("precision");
    if (texts_.seqs.empty()) texts_ = make_texts();
    Reference r;
    r.dir = *tmp_ / (kind == Init::kLibrary ? "init" : "scaled");
    const ModelConfig cfg = small_config();
    Weights w(cfg, HeadSet::parse("mlm,cls:3"));
    modernbert::init_weights(w, 5);
    if (kind == Init::kScaled) scale_up(w, 3);
    modernbert::save_model_dir(r.dir, cfg, w);
    LoadedModel lm = modernbert::load_model_dir(r.dir);
    Encoder enc(lm.weights);
    r.out = mbprec::run_outputs(enc, texts_, true, true, 2048);
    return refs_.emplace(kind, std::move(r)).first->second;
  }

  // The comparison of `p` against f32; the loader must really hold the weights in `p`.
  static mbprec::Comparison measure(Init kind, Precision p, double mlm_margin, double cls_margin) {
    const Reference& ref = reference(kind);
    LoadOptions lo;
    lo.precision = p;
    LoadedModel lm = modernbert::load_model_dir(ref.dir, lo);
    EXPECT_EQ(lm.precision, p) << "the loader did not convert to " << modernbert::precision_name(p);
    Encoder enc(lm.weights);
    auto got = mbprec::run_outputs(enc, texts_, true, true, 2048);
    auto c = mbprec::compare(ref.out, got, mlm_margin, cls_margin);
    std::printf("  [precision] %s %s: %s\n", kind == Init::kLibrary ? "init" : "scaled", modernbert::precision_name(p),
                c.to_json().dump().c_str());
    return c;
  }

  static std::unique_ptr<mbtest::TempDir> tmp_;
  static mbprec::TextSet texts_;
  static std::map<Init, Reference> refs_;
};
std::unique_ptr<mbtest::TempDir> PrecisionAccuracy::tmp_;
mbprec::TextSet PrecisionAccuracy::texts_;
std::map<Init, Reference> PrecisionAccuracy::refs_;

}  // namespace

TEST_P(PrecisionAccuracy, MeetsTheGoals) {
  const auto [kind, p] = GetParam();
  // A position whose f32 top-1 leads the runner-up by less than this is a near-tie that any
  // rounding may flip; the agreement among the others is the bound that must hold.
  const double kMlmMargin = 0.1, kClsMargin = 0.1;
  const auto c = measure(kind, p, kMlmMargin, kClsMargin);
  if (p == Precision::kF32) {  // the measurement itself: a second f32 load is bit-identical
    EXPECT_EQ(c.emb_mean.min, 1.0);
    EXPECT_EQ(c.token.min, 1.0);
    EXPECT_EQ(c.mlm_masked.top1, 1.0);
    EXPECT_EQ(c.mlm_all.top5_overlap, 1.0);
    EXPECT_EQ(c.cls.max_abs_dlogit, 0.0);
    return;
  }
  const bool int8 = p == Precision::kInt8;
  for (const auto* s : {&c.emb_mean, &c.emb_cls, &c.token}) {
    EXPECT_GE(s->mean, int8 ? 0.999 : 0.9999);
    EXPECT_GE(s->min, int8 ? 0.99 : 0.999);
  }
  // MLM top-1 agreement: the goal (>= 97%) holds for every dtype on the init model and for
  // bf16 / f16 on the scaled one, NOT for int8 on the scaled model: there it measured 93.2% at
  // [MASK] (95.4% above the margin) and 95.3% (97.5%) at every position (AMD EPYC Zen 5, oneDNN
  // s8 VNNI; docs/precision.md). Its logits have a spread of ~9 over 4096 ids, so top-1 / top-2
  // gaps are often a few tenths, and int8 moves the hidden state by ~1.6% (cosine 0.99987), i.e.
  // the logits by ~0.15: about 1 position in 20 flips. With the f32 head on the int8 hidden states
  // it is still 96.9% above the margin, so the encoder's int8 error causes most of it. For that
  // case the bound below is a regression guard, not the goal. (On the init model every masked
  // position has nearly the [MASK] embedding as its hidden state and predicts the same token: the
  // all-positions figure is the informative one there.)
  const double mlm_bound = int8 && kind == Init::kScaled ? 0.93 : 0.97;
  EXPECT_GT(c.mlm_masked.n, 300);
  EXPECT_GE(c.mlm_masked.top1_margin, mlm_bound)
      << "MLM top-1 agreement at [MASK] (f32 margin >= " << kMlmMargin << ")";
  EXPECT_GE(c.mlm_all.top1_margin, mlm_bound)
      << "MLM top-1 agreement at every position (f32 margin >= " << kMlmMargin << ")";
  EXPECT_GE(c.mlm_masked.top5_overlap, int8 ? 0.93 : 0.97);
  EXPECT_EQ(c.cls.n, 48);
  EXPECT_GE(c.cls.n_margin, 40);
  EXPECT_GE(c.cls.agreement_margin, 1.0) << "classification label agreement (f32 margin >= " << kClsMargin << ")";
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PrecisionAccuracy,
                         ::testing::Combine(::testing::Values(Init::kLibrary, Init::kScaled),
                                            ::testing::Values(Precision::kF32, Precision::kBF16, Precision::kF16,
                                                              Precision::kInt8)),
                         [](const ::testing::TestParamInfo<std::tuple<Init, Precision>>& pi) {
                           return std::string(std::get<0>(pi.param) == Init::kLibrary ? "Init" : "Scaled") + "_" +
                                  modernbert::precision_name(std::get<1>(pi.param));
                         });

TEST(PrecisionMeasure, Top5AndMasks) {
  // top5_of: best first, margin top1 - top2, ties keep the lower id first.
  std::vector<float> row{0.5f, 3.0f, -1.0f, 2.0f, 3.0f, 1.0f, 0.0f, 2.5f};
  auto t = mbprec::top5_of(row.data(), static_cast<int64_t>(row.size()));
  EXPECT_EQ(t.ids, (std::array<int32_t, 5>{1, 4, 7, 3, 5}));
  EXPECT_EQ(t.margin, 0.0f);
  // add_masks: never [CLS] / [SEP], ~15% of the inner tokens, the same for the same seed.
  mbprec::TextSet a, b;
  a.seqs = b.seqs = {
      {1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 2}, {1, 5, 2}, {1, 2}};
  mbprec::add_masks(a, 3, 0.15, 9);
  mbprec::add_masks(b, 3, 0.15, 9);
  EXPECT_EQ(a.masked, b.masked);
  ASSERT_EQ(a.mask_pos.size(), 3u);
  EXPECT_EQ(a.mask_pos[0].size(), 3u);  // round(0.15 * 20)
  for (int64_t p : a.mask_pos[0]) {
    EXPECT_GT(p, 0);
    EXPECT_LT(p, 21);
    EXPECT_EQ(a.masked[0][static_cast<size_t>(p)], 3);
  }
  EXPECT_EQ(a.mask_pos[1], (std::vector<int64_t>{1}));  // at least one
  EXPECT_TRUE(a.mask_pos[2].empty());
  // cosine_rows: identical rows 1, opposite -1.
  auto c = mbprec::cosine_rows({1, 2, 3, 4}, {1, 2, -3, -4}, 2);
  EXPECT_DOUBLE_EQ(c.min, -1.0);
  EXPECT_DOUBLE_EQ(c.mean, 0.0);
}
