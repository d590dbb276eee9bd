// Encoder forward + heads vs a naive reference written here: double precision everywhere,
// per-sequence full n x n attention with an explicit mask matrix, no kernels from src/.
// Tiny random configs: windows shorter than the inputs, lengths 1 .. several windows, biases
// on/off, tied/untied decoder, both layer types; plus batch invariances and linear memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "modernbert/config.h"
#include "modernbert/error.h"
#include "modernbert/model.h"
#include "modernbert/weights.h"

using modernbert::Batch;
using modernbert::Encoder;
using modernbert::ModelConfig;
using modernbert::Weights;

namespace {

using Vec = std::vector<double>;

// ---------------------------------------------------------------- model setup

ModelConfig make_config(int64_t H, int64_t nh, int64_t I, int64_t L, int64_t window, int64_t V, bool biases,
                        bool tied, const char* act = "gelu", const char* cls_act = "gelu") {
  nlohmann::json j = {{"hidden_size", H},         {"num_attention_heads", nh}, {"intermediate_size", I},
                      {"num_hidden_layers", L},   {"local_attention", window}, {"vocab_size", V},
                      {"global_attn_every_n_layers", 3},
                      {"norm_bias", biases},      {"attention_bias", biases},  {"mlp_bias", biases},
                      {"classifier_bias", biases}, {"decoder_bias", true},    {"tie_word_embeddings", tied},
                      {"hidden_activation", act}, {"classifier_activation", cls_act},
                      {"global_rope_theta", 160000.0}, {"local_rope_theta", 10000.0},
                      {"classifier_pooling", "mean"}, {"max_position_embeddings", 8192},
                      {"pad_token_id", 0}, {"bos_token_id", 1}, {"eos_token_id", 2}, {"cls_token_id", 1},
                      {"sep_token_id", 2}};
  return ModelConfig::from_json(j, "test");
}

// Random parameters with sensible scales: matrices U(-1,1)*1.5/sqrt(in), norm weights
// U(0.7,1.3), biases U(-0.2,0.2), embeddings U(-1,1).
void randomize(Weights& w, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (const auto& s : w.specs()) {
    float* p = w.mutable_param(s.name);
    const bool bias = s.name.size() > 5 && s.name.compare(s.name.size() - 5, 5, ".bias") == 0;
    const bool norm = s.name.find("norm") != std::string::npos;
    const bool emb = s.name.find("tok_embeddings") != std::string::npos;
    for (int64_t i = 0; i < s.numel(); ++i) {
      float v = u(rng);
      if (bias) v *= 0.2f;
      else if (norm) v = 1.0f + 0.3f * v;
      else if (!emb && s.shape.size() == 2) v *= 1.5f / std::sqrt(static_cast<float>(s.shape[1]));
      p[i] = v;
    }
  }
}

// ---------------------------------------------------------------- naive reference

double act_d(modernbert::Activation a, double x) {
  switch (a) {
    case modernbert::Activation::kGelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case modernbert::Activation::kGeluTanh:
      return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case modernbert::Activation::kRelu: return x > 0 ? x : 0;
    case modernbert::Activation::kSilu: return x / (1.0 + std::exp(-x));
  }
  return 0;
}

// y[n, out] = x[n, in] W^T + b
Vec linear(const Vec& x, int64_t n, int64_t in, const modernbert::WeightMatrix& Wm, const float* b, int64_t out) {
  const float* W = Wm.f32();
  Vec y(static_cast<size_t>(n * out));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = b ? b[o] : 0.0;
      for (int64_t c = 0; c < in; ++c) s += x[static_cast<size_t>(i * in + c)] * W[o * in + c];
      y[static_cast<size_t>(i * out + o)] = s;
    }
  return y;
}

Vec layer_norm(const Vec& x, int64_t n, int64_t C, const float* g, const float* b, double eps) {
  Vec y(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < C; ++c) mean += x[static_cast<size_t>(i * C + c)];
    mean /= static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c) {
      const double dv = x[static_cast<size_t>(i * C + c)] - mean;
      var += dv * dv;
    }
    var /= static_cast<double>(C);
    for (int64_t c = 0; c < C; ++c) {
      double v = (x[static_cast<size_t>(i * C + c)] - mean) / std::sqrt(var + eps);
      y[static_cast<size_t>(i * C + c)] = v * (g ? g[c] : 1.0) + (b ? b[c] : 0.0);
    }
  }
  return y;
}

