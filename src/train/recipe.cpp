// Pre-training recipe components (spec §6): StableAdamW / AdamW, the LR schedule, batch-size
// warm-up, MLM masking, the document stream, greedy best-fit packing and weight tiling.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/rng.h"
#include "kernels/backend.h"
#include "modernbert/error.h"
#include "modernbert/mlm_data.h"
#include "modernbert/optimizer.h"
#include "modernbert/schedule.h"
#include "modernbert/tiling.h"

namespace modernbert {

// ---- counter-based randomness ---------------------------------------------------------------------

namespace {
using Rng = StreamRng;  // core/rng.h
}  // namespace

// ---- Optimizer ------------------------------------------------------------------------------------
// The per-tensor update loops are kernels (kernels/backend.h: adam_moments_rms, adam_apply,
// adamw_update); this class holds the state and the schedule.

Optimizer::Optimizer(const std::vector<ParamSpec>& specs, const OptimizerConfig& cfg)
    : Optimizer(specs, cfg, 0, specs.size()) {}

Optimizer::Optimizer(const std::vector<ParamSpec>& specs, const OptimizerConfig& cfg, size_t first_tensor,
                     size_t last_tensor)
    : specs_(specs), first_(first_tensor), last_(last_tensor), cfg_(cfg) {
  if (cfg.type != OptimizerType::kStableAdamW && cfg.type != OptimizerType::kAdamW)
    throw Error("optimizer: type must be stableadamw or adamw, got " + std::to_string(static_cast<int>(cfg.type)));
  if (first_ > last_ || last_ > specs_.size())
    throw Error("optimizer: tensor range [" + std::to_string(first_) + ", " + std::to_string(last_) + ") outside the " +
                std::to_string(specs_.size()) + " tensors");
  size_t total = 0;
  for (const auto& s : specs_) {
    offsets_.push_back(total);
    total += static_cast<size_t>(s.numel());
  }
  offsets_.push_back(total);
  offset_ = offsets_[first_];
  m_.assign(offsets_[last_] - offset_, 0.0f);
  v_.assign(offsets_[last_] - offset_, 0.0f);
  rms_.assign(specs_.size(), 0.0);
}

void Optimizer::step(float* params, const float* grads, double lr_t) {
  ++t_;
  const double t = static_cast<double>(t_);
  const double b1 = cfg_.beta1, b2 = cfg_.beta2, eps = cfg_.eps;
  const bool stable = cfg_.type == OptimizerType::kStableAdamW;
  // StableAdamW: debiased betas (0 at t = 1, so m = g, v = g² on the first step).
  const double bh1 = (std::pow(b1, t) - b1) / (std::pow(b1, t) - 1.0);
  const double bh2 = (std::pow(b2, t) - b2) / (std::pow(b2, t) - 1.0);
  const float eps2 = static_cast<float>(eps * eps);
  for (size_t p = first_; p < last_; ++p) {
    const int64_t n = specs_[p].numel();
    float* th = params + offsets_[p];
    const float* g = grads + offsets_[p];
    float* m = m_.data() + (offsets_[p] - offset_);
    float* v = v_.data() + (offsets_[p] - offset_);
    const double lambda = specs_[p].weight_decay ? cfg_.weight_decay : 0.0;
    if (stable) {
      const float fb1 = static_cast<float>(bh1), fb2 = static_cast<float>(bh2);
      const double s = kernels::adam_moments_rms(g, m, v, n, fb1, fb2, eps2);
      const double rms = std::sqrt(s / static_cast<double>(std::max<int64_t>(n, 1)));
      rms_[p] = rms;
      const double lr = lr_t / std::max(1.0, rms);
      const float decay = lambda != 0 ? static_cast<float>(1.0 - (lr / cfg_.lr) * lambda) : 1.0f;
      const float flr = static_cast<float>(lr), feps = static_cast<float>(eps);
      kernels::adam_apply(th, m, v, n, decay, flr, 1.0f, feps);
    } else {
      const float fb1 = static_cast<float>(b1), fb2 = static_cast<float>(b2);
      const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
      const float step = static_cast<float>(lr_t / bc1), inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
      const float decay = lambda != 0 ? static_cast<float>(1.0 - lr_t * lambda) : 1.0f, feps = static_cast<float>(eps);
      kernels::adamw_update(th, g, m, v, n, fb1, fb2, decay, step, inv_sqrt_bc2, feps);
    }
  }
}

std::vector<size_t> split_tensors(const std::vector<ParamSpec>& specs, int parts) {
  if (parts < 1) throw Error("split_tensors: parts must be positive, got " + std::to_string(parts));
  std::vector<double> cum(specs.size() + 1, 0.0);  // elements before tensor k
  for (size_t k = 0; k < specs.size(); ++k) cum[k + 1] = cum[k] + static_cast<double>(specs[k].numel());
  std::vector<size_t> t(static_cast<size_t>(parts) + 1, specs.size());
  t[0] = 0;
  for (int r = 1; r < parts; ++r) {
    // The boundary nearest the ideal one (r · total / parts), not before the previous boundary.
    const double target = cum.back() * r / parts;
    size_t best = t[static_cast<size_t>(r) - 1];
    for (size_t k = best; k <= specs.size(); ++k)
      if (std::abs(cum[k] - target) < std::abs(cum[best] - target)) best = k;
    t[static_cast<size_t>(r)] = best;
  }
  return t;
}

std::vector<size_t> tensor_element_bounds(const std::vector<ParamSpec>& specs, const std::vector<size_t>& tensors) {
  std::vector<size_t> out;
  for (size_t k : tensors) {
    if (k > specs.size()) throw Error("tensor_element_bounds: tensor index " + std::to_string(k) + " out of range");
    size_t e = 0;
    for (size_t i = 0; i < k; ++i) e += static_cast<size_t>(specs[i].numel());
    out.push_back(e);
  }
  return out;
}

// ---- Schedules ------------------------------------------------------------------------------------

double lr_multiplier(const ScheduleConfig& s, double tokens) {
  if (tokens < s.warmup_tokens) return s.alpha_i + (1.0 - s.alpha_i) * tokens / s.warmup_tokens;
  if (s.decay_tokens <= 0) return 1.0;
  const double start = s.total_tokens - s.decay_tokens;
  if (tokens <= start) return 1.0;
  const double frac = std::min(1.0, (tokens - start) / s.decay_tokens);
  double shape;
  if (s.decay_shape == DecayShape::kOneMinusSqrt)
    shape = 1.0 - std::sqrt(frac);
  else if (s.decay_shape == DecayShape::kLinear)
    shape = 1.0 - frac;
  else
    throw Error("schedule: decay_shape must be 1-sqrt or linear, got " +
                std::to_string(static_cast<int>(s.decay_shape)));
  return std::max(s.alpha_f, s.alpha_f + (1.0 - s.alpha_f) * shape);
}

int64_t BatchWarmup::batches_at(double tokens) const {
  if (warmup_tokens <= 0 || max_batches <= min_batches) return max_batches;
  double S = 0;
  for (int64_t b = min_batches; b < max_batches; ++b) S += static_cast<double>(b);
  double cum = 0;
  for (int64_t b = min_batches; b < max_batches; ++b) {
    cum += static_cast<double>(b);
    if (tokens < std::ceil(warmup_tokens * cum / S)) return b;
  }
  return max_batches;
}

// ---- Masking --------------------------------------------------------------------------------------

void mlm_mask(std::vector<int32_t>& ids, std::vector<int32_t>& labels, const MaskingConfig& cfg, uint64_t seed,
              uint64_t stream) {
  Rng rng(seed, stream);
  const double p = cfg.probability;
  const size_t n = ids.size();
  labels.assign(n, -100);
  std::vector<double> r(n);
  for (size_t i = 0; i < n; ++i) r[i] = rng.uniform();  // one draw per position, always
  for (size_t i = 0; i < n; ++i) {
    if (std::find(cfg.excluded_ids.begin(), cfg.excluded_ids.end(), ids[i]) != cfg.excluded_ids.end()) continue;
    if (r[i] < p) labels[i] = ids[i];
    if (r[i] < 0.8 * p) ids[i] = cfg.mask_token_id;
  }
  // Random replacements are drawn from [0, max id after the [MASK] substitution] (reference quirk).
  int32_t max_id = 0;
  for (int32_t x : ids) max_id = std::max(max_id, x);
  for (size_t i = 0; i < n; ++i)
    if (labels[i] != -100 && r[i] >= 0.8 * p && r[i] < 0.9 * p)
      ids[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(max_id) + 1));
}

