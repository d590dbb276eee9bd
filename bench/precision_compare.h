// Accuracy of a reduced-precision model against its f32 forward (#15 item 4): the measurement
// shared by bench/bench_precision.cpp (the report tool) and tests/test_precision.cpp (the bounds).
//
//   texts (token ids, [CLS] ... [SEP]) --run_outputs(encoder)--> Outputs: hidden [T, H], mean / CLS
//   sentence embeddings [N, H] (L2-normalised), MLM top-5 at every inner position of the texts and
//   at the [MASK]ed positions of a masked copy, classifier logits [N, L]
//   Outputs(f32) x Outputs(dtype) --compare--> cosines (mean, min), MLM top-1 agreement and top-5
//   overlap, classification label agreement and max |delta logit|
//
// Everything goes through the library's inference API (Encoder::forward via for_each_batch,
// sentence_embeddings, Encoder::mlm_logits, Encoder::classify), so what is measured is what
// `embed`, `fill-mask` and `classify` compute. Header-only: the tests include it by path.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "modernbert/batching.h"
#include "modernbert/model.h"
#include "modernbert/tasks.h"

namespace mbprec {

using modernbert::Batch;
using modernbert::Encoder;

// The input set. Masks are drawn once, so every dtype sees the same masked texts.
struct TextSet {
  std::vector<std::vector<int32_t>> seqs;      // token ids per text, with the special tokens
  std::vector<std::vector<int32_t>> masked;    // the same with some inner tokens replaced by [MASK]
  std::vector<std::vector<int64_t>> mask_pos;  // per text: the positions replaced (sorted)
  std::vector<int64_t> labels;                 // per text: gold label id, -1 = none (may be empty)
  int64_t num_tokens() const {
    int64_t n = 0;
    for (const auto& s : seqs) n += static_cast<int64_t>(s.size());
    return n;
  }
};

// Replaces round(rate * inner) (at least 1) of the inner positions 1 .. n-2 of every text with
// `mask_id` ([CLS] and [SEP] stay), chosen by a seeded mt19937_64 (same seed -> same masks).
// Texts with no inner position get no mask.
inline void add_masks(TextSet& ts, int32_t mask_id, double rate, uint64_t seed) {
  std::mt19937_64 rng(seed);
  ts.masked = ts.seqs;
  ts.mask_pos.assign(ts.seqs.size(), {});
  for (size_t i = 0; i < ts.seqs.size(); ++i) {
    const int64_t n = static_cast<int64_t>(ts.seqs[i].size());
    if (n < 3) continue;
    std::vector<int64_t> inner;
    for (int64_t p = 1; p < n - 1; ++p) inner.push_back(p);
    std::shuffle(inner.begin(), inner.end(), rng);
    const int64_t k = std::max<int64_t>(1, std::llround(rate * static_cast<double>(inner.size())));
    inner.resize(static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(inner.size()))));
    std::sort(inner.begin(), inner.end());
    for (int64_t p : inner) ts.masked[i][static_cast<size_t>(p)] = mask_id;
    ts.mask_pos[i] = inner;
  }
}

// The top 5 vocabulary ids of one MLM logit row (best first) and the top-1 margin
// logit[top1] - logit[top2] (how close the row is to a tie).
struct Top5 {
  std::array<int32_t, 5> ids{};
  float margin = 0;
};

inline Top5 top5_of(const float* row, int64_t V) {
  std::array<int32_t, 6> best{};
  int n = 0;
  for (int32_t v = 0; v < V; ++v) {
    if (n == 6 && row[v] <= row[best[5]]) continue;
    int j = n < 6 ? n++ : 5;
    while (j > 0 && row[v] > row[best[static_cast<size_t>(j - 1)]]) {
      best[static_cast<size_t>(j)] = best[static_cast<size_t>(j - 1)];
      --j;
    }
    best[static_cast<size_t>(j)] = v;
  }
  Top5 t;
  std::copy(best.begin(), best.begin() + 5, t.ids.begin());
  t.margin = row[best[0]] - row[best[1]];
  return t;
}

// What one model computes on a TextSet.
struct Outputs {
  int64_t H = 0, L = 0;
  std::vector<float> hidden;             // [T, H]: last_hidden_state, texts concatenated in order
  std::vector<float> emb_mean, emb_cls;  // [N, H], L2-normalised (embed --pooling mean|cls --normalize)
  std::vector<Top5> mlm_all;             // unmasked texts, every inner position, in order
  std::vector<Top5> mlm_masked;          // masked texts, every masked position, in order
  std::vector<float> logits;             // [N, L] sequence classification logits
  double seconds = 0;                    // wall time of the forwards and heads
};

