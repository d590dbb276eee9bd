// libFuzzer driver: the eval JSONL readers (examples + labels, corpus, queries, scoring).
// The body lives in fuzz_entries.h (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entries.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return modernbert::fuzz::fuzz_eval_jsonl(data, size);
}