// One sequence through the whole encoder (padding-free loops; attention with an explicit mask).
Vec reference_sequence(const ModelConfig& cfg, const modernbert::WeightViews& w, const std::vector<int32_t>& ids) {
  const int64_t n = static_cast<int64_t>(ids.size()), H = cfg.hidden_size, I = cfg.intermediate_size;
  const int64_t nh = cfg.num_attention_heads, d = cfg.head_dim(), half = d / 2;
  const double eps = cfg.norm_eps;
  Vec e(static_cast<size_t>(n * H));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < H; ++c)
      e[static_cast<size_t>(t * H + c)] = w.tok_embeddings.f32()[ids[static_cast<size_t>(t)] * H + c];
  Vec h = layer_norm(e, n, H, w.emb_norm_w, w.emb_norm_b, eps);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const auto& lw = w.layers[static_cast<size_t>(l)];
    Vec a = lw.attn_norm_w ? layer_norm(h, n, H, lw.attn_norm_w, lw.attn_norm_b, eps) : h;
    Vec qkv = linear(a, n, H, lw.wqkv, lw.bqkv, 3 * H);
    // RoPE: HF's float32 inv_freq and float32 angle, then exact cos/sin of that angle.
    const float theta = static_cast<float>(cfg.rope_theta(l));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t part = 0; part < 2; ++part)
        for (int64_t hd = 0; hd < nh; ++hd) {
          double* v = qkv.data() + t * 3 * H + part * H + hd * d;
          for (int64_t j = 0; j < half; ++j) {
            const float inv = 1.0f / static_cast<float>(std::pow(static_cast<double>(theta),
                                                                   static_cast<double>(static_cast<float>(2 * j) / static_cast<float>(d))));
            const double ang = static_cast<float>(static_cast<float>(t) * inv);
            const double x1 = v[j], x2 = v[j + half];
            v[j] = x1 * std::cos(ang) - x2 * std::sin(ang);
            v[j + half] = x2 * std::cos(ang) + x1 * std::sin(ang);
          }
        }
    // Explicit n x n mask (fine for test sizes).
    const int64_t hw = cfg.half_window(l);
    std::vector<char> allowed(static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) allowed[static_cast<size_t>(i * n + j)] = hw < 0 || std::llabs(i - j) <= hw;
    Vec o(static_cast<size_t>(n * H));
    for (int64_t hd = 0; hd < nh; ++hd)
      for (int64_t i = 0; i < n; ++i) {
        Vec s(static_cast<size_t>(n));
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < n; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c) dot += qkv[static_cast<size_t>(i * 3 * H + hd * d + c)] * qkv[static_cast<size_t>(j * 3 * H + H + hd * d + c)];
          s[static_cast<size_t>(j)] = allowed[static_cast<size_t>(i * n + j)] ? dot / std::sqrt(static_cast<double>(d))
                                                                             : -std::numeric_limits<double>::infinity();
          mx = std::max(mx, s[static_cast<size_t>(j)]);
        }
        double z = 0;
        for (auto& v : s) z += (v = std::exp(v - mx));
        for (int64_t c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < n; ++j) acc += s[static_cast<size_t>(j)] * qkv[static_cast<size_t>(j * 3 * H + 2 * H + hd * d + c)];
          o[static_cast<size_t>(i * H + hd * d + c)] = acc / z;
        }
      }
    Vec proj = linear(o, n, H, lw.wo, lw.bo, H);
    for (size_t i = 0; i < h.size(); ++i) h[i] += proj[i];
    Vec m = layer_norm(h, n, H, lw.mlp_norm_w, lw.mlp_norm_b, eps);
    Vec u = linear(m, n, H, lw.wi, lw.bi, 2 * I);
    Vec g(static_cast<size_t>(n * I));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < I; ++c)
        g[static_cast<size_t>(t * I + c)] = act_d(cfg.hidden_activation, u[static_cast<size_t>(t * 2 * I + c)]) * u[static_cast<size_t>(t * 2 * I + I + c)];
    Vec mo = linear(g, n, I, lw.wo_mlp, lw.bo_mlp, H);
    for (size_t i = 0; i < h.size(); ++i) h[i] += mo[i];
  }
  return layer_norm(h, n, H, w.final_norm_w, w.final_norm_b, eps);
}

