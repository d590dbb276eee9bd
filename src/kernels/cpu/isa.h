// Start-up check that this CPU has the instruction-set extensions the binary was compiled for.
//
// The library is built with -march=native by default (MODERNBERT_NATIVE), so a binary built on an
// AVX-512 machine dies with SIGILL on an AVX2-only one. isa_check.cpp is compiled for baseline
// x86-64 and runs from a high-priority static constructor, before any other initialiser or main():
// when something is missing it prints which extensions and how to build a portable binary, and
// exits with status 1. This header is plain C on purpose: the check's translation unit must not
// instantiate inline C++ library code that the linker could merge with an AVX-compiled copy.
#pragma once

#include <cstddef>
#include <cstdint>

namespace modernbert::kernels {

struct IsaRequirement {
  const char* name;  // as in /proc/cpuinfo flags, e.g. "avx2", "avx512bw", "amx_tile"
  bool compiled;     // the binary was compiled to use it
  bool present;      // this CPU (and OS, for register state) supports it
};

// Every extension the check knows, with both facts. `out` holds at least kMaxIsaRequirements.
constexpr int kMaxIsaRequirements = 40;
int isa_requirements(IsaRequirement* out);

// Writes the error message for the compiled-but-absent entries of reqs[0..n) into buf (always
// NUL-terminated) and returns the number of missing extensions (0: nothing written but "").
int format_missing_isa(const IsaRequirement* reqs, int n, char* buf, size_t cap);

// Runs the check now (it also runs by itself at load): prints the message and _exit(1)s when the
// CPU lacks something. Test hook: $MODERNBERT_TEST_HIDE_CPU_FEATURES (comma list) marks those
// extensions absent.
void require_compiled_isa();

// Space-separated names of the extensions the binary was compiled for (for `info`/bench reports).
void compiled_isa_names(char* buf, size_t cap);

}  // namespace modernbert::kernels
