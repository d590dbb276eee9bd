// The project's one random-number utility: small, fully specified generators whose streams are
// the same on every platform and compiler (std::mt19937 + std::normal_distribution are not).
// Every stream the project draws (weight init, head init, shuffles, MLM masking, dropout masks)
// comes from here; changing any function changes trained numbers that tests compare across runs,
// so these are frozen bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace modernbert {

// splitmix64 finaliser (Stafford variant 13): a bijective 64-bit mix, no state.
inline uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The splitmix64 generator: advances the state by the golden-ratio increment and returns the
// mixed state.
inline uint64_t splitmix64(uint64_t& state) { return splitmix64_mix(state += 0x9E3779B97F4A7C15ull); }

// One splitmix64 step of a value (stateless): splitmix64 of a copy of x.
inline uint64_t splitmix64_of(uint64_t x) { return splitmix64(x); }

// The top 53 bits of a 64-bit draw as a double in [0, 1).
inline double to_unit_double(uint64_t r) { return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0); }

// Uniform [0, 1) from a splitmix64 stream.
inline double uniform01(uint64_t& state) { return to_unit_double(splitmix64(state)); }

// Normal(0, sd) truncated to [-cutoff, cutoff] (cutoff in absolute units) by rejection, one
// Box-Muller cosine branch per draw, from a splitmix64 stream (fine-tuning heads).
inline double trunc_normal(uint64_t& state, double sd, double cutoff) {
  for (;;) {
    const double u1 = std::max(uniform01(state), 1e-300), u2 = uniform01(state);
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2) * sd;
    if (std::abs(z) <= cutoff) return z;
  }
}

// Fisher-Yates permutation of [0, n) from a splitmix64 stream seeded with `seed`.
inline std::vector<size_t> shuffled(size_t n, uint64_t seed) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  uint64_t s = seed;
  for (size_t i = n; i > 1; --i) std::swap(idx[i - 1], idx[splitmix64(s) % i]);
  return idx;
}

// A sequential generator seeded from (seed, stream) (pre-training's masking and document order):
// splitmix64 steps over a state derived from both.
struct StreamRng {
  uint64_t s;
  StreamRng(uint64_t seed, uint64_t stream) : s(splitmix64_of(seed ^ splitmix64_of(stream + 0x1234567ull))) {}
  uint64_t next() { return splitmix64(s); }
  double uniform() { return to_unit_double(next()); }  // [0, 1)
  uint64_t below(uint64_t n) { return n ? next() % n : 0; }
};

// xoshiro256** seeded by four splitmix64 draws (weight initialisation).
struct Xoshiro256 {
  uint64_t s[4];
  explicit Xoshiro256(uint64_t seed) {
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
  double uniform() { return to_unit_double(next()); }  // [0, 1)
};

// out[0..n) ~ Normal(0, sd) truncated to [-cutoff·sd, cutoff·sd] (cutoff in units of sd), from a
// xoshiro256** stream: Box-Muller gives two normals per draw (cosine, then sine), rejection keeps
// those inside the cut, which is exactly a normal truncated there (weight initialisation).
inline void fill_truncated_normal(float* out, int64_t n, double sd, double cutoff, uint64_t seed) {
  Xoshiro256 rng(seed);
  int64_t i = 0;
  while (i < n) {
    double u1 = rng.uniform(), u2 = rng.uniform();
    if (u1 <= 0) continue;
    double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    for (double z : {r * std::cos(a), r * std::sin(a)})
      if (i < n && std::fabs(z) <= cutoff) out[i++] = static_cast<float>(z * sd);
  }
}

// A counter-based uniform [0, 1): a pure function of (seed, a, b) (dropout masks: a = layer,
// b = element), so a mask can be regenerated in the backward without storing it, independent of
// threads and order.
inline double counter_uniform(uint64_t seed, uint64_t a, uint64_t b) {
  const uint64_t x = seed ^ (a * 0xD1B54A32D192ED03ull) ^ (b * 0x9E3779B97F4A7C15ull);
  return to_unit_double(splitmix64_mix(x));
}

}  // namespace modernbert