Vec reference_head(const ModelConfig& cfg, const modernbert::WeightViews& w, const Vec& x, int64_t R) {
  const int64_t H = cfg.hidden_size;
  Vec y = linear(x, R, H, w.head_dense_w, w.head_dense_b, H);
  for (auto& v : y) v = act_d(cfg.classifier_activation, v);
  return layer_norm(y, R, H, w.head_norm_w, w.head_norm_b, cfg.norm_eps);
}

// ---------------------------------------------------------------- helpers

std::vector<std::vector<int32_t>> random_sequences(const std::vector<int64_t>& lens, int64_t V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> u(0, static_cast<int32_t>(V - 1));
  std::vector<std::vector<int32_t>> s;
  for (int64_t n : lens) {
    std::vector<int32_t> ids(static_cast<size_t>(n));
    for (auto& x : ids) x = u(rng);
    s.push_back(ids);
  }
  return s;
}

double max_diff(const float* a, const double* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

struct Case {
  const char* name;
  ModelConfig cfg;
  std::vector<int64_t> lens;
};

// Compares hidden states and every head against the reference.
void check_case(const Case& cs, const char* heads_spec, uint32_t seed) {
  SCOPED_TRACE(cs.name);
  Weights weights(cs.cfg, modernbert::HeadSet::parse(heads_spec));
  randomize(weights, seed);
  Encoder enc(weights);
  const auto& cfg = enc.config();
  const auto w = weights.views();
  const int64_t H = cfg.hidden_size;
  auto seqs = random_sequences(cs.lens, cfg.vocab_size, seed + 1);
  Batch batch = Batch::from_sequences(seqs);
  std::vector<float> hidden = enc.forward(batch);
  ASSERT_EQ(hidden.size(), static_cast<size_t>(batch.num_tokens() * H));

  // Hidden states: fp32 kernels vs double reference through L layers; measured ~1e-6..1e-5.
  std::vector<Vec> ref;
  double worst = 0;
  for (size_t b = 0; b < seqs.size(); ++b) {
    ref.push_back(reference_sequence(cfg, w, seqs[b]));
    worst = std::max(worst, max_diff(hidden.data() + batch.cu_seqlens[b] * H, ref.back().data(), ref.back().size()));
  }
  EXPECT_LT(worst, 1e-4) << "last_hidden_state";
  ::testing::Test::RecordProperty("max_abs_diff_hidden", std::to_string(worst));

  // Pooling (both kinds) and classification.
  for (auto pl : {modernbert::Pooling::kCls, modernbert::Pooling::kMean}) {
    auto pooled = enc.pool(batch, hidden.data(), pl);
    Vec rp(static_cast<size_t>(batch.num_seqs() * H));
    for (size_t b = 0; b < seqs.size(); ++b) {
      const int64_t n = static_cast<int64_t>(seqs[b].size());
      for (int64_t c = 0; c < H; ++c) {
        double v = 0;
        if (pl == modernbert::Pooling::kCls) v = ref[b][static_cast<size_t>(c)];
        else {
          for (int64_t t = 0; t < n; ++t) v += ref[b][static_cast<size_t>(t * H + c)];
          v /= static_cast<double>(n);
        }
        rp[b * static_cast<size_t>(H) + static_cast<size_t>(c)] = v;
      }
    }
    EXPECT_LT(max_diff(pooled.data(), rp.data(), rp.size()), 1e-4) << "pool";
    if (weights.views().classifier_w && weights.heads().classifier == modernbert::HeadSet::Classifier::kSequence) {
      auto logits = enc.classify(batch, hidden.data(), pl);
      Vec z = reference_head(cfg, w, rp, batch.num_seqs());
      Vec rl = linear(z, batch.num_seqs(), H, w.classifier_w, w.classifier_b, enc.num_labels());
      EXPECT_LT(max_diff(logits.data(), rl.data(), rl.size()), 2e-4) << "classify";
    }
  }
  if (weights.heads().classifier == modernbert::HeadSet::Classifier::kToken) {
    auto logits = enc.classify_tokens(hidden.data(), batch.num_tokens());
    Vec all;
    for (auto& r : ref) all.insert(all.end(), r.begin(), r.end());
    Vec z = reference_head(cfg, w, all, batch.num_tokens());
    Vec rl = linear(z, batch.num_tokens(), H, w.classifier_w, w.classifier_b, enc.num_labels());
    EXPECT_LT(max_diff(logits.data(), rl.data(), rl.size()), 2e-4) << "classify_tokens";
  }
  if (weights.heads().mlm) {
    // A few rows spread over the batch, including the first and last token.
    std::vector<int64_t> rows{0, batch.num_tokens() - 1, batch.num_tokens() / 2};
    auto logits = enc.mlm_logits(hidden.data(), batch.num_tokens(), rows);
    Vec x;
    for (int64_t r : rows) {
      int64_t b = static_cast<int64_t>(std::upper_bound(batch.cu_seqlens.begin(), batch.cu_seqlens.end(), r) - batch.cu_seqlens.begin()) - 1;
      const auto& rr = ref[static_cast<size_t>(b)];
      const int64_t t = r - batch.cu_seqlens[static_cast<size_t>(b)];
      x.insert(x.end(), rr.begin() + t * H, rr.begin() + (t + 1) * H);
    }
    Vec z = reference_head(cfg, w, x, static_cast<int64_t>(rows.size()));
    Vec rl = linear(z, static_cast<int64_t>(rows.size()), H, w.decoder_w, w.decoder_b, cfg.vocab_size);
    EXPECT_LT(max_diff(logits.data(), rl.data(), rl.size()), 2e-4) << "mlm_logits";
    if (cfg.tie_word_embeddings)
      EXPECT_EQ(w.decoder_w.data, w.tok_embeddings.data);
    else
      EXPECT_NE(w.decoder_w.data, w.tok_embeddings.data);
  }
}

}  // namespace

