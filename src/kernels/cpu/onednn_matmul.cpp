// oneDNN matmul for the reduced-precision linears (lowp.h): bf16 x bf16 -> f32 and s8 x s8 -> s32,
// weights read in place (our [N,K] row-major is oneDNN's {K,N} `ba`; no reordered copy, so the
// weights stay 16 / 8-bit with no second copy).
//
// Threading as the fp32 gemm (gemm.cpp): our pool splits the output, each pool thread runs its own
// single-threaded primitive (OpenMP team size held at 1 around the call). Primitives are cached
// per thread, with user-managed scratchpads; execution goes through the C API with the arguments on
// the stack, so a warm call creates nothing of ours and takes no lock.
//
// Which primitive: one with M given at run time (DNNL_RUNTIME_DIM_VAL; oneDNN 2.6 implements it
// as gemm:jit), so one primitive per weight shape serves every token count; a primitive costs ~1 ms
// to create, and a server sees a new M in nearly every batch. Measured single-thread on Zen 5
// (N 2304, K 768), GFLOP/s runtime-M gemm:jit vs fixed-M brgemm: bf16 ~equal at M >= 128, -3% at
// 32, 2.5x faster at M = 1; s8 the same picture. Where oneDNN can use AMX, only its brgemm
// kernels do, so there the primitives are fixed-M brgemm (cached per M).
//
// AMX: oneDNN 2.x dispatches AMX only up to its max-ISA setting; at load, unless the user set
// ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA, we raise it to avx512_core_amx (a cap: no effect on a
// CPU without AMX). This must precede oneDNN's first dispatch, hence a static initialiser.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cpu/lowp.h"

#ifdef MODERNBERT_HAVE_ONEDNN
#include <omp.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace modernbert::kernels::cpu::lowp {

namespace {
std::atomic<bool> g_force_portable{false};  // read by pool threads
}  // namespace

void set_force_portable(bool on) { g_force_portable.store(on, std::memory_order_relaxed); }
bool force_portable() { return g_force_portable.load(std::memory_order_relaxed); }

#ifndef MODERNBERT_HAVE_ONEDNN

bool onednn_matmul_usable(MatmulKind, std::string* impl) {
  if (impl) *impl = "oneDNN not built in";
  return false;
}
bool onednn_matmul(MatmulKind, const void*, const void*, const float*, void*, int64_t, int64_t, int64_t, int64_t) {
  return false;
}
bool onednn_packed_usable(std::string* impl) {
  if (impl) *impl = "oneDNN not built in";
  return false;
}
bool onednn_matmul_packed(const float*, int64_t, const float*, const float*, float*, int64_t, int64_t, int64_t,
                          int64_t) {
  return false;
}

#else

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

// Holds this thread's OpenMP team at one thread for its scope (restored after: a kNative gemm on
// the same thread keeps its own setting).
class OmpSingle {
 public:
  OmpSingle() : prev_(omp_get_max_threads()) {
    if (prev_ != 1) omp_set_num_threads(1);
  }
  ~OmpSingle() {
    if (prev_ != 1) omp_set_num_threads(prev_);
  }
  OmpSingle(const OmpSingle&) = delete;
  OmpSingle& operator=(const OmpSingle&) = delete;

 private:
  int prev_;
};

// Never destroyed: pool threads' cached primitives and streams refer to it and may outlive the
// function statics destroyed at exit.
dnnl::engine& cpu_engine() {
  static auto* eng = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *eng;
}

// Raise oneDNN's max ISA to AMX before anything dispatches (see the header comment).
[[maybe_unused]] const bool g_amx_enabled = [] {
  if (std::getenv("ONEDNN_MAX_CPU_ISA") || std::getenv("DNNL_MAX_CPU_ISA")) return false;
  return dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx512_core_amx) == dnnl_success;
}();

bool isa_has(dnnl_cpu_isa_t isa, dnnl_cpu_isa_t feature) {
  return (static_cast<unsigned>(isa) & static_cast<unsigned>(feature)) == static_cast<unsigned>(feature);
}

// The highest oneDNN ISA level in effect that matters for `kind` (bf16 for kBf16, VNNI for kS8).
const char* isa_name(dnnl_cpu_isa_t isa, MatmulKind kind) {
  if (isa_has(isa, dnnl_cpu_isa_avx512_core_amx)) return "avx512_core_amx";
  if (kind == MatmulKind::kBf16 && isa_has(isa, dnnl_cpu_isa_avx512_core_bf16)) return "avx512_core_bf16";
  if (isa_has(isa, dnnl_cpu_isa_avx512_core_vnni)) return "avx512_core_vnni";
  if (isa_has(isa, dnnl_cpu_isa_avx512_core)) return "avx512_core";
  if (isa_has(isa, dnnl_cpu_isa_avx2_vnni)) return "avx2_vnni";
  if (isa_has(isa, dnnl_cpu_isa_avx2)) return "avx2";
  return "pre-avx2";
}

