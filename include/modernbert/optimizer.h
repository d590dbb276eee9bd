// StableAdamW / AdamW over the flat parameter buffer (spec §6.4).
#pragma once

#include <cstdint>
#include <vector>

#include "modernbert/train_options.h"
#include "modernbert/weights.h"

namespace modernbert {

// ---- StableAdamW / AdamW (spec §6.4) ----
struct OptimizerConfig {
  OptimizerType type = OptimizerType::kStableAdamW;  // "stableadamw" | "adamw" in configs
  double lr = 8e-4;                  // peak LR = η_max (StableAdamW's max_lr, decouple_lr=True)
  double beta1 = 0.9, beta2 = 0.98, eps = 1e-6;
  double weight_decay = 1e-5;        // λ; never applied to norms and biases (ParamSpec::weight_decay)
};

// Moments m, v in the Weights layout. step() applies one update to every parameter tensor:
// StableAdamW (t = step count after increment):
//   β̂ = (β^t − β)/(β^t − 1);  m ← β̂1 m + (1−β̂1) g;  v ← β̂2 v + (1−β̂2) g²
//   RMS = sqrt(mean(g² / max(v, ε²)));  η' = η_t / max(1, RMS)            (per tensor)
//   θ ← θ (1 − (η'/η_max) λ)  (decayed tensors only);  θ ← θ − η' m / (sqrt(v) + ε)
// AdamW (PyTorch): m, v plain EMAs; θ ← θ (1 − η_t λ); θ ← θ − η_t m̂ / (sqrt(v̂) + ε).
//
// Sharded (ZeRO stage 1, #16): an optimizer may own only the tensors [first_tensor, last_tensor) of
// the layout. It then keeps their moments alone (m(), v(): elements [offset(), offset() + size()) of
// the layout) and step() updates only their parameters; `params` and `grads` are still the whole
// layout. Every update is per tensor, so the owned tensors get bit for bit the values the whole
// optimizer gives them.
class Optimizer {
 public:
  Optimizer(const std::vector<ParamSpec>& specs, const OptimizerConfig& cfg);
  Optimizer(const std::vector<ParamSpec>& specs, const OptimizerConfig& cfg, size_t first_tensor, size_t last_tensor);
  void step(float* params, const float* grads, double lr_t);
  int64_t step_count() const { return t_; }
  void set_step_count(int64_t t) { t_ = t; }
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const OptimizerConfig& config() const { return cfg_; }
  // Per-tensor update RMS of the last StableAdamW step (spec order; 0 for tensors not owned).
  const std::vector<double>& last_rms() const { return rms_; }
  // The owned tensors and their elements in the layout.
  size_t first_tensor() const { return first_; }
  size_t last_tensor() const { return last_; }
  size_t offset() const { return offset_; }
  size_t size() const { return m_.size(); }

 private:
  std::vector<ParamSpec> specs_;
  std::vector<size_t> offsets_;  // of every tensor in the layout
  size_t first_ = 0, last_ = 0, offset_ = 0;
  OptimizerConfig cfg_;
  std::vector<float> m_, v_;
  std::vector<double> rms_;
  int64_t t_ = 0;
};

// The tensors of `specs` split into `parts` contiguous ranges of near-equal element counts, for
// ZeRO-1 sharding: parts + 1 increasing tensor indices (range r = [t[r], t[r+1]), possibly empty).
// Tensors are never split, so each range is within one tensor's size of total / parts.
std::vector<size_t> split_tensors(const std::vector<ParamSpec>& specs, int parts);
// The element offsets in the layout of tensor indices (e.g. split_tensors' bounds).
std::vector<size_t> tensor_element_bounds(const std::vector<ParamSpec>& specs, const std::vector<size_t>& tensors);

}  // namespace modernbert
