// libFuzzer driver: the finetune JSONL readers and label-space checks, through finetune().
// The body lives in fuzz_entries.h (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return modernbert::fuzz::fuzz_finetune_jsonl(data, size);
}
