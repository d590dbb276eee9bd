// attention_bf16 (#15): the cpu backend against the scalar reference, on both of its paths (the
// AVX512-BF16 kernels where this CPU has them, and the fp32-FMA emulation, forced by the test hook),
// and against fp32 attention within the bf16 error bound.
//
// Tolerances. The cpu kernels and ref::attention_bf16 perform the same fp32 operations before every
// rounding to bf16 (RoPE, scale, dot products pair by pair, the exp polynomial; the contract in
// kernels/backend.h), so their rounded operands and P are the same bits; what differs is the
// summation order of each row's softmax sum l (16 or 8 lanes vs one chain), a relative error of a
// few 1e-7 in out = O / l. Checked as |cpu - ref| <= 2e-6 + 1e-5 |ref| (measured with
// MB_ALLCLOSE_STATS=1: max relative difference 1.3e-6, no atol needed at that rtol). Against fp32 attention the
// bound is bf16's: each of q, k, v and p carries a relative rounding error up to 2^-9, so with
// inputs in [-1, 1] (|out| <= 1) the outputs differ by at most ~1e-2 (measured: max 1.9e-3, mean
// 7e-5 global / 1.1e-4 local).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/attention_bf16.h"
#include "kernels/ref/ref.h"
#include "modernbert/error.h"
#include "test_util.h"

namespace mk = modernbert::kernels;

namespace {

std::vector<float> rand_vec(size_t n, uint32_t seed, float amp) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-amp, amp);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

std::vector<int64_t> cu_from_lengths(const std::vector<int64_t>& lens) {
  std::vector<int64_t> cu(1, 0);
  for (int64_t n : lens) cu.push_back(cu.back() + n);
  return cu;
}

// The paths of the cpu backend this machine can run: the automatic choice (native where the CPU
// has AVX512-BF16) and the forced emulation.
struct Path {
  const char* name;
  bool force_emulated;
};
std::vector<Path> cpu_paths() {
  std::vector<Path> p{{"emulated", true}};
  if (mk::cpu::attention_bf16_native_supported()) p.push_back({"native", false});
  return p;
}

// Restores the automatic path choice when a test ends (also on a failed assertion).
struct PathGuard {
  explicit PathGuard(bool force) { mk::cpu::set_attention_bf16_force_emulated(force); }
  ~PathGuard() { mk::cpu::set_attention_bf16_force_emulated(false); }
};

struct Case {
  std::vector<int64_t> lens;
  int64_t heads, d, hw;
  bool rope;
  float amp = 1.0f;
};

// cpu (every path, with and without a workspace) vs ref, for one case.
void check_vs_ref(const Case& c, uint32_t seed) {
  const auto cu = cu_from_lengths(c.lens);
  const int64_t B = static_cast<int64_t>(c.lens.size()), T = cu.back(), H = c.heads * c.d;
  const auto qkv = rand_vec(static_cast<size_t>(T * 3 * H), seed, c.amp);
  mk::RopeTable table;
  if (c.rope) table = mk::make_rope_table(160000.0, c.d, 1024);
  const mk::RopeTable* rope = c.rope ? &table : nullptr;
  std::vector<float> ref(static_cast<size_t>(T * H), -7.0f);
  mk::ref_backend().attention_bf16(qkv.data(), ref.data(), cu.data(), B, c.heads, c.d, c.hw, nullptr, rope);
  // Exactly attention_bf16_workspace_floats (about half of fp32 attention's), then canaries.
  const size_t ws_floats = mk::cpu_backend().attention_bf16_workspace_floats(T, c.heads, c.d);
  EXPECT_LE(2 * ws_floats, mk::cpu_backend().attention_workspace_floats(T, c.heads, c.d) + 2 * 16 * 3 * c.heads * c.d);
  std::vector<float> ws(ws_floats + 64, std::nanf(""));
  for (size_t i = ws_floats; i < ws.size(); ++i) ws[i] = 12345.0f;
  for (const Path& p : cpu_paths()) {
    PathGuard guard(p.force_emulated);
    const std::string what = std::string(p.name) + " d=" + std::to_string(c.d) + " hw=" + std::to_string(c.hw) +
                             (c.rope ? " rope" : "") + " T=" + std::to_string(T);
    std::vector<float> got(static_cast<size_t>(T * H), -9.0f), got_ws(got.size(), -9.0f);
    mk::cpu_backend().attention_bf16(qkv.data(), got.data(), cu.data(), B, c.heads, c.d, c.hw, nullptr, rope);
    mbtest::expect_allclose(got, ref, 2e-6, 1e-5, what);
    // A caller's workspace (filled with NaN here: every byte read must have been written) gives
    // the same bits as the internal one.
    mk::cpu_backend().attention_bf16(qkv.data(), got_ws.data(), cu.data(), B, c.heads, c.d, c.hw, ws.data(), rope);
    EXPECT_EQ(got_ws, got) << what << " (workspace)";
    for (size_t i = ws_floats; i < ws.size(); ++i) ASSERT_EQ(ws[i], 12345.0f) << what << ": wrote past the workspace";
  }
}

}  // namespace