// ---- Document stream ------------------------------------------------------------------------------

DocumentStream::DocumentStream(std::vector<std::vector<int32_t>> docs, uint64_t seed, bool shuffle)
    : docs_(std::move(docs)), seed_(seed), shuffle_(shuffle) {
  if (docs_.empty()) throw Error("data: no documents");
  make_order();
}

void DocumentStream::make_order() {
  order_.resize(docs_.size());
  for (size_t i = 0; i < order_.size(); ++i) order_[i] = static_cast<int64_t>(i);
  if (!shuffle_) return;
  Rng rng(seed_ ^ 0xD0C5ull, static_cast<uint64_t>(epoch_));
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng.below(i)]);  // Fisher-Yates
}

const std::vector<int32_t>& DocumentStream::next() {
  if (cursor_ >= static_cast<int64_t>(docs_.size())) {
    ++epoch_;
    cursor_ = 0;
    make_order();
  }
  return docs_[static_cast<size_t>(order_[static_cast<size_t>(cursor_++)])];
}

void DocumentStream::seek(int64_t epoch, int64_t cursor) {
  if (epoch < 0 || cursor < 0 || cursor > static_cast<int64_t>(docs_.size()))
    throw Error("data: cannot seek to epoch " + std::to_string(epoch) + ", cursor " + std::to_string(cursor) + " of " +
                std::to_string(docs_.size()) + " documents");
  epoch_ = epoch;
  cursor_ = cursor;
  make_order();
}

