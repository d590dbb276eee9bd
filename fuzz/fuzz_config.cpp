// libFuzzer driver: config.json through ModelConfig::from_file, validate and a to_json round trip.
// The body lives in fuzz_entries.h (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return modernbert::fuzz::fuzz_config(data, size);
}