TEST(AttentionBf16, ReportsItsPath) {
  const std::string path = mk::cpu::attention_bf16_path();
  EXPECT_EQ(path, mk::cpu::attention_bf16_native_supported() ? "avx512_bf16 (vdpbf16ps)" : "fp32 fma emulation");
  PathGuard guard(true);
  EXPECT_STREQ(mk::cpu::attention_bf16_path(), "fp32 fma emulation");
}

TEST(AttentionBf16, GlobalMatchesReference) {
  const std::vector<int64_t> lens{1, 7, 64, 200, 513};
  uint32_t seed = 100;
  for (int64_t d : {64, 32})
    for (bool rope : {false, true}) check_vs_ref({lens, 2, d, -1, rope}, seed++);
}

TEST(AttentionBf16, LocalMatchesReference) {
  const std::vector<int64_t> lens{1, 7, 64, 200, 513};
  uint32_t seed = 200;
  for (int64_t d : {64, 32})
    for (bool rope : {false, true}) check_vs_ref({lens, 2, d, 64, rope}, seed++);
  check_vs_ref({{300}, 1, 32, 3, true}, seed++);       // tiny window
  check_vs_ref({{130, 9}, 2, 16, 0, false}, seed++);   // only itself
  check_vs_ref({{5, 17}, 2, 16, 1000, true}, seed++);  // window wider than the sequences
  check_vs_ref({{5, 17}, 1, 16, std::numeric_limits<int64_t>::max(), false}, seed++);
}

TEST(AttentionBf16, OddShapesAndEmptySequences) {
  uint32_t seed = 300;
  check_vs_ref({{40, 3}, 1, 8, -1, true}, seed++);            // dv padding 8 -> 16
  check_vs_ref({{33, 2}, 2, 24, 20, true}, seed++);           // d not a multiple of 16
  check_vs_ref({{19, 31}, 3, 5, -1, false}, seed++);          // odd d: a zero channel pads the last pair
  check_vs_ref({{70, 33}, 1, 128, 40, true}, seed++);         // d = 128: two 64-channel groups in P·V
  check_vs_ref({{0, 5, 0, 3, 0}, 2, 16, -1, false}, seed++);  // empty sequences
  check_vs_ref({{90, 200}, 2, 64, -1, true, 4.0f}, seed++);   // large scores: peaked softmax
}

TEST(AttentionBf16, ThreadCountFree) {
  // Each output row is computed by one tile in a fixed order: the same bits on any pool size.
  const auto cu = cu_from_lengths({100, 257});
  const int64_t heads = 2, d = 64, T = cu.back(), H = heads * d;
  const auto qkv = rand_vec(static_cast<size_t>(T * 3 * H), 400, 1.0f);
  for (const Path& p : cpu_paths()) {
    PathGuard guard(p.force_emulated);
    std::vector<float> a(static_cast<size_t>(T * H)), b(a.size());
    modernbert::set_default_threads(1);
    mk::cpu_backend().attention_bf16(qkv.data(), a.data(), cu.data(), 2, heads, d, 64, nullptr, nullptr);
    modernbert::set_default_threads(3);
    mk::cpu_backend().attention_bf16(qkv.data(), b.data(), cu.data(), 2, heads, d, 64, nullptr, nullptr);
    modernbert::set_default_threads(0);
    EXPECT_EQ(a, b) << p.name;
  }
}

