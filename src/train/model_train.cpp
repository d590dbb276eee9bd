// Training forward (saving activations), losses and backward of the whole model (spec §4), over
// an unpadded batch. Shapes (T tokens, B sequences, H hidden, I intermediate, nh heads, d = H/nh,
// R predicted rows, C = V (MLM) or num_labels):
//
//   forward, per layer l (saved: ✓)
//     hs[l]  [T,H] ✓ residual input        a = l==0 ? hs[l] : LN(hs[l]) ✓ (+mean/rstd)
//     qkv    [T,3H] ✓ after RoPE          o = Attn(qkv) [T,H] ✓ + lse [T,nh] ✓
//     hmid   [T,H] ✓ = hs[l] + o Woᵀ      m = LN(hmid) [T,H] ✓
//     u      [T,2I] ✓ = m Wiᵀ             g = act(u[:, :I]) ⊙ u[:, I:]  (recomputed in backward)
//     hs[l+1] = hmid + g Wo_mlpᵀ
//   out = LN(hs[L]; final_norm) ✓
//   head: X [R,H] (gathered rows / pooled) → z1 = X Wdᵀ ✓ → z2 = act(z1) ✓ → z = LN(z2) ✓ → logits z Woutᵀ
//
// Backward walks the same list in reverse; every parameter gradient is ADDED into the flat grads
// buffer at the parameter's offset (a tied decoder's gradient therefore lands in the embedding).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <string>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "model/kernel_act.h"
#include "modernbert/error.h"
#include "modernbert/trainer.h"

namespace modernbert {

namespace k = kernels;
using kernels::Act;

const char* to_string(TaskType t) {
  switch (t) {
    case TaskType::kMlm: return "mlm";
    case TaskType::kSequenceClassification: return "classification";
    case TaskType::kTokenClassification: return "token-classification";
    case TaskType::kRegression: return "regression";
    case TaskType::kMultiLabel: return "multilabel";
  }
  return "?";
}

TaskType parse_task(const std::string& s) {
  if (s == "mlm") return TaskType::kMlm;
  if (s == "classification" || s == "cls") return TaskType::kSequenceClassification;
  if (s == "token-classification" || s == "token") return TaskType::kTokenClassification;
  if (s == "regression") return TaskType::kRegression;
  if (s == "multilabel" || s == "multi-label") return TaskType::kMultiLabel;
  throw Error("task: unknown task '" + s + "' (expected mlm, classification, token-classification, regression, multilabel)");
}

double grad_norm_sq(const float* g, size_t n) { return kernels::grad_norm_sq(g, n); }

namespace {

void resize(std::vector<float>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
}

bool per_token(TaskType t) { return t == TaskType::kMlm || t == TaskType::kTokenClassification; }

}  // namespace

struct TrainModel::Impl {
  const Weights& w;
  ModelConfig cfg;
  WeightViews v;
  const float* base = nullptr;
  int64_t num_labels = 0;
  std::map<double, k::RopeTable> rope;

  struct LayerActs {
    std::vector<float> hs, a, a_mean, a_rstd, qkv, o, lse, hmid, m, m_mean, m_rstd, u;
  };
  std::vector<LayerActs> layers;
  std::vector<float> emb_x, emb_mean, emb_rstd, h_last, out, f_mean, f_rstd;
  // Head.
  std::vector<int64_t> rows;
  std::vector<int32_t> row_labels;
  std::vector<float> hx, z1, z2, z, z_mean, z_rstd, logits;
  // Backward scratch.
  std::vector<float> dh, dtmp, dtmp2, dqkv, du, gbuf, dg, dout, dz, dz2;
  // Attention-output dropout (spec §6.9): p and the seed of the current masks; ybuf holds the
  // attention output projection before the mask.
  double attn_drop_p = 0;
  uint64_t drop_seed = 0;
  std::vector<float> ybuf;

