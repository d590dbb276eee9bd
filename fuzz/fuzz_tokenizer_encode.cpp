// libFuzzer driver: encode / decode of arbitrary bytes with the real ModernBERT tokenizer (path in
// $MB_FUZZ_TOKENIZER, or $MB_SHARED_DATA/modernbert-tokenizer/tokenizer.json).
// The body lives in fuzz_entries.h (shared with tests/test_fuzz_regressions.cpp).
#include "fuzz_entries.h"

// Load once before fuzzing starts: loading the 3.5 MB file under ASan takes longer than
// libFuzzer's per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)modernbert::fuzz::fuzz_encode_tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return modernbert::fuzz::fuzz_tokenizer_encode(modernbert::fuzz::fuzz_encode_tokenizer(), data, size);
}
