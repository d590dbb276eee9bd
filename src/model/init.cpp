// Megatron-style initialisation (spec §6.6, research code "full_megatron"): truncated normal with
// mean 0, std sigma by rule, cut at +-initializer_cutoff_factor*sigma; LayerNorm weights 1, biases 0.
//
// Determinism: each tensor draws from its own stream seeded by (seed, tensor name), so values do
// not depend on the order or the number of threads, and the same seed gives the same bytes.
#include <cmath>
#include <cstring>
#include <thread>

#include "modernbert/error.h"
#include "modernbert/model_dir.h"

namespace modernbert {

namespace {

uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// xoshiro256** — small, fast, and fully specified (std::normal_distribution is not portable).
struct Rng {
  uint64_t s[4];
  explicit Rng(uint64_t seed) {
    for (auto& x : s) x = splitmix64(seed);
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t next() {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
};

uint64_t hash_name(const std::string& name, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;  // FNV-1a, then mixed
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return splitmix64(h);
}

void fill_truncated_normal(float* out, int64_t n, double std, double cutoff, uint64_t seed) {
  Rng rng(seed);
  int64_t i = 0;
  while (i < n) {
    // Box–Muller gives two normals per draw; rejection keeps those inside [-cutoff, cutoff] (in
    // units of std), which is exactly a normal truncated there.
    double u1 = rng.uniform(), u2 = rng.uniform();
    if (u1 <= 0) continue;
    double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    for (double z : {r * std::cos(a), r * std::sin(a)})
      if (i < n && std::fabs(z) <= cutoff) out[i++] = static_cast<float>(z * std);
  }
}

}  // namespace

double init_std(const ModelConfig& cfg, InitRule rule) {
  switch (rule) {
    case InitRule::kIn:
    case InitRule::kEmb: return cfg.initializer_range;
    case InitRule::kOut: return cfg.initializer_range / std::sqrt(2.0 * static_cast<double>(cfg.num_hidden_layers));
    case InitRule::kFinalOut: return 1.0 / std::sqrt(static_cast<double>(cfg.hidden_size));
    case InitRule::kOnes:
    case InitRule::kZeros: return 0.0;
  }
  return 0.0;
}

void init_weights(Weights& w, uint64_t seed) {
  w.make_contiguous();
  const ModelConfig& cfg = w.config();
  const auto& specs = w.specs();
  std::vector<float*> ptrs;
  for (const auto& s : specs) ptrs.push_back(w.mutable_param(s.name));
  auto work = [&](size_t begin, size_t stride) {
    for (size_t i = begin; i < specs.size(); i += stride) {
      const ParamSpec& s = specs[i];
      float* p = ptrs[i];
      if (s.init == InitRule::kOnes) {
        for (int64_t k = 0; k < s.numel(); ++k) p[k] = 1.0f;
      } else if (s.init == InitRule::kZeros) {
        std::memset(p, 0, sizeof(float) * static_cast<size_t>(s.numel()));
      } else {
        fill_truncated_normal(p, s.numel(), init_std(cfg, s.init), cfg.initializer_cutoff_factor, hash_name(s.name, seed));
      }
    }
  };
  unsigned nt = std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < nt; ++t) threads.emplace_back(work, t, nt);
  work(0, nt);
  for (auto& t : threads) t.join();
}

}  // namespace modernbert
