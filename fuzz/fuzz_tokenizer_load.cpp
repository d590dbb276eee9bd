// libFuzzer target: tokenizer.json loader. Any input must either load or throw modernbert::Error
// (never crash, hang or leak); a loaded tokenizer must then encode and decode without crashing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "modernbert/error.h"
#include "modernbert/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    modernbert::Tokenizer tk = modernbert::Tokenizer::from_json_string(json, "fuzz");
    modernbert::EncodeOptions o;
    o.lossy_utf8 = true;
    for (std::string_view text : {std::string_view("Hello  world [MASK] caf\xC3\xA9 e\xCC\x81 \xF0\x9F\x98\x80!"),
                                  json.substr(0, 256)}) {
      try {
        modernbert::Encoding e = tk.encode(text, o);
        for (auto& off : e.offsets)
          if (off.first > off.second || off.second > text.size()) __builtin_trap();
        (void)tk.decode(e.ids, true);
        (void)tk.encode_pair(text, text, o);
      } catch (const modernbert::Error&) {
      }
    }
  } catch (const modernbert::Error&) {
  }
  return 0;
}
