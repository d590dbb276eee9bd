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

#include "kernels/backend.h"
#include "model/activation_store.h"
#include "model/kernel_act.h"
#include "modernbert/error.h"
#include "modernbert/train_model.h"

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
  // The one forward (shared with inference); the store keeps what the backward reads.
  Encoder enc;
  ActivationStore st;
  HeadActivations head;
  std::vector<float> out;  // last_hidden_state [T, H] of the latest forward
  // Head.
  std::vector<int32_t> rows;  // labelled token rows (gathered into the head, gradients scattered back)
  std::vector<int32_t> row_labels;
  std::vector<float> hx, z, logits;
  // Backward scratch.
  std::vector<float> dh, dtmp, dtmp2, dqkv, du, gbuf, dg, dout, dz, dz2, dx, ybuf;

  explicit Impl(const Weights& weights) : w(weights), cfg(weights.config()), v(weights.views()), enc(weights) {
    if (!w.is_contiguous()) throw Error("training needs the parameters in one contiguous buffer (make_contiguous())");
    base = w.data();
    num_labels = w.heads().num_labels;
  }

  float* G(const float* p, float* grads) const { return p && grads ? grads + (p - base) : nullptr; }

  void encoder_forward(const Batch& batch) { enc.forward(batch, out, &st); }

  // Backward of one layer's MLP block: dh = d hs[l+1] in, d hmid out (in dh).
  void mlp_backward(int64_t T, const LayerWeights& lw, const LayerActivations& A, float* grads) {
    const int64_t H = cfg.hidden_size, I = cfg.intermediate_size;
    const Act act = to_kernel_act(cfg.hidden_activation);
    k::glu(act, A.u.data(), gbuf.data(), T, I);  // the GLU output is recomputed, not stored
    k::linear_backward(gbuf.data(), lw.wo_mlp.f32(), dh.data(), dg.data(), false, G(lw.wo_mlp.f32(), grads),
                       G(lw.bo_mlp, grads), T, H, I);
    k::glu_backward(act, A.u.data(), dg.data(), du.data(), T, I);
    k::linear_backward(A.m.data(), lw.wi.f32(), du.data(), dtmp.data(), false, G(lw.wi.f32(), grads), G(lw.bi, grads),
                       T, 2 * I, H);
    // dh (= d hs[l+1]) flows through the residual to hmid, plus the mlp_norm branch.
    k::layernorm_backward(dtmp.data(), A.hmid.data(), lw.mlp_norm_w, A.m_mean.data(), A.m_rstd.data(), dh.data(),
                              true, G(lw.mlp_norm_w, grads), G(lw.mlp_norm_b, grads), T, H);
  }

  // Backward of one layer's attention block: dh = d hmid in, d hs[l] out (in dh).
  void attention_block_backward(const Batch& batch, int64_t l, const LayerWeights& lw, const LayerActivations& A,
                                float* grads) {
    const int64_t T = batch.num_tokens(), B = batch.num_seqs(), H = cfg.hidden_size;
    const int64_t nh = cfg.num_attention_heads, d = cfg.head_dim();
    const int64_t* cu = batch.cu_seqlens.data();
    // hmid = hs[l] + Dropout(o Woᵀ (+b))
    const float* dy = dh.data();
    if (st.attn_dropout > 0) {
      k::dropout(dh.data(), ybuf.data(), T * H, st.attn_dropout, st.dropout_seed, l, /*accumulate=*/false);
      dy = ybuf.data();
    }
    k::linear_backward(A.o.data(), lw.wo.f32(), dy, dtmp.data(), false, G(lw.wo.f32(), grads), G(lw.bo, grads), T, H,
                       H);
    k::attention_backward(A.qkv.data(), A.o.data(), dtmp.data(), A.lse.data(), dqkv.data(), cu, B, nh, d,
                              cfg.half_window(l));
    k::rope_backward(dqkv.data(), cu, B, nh, *A.rope);
    const float* x = lw.attn_norm_w ? A.a.data() : A.hs.data();
    k::linear_backward(x, lw.wqkv.f32(), dqkv.data(), dtmp2.data(), false, G(lw.wqkv.f32(), grads), G(lw.bqkv, grads),
                       T, 3 * H, H);
    if (lw.attn_norm_w) {
      k::layernorm_backward(dtmp2.data(), A.hs.data(), lw.attn_norm_w, A.a_mean.data(), A.a_rstd.data(), dh.data(),
                                true, G(lw.attn_norm_w, grads), G(lw.attn_norm_b, grads), T, H);
    } else {
      k::residual_add(dh.data(), dtmp2.data(), T * H);
    }
  }

  // dlast [T,H] (d loss / d last_hidden_state) -> parameter gradients, ADDED into grads.
  void encoder_backward(const Batch& batch, const float* dlast, float* grads) {
    const int64_t T = batch.num_tokens(), H = cfg.hidden_size, I = cfg.intermediate_size, L = cfg.num_hidden_layers;
    for (auto* buf : {&dh, &dtmp, &dtmp2, &ybuf}) resize(*buf, T * H);
    resize(dqkv, T * 3 * H);
    resize(du, T * 2 * I);
    resize(dg, T * I);
    resize(gbuf, T * I);
    k::layernorm_backward(dlast, st.h_last.data(), v.final_norm_w, st.f_mean.data(), st.f_rstd.data(), dh.data(),
                              false, G(v.final_norm_w, grads), G(v.final_norm_b, grads), T, H);
    for (int64_t l = L - 1; l >= 0; --l) {
      const LayerWeights& lw = v.layers[static_cast<size_t>(l)];
      const LayerActivations& A = st.layers[static_cast<size_t>(l)];
      mlp_backward(T, lw, A, grads);
      attention_block_backward(batch, l, lw, A, grads);
    }
    // Embeddings: hs[0] = LN(E[ids]).
    k::layernorm_backward(dh.data(), st.emb_x.data(), v.emb_norm_w, st.emb_mean.data(), st.emb_rstd.data(),
                              dtmp.data(), false, G(v.emb_norm_w, grads), G(v.emb_norm_b, grads), T, H);
    k::embedding_backward(batch.ids.data(), dtmp.data(), G(v.tok_embeddings.f32(), grads), T, H);
  }

  // ---- head: X [R,H] -> logits [R,C] with output layer (Wout [C,H], bout [C]) ----
  // The inference head (Encoder::head_transform) saving its dense output and LN statistics.
  void head_forward(const float* X, int64_t R, const float* Wout, const float* bout, int64_t C) {
    const int64_t H = cfg.hidden_size;
    if (!v.head_dense_w || !v.head_norm_w) throw Error("training: the weights have no head.dense / head.norm");
    resize(z, R * H);
    resize(logits, R * C);
    enc.head_transform(X, R, z.data(), &head);
    k::gemm(z.data(), Wout, bout, logits.data(), R, C, H);
  }

  // dlogits in `logits` (overwritten by the loss) -> dX [R,H] into dxo; parameter grads.
  void head_backward(const float* X, int64_t R, const float* Wout, const float* bout, int64_t C, float* dxo,
                     float* grads) {
    const int64_t H = cfg.hidden_size;
    const Act act = to_kernel_act(cfg.classifier_activation);
    resize(dz, R * H);
    resize(dz2, R * H);
    resize(gbuf, R * H);
    k::linear_backward(z.data(), Wout, logits.data(), dz.data(), false, G(Wout, grads), G(bout, grads), R, C, H);
    k::activation(act, head.z1.data(), gbuf.data(), R * H);  // the LN input act(z1), recomputed
    k::layernorm_backward(dz.data(), gbuf.data(), v.head_norm_w, head.mean.data(), head.rstd.data(), dz2.data(),
                              false, G(v.head_norm_w, grads), G(v.head_norm_b, grads), R, H);
    k::act_backward(act, head.z1.data(), dz2.data(), dz2.data(), R * H);
    k::linear_backward(X, v.head_dense_w.f32(), dz2.data(), dxo, false, G(v.head_dense_w.f32(), grads),
                       G(v.head_dense_b, grads), R, H, H);
  }

  struct Output {
    const float* W = nullptr;
    const float* b = nullptr;
    int64_t C = 0;
  };
  Output output_layer(TaskType task) const {
    if (task == TaskType::kMlm) {
      if (!v.decoder_w) throw Error("training: task mlm needs an MLM head (decoder) in the weights");
      return {v.decoder_w.f32(), v.decoder_b, cfg.vocab_size};
    }
    if (!v.classifier_w) throw Error(std::string("training: task ") + to_string(task) + " needs a classifier head");
    return {v.classifier_w.f32(), v.classifier_b, num_labels};
  }

  void check_labels(const TrainBatch& tb, TaskType task, int64_t C) const {
    const int64_t T = tb.batch.num_tokens(), B = tb.batch.num_seqs();
    if (T == 0) throw Error("training: empty batch");
    if (per_token(task) && static_cast<int64_t>(tb.token_labels.size()) != T)
      throw Error("training: " + std::to_string(tb.token_labels.size()) + " token labels for " + std::to_string(T) +
                  " tokens");
    if (task == TaskType::kSequenceClassification && static_cast<int64_t>(tb.class_labels.size()) != B)
      throw Error("training: " + std::to_string(tb.class_labels.size()) + " class labels for " + std::to_string(B) +
                  " sequences");
    if ((task == TaskType::kRegression || task == TaskType::kMultiLabel) &&
        static_cast<int64_t>(tb.targets.size()) != B * C)
      throw Error("training: " + std::to_string(tb.targets.size()) + " targets for " + std::to_string(B) +
                  " sequences x " + std::to_string(C) + " labels");
  }

  // Rows entering the head into hx: labelled tokens (sparse prediction) or pooled sequences.
  int64_t gather_head_rows(const TrainBatch& tb, TaskType task, int64_t C) {
    const Batch& batch = tb.batch;
    const int64_t T = batch.num_tokens(), B = batch.num_seqs(), H = cfg.hidden_size;
    if (per_token(task)) {
      rows.clear();
      row_labels.clear();
      for (int64_t t = 0; t < T; ++t) {
        const int32_t y = tb.token_labels[static_cast<size_t>(t)];
        if (y == -100) continue;
        if (y < 0 || y >= C)
          throw Error("training: label " + std::to_string(y) + " at token " + std::to_string(t) + " outside [0, " +
                      std::to_string(C) + ")");
        rows.push_back(static_cast<int32_t>(t));
        row_labels.push_back(y);
      }
      const int64_t R = static_cast<int64_t>(rows.size());
      resize(hx, std::max<int64_t>(R, 1) * H);
      k::embedding(rows.data(), out.data(), hx.data(), R, H);  // a row gather: hx[r] = out[rows[r]]
      return R;
    }
    if (task == TaskType::kSequenceClassification)
      for (int64_t b = 0; b < B; ++b) {
        const int32_t y = tb.class_labels[static_cast<size_t>(b)];
        if (y != -100 && (y < 0 || y >= C))
          throw Error("training: label " + std::to_string(y) + " of sequence " + std::to_string(b) + " outside [0, " +
                      std::to_string(C) + ")");
      }
    hx = enc.pool(batch, out.data(), cfg.classifier_pooling);
    return B;
  }

  // The task's loss over logits [R, C]; writes d loss / d logits into `logits` when dl is set.
  void loss(const TrainBatch& tb, TaskType task, int64_t R, int64_t C, float dscale, bool with_grad,
            LossResult& res) {
    float* dl = with_grad ? logits.data() : nullptr;
    switch (task) {
      case TaskType::kMlm:
      case TaskType::kTokenClassification:
        res.loss_sum = k::cross_entropy(logits.data(), row_labels.data(), dl, R, C, dscale, nullptr, &res.correct);
        break;
      case TaskType::kSequenceClassification:
        res.loss_sum =
            k::cross_entropy(logits.data(), tb.class_labels.data(), dl, R, C, dscale, nullptr, &res.correct);
        break;
      case TaskType::kRegression: res.loss_sum = k::mse_loss(logits.data(), tb.targets.data(), dl, R * C, dscale); break;
      case TaskType::kMultiLabel:
        res.loss_sum = k::bce_with_logits(logits.data(), tb.targets.data(), dl, R * C, dscale);
        break;
    }
  }

  // d loss / d head rows (dx [R, H]) -> d last_hidden_state (dout [T, H]): scatter to the labelled
  // tokens, or the pooling's backward.
  void head_rows_backward(const Batch& batch, TaskType task, int64_t R) {
    const int64_t T = batch.num_tokens(), B = batch.num_seqs(), H = cfg.hidden_size;
    resize(dout, T * H);
    std::fill(dout.begin(), dout.begin() + T * H, 0.0f);
    if (per_token(task)) {
      k::embedding_backward(rows.data(), dx.data(), dout.data(), R, H);  // scatter-add: dout[rows[r]] += dx[r]
      return;
    }
    const k::PoolMode mode = cfg.classifier_pooling == Pooling::kCls ? k::PoolMode::kCls : k::PoolMode::kMean;
    k::pool_backward(mode, dx.data(), batch.cu_seqlens.data(), B, H, dout.data());
  }

  LossResult run(const TrainBatch& tb, TaskType task, float* grads, double denominator) {
    const Batch& batch = tb.batch;
    batch.validate(cfg.vocab_size);
    const Output op = output_layer(task);
    check_labels(tb, task, op.C);
    encoder_forward(batch);
    const int64_t R = gather_head_rows(tb, task, op.C);

    LossResult res;
    const int64_t count = count_items(tb, task, op.C);
    res.count = count;
    if (count == 0 && denominator <= 0) {
      res.loss = res.loss_sum = std::numeric_limits<double>::quiet_NaN();
      return res;
    }
    const double denom = denominator > 0 ? denominator : static_cast<double>(count);
    const float dscale = grads ? static_cast<float>(1.0 / denom) : 0.0f;
    if (R > 0) {
      head_forward(hx.data(), R, op.W, op.b, op.C);
      loss(tb, task, R, op.C, dscale, grads != nullptr, res);
    }
    res.loss = res.loss_sum / denom;
    if (!grads || R == 0) return res;

    // Backward: head -> d(rows) -> d(last_hidden_state) -> encoder.
    resize(dx, R * cfg.hidden_size);
    head_backward(hx.data(), R, op.W, op.b, op.C, dx.data(), grads);
    head_rows_backward(batch, task, R);
    encoder_backward(batch, dout.data(), grads);
    return res;
  }
};

TrainModel::TrainModel(const Weights& weights) : impl_(std::make_unique<Impl>(weights)) {}

void TrainModel::set_attention_output_dropout(double p, uint64_t seed) {
  if (!(p >= 0 && p < 1)) throw Error("attention-output dropout must be in [0, 1), got " + std::to_string(p));
  impl_->st.attn_dropout = p;
  impl_->st.dropout_seed = seed;
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