  // dst[i] (+)= src[i] * keep/(1-p) or 0: the counter-based mask of (seed, layer, i) of
  // kernels::dropout, so forward and backward regenerate the same mask without storing it.
  void apply_dropout(int64_t l, const float* src, float* dst, int64_t n, bool accumulate) const {
    kernels::dropout(src, dst, n, attn_drop_p, drop_seed, l, accumulate);
  }

  explicit Impl(const Weights& weights) : w(weights), cfg(weights.config()), v(weights.views()) {
    if (!w.is_contiguous()) throw Error("training needs the parameters in one contiguous buffer (make_contiguous())");
    base = w.data();
    num_labels = w.heads().num_labels;
    layers.resize(static_cast<size_t>(cfg.num_hidden_layers));
  }

  float* G(const float* p, float* grads) const { return p && grads ? grads + (p - base) : nullptr; }

  const k::RopeTable& table_for(double theta, int64_t max_len) {
    auto& t = rope[theta];
    if (t.max_len < max_len) {
      int64_t len = std::max<int64_t>(t.max_len, 512);
      while (len < max_len) len *= 2;
      t = k::make_rope_table(theta, cfg.head_dim(), len);
    }
    return t;
  }

  // ---- encoder ----
  void encoder_forward(const Batch& batch) {
    const int64_t T = batch.num_tokens(), B = batch.num_seqs(), H = cfg.hidden_size, I = cfg.intermediate_size;
    const int64_t nh = cfg.num_attention_heads, d = cfg.head_dim(), L = cfg.num_hidden_layers;
    const float eps = static_cast<float>(cfg.norm_eps);
    const int64_t* cu = batch.cu_seqlens.data();
    const Act act = to_kernel_act(cfg.hidden_activation);
    resize(emb_x, T * H);
    resize(emb_mean, T);
    resize(emb_rstd, T);
    resize(gbuf, T * I);
    resize(dtmp, T * H);
    kernels::embedding(batch.ids.data(), v.tok_embeddings, emb_x.data(), T, H);
    float* h = nullptr;
    if (L > 0) {
      resize(layers[0].hs, T * H);
      h = layers[0].hs.data();
    } else {
      resize(h_last, T * H);
      h = h_last.data();
    }
    kernels::layernorm(emb_x.data(), v.emb_norm_w, v.emb_norm_b, h, T, H, eps, emb_mean.data(), emb_rstd.data());
    for (int64_t l = 0; l < L; ++l) {
      const LayerWeights& lw = v.layers[static_cast<size_t>(l)];
      LayerActs& A = layers[static_cast<size_t>(l)];
      const float* x = A.hs.data();
      if (lw.attn_norm_w) {
        resize(A.a, T * H);
        resize(A.a_mean, T);
        resize(A.a_rstd, T);
        kernels::layernorm(A.hs.data(), lw.attn_norm_w, lw.attn_norm_b, A.a.data(), T, H, eps, A.a_mean.data(),
                           A.a_rstd.data());
        x = A.a.data();
      }
      resize(A.qkv, T * 3 * H);
      resize(A.o, T * H);
      resize(A.lse, T * nh);
      resize(A.hmid, T * H);
      resize(A.m, T * H);
      resize(A.m_mean, T);
      resize(A.m_rstd, T);
      resize(A.u, T * 2 * I);
      k::gemm(x, lw.wqkv, lw.bqkv, A.qkv.data(), T, 3 * H, H);
      k::rope_qkv(A.qkv.data(), cu, B, nh, table_for(cfg.rope_theta(l), batch.max_seqlen()));
      kernels::attention_forward(A.qkv.data(), A.o.data(), A.lse.data(), cu, B, nh, d, cfg.half_window(l));
      std::memcpy(A.hmid.data(), A.hs.data(), static_cast<size_t>(T * H) * sizeof(float));
      if (attn_drop_p > 0) {  // hmid = hs + Dropout(o Woᵀ + bo)
        resize(ybuf, T * H);
        k::gemm(A.o.data(), lw.wo, lw.bo, ybuf.data(), T, H, H);
        apply_dropout(l, ybuf.data(), A.hmid.data(), T * H, /*accumulate=*/true);
      } else {
        k::gemm(A.o.data(), lw.wo, lw.bo, A.hmid.data(), T, H, H, /*accumulate=*/true);
      }
      kernels::layernorm(A.hmid.data(), lw.mlp_norm_w, lw.mlp_norm_b, A.m.data(), T, H, eps, A.m_mean.data(),
                         A.m_rstd.data());
      k::gemm(A.m.data(), lw.wi, lw.bi, A.u.data(), T, 2 * I, H);
      k::glu(act, A.u.data(), gbuf.data(), T, I);
      float* next;
      if (l + 1 < L) {
        resize(layers[static_cast<size_t>(l + 1)].hs, T * H);
        next = layers[static_cast<size_t>(l + 1)].hs.data();
      } else {
        resize(h_last, T * H);
        next = h_last.data();
      }
      std::memcpy(next, A.hmid.data(), static_cast<size_t>(T * H) * sizeof(float));
      k::gemm(gbuf.data(), lw.wo_mlp, lw.bo_mlp, next, T, H, I, /*accumulate=*/true);
    }
    resize(out, T * H);
    resize(f_mean, T);
    resize(f_rstd, T);
    kernels::layernorm(h_last.data(), v.final_norm_w, v.final_norm_b, out.data(), T, H, eps, f_mean.data(),
                       f_rstd.data());
  }