// ---- Packing --------------------------------------------------------------------------------------

SequencePacker::SequencePacker(int64_t row_len, int64_t buffer_size, std::function<std::vector<int32_t>()> source)
    : row_len_(row_len), capacity_(buffer_size), source_(std::move(source)) {
  if (row_len <= 0 || buffer_size <= 0) throw Error("packer: row length and buffer size must be positive");
}

bool SequencePacker::next(int64_t n_rows, std::vector<PackedRow>& rows) {
  rows.assign(static_cast<size_t>(n_rows), PackedRow{});
  for (auto& r : rows) r.capacity = row_len_;
  std::vector<std::vector<int32_t>> aside;
  std::vector<std::vector<int32_t>> work(buf_.begin(), buf_.end());  // FIFO, front = index 0
  size_t head = 0;
  auto buffered = [&] { return work.size() - head; };
  for (;;) {
    // Refill while the set-aside list leaves room in the buffer.
    while (static_cast<int64_t>(buffered() + aside.size()) < capacity_) {
      std::vector<int32_t> s = source_();
      if (s.empty()) break;  // source exhausted
      if (static_cast<int64_t>(s.size()) > row_len_) s.resize(static_cast<size_t>(row_len_));
      work.push_back(std::move(s));
    }
    if (buffered() == 0) break;
    std::vector<int32_t> seq = work[head++];  // a copy: on failure `work` restores the buffer
    const int64_t len = static_cast<int64_t>(seq.size());
    int64_t best = -1, best_room = 0;
    for (int64_t i = 0; i < n_rows; ++i) {
      const int64_t room = row_len_ - static_cast<int64_t>(rows[static_cast<size_t>(i)].ids.size());
      if (room >= len && (best < 0 || room < best_room)) {
        best = i;
        best_room = room;
      }
    }
    if (best < 0) {
      aside.push_back(std::move(seq));
      continue;
    }
    PackedRow& r = rows[static_cast<size_t>(best)];
    r.ids.insert(r.ids.end(), seq.begin(), seq.end());
    r.cu_seqlens.push_back(static_cast<int64_t>(r.ids.size()));
    bool all_full = true;
    for (const auto& rr : rows) all_full = all_full && static_cast<int64_t>(rr.ids.size()) == row_len_;
    if (all_full) break;
  }
  bool ok = true;
  for (const auto& r : rows) ok = ok && !r.ids.empty();
  if (!ok) {
    // No batch: everything read (old buffer, then newly fetched) stays buffered in order.
    buf_ = std::move(work);
    return false;
  }
  // New buffer: set-aside sequences first (deque.extendleft reverses them), then the rest.
  std::vector<std::vector<int32_t>> nb;
  for (auto it = aside.rbegin(); it != aside.rend(); ++it) nb.push_back(std::move(*it));
  for (size_t i = head; i < work.size(); ++i) nb.push_back(std::move(work[i]));
  buf_ = std::move(nb);
  return true;
}