namespace detail {
// MLM top-5 at `rows` of one batch's hidden state, in chunks of rows (V floats per row).
inline void mlm_top5(const Encoder& enc, const std::vector<float>& h, int64_t T, const std::vector<int64_t>& rows,
                     std::vector<Top5>& out) {
  const int64_t V = enc.config().vocab_size, chunk = 256;
  for (size_t r0 = 0; r0 < rows.size(); r0 += chunk) {
    std::vector<int64_t> part(rows.begin() + static_cast<std::ptrdiff_t>(r0),
                              rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), r0 + chunk)));
    auto lg = enc.mlm_logits(h.data(), T, part);
    for (size_t i = 0; i < part.size(); ++i) out.push_back(top5_of(lg.data() + static_cast<int64_t>(i) * V, V));
  }
}
}  // namespace detail

// Runs the encoder (and the heads asked for) over the texts in token-budget batches.
inline Outputs run_outputs(Encoder& enc, const TextSet& ts, bool mlm, bool cls, int64_t max_batch_tokens) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  Outputs o;
  o.H = enc.config().hidden_size;
  o.L = cls ? enc.num_labels() : 0;
  modernbert::for_each_batch(enc, ts.seqs, max_batch_tokens, [&](const Batch& b, size_t, const std::vector<float>& h) {
    o.hidden.insert(o.hidden.end(), h.begin(), h.end());
    int64_t d = 0;
    for (auto [pool, dst] : {std::pair{modernbert::EmbedPooling::kMean, &o.emb_mean},
                             std::pair{modernbert::EmbedPooling::kCls, &o.emb_cls}}) {
      modernbert::EmbedOptions eo;
      eo.pooling = pool;
      eo.normalize = true;
      auto e = modernbert::sentence_embeddings(b, h.data(), o.H, eo, &d);
      dst->insert(dst->end(), e.begin(), e.end());
    }
    if (mlm) {
      std::vector<int64_t> rows;
      for (int64_t s = 0; s < b.num_seqs(); ++s)
        for (int64_t t = b.cu_seqlens[static_cast<size_t>(s)] + 1; t + 1 < b.cu_seqlens[static_cast<size_t>(s + 1)];
             ++t)
          rows.push_back(t);
      detail::mlm_top5(enc, h, b.num_tokens(), rows, o.mlm_all);
    }
    if (cls) {
      auto lg = enc.classify(b, h.data());
      o.logits.insert(o.logits.end(), lg.begin(), lg.end());
    }
  });
  if (mlm)
    modernbert::for_each_batch(enc, ts.masked, max_batch_tokens,
                               [&](const Batch& b, size_t first, const std::vector<float>& h) {
                                 std::vector<int64_t> rows;
                                 for (int64_t s = 0; s < b.num_seqs(); ++s)
                                   for (int64_t p : ts.mask_pos[first + static_cast<size_t>(s)])
                                     rows.push_back(b.cu_seqlens[static_cast<size_t>(s)] + p);
                                 detail::mlm_top5(enc, h, b.num_tokens(), rows, o.mlm_masked);
                               });
  o.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return o;
}

// Cosines of paired rows: mean and minimum.
struct CosStat {
  double mean = 0, min = 1;
  int64_t n = 0;
  nlohmann::json to_json() const { return {{"mean", mean}, {"min", min}, {"n", n}}; }
};

inline CosStat cosine_rows(const std::vector<float>& a, const std::vector<float>& b, int64_t D) {
  CosStat c;
  if (D <= 0 || a.size() != b.size()) return c;
  const int64_t n = static_cast<int64_t>(a.size()) / D;
  double sum = 0;
  for (int64_t r = 0; r < n; ++r) {
    double ab = 0, aa = 0, bb = 0;
    for (int64_t k = 0; k < D; ++k) {
      const double x = a[static_cast<size_t>(r * D + k)], y = b[static_cast<size_t>(r * D + k)];
      ab += x * y, aa += x * x, bb += y * y;
    }
    // Two zero vectors agree; one zero vector against a non-zero one does not.
    const double cs = aa == 0 && bb == 0 ? 1.0 : (aa == 0 || bb == 0 ? 0.0 : ab / std::sqrt(aa * bb));
    sum += cs;
    c.min = std::min(c.min, cs);
  }
  c.n = n;
  c.mean = n ? sum / static_cast<double>(n) : 0;
  return c;
}

// MLM agreement over paired positions: top-1 equal, |top-5 ∩ top-5| / 5; and top-1 agreement
// restricted to positions whose f32 top-1 margin is at least `margin` (a near-tie in f32 can flip
// under any rounding; the margin count says how many positions that leaves).
struct MlmAgreement {
  int64_t n = 0;
  double top1 = 0, top5_overlap = 0;
  double margin = 0;
  int64_t n_margin = 0;
  double top1_margin = 0;
  nlohmann::json to_json() const {
    return {{"n", n},           {"top1_agreement", top1},     {"top5_overlap", top5_overlap},
            {"margin", margin}, {"n_above_margin", n_margin}, {"top1_agreement_above_margin", top1_margin}};
  }
};