  // dout [T,H] (d loss / d last_hidden_state) -> parameter gradients.
  void encoder_backward(const Batch& batch, const float* dlast, float* grads) {
    const int64_t T = batch.num_tokens(), B = batch.num_seqs(), H = cfg.hidden_size, I = cfg.intermediate_size;
    const int64_t nh = cfg.num_attention_heads, d = cfg.head_dim(), L = cfg.num_hidden_layers;
    const int64_t* cu = batch.cu_seqlens.data();
    const Act act = to_kernel_act(cfg.hidden_activation);
    resize(dh, T * H);
    resize(dtmp, T * H);
    resize(dtmp2, T * H);
    resize(dqkv, T * 3 * H);
    resize(du, T * 2 * I);
    resize(dg, T * I);
    resize(gbuf, T * I);
    kernels::layernorm_backward(dlast, h_last.data(), v.final_norm_w, f_mean.data(), f_rstd.data(), dh.data(), false,
                                G(v.final_norm_w, grads), G(v.final_norm_b, grads), T, H);
    for (int64_t l = L - 1; l >= 0; --l) {
      const LayerWeights& lw = v.layers[static_cast<size_t>(l)];
      LayerActs& A = layers[static_cast<size_t>(l)];
      // MLP: hs[l+1] = hmid + g Wo_mlpᵀ (+b)
      k::glu(act, A.u.data(), gbuf.data(), T, I);
      kernels::linear_backward(gbuf.data(), lw.wo_mlp, dh.data(), dg.data(), false, G(lw.wo_mlp, grads),
                               G(lw.bo_mlp, grads), T, H, I);
      kernels::glu_backward(act, A.u.data(), dg.data(), du.data(), T, I);
      kernels::linear_backward(A.m.data(), lw.wi, du.data(), dtmp.data(), false, G(lw.wi, grads), G(lw.bi, grads), T,
                               2 * I, H);
      // dh (= d hs[l+1]) flows through the residual to hmid, plus the mlp_norm branch.
      kernels::layernorm_backward(dtmp.data(), A.hmid.data(), lw.mlp_norm_w, A.m_mean.data(), A.m_rstd.data(),
                                  dh.data(), true, G(lw.mlp_norm_w, grads), G(lw.mlp_norm_b, grads), T, H);
      // Attention: hmid = hs[l] + Dropout(o Woᵀ (+b))
      const float* dy = dh.data();
      if (attn_drop_p > 0) {
        resize(ybuf, T * H);
        apply_dropout(l, dh.data(), ybuf.data(), T * H, /*accumulate=*/false);
        dy = ybuf.data();
      }
      kernels::linear_backward(A.o.data(), lw.wo, dy, dtmp.data(), false, G(lw.wo, grads), G(lw.bo, grads), T, H, H);
      kernels::attention_backward(A.qkv.data(), A.o.data(), dtmp.data(), A.lse.data(), dqkv.data(), cu, B, nh, d,
                                  cfg.half_window(l));
      kernels::rope_backward(dqkv.data(), cu, B, nh, table_for(cfg.rope_theta(l), batch.max_seqlen()));
      const float* x = lw.attn_norm_w ? A.a.data() : A.hs.data();
      kernels::linear_backward(x, lw.wqkv, dqkv.data(), dtmp2.data(), false, G(lw.wqkv, grads), G(lw.bqkv, grads), T,
                               3 * H, H);
      if (lw.attn_norm_w) {
        kernels::layernorm_backward(dtmp2.data(), A.hs.data(), lw.attn_norm_w, A.a_mean.data(), A.a_rstd.data(),
                                    dh.data(), true, G(lw.attn_norm_w, grads), G(lw.attn_norm_b, grads), T, H);
      } else {
        float* dhp = dh.data();
        const float* src = dtmp2.data();
        for (int64_t i = 0; i < T * H; ++i) dhp[i] += src[i];
      }
    }
    // Embeddings: hs[0] = LN(E[ids]).
    kernels::layernorm_backward(dh.data(), emb_x.data(), v.emb_norm_w, emb_mean.data(), emb_rstd.data(), dtmp.data(),
                                false, G(v.emb_norm_w, grads), G(v.emb_norm_b, grads), T, H);
    kernels::embedding_backward(batch.ids.data(), dtmp.data(), G(v.tok_embeddings, grads), T, H);
  }

