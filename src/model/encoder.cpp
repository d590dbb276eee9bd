// ModernBERT encoder forward pass (spec §4.1–4.3) over an unpadded batch, as a sequence of
// kernel calls. Shapes (T tokens of all sequences, H hidden, I intermediate, nh heads, d = H/nh):
//
//   h   [T, H]  = LN(E[ids]; emb_norm)                                 residual stream
//   per layer l:
//     a   [T, H]  = l == 0 && !attn_norm ? h : LN(h; attn_norm_l)     (fused into the previous step)
//     qkv [T, 3H] = a · Wqkv^T (+b)
//     o   [T, H]  = Attention(RoPE_θl(Q), RoPE_θl(K), V; cu_seqlens, half_window_l)  (RoPE fused
//                   into attention's repack of Q/K; qkv is not modified)
//     p   [T, H]  = o · Wo^T (+b);      h += p, a = LN(h; mlp_norm_l)  (one fused pass)
//     u   [T, 2I] = a · Wi^T (+b);      g [T, I] = act(u[:, :I]) * u[:, I:]
//     p   [T, H]  = g · Wo_mlp^T (+b);  h += p, a = LN(h; next norm)   (attn_norm_{l+1} or final_norm)
//   last_hidden_state = a
//
// Arena (floats per token): h H, a H, big max(3H, 2I) (qkv, then u), mid max(H, I) (o, then g),
// p aliases a (add_layernorm reads p's row before writing a's), plus the attention workspace
// (Q, K^T and V repacked per head, ~3H per token). ≈ 2H + max(3H,2I) + max(H,I) + 3H: ~28 KB
// per token for base, linear in T (an 8192-token batch needs ~230 MB, never T^2). bf16 weights
// on a CPU with native bf16 take forward_bf16_stream instead (below; 132 MiB at 8192 tokens).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <string>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/profile.h"
#include "model/activation_store.h"
#include "model/kernel_act.h"
#include "modernbert/error.h"
#include "modernbert/model.h"

