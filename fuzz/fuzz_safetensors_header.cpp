// libFuzzer driver: the safetensors JSON header, framed as a file with a small data area.
// The body lives in fuzz_entries.h (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return modernbert::fuzz::fuzz_safetensors_header(data, size);
}