  // ---- head: X [R,H] -> logits [R,C] with output layer (Wout [C,H], bout [C]) ----
  void head_forward(const float* X, int64_t R, const float* Wout, const float* bout, int64_t C) {
    const int64_t H = cfg.hidden_size;
    if (!v.head_dense_w || !v.head_norm_w) throw Error("training: the weights have no head.dense / head.norm");
    resize(z1, R * H);
    resize(z2, R * H);
    resize(z, R * H);
    resize(z_mean, R);
    resize(z_rstd, R);
    resize(logits, R * C);
    k::gemm(X, v.head_dense_w, v.head_dense_b, z1.data(), R, H, H);
    k::activation(to_kernel_act(cfg.classifier_activation), z1.data(), z2.data(), R * H);
    kernels::layernorm(z2.data(), v.head_norm_w, v.head_norm_b, z.data(), R, H, static_cast<float>(cfg.norm_eps),
                       z_mean.data(), z_rstd.data());
    k::gemm(z.data(), Wout, bout, logits.data(), R, C, H);
  }

  // dlogits in `logits` (overwritten by the loss) -> dX [R,H] into dxo; parameter grads.
  void head_backward(const float* X, int64_t R, const float* Wout, const float* bout, int64_t C, float* dxo,
                     float* grads) {
    const int64_t H = cfg.hidden_size;
    resize(dz, R * H);
    resize(dz2, R * H);
    kernels::linear_backward(z.data(), Wout, logits.data(), dz.data(), false, G(Wout, grads), G(bout, grads), R, C, H);
    kernels::layernorm_backward(dz.data(), z2.data(), v.head_norm_w, z_mean.data(), z_rstd.data(), dz2.data(), false,
                                G(v.head_norm_w, grads), G(v.head_norm_b, grads), R, H);
    kernels::act_backward(to_kernel_act(cfg.classifier_activation), z1.data(), dz2.data(), dz2.data(), R * H);
    kernels::linear_backward(X, v.head_dense_w, dz2.data(), dxo, false, G(v.head_dense_w, grads),
                             G(v.head_dense_b, grads), R, H, H);
  }