// Fixed-M brgemm primitives where AMX is in use, runtime-M ones elsewhere.
bool runtime_m() {
  static const bool r = !isa_has(dnnl_get_effective_cpu_isa(), dnnl_cpu_isa_avx512_core_amx);
  return r;
}

// The primitive kinds: MatmulKind's (src in place, weights [N, K] read as `ba`) and kPackedF32
// (fp32 src with row stride lda, fp32 weights packed BA16a64b by widen_pack, fixed M).
constexpr int kPackedF32 = 2;

struct Key {
  int kind;
  bool bias;
  int64_t M, N, K, ldc, lda;
  bool operator==(const Key& o) const {
    return kind == o.kind && bias == o.bias && M == o.M && N == o.N && K == o.K && ldc == o.ldc && lda == o.lda;
  }
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = static_cast<size_t>(k.kind) * 2 + (k.bias ? 1 : 0);
    for (int64_t v : {k.M, k.N, k.K, k.ldc, k.lda}) h = h * 1000003u ^ static_cast<size_t>(v);
    return h;
  }
};

dt src_type(int kind) {
  return kind == static_cast<int>(MatmulKind::kBf16) ? dt::bf16 : kind == kPackedF32 ? dt::f32 : dt::s8;
}
dt dst_type(int kind) { return kind == static_cast<int>(MatmulKind::kS8) ? dt::s32 : dt::f32; }

struct Entry {
  bool ok = false;
  dnnl::matmul prim;
  memory src, wei, bias, dst, scratch;
  int64_t cur_m = -1;  // the M of src / dst (runtime-M primitives re-describe them when M changes)
  std::string impl;
};

bool contains(const std::string& s, const char* sub) { return s.find(sub) != std::string::npos; }

// src [M, K] with row stride lda and dst [M, N] with row stride ldc, for the call's M.
void describe_m(Entry& e, const Key& key, int64_t M) {
  e.src =
      memory(memory::desc({M, key.K}, src_type(key.kind), memory::dims{key.lda, 1}), cpu_engine(), DNNL_MEMORY_NONE);
  e.dst =
      memory(memory::desc({M, key.N}, dst_type(key.kind), memory::dims{key.ldc, 1}), cpu_engine(), DNNL_MEMORY_NONE);
  e.cur_m = M;
}

Entry make_entry(const Key& key) {
  Entry e;
  const bool packed = key.kind == kPackedF32;
  const dt in = src_type(key.kind);
  // key.M may be DNNL_RUNTIME_DIM_VAL. Weights: [N,K] row-major = {K,N} ba, or packed.
  const memory::desc src_md({key.M, key.K}, in, memory::dims{key.lda, 1});
  const memory::desc wei_md = packed ? memory::desc({key.K, key.N}, dt::f32, tag::BA16a64b)
                                     : memory::desc({key.K, key.N}, in, memory::dims{1, key.K});
  const memory::desc dst_md({key.M, key.N}, dst_type(key.kind), memory::dims{key.ldc, 1});
  const memory::desc bias_md = key.bias ? memory::desc({1, key.N}, dt::f32, tag::ab) : memory::desc();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  try {
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_md, bias_md, dst_md), attr, cpu_engine());
    // Packed weights only where a brgemm kernel reads exactly our layout (else the weights would be
    // misread or reordered on every call).
    if (packed && (!contains(pd.impl_info_str(), "brg") || pd.weights_desc() != wei_md)) {
      e.impl = pd.impl_info_str();
      return e;
    }
    e.prim = dnnl::matmul(pd);
    dnnl::engine& eng = cpu_engine();
    e.wei = memory(wei_md, eng, DNNL_MEMORY_NONE);
    if (key.bias) e.bias = memory(bias_md, eng, DNNL_MEMORY_NONE);
    e.scratch = memory(pd.scratchpad_desc(), eng);  // allocated once, by oneDNN
    e.impl = pd.impl_info_str();
    e.ok = true;
  } catch (const dnnl::error&) {
    e.ok = false;
  }
  return e;
}

// The calling thread's entry for `key` (created on first use; the cache is dropped when it grows
// past a bound, e.g. a server seeing every token count).
Entry& entry_for(const Key& key) {
  thread_local std::unordered_map<Key, Entry, KeyHash> cache;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 512) cache.clear();
  return cache.emplace(key, make_entry(key)).first->second;
}

