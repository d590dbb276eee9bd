// Non-cryptographic hashes (identities, cache keys, seeds). FNV-1a 64-bit is the one byte-string
// hash of the project; results are stored (run ids, content hashes), so these are frozen.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace modernbert {

inline constexpr uint64_t kFnv64Offset = 1469598103934665603ull;  // 0xcbf29ce484222325
inline constexpr uint64_t kFnv64Prime = 1099511628211ull;         // 0x100000001b3

// FNV-1a over bytes, continuing from h (pass kFnv64Offset to start; chain calls to hash a stream).
inline uint64_t fnv1a64(const void* data, size_t n, uint64_t h = kFnv64Offset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * kFnv64Prime;
  return h;
}
inline uint64_t fnv1a64(std::string_view s, uint64_t h = kFnv64Offset) { return fnv1a64(s.data(), s.size(), h); }

// A fast FNV-style hash over 8-byte words (short strings such as pre-tokens): one multiply per
// word instead of per byte, then a final mix. Not FNV-1a (the tokenizer word cache).
inline uint64_t fnv_words64(std::string_view s) noexcept {
  uint64_t h = kFnv64Offset ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * kFnv64Prime;
    h ^= h >> 29;
  }
  if (i < s.size()) {
    uint64_t w = 0;
    std::memcpy(&w, s.data() + i, s.size() - i);
    h = (h ^ w) * kFnv64Prime;
  }
  h ^= h >> 32;
  h *= 0x9E3779B97F4A7C15ull;
  return h ^ (h >> 29);
}

}  // namespace modernbert