TEST(Forward, TinyNoBiasTiedMatchesReference) {
  // H 32, 2 heads of d 16, window 8 (half 4): lengths 1 .. several windows.
  check_case({"tiny", make_config(32, 2, 40, 4, 8, 67, false, true), {1, 9, 30, 4, 2}}, "mlm", 1);
}

TEST(Forward, BiasesUntiedTanhSiluMatchesReference) {
  check_case({"biases", make_config(24, 3, 20, 4, 6, 53, true, false, "gelu_pytorch_tanh", "silu"), {5, 1, 40}},
             "mlm,cls:3", 2);
}

TEST(Forward, HeadDim64TokenHeadMatchesReference) {
  // The real head size; window 16; a sequence 6x the window and longer than one 64-key block.
  check_case({"d64", make_config(128, 2, 96, 3, 16, 41, false, true), {1, 100, 37}}, "token:5", 3);
}

TEST(Forward, WindowLongerThanSequencesAndReluGlu) {
  check_case({"wide", make_config(32, 4, 24, 5, 64, 30, true, true, "relu"), {3, 7, 1}}, "cls:2", 4);
}

namespace {
struct Fixture {
  ModelConfig cfg = make_config(32, 2, 40, 4, 8, 67, false, true);
  Weights weights{cfg, modernbert::HeadSet::parse("mlm")};
  Fixture() { randomize(weights, 11); }
};
}  // namespace