  LossResult run(const TrainBatch& tb, TaskType task, float* grads, double denominator) {
    const Batch& batch = tb.batch;
    batch.validate(cfg.vocab_size);
    const int64_t T = batch.num_tokens(), B = batch.num_seqs(), H = cfg.hidden_size;
    if (T == 0) throw Error("training: empty batch");
    if (per_token(task) && static_cast<int64_t>(tb.token_labels.size()) != T)
      throw Error("training: " + std::to_string(tb.token_labels.size()) + " token labels for " + std::to_string(T) +
                  " tokens");
    const float* Wout = nullptr;
    const float* bout = nullptr;
    int64_t C = 0;
    if (task == TaskType::kMlm) {
      if (!v.decoder_w) throw Error("training: task mlm needs an MLM head (decoder) in the weights");
      Wout = v.decoder_w;
      bout = v.decoder_b;
      C = cfg.vocab_size;
    } else {
      if (!v.classifier_w) throw Error(std::string("training: task ") + to_string(task) + " needs a classifier head");
      Wout = v.classifier_w;
      bout = v.classifier_b;
      C = num_labels;
    }
    if (task == TaskType::kSequenceClassification && static_cast<int64_t>(tb.class_labels.size()) != B)
      throw Error("training: " + std::to_string(tb.class_labels.size()) + " class labels for " + std::to_string(B) +
                  " sequences");
    if ((task == TaskType::kRegression || task == TaskType::kMultiLabel) &&
        static_cast<int64_t>(tb.targets.size()) != B * C)
      throw Error("training: " + std::to_string(tb.targets.size()) + " targets for " + std::to_string(B) +
                  " sequences x " + std::to_string(C) + " labels");

    encoder_forward(batch);

    // Rows entering the head: labelled tokens (sparse prediction) or pooled sequences.
    int64_t R = 0;
    const bool pooled = !per_token(task);
    const kernels::PoolMode pool_mode =
        cfg.classifier_pooling == Pooling::kCls ? kernels::PoolMode::kCls : kernels::PoolMode::kMean;
    if (!pooled) {
      rows.clear();
      row_labels.clear();
      for (int64_t t = 0; t < T; ++t) {
        const int32_t y = tb.token_labels[static_cast<size_t>(t)];
        if (y == -100) continue;
        if (y < 0 || y >= C)
          throw Error("training: label " + std::to_string(y) + " at token " + std::to_string(t) + " outside [0, " +
                      std::to_string(C) + ")");
        rows.push_back(t);
        row_labels.push_back(y);
      }
      R = static_cast<int64_t>(rows.size());
      resize(hx, std::max<int64_t>(R, 1) * H);
      for (int64_t r = 0; r < R; ++r)
        std::memcpy(hx.data() + r * H, out.data() + rows[static_cast<size_t>(r)] * H,
                    static_cast<size_t>(H) * sizeof(float));
    } else {
      R = B;
      resize(hx, B * H);
      kernels::pool(pool_mode, out.data(), batch.cu_seqlens.data(), B, H, hx.data());
      if (task == TaskType::kSequenceClassification)
        for (int64_t b = 0; b < B; ++b) {
          const int32_t y = tb.class_labels[static_cast<size_t>(b)];
          if (y != -100 && (y < 0 || y >= C))
            throw Error("training: label " + std::to_string(y) + " of sequence " + std::to_string(b) +
                        " outside [0, " + std::to_string(C) + ")");
        }
    }

    LossResult res;
    const int64_t count = count_items(tb, task, C);
    res.count = count;
    if (count == 0 && denominator <= 0) {
      res.loss = res.loss_sum = std::numeric_limits<double>::quiet_NaN();
      return res;
    }
    const double denom = denominator > 0 ? denominator : static_cast<double>(count);
    const float dscale = grads ? static_cast<float>(1.0 / denom) : 0.0f;
    if (R > 0) {
      head_forward(hx.data(), R, Wout, bout, C);
      float* dl = grads ? logits.data() : nullptr;
      switch (task) {
        case TaskType::kMlm:
        case TaskType::kTokenClassification:
          res.loss_sum =
              kernels::cross_entropy(logits.data(), row_labels.data(), dl, R, C, dscale, nullptr, &res.correct);
          break;
        case TaskType::kSequenceClassification:
          res.loss_sum =
              kernels::cross_entropy(logits.data(), tb.class_labels.data(), dl, R, C, dscale, nullptr, &res.correct);
          break;
        case TaskType::kRegression:
          res.loss_sum = kernels::mse_loss(logits.data(), tb.targets.data(), dl, R * C, dscale);
          break;
        case TaskType::kMultiLabel:
          res.loss_sum = kernels::bce_with_logits(logits.data(), tb.targets.data(), dl, R * C, dscale);
          break;
      }
    }
    res.loss = res.loss_sum / denom;
    if (!grads || R == 0) return res;

    // Backward: head -> d(rows) -> scatter into d(last_hidden_state) -> encoder.
    resize(dout, T * H);
    std::fill(dout.begin(), dout.begin() + T * H, 0.0f);
    resize(dtmp, R * H);
    std::vector<float> dx(static_cast<size_t>(R * H));
    head_backward(hx.data(), R, Wout, bout, C, dx.data(), grads);
    if (!pooled) {
      for (int64_t r = 0; r < R; ++r) {
        float* dst = dout.data() + rows[static_cast<size_t>(r)] * H;
        const float* src = dx.data() + r * H;
        for (int64_t c = 0; c < H; ++c) dst[c] += src[c];
      }
    } else {
      kernels::pool_backward(pool_mode, dx.data(), batch.cu_seqlens.data(), B, H, dout.data());
    }
    encoder_backward(batch, dout.data(), grads);
    return res;
  }
};

TrainModel::TrainModel(const Weights& weights) : impl_(std::make_unique<Impl>(weights)) {}

void TrainModel::set_attention_output_dropout(double p, uint64_t seed) {
  if (!(p >= 0 && p < 1)) throw Error("attention-output dropout must be in [0, 1), got " + std::to_string(p));
  impl_->attn_drop_p = p;
  impl_->drop_seed = seed;
}
TrainModel::~TrainModel() = default;
TrainModel::TrainModel(TrainModel&&) noexcept = default;
TrainModel& TrainModel::operator=(TrainModel&&) noexcept = default;

LossResult TrainModel::forward_backward(const TrainBatch& b, TaskType task, float* grads, double denominator) {
  if (!grads) throw Error("forward_backward: grads buffer is null");
  return impl_->run(b, task, grads, denominator);
}

LossResult TrainModel::forward_loss(const TrainBatch& b, TaskType task, double denominator) {
  return impl_->run(b, task, nullptr, denominator);
}

const std::vector<float>& TrainModel::last_hidden() const { return impl_->out; }

const float* TrainModel::forward_hidden(const Batch& batch) {
  batch.validate(impl_->cfg.vocab_size);
  if (batch.num_tokens() == 0) throw Error("training: empty batch");
  impl_->encoder_forward(batch);
  return impl_->out.data();
}

void TrainModel::backward_hidden(const Batch& batch, const float* dhidden, float* grads) {
  if (!grads || !dhidden) throw Error("backward_hidden: null gradient buffer");
  impl_->encoder_backward(batch, dhidden, grads);
}

int64_t TrainModel::count_items(const TrainBatch& b, TaskType task, int64_t num_labels) {
  int64_t n = 0;
  switch (task) {
    case TaskType::kMlm:
    case TaskType::kTokenClassification:
      for (int32_t y : b.token_labels) n += y != -100;
      return n;
    case TaskType::kSequenceClassification:
      for (int32_t y : b.class_labels) n += y != -100;
      return n;
    case TaskType::kRegression:
    case TaskType::kMultiLabel: return b.batch.num_seqs() * num_labels;
  }
  return n;
}

}  // namespace modernbert