bool run(Entry& e, const Key& key, int64_t M, const void* A, const void* W, const float* bias, void* C) {
  thread_local dnnl::stream stream(cpu_engine());
  if (e.cur_m != M) describe_m(e, key, M);
  e.src.set_data_handle(const_cast<void*>(A));
  e.wei.set_data_handle(const_cast<void*>(W));
  e.dst.set_data_handle(C);
  dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, e.src.get()},
                             {DNNL_ARG_WEIGHTS, e.wei.get()},
                             {DNNL_ARG_DST, e.dst.get()},
                             {DNNL_ARG_SCRATCHPAD, e.scratch.get()},
                             {DNNL_ARG_BIAS, nullptr}};
  int nargs = 4;
  if (bias) {
    e.bias.set_data_handle(const_cast<float*>(bias));
    args[nargs++] = {DNNL_ARG_BIAS, e.bias.get()};
  }
  if (dnnl_primitive_execute(e.prim.get(), stream.get(), nargs, args) != dnnl_success) return false;
  return dnnl_stream_wait(stream.get()) == dnnl_success;
}

struct Probe {
  bool usable = false;
  std::string impl;
};

// bf16: a native implementation (AVX512-BF16 or AMX; not oneDNN's emulation or reference code),
// checked on one small product that is exact in bf16.
Probe probe_bf16() {
  Probe p;
  constexpr int64_t M = 64, N = 64, K = 96;
  const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  const Key key{static_cast<int>(MatmulKind::kBf16), false, runtime_m() ? DNNL_RUNTIME_DIM_VAL : M, N, K, N, K};
  Entry e = make_entry(key);
  if (!e.ok) {
    p.impl = std::string("cannot create a bf16 matmul (isa ") + isa_name(isa, MatmulKind::kBf16) + ")";
    return p;
  }
  p.impl = e.impl + ", isa " + isa_name(isa, MatmulKind::kBf16);
  // Native bf16 dot products only (oneDNN also emulates bf16 on plain AVX-512, slowly).
  if (contains(e.impl, "ref") || !isa_has(isa, dnnl_cpu_isa_avx512_core_bf16)) return p;
  std::vector<uint16_t> a(M * K), w(N * K);
  for (int64_t i = 0; i < M * K; ++i) a[i] = static_cast<uint16_t>(0x3f80 + (i % 7) * 0x80);  // 1, 2, 4, ...
  for (int64_t i = 0; i < N * K; ++i) w[i] = (i % 3) ? 0x3f80 : 0xbf80;                       // +-1
  std::vector<float> c(M * N);
  if (!run(e, key, M, a.data(), w.data(), nullptr, c.data())) return p;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += static_cast<double>(1 << ((m * K + k) % 7)) * (((n * K + k) % 3) ? 1.0 : -1.0);
      if (c[m * N + n] != static_cast<float>(s)) return p;
    }
  p.usable = true;
  return p;
}

// s8: a native implementation whose integer sums are exact: checked on the data that saturates the
// pre-VNNI u8 x s8 -> s16 pair sums (|a| = |w| = 127, every sign combination) and on mixed values.
Probe probe_s8() {
  Probe p;
  constexpr int64_t M = 32, N = 48, K = 200;
  const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  const Key key{static_cast<int>(MatmulKind::kS8), false, runtime_m() ? DNNL_RUNTIME_DIM_VAL : M, N, K, N, K};
  Entry e = make_entry(key);
  if (!e.ok) {
    p.impl = std::string("cannot create an s8 matmul (isa ") + isa_name(isa, MatmulKind::kS8) + ")";
    return p;
  }
  p.impl = e.impl + ", isa " + isa_name(isa, MatmulKind::kS8);
  if (contains(e.impl, "ref")) return p;
  std::vector<int8_t> a(M * K), w(N * K);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k)
      a[m * K + k] = static_cast<int8_t>(m < 8 ? (m % 2 ? -127 : 127) : ((m * 37 + k * 11) % 255) - 127);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      w[n * K + k] = static_cast<int8_t>(n < 8 ? (n % 2 ? -127 : 127) : ((n * 53 + k * 29) % 255) - 127);
  // All M rows, then the first row alone (oneDNN has separate gemv kernels for M = 1).
  for (const int64_t rows : {M, int64_t{1}}) {
    if (!runtime_m() && rows != M) break;  // a fixed-M primitive only runs its M
    std::vector<int32_t> c(rows * N);
    if (!run(e, key, rows, a.data(), w.data(), nullptr, c.data())) return p;
    for (int64_t m = 0; m < rows; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t s = 0;
        for (int64_t k = 0; k < K; ++k) s += static_cast<int64_t>(a[m * K + k]) * w[n * K + k];
        if (c[m * N + n] != s) {
          p.impl += " (inexact: saturating int16 pair sums)";
          return p;
        }
      }
  }
  p.usable = true;
  return p;
}

}  // namespace

