// The start-up ISA check (see isa.h). Compiled for baseline x86-64 (CMakeLists sets the flags of
// this file), using only C facilities and cpuid, so it runs safely on any x86-64 CPU.
#include <cpuid.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/isa.h"

namespace modernbert::kernels {

extern const uint64_t kCompiledIsaMask;  // isa_compiled.cpp

namespace {

enum Reg { kEax, kEbx, kEcx, kEdx };
enum State { kNone, kAvxState, kAvx512State, kAmxState };  // OS-enabled register state required

struct IsaBit {
  const char* name;
  unsigned leaf, subleaf;
  Reg reg;
  int bit;
  State state;
};

// Order = bit order of kCompiledIsaMask.
constexpr IsaBit kIsa[] = {
    {"sse4_2", 1, 0, kEcx, 20, kNone},
    {"popcnt", 1, 0, kEcx, 23, kNone},
    {"avx", 1, 0, kEcx, 28, kAvxState},
    {"avx2", 7, 0, kEbx, 5, kAvxState},
    {"fma", 1, 0, kEcx, 12, kAvxState},
    {"f16c", 1, 0, kEcx, 29, kAvxState},
    {"bmi1", 7, 0, kEbx, 3, kNone},
    {"bmi2", 7, 0, kEbx, 8, kNone},
    {"abm", 0x80000001u, 0, kEcx, 5, kNone},  // lzcnt
    {"movbe", 1, 0, kEcx, 22, kNone},
    {"avx512f", 7, 0, kEbx, 16, kAvx512State},
    {"avx512cd", 7, 0, kEbx, 28, kAvx512State},
    {"avx512bw", 7, 0, kEbx, 30, kAvx512State},
    {"avx512dq", 7, 0, kEbx, 17, kAvx512State},
    {"avx512vl", 7, 0, kEbx, 31, kAvx512State},
    {"avx512_vnni", 7, 0, kEcx, 11, kAvx512State},
    {"avx512_bf16", 7, 1, kEax, 5, kAvx512State},
    {"avx512vbmi", 7, 0, kEcx, 1, kAvx512State},
    {"avx512ifma", 7, 0, kEbx, 21, kAvx512State},
    {"avx512_vbmi2", 7, 0, kEcx, 6, kAvx512State},
    {"avx512_bitalg", 7, 0, kEcx, 12, kAvx512State},
    {"avx512_vpopcntdq", 7, 0, kEcx, 14, kAvx512State},
    {"avx512_fp16", 7, 0, kEdx, 23, kAvx512State},
    {"avx_vnni", 7, 1, kEax, 4, kAvxState},
    {"amx_tile", 7, 0, kEdx, 24, kAmxState},
    {"amx_int8", 7, 0, kEdx, 25, kAmxState},
    {"amx_bf16", 7, 0, kEdx, 22, kAmxState},
    {"gfni", 7, 0, kEcx, 8, kNone},
    {"vaes", 7, 0, kEcx, 9, kAvxState},
    {"vpclmulqdq", 7, 0, kEcx, 10, kAvxState},
    {"sha_ni", 7, 0, kEbx, 29, kNone},
    {"adx", 7, 0, kEbx, 19, kNone},
    {"pclmulqdq", 1, 0, kEcx, 1, kNone},
    {"aes", 1, 0, kEcx, 25, kNone},
    {"rdrand", 1, 0, kEcx, 30, kNone},
};
constexpr int kNumIsa = static_cast<int>(sizeof(kIsa) / sizeof(kIsa[0]));
static_assert(kNumIsa <= kMaxIsaRequirements, "raise kMaxIsaRequirements");

bool cpuid_bit(unsigned leaf, unsigned subleaf, Reg reg, int bit) {
  unsigned r[4] = {0, 0, 0, 0};
  const unsigned max_leaf = __get_cpuid_max(leaf & 0x80000000u, nullptr);
  if (max_leaf < leaf) return false;
  __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
  return (r[reg] >> bit) & 1u;
}

uint64_t xcr0() {
  if (!cpuid_bit(1, 0, kEcx, 27)) return 0;  // OSXSAVE: the OS manages extended state
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool state_enabled(State s, uint64_t x) {
  switch (s) {
    case kNone:
      return true;
    case kAvxState:
      return (x & 0x6) == 0x6;
    case kAvx512State:
      return (x & 0xE6) == 0xE6;
    case kAmxState:
      return (x & 0x60006) == 0x60006;
  }
  return false;
}

// Is `name` in the comma-separated list `list`?
bool in_list(const char* list, const char* name) {
  const size_t n = std::strlen(name);
  for (const char* p = list; p && *p;) {
    const char* end = std::strchr(p, ',');
    const size_t len = end ? static_cast<size_t>(end - p) : std::strlen(p);
    if (len == n && std::strncmp(p, name, n) == 0) return true;
    p = end ? end + 1 : nullptr;
  }
  return false;
}

void append(char* buf, size_t cap, size_t* pos, const char* s) {
  if (cap == 0) return;
  while (*s && *pos + 1 < cap) buf[(*pos)++] = *s++;
  buf[*pos] = '\0';
}

// Runs before other static initialisers (priority 101) and before main().
__attribute__((constructor(101))) void check_isa_at_load() { require_compiled_isa(); }

}  // namespace

int isa_requirements(IsaRequirement* out) {
  const uint64_t x = xcr0();
  const char* hide = std::getenv("MODERNBERT_TEST_HIDE_CPU_FEATURES");
  for (int k = 0; k < kNumIsa; ++k) {
    const IsaBit& b = kIsa[k];
    out[k].name = b.name;
    out[k].compiled = (kCompiledIsaMask >> k) & 1u;
    out[k].present = cpuid_bit(b.leaf, b.subleaf, b.reg, b.bit) && state_enabled(b.state, x) && !in_list(hide, b.name);
  }
  return kNumIsa;
}

int format_missing_isa(const IsaRequirement* reqs, int n, char* buf, size_t cap) {
  size_t pos = 0;
  if (cap) buf[0] = '\0';
  int missing = 0;
  for (int k = 0; k < n; ++k) {
    if (!reqs[k].compiled || reqs[k].present) continue;
    append(buf, cap, &pos,
           missing == 0 ? "modernbert: this CPU lacks instructions this binary was compiled for: " : ", ");
    append(buf, cap, &pos, reqs[k].name);
    ++missing;
  }
  if (missing)
    append(buf, cap, &pos,
           ".\nThe build used -march=native on another machine. Rebuild here (scripts/build.sh), or build a "
           "portable binary for any x86-64-v3 CPU (AVX2/FMA/F16C) with -DMODERNBERT_NATIVE=OFF (see README).\n");
  return missing;
}

void require_compiled_isa() {
  IsaRequirement reqs[kMaxIsaRequirements];
  const int n = isa_requirements(reqs);
  char msg[1024];
  if (format_missing_isa(reqs, n, msg, sizeof msg) == 0) return;
  const ssize_t w = write(2, msg, std::strlen(msg));
  (void)w;
  _exit(1);
}

void compiled_isa_names(char* buf, size_t cap) {
  size_t pos = 0;
  if (cap) buf[0] = '\0';
  for (int k = 0; k < kNumIsa; ++k)
    if ((kCompiledIsaMask >> k) & 1u) {
      if (pos) append(buf, cap, &pos, " ");
      append(buf, cap, &pos, kIsa[k].name);
    }
}

}  // namespace modernbert::kernels