std::vector<std::vector<int32_t>> SequencePacker::buffer() const { return buf_; }
void SequencePacker::set_buffer(std::vector<std::vector<int32_t>> b) { buf_ = std::move(b); }

// ---- Tiling ---------------------------------------------------------------------------------------

std::vector<int64_t> tiling_layer_map(int64_t src_layers, int64_t dst_layers) {
  std::vector<int64_t> map;
  for (int64_t k2 = 0; k2 < dst_layers; ++k2) {
    // k·Ls/Ld is exact in double for realistic sizes; nearbyint rounds half to even (Python round).
    const double x = static_cast<double>(k2 * src_layers) / static_cast<double>(dst_layers);
    map.push_back(std::min<int64_t>(src_layers - 1, static_cast<int64_t>(std::nearbyint(x))));
  }
  return map;
}

void tile_tensor(const float* src, const std::vector<int64_t>& ss, float* dst, const std::vector<int64_t>& ds) {
  if (ss.size() != ds.size() || ss.empty() || ss.size() > 2) throw Error("tile: rank mismatch");
  const int64_t R = ss[0], C = ss.size() == 2 ? ss[1] : 1, R2 = ds[0], C2 = ds.size() == 2 ? ds[1] : 1;
  const int64_t r0 = (R2 - R) / 2, c0 = (C2 - C) / 2;
  auto mod = [](int64_t a, int64_t m) { return ((a % m) + m) % m; };
  for (int64_t r = 0; r < R2; ++r)
    for (int64_t c = 0; c < C2; ++c) dst[r * C2 + c] = src[mod(r - r0, R) * C + mod(c - c0, C)];
}

void tile_weights(const Weights& src, Weights& dst) {
  const auto lmap = tiling_layer_map(src.config().num_hidden_layers, dst.config().num_hidden_layers);
  const int64_t Hs = src.config().hidden_size, Is = src.config().intermediate_size;
  const int64_t Hd = dst.config().hidden_size, Id = dst.config().intermediate_size;
  for (const auto& s : dst.specs()) {
    std::string name = s.name;
    if (name.rfind("model.final_norm", 0) == 0 || name.rfind("classifier.", 0) == 0) continue;  // fresh
    std::string sname = name;
    if (name.rfind("model.layers.", 0) == 0) {
      const size_t dot = name.find('.', 13);
      const int64_t l = std::stoll(name.substr(13, dot - 13));
      sname = "model.layers." + std::to_string(lmap[static_cast<size_t>(l)]) + name.substr(dot);
    }
    if (name == "decoder.weight" && !src.has(sname)) sname = "model.embeddings.tok_embeddings.weight";
    if (!src.has(sname)) continue;  // e.g. a layer mapped to source layer 0 (no attn_norm): keep init
    const float* sp = src.param(sname);
    const auto& sshape = src.spec(sname).shape;
    float* dp = dst.mutable_param(name);
    // Fused tensors are tiled block by block: Q|K|V (3 blocks of H rows), Wi input|gate (2 of I).
    int64_t blocks = 1, srows = sshape[0], drows = s.shape[0];
    if (name.find("attn.Wqkv.") != std::string::npos) {
      blocks = 3;
      srows = Hs;
      drows = Hd;
    } else if (name.find("mlp.Wi.") != std::string::npos) {
      blocks = 2;
      srows = Is;
      drows = Id;
    }
    const int64_t scols = sshape.size() == 2 ? sshape[1] : 1, dcols = s.shape.size() == 2 ? s.shape[1] : 1;
    for (int64_t b = 0; b < blocks; ++b) {
      std::vector<int64_t> bs = {srows}, bd = {drows};
      if (sshape.size() == 2) {
        bs.push_back(scols);
        bd.push_back(dcols);
      }
      tile_tensor(sp + b * srows * scols, bs, dp + b * drows * dcols, bd);
    }
  }
}

}  // namespace modernbert