bool onednn_matmul_usable(MatmulKind kind, std::string* impl) {
  static std::once_flag once[2];
  static Probe probes[2];
  const int i = static_cast<int>(kind);
  std::call_once(once[i], [&] {
    OmpSingle single;
    try {
      probes[i] = kind == MatmulKind::kBf16 ? probe_bf16() : probe_s8();
    } catch (const dnnl::error& ex) {
      probes[i] = Probe{false, std::string("oneDNN error: ") + ex.what()};
    }
  });
  if (impl) *impl = force_portable() ? std::string("disabled by the test hook") : probes[i].impl;
  return probes[i].usable && !force_portable();
}

bool onednn_matmul(MatmulKind kind, const void* A, const void* W, const float* bias, void* C, int64_t ldc, int64_t M,
                   int64_t N, int64_t K) {
  OmpSingle single;
  const bool with_bias = bias != nullptr && kind == MatmulKind::kBf16;
  const Key key{static_cast<int>(kind), with_bias, runtime_m() ? DNNL_RUNTIME_DIM_VAL : M, N, K, ldc, K};
  Entry& e = entry_for(key);
  if (!e.ok) return false;
  return run(e, key, M, A, W, with_bias ? bias : nullptr, C);
}

namespace {

// The packed fp32 matmul: a brgemm implementation reading widen_pack's layout, checked on data
// whose products and sums are exact in fp32 (small integers; N and K not multiples of the blocks,
// M run in pieces 4 + 1, with a bias). oneDNN 2.6's brgemm takes dense A and C only.
Probe probe_packed() {
  Probe p;
  constexpr int64_t M = 5, N = 100, K = 40, lda = K, ldc = N;
  const Key key{kPackedF32, true, 4, N, K, ldc, lda};
  Entry e = make_entry(key);
  p.impl = e.impl.empty() ? "cannot create an fp32 matmul on packed weights" : e.impl;
  if (!e.ok) return p;
  std::vector<uint16_t> w(N * K);
  for (int64_t i = 0; i < N * K; ++i) w[i] = static_cast<uint16_t>(0x3c00 + (i % 5) * 0x400);  // f16 1, 2, 4, ...
  std::vector<float> a(M * lda), bias(N), c(M * ldc, -1.0f), packed(packed_floats(N, K));
  for (int64_t i = 0; i < M * lda; ++i) a[i] = static_cast<float>(i % 9) - 4.0f;
  for (int64_t n = 0; n < N; ++n) bias[n] = static_cast<float>(n % 3);
  widen_pack(Precision::kF16, w.data(), N, K, packed.data(), 0, (N + kPackN - 1) / kPackN);
  if (!onednn_matmul_packed(a.data(), lda, packed.data(), bias.data(), c.data(), ldc, M, N, K)) return p;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = bias[n];
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(a[m * lda + k]) * (1 << ((n * K + k) % 5));
      if (c[m * ldc + n] != static_cast<float>(s)) return p;
    }
  p.usable = true;
  return p;
}

}  // namespace

bool onednn_packed_usable(std::string* impl) {
  static std::once_flag once;
  static Probe probe;
  std::call_once(once, [&] {
    OmpSingle single;
    try {
      probe = probe_packed();
    } catch (const dnnl::error& ex) {
      probe = Probe{false, std::string("oneDNN error: ") + ex.what()};
    }
  });
  if (impl) *impl = force_portable() ? std::string("disabled by the test hook") : probe.impl;
  return probe.usable && !force_portable();
}

bool onednn_matmul_packed(const float* A, int64_t lda, const float* P, const float* bias, float* C, int64_t ldc,
                          int64_t M, int64_t N, int64_t K) {
  if (lda != K || ldc != N) return false;  // brgemm: dense A and C only
  OmpSingle single;
  for (int64_t m0 = 0; m0 < M;) {
    // Pieces of kPackedPieceRows rows, then a multiple of 16, then powers of two below 16: a dozen
    // fixed-M primitives per weight shape serve every M (the pool's pieces are multiples of 16,
    // e.g. 96 rows: one call rather than 64 + 32).
    const int64_t rest = M - m0;
    int64_t piece = std::min(kPackedPieceRows, rest / 16 * 16);
    if (piece == 0)
      for (piece = 8; piece > rest;) piece /= 2;
    const Key key{kPackedF32, bias != nullptr, piece, N, K, ldc, lda};
    Entry& e = entry_for(key);
    if (!e.ok || !run(e, key, piece, A + m0 * lda, P, bias, C + m0 * ldc)) return false;
    m0 += piece;
  }
  return true;
}

#endif

}  // namespace modernbert::kernels::cpu::lowp