namespace modernbert {

namespace k = kernels;

struct Encoder::State {
  std::vector<float> arena;
  std::map<double, k::RopeTable> rope;  // by theta, grown to the longest sequence seen (node-stable)
};

namespace {

void require(const float* p, const std::string& name) {
  if (!p) throw Error("encoder: missing weight " + name);
}
void require(const WeightMatrix& m, const std::string& name) {
  if (!m) throw Error("encoder: missing weight " + name);
  if (m.type == Precision::kInt8 && !m.scale) throw Error("encoder: int8 weight " + name + " has no scale");
}

}  // namespace

// ---- Batch ----

int64_t Batch::max_seqlen() const {
  int64_t m = 0;
  for (int64_t b = 0; b < num_seqs(); ++b) m = std::max(m, seq_len(b));
  return m;
}

void Batch::add(const int32_t* seq, int64_t n) {
  if (cu_seqlens.empty()) cu_seqlens.push_back(0);
  ids.insert(ids.end(), seq, seq + n);
  cu_seqlens.push_back(cu_seqlens.back() + n);
}

Batch Batch::from_sequences(const std::vector<std::vector<int32_t>>& seqs) {
  Batch b;
  size_t total = 0;
  for (const auto& s : seqs) total += s.size();
  b.ids.reserve(total);
  for (const auto& s : seqs) b.add(s);
  return b;
}

void Batch::validate(int64_t vocab_size) const {
  if (cu_seqlens.empty() || cu_seqlens.front() != 0) throw Error("batch: cu_seqlens must start with 0");
  for (int64_t b = 0; b < num_seqs(); ++b)
    if (cu_seqlens[static_cast<size_t>(b + 1)] <= cu_seqlens[static_cast<size_t>(b)])
      throw Error("batch: sequence " + std::to_string(b) + " is empty or cu_seqlens decreases");
  if (cu_seqlens.back() != num_tokens())
    throw Error("batch: cu_seqlens ends at " + std::to_string(cu_seqlens.back()) + " but there are " +
                std::to_string(num_tokens()) + " ids");
  for (size_t t = 0; t < ids.size(); ++t)
    if (ids[t] < 0 || ids[t] >= vocab_size)
      throw Error("batch: token id " + std::to_string(ids[t]) + " at position " + std::to_string(t) +
                  " is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
}

// ---- Encoder ----

Encoder::Encoder(const Weights& weights) : Encoder(weights.config(), weights.views()) {
  if (weights.heads().num_labels > 0 && w_.classifier_w) num_labels_ = weights.heads().num_labels;
}

Encoder::Encoder(const ModelConfig& cfg, const WeightViews& views)
    : cfg_(cfg), w_(views), st_(std::make_unique<State>()) {
  if (cfg_.hidden_size <= 0 || cfg_.num_attention_heads <= 0 || cfg_.hidden_size % cfg_.num_attention_heads != 0)
    throw Error("encoder: hidden_size must be a positive multiple of num_attention_heads");
  if (cfg_.head_dim() % 2 != 0) throw Error("encoder: head_dim must be even for RoPE");
  if (static_cast<int64_t>(cfg_.layer_types.size()) != cfg_.num_hidden_layers)
    throw Error("encoder: layer_types has " + std::to_string(cfg_.layer_types.size()) + " entries for " +
                std::to_string(cfg_.num_hidden_layers) + " layers");
  check_weights();
  // Label count from the config (classifier.weight has num_labels rows); 0 without a classifier.
  num_labels_ = w_.classifier_w ? cfg_.num_labels() : 0;
}

Encoder::~Encoder() = default;
Encoder::Encoder(Encoder&&) noexcept = default;
Encoder& Encoder::operator=(Encoder&&) noexcept = default;

size_t Encoder::arena_floats() const { return st_->arena.size(); }

void Encoder::check_weights() const {
  require(w_.tok_embeddings, "model.embeddings.tok_embeddings.weight");
  require(w_.emb_norm_w, "model.embeddings.norm.weight");
  require(w_.final_norm_w, "model.final_norm.weight");
  if (static_cast<int64_t>(w_.layers.size()) != cfg_.num_hidden_layers)
    throw Error("encoder: weights have " + std::to_string(w_.layers.size()) + " layers, config says " +
                std::to_string(cfg_.num_hidden_layers));
  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const auto& L = w_.layers[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    if (l > 0) require(L.attn_norm_w, p + "attn_norm.weight");
    require(L.wqkv, p + "attn.Wqkv.weight");
    require(L.wo, p + "attn.Wo.weight");
    require(L.mlp_norm_w, p + "mlp_norm.weight");
    require(L.wi, p + "mlp.Wi.weight");
    require(L.wo_mlp, p + "mlp.Wo.weight");
  }
}

namespace {

template <class T>
T* grown(std::vector<T>& v, int64_t n) {
  if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
  return v.data();
}

void copy_rows(float* dst, const float* src, int64_t n) { k::copy(src, dst, n); }

}  // namespace

namespace {

bool all_layers_are(const WeightViews& w, Precision p) {
  for (const auto& L : w.layers)
    for (const WeightMatrix* m : {&L.wqkv, &L.wo, &L.wi, &L.wo_mlp})
      if (m->type != p) return false;
  return !w.layers.empty();
}

// The inference forward with the bf16 activation stream (k::bf16_activation_stream; backend.h): the
// same steps as Encoder::forward, but every linear's input is written in bf16 by the op before it
// (LayerNorm, attention, GeGLU) and read by k::linear_bf16_input, bit for bit the numbers the
// rounding inside k::linear gives (except where GeGLU's float-evaluated erf rounds a GELU output
// differently; backend.h). The residual stream h and the linears' outputs stay fp32.
//
// Arena (floats): h [T, H] | big [T, max(3H, 2I)] | S. By phase:
//   Wqkv       a (bf16, S) -> qkv (big)
//   attention  qkv packed into the workspace (S), then o (bf16) written at the end of big (qkv is
//              consumed by the packing: attention_bf16_bf16out allows that aliasing)
//   Wo         o -> p (fp32, start of big; disjoint from o's end of big)
//   add+LN     h += p, a (bf16, S)
//   Wi, GeGLU  a -> u (big) -> g (bf16, S)
//   Wo_mlp     g -> p (big); add+LN as above (the last one writes `out` in fp32 directly)
// S = max(attention workspace, [T, I] bf16). Base at 8192 tokens: 132 MiB against 192 MiB, and
// no [T, K] rounding scratch inside the linears.
size_t stream_arena_floats(const ModelConfig& cfg, int64_t T) {
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size;
  const size_t ws = k::attention_bf16_workspace_floats(T, cfg.num_attention_heads, cfg.head_dim());
  const size_t half_th = static_cast<size_t>((T * H + 1) / 2), half_ti = static_cast<size_t>((T * I + 1) / 2);
  return static_cast<size_t>(T * H + T * std::max(3 * H, 2 * I)) + std::max({half_ti, half_th, ws});
}

// The inference forward with the widening activation stream of type t (k::widening_activation_stream;
// backend.h): f16 weights, or bf16 weights on a CPU without native bf16. The GEMMs and attention run
// in fp32 as in Encoder::forward, but every tensor between ops other than the residual stream h and
// the projections p (the linears' inputs and qkv) is held in 16 bits of type t: rounded by the op
// that writes it, widened by the op that reads it (linear_16in a tile of rows at a time,
// attention_16io per 16-token panel). The MLP's u never exists whole: linear_glu_16in applies GeGLU
// to each fp32 tile of it.
//
// Arena: h [T, H] fp32, then a region R laid out by phase (offsets in bytes per token n; sizes for
// base at 8192 tokens):
//   Wqkv       a (16-bit, at 0; 12 MiB) -> qkv (16-bit, at 2Hn; 36 MiB)
//   attention  K and V of a group of heads packed into the fp32 workspace (at 8Hn, qkv's end;
//              16 MiB), the query rows formed per work item from qkv; o (16-bit) at 0 (a is dead)
//   Wo         o -> p (fp32, at 2Hn: qkv is dead)
//   add+LN     h += p, a (16-bit, at 0: o is dead)
//   Wi + GeGLU a -> g (16-bit, at 2Hn; 18 MiB), per tile of u
//   Wo_mlp     g -> p (fp32, at 2Hn + 2In); add+LN as above (the last one writes `out` in fp32)
// R = the largest phase: attention, the MLP (6Hn + 2In), or Wqkv with room for its tiles (W widened
// whole and 1024 rows of X and of the fp32 output), which each linear gets from the part of R its
// operands leave free (so no linear needs scratch of its own). Base at 8192 tokens: 91 MiB against
// the fp32 forward's 229 MiB (120 MiB before GeGLU was fused and attention packed a third of the heads at a time).
// Where the cpu backend takes its packed path (AVX-512: oneDNN's brgemm), a linear puts only W,
// widened into the packed layout, in that room, and its pieces (up to 128 rows) of X and of the
// output in per-thread scratch (~2 MiB a thread on base); R stays sized for the sgemm's tiles, 3 MiB
// more than the attention phase needs on base at 8192 tokens.
struct WideningLayout {
  size_t qkv = 0, ws = 0, p_mlp = 0, r = 0;  // byte offsets in R; R's size in bytes
  size_t total_floats = 0;                   // the arena: h and R
};

WideningLayout widening_layout(const ModelConfig& cfg, int64_t T) {
  const auto H = static_cast<size_t>(cfg.hidden_size), I = static_cast<size_t>(cfg.intermediate_size);
  const auto n = static_cast<size_t>(T);
  auto up = [](size_t b) { return (b + 63) / 64 * 64; };
  const size_t attn_ws = 4 * k::attention_16io_workspace_floats(T, cfg.num_attention_heads, cfg.head_dim());
  // A linear's room for its tiles: W [N, K] widened whole and m = min(n, 1024) rows of X [m, K]
  // and, for a 16-bit output, of the fp32 output [m, N].
  const size_t m = std::min<size_t>(n, 1024);
  auto tiles = [&](size_t N, size_t K, bool out16) { return 4 * (N * K + m * (K + (out16 ? N : 0))); };
  WideningLayout L;
  L.qkv = up(2 * H * n);
  L.ws = up(L.qkv + 6 * H * n);
  L.p_mlp = up(L.qkv + 2 * I * n);
  L.r = up(std::max({L.ws + std::max(attn_ws, tiles(3 * H, H, true)),  // attention; Wqkv
                     L.qkv + 4 * H * n + tiles(H, H, false),           // Wo
                     L.p_mlp + tiles(2 * I, H, true),                  // Wi + GeGLU
                     L.p_mlp + 4 * H * n + tiles(H, I, false)}));      // Wo_mlp
  L.total_floats = H * n + L.r / 4;
  return L;
}

template <class RopeFor>
void forward_widening_stream(Precision t, const ModelConfig& cfg, const WeightViews& w, const Batch& batch,
                             float* arena, float* out, RopeFor&& rope_for) {
  const int64_t T = batch.num_tokens(), B = batch.num_seqs();
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, nh = cfg.num_attention_heads, d = cfg.head_dim();
  const float eps = static_cast<float>(cfg.norm_eps);
  const WideningLayout lay = widening_layout(cfg, T);
  float* h = arena;
  auto* R = reinterpret_cast<unsigned char*>(h + T * H);
  auto* a = reinterpret_cast<uint16_t*>(R);  // LN outputs; attention's output o in between
  auto* o = a;
  auto* qkv = reinterpret_cast<uint16_t*>(R + lay.qkv);
  auto* attn_ws = reinterpret_cast<float*>(R + lay.ws);
  auto* p_attn = reinterpret_cast<float*>(R + lay.qkv);
  auto* g = reinterpret_cast<uint16_t*>(R + lay.qkv);
  auto* p_mlp = reinterpret_cast<float*>(R + lay.p_mlp);
  const bool f16 = t == Precision::kF16;
  // The larger of R's byte ranges [lo1, hi1) and [lo2, hi2) as a linear_16in workspace.
  auto up = [](size_t b) { return (b + 63) / 64 * 64; };
  struct Span {
    float* p;
    int64_t floats;
  };
  auto free_span = [&](size_t lo1, size_t hi1, size_t lo2, size_t hi2) {
    lo1 = up(lo1), lo2 = up(lo2);
    const size_t n1 = hi1 > lo1 ? hi1 - lo1 : 0, n2 = hi2 > lo2 ? hi2 - lo2 : 0;
    return n1 >= n2 ? Span{reinterpret_cast<float*>(R + lo1), static_cast<int64_t>(n1 / 4)}
                    : Span{reinterpret_cast<float*>(R + lo2), static_cast<int64_t>(n2 / 4)};
  };
  const auto n = static_cast<size_t>(T), Hs = static_cast<size_t>(H), Is = static_cast<size_t>(I);
  // Wqkv reads a [0, 2Hn), writes qkv [Q, ws); Wo reads o [0, 2Hn), writes p [Q, Q + 4Hn); Wi reads
  // a, writes g [Q, Q + 2In); Wo_mlp reads g, writes p [P, P + 4Hn) (a is dead).
  const Span ws_qkv = free_span(lay.ws, lay.r, 0, 0);
  const Span ws_o = free_span(lay.qkv + 4 * Hs * n, lay.r, 0, 0);
  const Span ws_i = free_span(lay.qkv + 2 * Is * n, lay.r, 0, 0);
  const Span ws_omlp = free_span(lay.p_mlp + 4 * Hs * n, lay.r, 0, lay.qkv);
  auto layernorm16 = [&](const float* x, const float* gm, const float* b) {
    if (f16)
      k::layernorm_f16out(x, gm, b, a, T, H, eps);
    else
      k::layernorm_bf16out(x, gm, b, a, T, H, eps);
  };
  auto add_layernorm16 = [&](const float* p, const float* gm, const float* b) {
    if (f16)
      k::add_layernorm_f16out(h, p, gm, b, a, T, H, eps);
    else
      k::add_layernorm_bf16out(h, p, gm, b, a, T, H, eps);
  };
  const int64_t* cu = batch.cu_seqlens.data();
  const int64_t max_len = batch.max_seqlen();
  const int64_t L = cfg.num_hidden_layers;
  namespace kp = k::prof;
  {
    kp::Scope s("embed+LN");
    auto* emb = reinterpret_cast<float*>(R + lay.qkv);  // free until the first Wqkv
    k::embedding(batch.ids.data(), w.tok_embeddings, emb, T, H);
    k::layernorm(emb, w.emb_norm_w, w.emb_norm_b, h, T, H, eps, nullptr, nullptr);
    // Layer 0's input: LN(h) if it has an attn_norm, else h itself, i.e. the same LN of emb rounded.
    if (w.layers[0].attn_norm_w)
      layernorm16(h, w.layers[0].attn_norm_w, w.layers[0].attn_norm_b);
    else
      layernorm16(emb, w.emb_norm_w, w.emb_norm_b);
  }
  const k::Act act = to_kernel_act(cfg.hidden_activation);
  for (int64_t l = 0; l < L; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const int64_t hw = cfg.half_window(l);
    {
      kp::Scope s("gemm Wqkv");
      k::linear_16in(t, a, lw.wqkv, lw.bqkv, nullptr, qkv, T, 3 * H, H, ws_qkv.p, ws_qkv.floats);
    }
    {
      const k::RopeTable& rope = rope_for(cfg.rope_theta(l), max_len);
      kp::Scope s(hw < 0 ? "attention global" : "attention local");
      k::attention_16io(t, qkv, o, cu, B, nh, d, hw, attn_ws, &rope);
    }
    {
      kp::Scope s("gemm Wo");
      k::linear_16in(t, o, lw.wo, lw.bo, p_attn, nullptr, T, H, H, ws_o.p, ws_o.floats);
    }
    {
      kp::Scope s("add+LN");
      add_layernorm16(p_attn, lw.mlp_norm_w, lw.mlp_norm_b);
    }
    {
      kp::Scope s("gemm Wi+GeGLU");
      k::linear_glu_16in(t, act, a, lw.wi, lw.bi, g, T, I, H, ws_i.p, ws_i.floats);
    }
    {
      kp::Scope s("gemm Wo_mlp");
      k::linear_16in(t, g, lw.wo_mlp, lw.bo_mlp, p_mlp, nullptr, T, H, I, ws_omlp.p, ws_omlp.floats);
    }
    kp::Scope s("add+LN");
    if (l + 1 == L) {
      k::add_layernorm(h, p_mlp, w.final_norm_w, w.final_norm_b, out, T, H, eps, nullptr, nullptr);
    } else {
      const LayerWeights& next = w.layers[static_cast<size_t>(l + 1)];
      add_layernorm16(p_mlp, next.attn_norm_w, next.attn_norm_b);
    }
  }
  // An f16 activation beyond +-65504 became inf and the hidden state NaN: say so rather than
  // hand NaN embeddings or logits on (fp32 and bf16 have fp32's range).
  if (f16)
    for (int64_t i = 0; i < T * H; ++i)
      if (!std::isfinite(out[i]))
        throw Error(
            "encoder: the hidden state is not finite with f16 activations (a value between layers exceeded "
            "the f16 range of +-65504, or the weights hold inf / NaN); run this model with --dtype bf16 or f32");
}

template <class RopeFor>
void forward_bf16_stream(const ModelConfig& cfg, const WeightViews& w, const Batch& batch, float* arena, float* out,
                         RopeFor&& rope_for) {
  const int64_t T = batch.num_tokens(), B = batch.num_seqs();
  const int64_t H = cfg.hidden_size, I = cfg.intermediate_size, nh = cfg.num_attention_heads, d = cfg.head_dim();
  const float eps = static_cast<float>(cfg.norm_eps);
  float* h = arena;
  float* big = h + T * H;
  float* S = big + T * std::max(3 * H, 2 * I);
  auto* a = reinterpret_cast<uint16_t*>(S);                    // the LN output, later g
  auto* o = reinterpret_cast<uint16_t*>(S - (T * H + 1) / 2);  // attention's output: the end of big
  float* attn_ws = S;
  const int64_t* cu = batch.cu_seqlens.data();
  const int64_t max_len = batch.max_seqlen();
  const int64_t L = cfg.num_hidden_layers;
  namespace kp = k::prof;
  {
    kp::Scope s("embed+LN");
    float* emb = big;  // free until the first Wqkv
    k::embedding(batch.ids.data(), w.tok_embeddings, emb, T, H);
    k::layernorm(emb, w.emb_norm_w, w.emb_norm_b, h, T, H, eps, nullptr, nullptr);
    // Layer 0's input: LN(h) if it has an attn_norm, else h itself, i.e. the same LN of emb rounded.
    if (w.layers[0].attn_norm_w)
      k::layernorm_bf16out(h, w.layers[0].attn_norm_w, w.layers[0].attn_norm_b, a, T, H, eps);
    else
      k::layernorm_bf16out(emb, w.emb_norm_w, w.emb_norm_b, a, T, H, eps);
  }
  const k::Act act = to_kernel_act(cfg.hidden_activation);
  for (int64_t l = 0; l < L; ++l) {
    const LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const int64_t hw = cfg.half_window(l);
    float* qkv = big;
    float* p = big;
    {
      kp::Scope s("gemm Wqkv");
      k::linear_bf16_input(a, lw.wqkv, lw.bqkv, qkv, T, 3 * H, H);
    }
    {
      const k::RopeTable& rope = rope_for(cfg.rope_theta(l), max_len);
      kp::Scope s(hw < 0 ? "attention global" : "attention local");
      k::attention_bf16_bf16out(qkv, o, cu, B, nh, d, hw, attn_ws, &rope);
    }
    {
      kp::Scope s("gemm Wo");
      k::linear_bf16_input(o, lw.wo, lw.bo, p, T, H, H);
    }
    {
      kp::Scope s("add+LN");
      k::add_layernorm_bf16out(h, p, lw.mlp_norm_w, lw.mlp_norm_b, a, T, H, eps);
    }
    float* u = big;
    {
      kp::Scope s("gemm Wi");
      k::linear_bf16_input(a, lw.wi, lw.bi, u, T, 2 * I, H);
    }
    {
      kp::Scope s("GeGLU");
      k::glu_bf16out(act, u, a, T, I);
    }  // g into S
    {
      kp::Scope s("gemm Wo_mlp");
      k::linear_bf16_input(a, lw.wo_mlp, lw.bo_mlp, p, T, H, I);
    }  // u consumed
    kp::Scope s("add+LN");
    if (l + 1 == L) {
      k::add_layernorm(h, p, w.final_norm_w, w.final_norm_b, out, T, H, eps, nullptr, nullptr);
    } else {
      const LayerWeights& next = w.layers[static_cast<size_t>(l + 1)];
      k::add_layernorm_bf16out(h, p, next.attn_norm_w, next.attn_norm_b, a, T, H, eps);
    }
  }
}

}  // namespace

const k::RopeTable& Encoder::rope_table(double theta, int64_t max_len) {
  auto& t = st_->rope[theta];
  if (t.max_len < max_len) {
    int64_t len = std::max<int64_t>(t.max_len, 512);
    while (len < max_len) len *= 2;
    t = k::make_rope_table(theta, cfg_.head_dim(), len);
  }
  return t;
}

void Encoder::forward(const Batch& batch, std::vector<float>& out, ActivationStore* save) {
  batch.validate(cfg_.vocab_size);
  const int64_t T = batch.num_tokens(), B = batch.num_seqs();
  const int64_t H = cfg_.hidden_size, I = cfg_.intermediate_size, nh = cfg_.num_attention_heads;
  const int64_t d = cfg_.head_dim();
  const float eps = static_cast<float>(cfg_.norm_eps);
  out.resize(static_cast<size_t>(T * H));
  if (T == 0) return;

  const Precision wtype = cfg_.num_hidden_layers > 0 ? w_.layers[0].wqkv.type : Precision::kF32;
  if (!save && k::widening_activation_stream(wtype) && all_layers_are(w_, wtype)) {
    const size_t need = widening_layout(cfg_, T).total_floats;
    if (st_->arena.size() < need) {
      st_->arena.clear();
      st_->arena.shrink_to_fit();
      st_->arena.resize(need);
    }
    forward_widening_stream(
        wtype, cfg_, w_, batch, st_->arena.data(), out.data(),
        [this](double theta, int64_t len) -> const k::RopeTable& { return rope_table(theta, len); });
    return;
  }
  if (!save && k::bf16_activation_stream(wtype) && all_layers_are(w_, Precision::kBF16)) {
    const size_t need = stream_arena_floats(cfg_, T);
    if (st_->arena.size() < need) {
      st_->arena.clear();
      st_->arena.shrink_to_fit();
      st_->arena.resize(need);
    }
    forward_bf16_stream(cfg_, w_, batch, st_->arena.data(), out.data(),
                        [this](double theta, int64_t len) -> const k::RopeTable& { return rope_table(theta, len); });
    return;
  }

  // Arena layout (see the file comment). Grows to the largest batch, never shrinks.
  const int64_t big_w = std::max(3 * H, 2 * I), mid_w = std::max(H, I);
  // bf16 or int8 weights on a CPU with native bf16 dot products: the attention products run in
  // bf16 too (k::attention_runs_bf16; inference only: training keeps fp32 attention and saves its
  // lse). For int8 models bf16 attention measured 1.35x faster end to end on 8x1024 (Zen 5). Its
  // packed operands are bf16: half the workspace (33 MiB less arena at 8192 tokens on base).
  const bool bf16_attention = !save && cfg_.num_hidden_layers > 0 && k::attention_runs_bf16(w_.layers[0].wqkv.type);
  const size_t ws =
      bf16_attention ? k::attention_bf16_workspace_floats(T, nh, d) : k::attention_workspace_floats(T, nh, d);
  const size_t need = static_cast<size_t>(T * (2 * H + big_w + mid_w)) + ws;
  if (st_->arena.size() < need) {
    st_->arena.clear();
    st_->arena.shrink_to_fit();
    st_->arena.resize(need);
  }
  float* h = st_->arena.data();
  float* a = h + T * H;
  float* big = a + T * H;
  float* mid = big + T * big_w;
  float* attn_ws = mid + T * mid_w;
  float* p = a;  // projections land in `a`'s rows, consumed by add_layernorm (see kernels.h)
  const int64_t* cu = batch.cu_seqlens.data();
  const int64_t max_len = batch.max_seqlen();
  const int64_t L = cfg_.num_hidden_layers;
  // Training mode: the statistics of each LayerNorm go to the store; the tensors the backward
  // reads are written there directly (qkv, o, u) or copied (hs, a, hmid, m, h_last).
  if (save) save->layers.resize(static_cast<size_t>(L));
  auto stats = [&](std::vector<float>& v) { return save ? grown(v, T) : nullptr; };

  namespace kp = k::prof;
  // Embeddings: gather rows of E, then LN into h.
  std::optional<kp::Scope> emb_scope(std::in_place, "embed+LN");
  float* emb = save ? grown(save->emb_x, T * H) : a;
  k::embedding(batch.ids.data(), w_.tok_embeddings, emb, T, H);
  k::layernorm(emb, w_.emb_norm_w, w_.emb_norm_b, h, T, H, eps, save ? stats(save->emb_mean) : nullptr,
               save ? stats(save->emb_rstd) : nullptr);
  emb_scope.reset();

  const k::Act act = to_kernel_act(cfg_.hidden_activation);
  if (L == 0) {
    k::layernorm(h, w_.final_norm_w, w_.final_norm_b, a, T, H, eps, save ? stats(save->f_mean) : nullptr,
                 save ? stats(save->f_rstd) : nullptr);
    if (save) copy_rows(grown(save->h_last, T * H), h, T * H);
  } else if (w_.layers[0].attn_norm_w) {
    // Layer 0 normally has no attn_norm (Identity); honour one if a checkpoint carries it.
    LayerActivations* A0 = save ? &save->layers[0] : nullptr;
    k::layernorm(h, w_.layers[0].attn_norm_w, w_.layers[0].attn_norm_b, a, T, H, eps,
                 A0 ? stats(A0->a_mean) : nullptr, A0 ? stats(A0->a_rstd) : nullptr);
  }
  for (int64_t l = 0; l < L; ++l) {
    const LayerWeights& lw = w_.layers[static_cast<size_t>(l)];
    LayerActivations* A = save ? &save->layers[static_cast<size_t>(l)] : nullptr;
    const float* x = (l == 0 && !lw.attn_norm_w) ? h : a;
    if (A) {
      copy_rows(grown(A->hs, T * H), h, T * H);
      if (lw.attn_norm_w) copy_rows(grown(A->a, T * H), a, T * H);
    }
    float* qkv = A ? grown(A->qkv, T * 3 * H) : big;
    float* o = A ? grown(A->o, T * H) : mid;
    const int64_t hw = cfg_.half_window(l);
    { kp::Scope s("gemm Wqkv"); k::linear(x, lw.wqkv, lw.bqkv, qkv, T, 3 * H, H); }
    {  // RoPE is applied inside attention's Q/K repack (no separate pass over qkv)
      const k::RopeTable& rope = rope_table(cfg_.rope_theta(l), max_len);
      kp::Scope s(hw < 0 ? "attention global" : "attention local");
      if (bf16_attention)
        k::attention_bf16(qkv, o, cu, B, nh, d, hw, attn_ws, &rope);
      else
        k::attention(qkv, o, cu, B, nh, d, hw, attn_ws, &rope, A ? grown(A->lse, T * nh) : nullptr);
      if (A) {  // the backward reads the rotated Q and K
        k::rope_qkv(qkv, cu, B, nh, rope);
        A->rope = &rope;
      }
    }
    { kp::Scope s("gemm Wo"); k::linear(o, lw.wo, lw.bo, p, T, H, H); }
    if (save && save->attn_dropout > 0) k::dropout(p, p, T * H, save->attn_dropout, save->dropout_seed, l, /*accumulate=*/false);
    {
      kp::Scope s("add+LN");
      k::add_layernorm(h, p, lw.mlp_norm_w, lw.mlp_norm_b, a, T, H, eps, A ? stats(A->m_mean) : nullptr,
                       A ? stats(A->m_rstd) : nullptr);
    }
    if (A) {
      copy_rows(grown(A->hmid, T * H), h, T * H);
      copy_rows(grown(A->m, T * H), a, T * H);
    }
    float* u = A ? grown(A->u, T * 2 * I) : big;
    { kp::Scope s("gemm Wi"); k::linear(a, lw.wi, lw.bi, u, T, 2 * I, H); }
    { kp::Scope s("GeGLU"); k::glu(act, u, mid, T, I); }
    { kp::Scope s("gemm Wo_mlp"); k::linear(mid, lw.wo_mlp, lw.bo_mlp, p, T, H, I); }
    const bool last = l + 1 == L;
    const float* gw = last ? w_.final_norm_w : w_.layers[static_cast<size_t>(l + 1)].attn_norm_w;
    const float* gb = last ? w_.final_norm_b : w_.layers[static_cast<size_t>(l + 1)].attn_norm_b;
    float* mean_next = nullptr;
    float* rstd_next = nullptr;
    if (save) {
      auto& next = last ? save->f_mean : save->layers[static_cast<size_t>(l + 1)].a_mean;
      auto& next_r = last ? save->f_rstd : save->layers[static_cast<size_t>(l + 1)].a_rstd;
      if (gw) {
        mean_next = stats(next);
        rstd_next = stats(next_r);
      }
    }
    { kp::Scope s("add+LN"); k::add_layernorm(h, p, gw, gb, a, T, H, eps, mean_next, rstd_next); }
    if (save && last) copy_rows(grown(save->h_last, T * H), h, T * H);
  }
  k::copy(a, out.data(), T * H);
}

std::vector<float> Encoder::forward(const Batch& batch) {
  std::vector<float> out;
  forward(batch, out);
  return out;
}

}  // namespace modernbert