TEST(AttentionBf16, WithinBf16BoundOfFp32Attention) {
  // The rounding is bounded: attention_bf16 vs the fp32 attention (reference, double inside).
  const auto cu = cu_from_lengths({1, 7, 64, 200, 513});
  const int64_t B = 5, heads = 2, d = 64, T = cu.back(), H = heads * d;
  const auto qkv = rand_vec(static_cast<size_t>(T * 3 * H), 500, 1.0f);
  const auto table = mk::make_rope_table(160000.0, d, 1024);
  for (int64_t hw : {-1, 64})
    for (const Path& p : cpu_paths()) {
      PathGuard guard(p.force_emulated);
      std::vector<float> f32(static_cast<size_t>(T * H)), bf(f32.size());
      mk::ref::attention(qkv.data(), f32.data(), cu.data(), B, heads, d, hw, nullptr, &table);
      mk::cpu_backend().attention_bf16(qkv.data(), bf.data(), cu.data(), B, heads, d, hw, nullptr, &table);
      double max_err = 0, sum_err = 0;
      for (size_t i = 0; i < f32.size(); ++i) {
        const double e = std::fabs(static_cast<double>(bf[i]) - f32[i]);
        max_err = std::max(max_err, e);
        sum_err += e;
      }
      const double mean_err = sum_err / static_cast<double>(f32.size());
      EXPECT_LT(max_err, 1e-2) << p.name << " hw=" << hw;
      EXPECT_LT(mean_err, 5e-4) << p.name << " hw=" << hw;
      EXPECT_GT(max_err, 0.0) << "bf16 rounding should be visible";
      if (std::getenv("MB_ALLCLOSE_STATS"))
        std::printf("  [bf16 vs fp32] %s hw=%lld: max %.3g mean %.3g\n", p.name, static_cast<long long>(hw), max_err,
                    mean_err);
    }
}

TEST(AttentionBf16, RejectsBadInput) {
  const auto cu = cu_from_lengths({4, 6});
  const int64_t heads = 1, d = 8, H = heads * d;
  const auto qkv = rand_vec(static_cast<size_t>(10 * 3 * H), 600, 1.0f);
  std::vector<float> out(static_cast<size_t>(10 * H));
  const auto short_table = mk::make_rope_table(10000.0, d, 5);
  const auto wrong_dim = mk::make_rope_table(10000.0, 16, 64);
  const std::vector<int64_t> bad_cu{1, 4, 10}, decreasing{0, 6, 4};
  for (const mk::Backend* be : {&mk::cpu_backend(), &mk::ref_backend()}) {
    EXPECT_THROW(be->attention_bf16(qkv.data(), out.data(), cu.data(), 2, heads, d, -1, nullptr, &short_table),
                 modernbert::Error);
    EXPECT_THROW(be->attention_bf16(qkv.data(), out.data(), cu.data(), 2, heads, d, -1, nullptr, &wrong_dim),
                 modernbert::Error);
    EXPECT_THROW(be->attention_bf16(qkv.data(), out.data(), bad_cu.data(), 2, heads, d, -1, nullptr, nullptr),
                 modernbert::Error);
    EXPECT_THROW(be->attention_bf16(qkv.data(), out.data(), decreasing.data(), 2, heads, d, -1, nullptr, nullptr),
                 modernbert::Error);
    EXPECT_THROW(be->attention_bf16(qkv.data(), out.data(), cu.data(), 2, 0, d, -1, nullptr, nullptr),
                 modernbert::Error);
  }
}