TEST(Forward, SequenceAloneEqualsInBatch) {
  Fixture f;
  Encoder enc(f.weights);
  const int64_t H = f.cfg.hidden_size;
  auto seqs = random_sequences({17, 1, 33, 5}, f.cfg.vocab_size, 12);
  auto all = enc.forward(Batch::from_sequences(seqs));
  Batch batch = Batch::from_sequences(seqs);
  for (size_t b = 0; b < seqs.size(); ++b) {
    auto alone = enc.forward(Batch::from_sequences({seqs[b]}));
    double m = 0;
    for (size_t i = 0; i < alone.size(); ++i)
      m = std::max(m, static_cast<double>(std::abs(alone[i] - all[static_cast<size_t>(batch.cu_seqlens[b] * H) + i])));
    EXPECT_LT(m, 1e-5) << "sequence " << b;  // only gemm blocking can differ
  }
}

TEST(Forward, BatchOrderDoesNotMatter) {
  Fixture f;
  Encoder enc(f.weights);
  const int64_t H = f.cfg.hidden_size;
  auto seqs = random_sequences({9, 20, 1, 13}, f.cfg.vocab_size, 13);
  std::vector<size_t> perm{2, 0, 3, 1};
  std::vector<std::vector<int32_t>> shuffled;
  for (size_t p : perm) shuffled.push_back(seqs[p]);
  Batch b1 = Batch::from_sequences(seqs), b2 = Batch::from_sequences(shuffled);
  auto h1 = enc.forward(b1), h2 = enc.forward(b2);
  for (size_t k = 0; k < perm.size(); ++k) {
    const size_t orig = perm[k];
    const int64_t n = b1.seq_len(static_cast<int64_t>(orig));
    double m = 0;
    for (int64_t i = 0; i < n * H; ++i)
      m = std::max(m, static_cast<double>(std::abs(h1[static_cast<size_t>(b1.cu_seqlens[orig] * H + i)] -
                                                   h2[static_cast<size_t>(b2.cu_seqlens[k] * H + i)])));
    EXPECT_LT(m, 1e-5);
  }
  // Pooled vectors follow the sequences.
  auto p1 = enc.pool(b1, h1.data()), p2 = enc.pool(b2, h2.data());
  for (size_t k = 0; k < perm.size(); ++k)
    for (int64_t c = 0; c < H; ++c)
      EXPECT_NEAR(p1[perm[k] * static_cast<size_t>(H) + static_cast<size_t>(c)], p2[k * static_cast<size_t>(H) + static_cast<size_t>(c)], 1e-5);
}

TEST(Forward, MemoryLinearInSequenceLength) {
  Fixture f;
  Encoder enc(f.weights);
  auto seqs = random_sequences({3000}, f.cfg.vocab_size, 14);
  auto h = enc.forward(Batch::from_sequences(seqs));
  ASSERT_EQ(h.size(), static_cast<size_t>(3000 * f.cfg.hidden_size));
  for (float v : h) ASSERT_TRUE(std::isfinite(v));
  // Arena is a few dozen floats per token per hidden unit, nowhere near n^2 (9M).
  EXPECT_LT(enc.arena_floats(), static_cast<size_t>(3000 * 16 * f.cfg.hidden_size));
  const size_t first = enc.arena_floats();
  enc.forward(Batch::from_sequences(random_sequences({100, 200}, f.cfg.vocab_size, 15)));
  EXPECT_EQ(enc.arena_floats(), first);  // reused, not reallocated for a smaller batch
}

TEST(Forward, RejectsBadBatches) {
  Fixture f;
  Encoder enc(f.weights);
  Batch b = Batch::from_sequences({{1, 2, 3}});
  b.ids[1] = static_cast<int32_t>(f.cfg.vocab_size);
  EXPECT_THROW(enc.forward(b), modernbert::Error);
  Batch e;
  e.cu_seqlens = {0, 0};
  EXPECT_THROW(enc.forward(e), modernbert::Error);
  Batch m = Batch::from_sequences({{1, 2}});
  m.cu_seqlens.back() = 3;
  EXPECT_THROW(enc.forward(m), modernbert::Error);
  Batch empty;
  EXPECT_TRUE(enc.forward(empty).empty());
  EXPECT_THROW(enc.mlm_logits(nullptr, 0, {0}), modernbert::Error);
  EXPECT_THROW(enc.classify(empty, nullptr), modernbert::Error);  // no classifier in an mlm checkpoint
}