inline MlmAgreement mlm_agreement(const std::vector<Top5>& ref, const std::vector<Top5>& got, double margin) {
  MlmAgreement a;
  a.margin = margin;
  if (ref.size() != got.size()) return a;
  int64_t same = 0, same_m = 0;
  double overlap = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const bool eq = ref[i].ids[0] == got[i].ids[0];
    same += eq;
    int common = 0;
    for (int32_t x : ref[i].ids) common += std::count(got[i].ids.begin(), got[i].ids.end(), x) > 0;
    overlap += common / 5.0;
    if (ref[i].margin >= margin) ++a.n_margin, same_m += eq;
  }
  a.n = static_cast<int64_t>(ref.size());
  if (a.n)
    a.top1 = static_cast<double>(same) / static_cast<double>(a.n), a.top5_overlap = overlap / static_cast<double>(a.n);
  if (a.n_margin) a.top1_margin = static_cast<double>(same_m) / static_cast<double>(a.n_margin);
  return a;
}

struct ClassAgreement {
  int64_t n = 0;
  double agreement = 0, max_abs_dlogit = 0;
  double margin = 0;  // as for MLM: agreement among texts whose f32 top-1 logit margin >= margin
  int64_t n_margin = 0;
  double agreement_margin = 0;
  nlohmann::json to_json() const {
    return {{"n", n},           {"label_agreement", agreement}, {"max_abs_dlogit", max_abs_dlogit},
            {"margin", margin}, {"n_above_margin", n_margin},   {"label_agreement_above_margin", agreement_margin}};
  }
};

inline int64_t argmax(const float* x, int64_t L) { return std::max_element(x, x + L) - x; }

inline ClassAgreement class_agreement(const Outputs& ref, const Outputs& got, double margin) {
  ClassAgreement c;
  c.margin = margin;
  const int64_t L = ref.L;
  if (L <= 0 || ref.logits.size() != got.logits.size()) return c;
  c.n = static_cast<int64_t>(ref.logits.size()) / L;
  int64_t same = 0, same_m = 0;
  for (int64_t i = 0; i < c.n; ++i) {
    const float* r = ref.logits.data() + i * L;
    const float* g = got.logits.data() + i * L;
    for (int64_t k = 0; k < L; ++k)
      c.max_abs_dlogit = std::max(c.max_abs_dlogit, std::fabs(static_cast<double>(r[k] - g[k])));
    const int64_t lr = argmax(r, L);
    const bool eq = lr == argmax(g, L);
    same += eq;
    float second = -INFINITY;
    for (int64_t k = 0; k < L; ++k)
      if (k != lr) second = std::max(second, r[k]);
    if (L == 1 || r[lr] - second >= margin) ++c.n_margin, same_m += eq;
  }
  if (c.n) c.agreement = static_cast<double>(same) / static_cast<double>(c.n);
  if (c.n_margin) c.agreement_margin = static_cast<double>(same_m) / static_cast<double>(c.n_margin);
  return c;
}

// Accuracy of the argmax of the logits against the gold labels (texts with label -1 skipped):
// `modernbert eval`'s decision rule for single-label classification. Returns -1 with no labels.
inline double accuracy(const Outputs& o, const std::vector<int64_t>& labels) {
  if (o.L <= 0 || labels.empty()) return -1;
  int64_t n = 0, ok = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0) continue;
    ++n;
    ok += argmax(o.logits.data() + static_cast<int64_t>(i) * o.L, o.L) == labels[i];
  }
  return n ? static_cast<double>(ok) / static_cast<double>(n) : -1;
}

// Everything measured for one dtype against f32.
struct Comparison {
  CosStat emb_mean, emb_cls, token;
  MlmAgreement mlm_masked, mlm_all;
  ClassAgreement cls;
  nlohmann::json to_json() const {
    nlohmann::json j = {{"embedding_mean_pool_cos", emb_mean.to_json()},
                        {"embedding_cls_cos", emb_cls.to_json()},
                        {"last_hidden_state_token_cos", token.to_json()}};
    if (mlm_all.n) j["mlm"] = {{"masked", mlm_masked.to_json()}, {"all_positions", mlm_all.to_json()}};
    if (cls.n) j["classification"] = cls.to_json();
    return j;
  }
};

inline Comparison compare(const Outputs& ref, const Outputs& got, double mlm_margin = 0, double cls_margin = 0) {
  Comparison c;
  c.emb_mean = cosine_rows(ref.emb_mean, got.emb_mean, ref.H);
  c.emb_cls = cosine_rows(ref.emb_cls, got.emb_cls, ref.H);
  c.token = cosine_rows(ref.hidden, got.hidden, ref.H);
  c.mlm_masked = mlm_agreement(ref.mlm_masked, got.mlm_masked, mlm_margin);
  c.mlm_all = mlm_agreement(ref.mlm_all, got.mlm_all, mlm_margin);
  c.cls = class_agreement(ref, got, cls_margin);
  return c;
}

}  // namespace mbprec
