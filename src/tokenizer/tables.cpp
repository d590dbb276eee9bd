// Tokenizer data structures: the BPE merge map, the added-token pattern trie, the per-thread
// word cache and the pool the encode calls check caches out of.
#include "core/hash.h"
#include "tokenizer/tokenizer_impl.h"

namespace modernbert {
namespace tok {

void MergeMap::reserve(std::size_t n) {
  std::size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap > keys_.size()) rehash(cap);
}

void MergeMap::rehash(std::size_t cap) {
  std::vector<std::uint64_t> old_keys = std::move(keys_);
  std::vector<Value> old_vals = std::move(vals_);
  keys_.assign(cap, kEmpty);
  vals_.assign(cap, Value{0, 0});
  mask_ = cap - 1;
  size_ = 0;
  for (std::size_t i = 0; i < old_keys.size(); ++i)
    if (old_keys[i] != kEmpty) insert_or_assign(old_keys[i], old_vals[i]);
}

void MergeMap::insert_or_assign(std::uint64_t key, Value v) {
  if (keys_.empty() || (size_ + 1) * 2 > keys_.size()) rehash(keys_.empty() ? 16 : keys_.size() * 2);
  std::size_t i = hash(key) & mask_;
  while (keys_[i] != kEmpty && keys_[i] != key) i = (i + 1) & mask_;
  if (keys_[i] == kEmpty) {
    keys_[i] = key;
    ++size_;
  }
  vals_[i] = v;
}

void PatternSet::add(std::string_view p, int value) {
  if (p.empty()) return;
  first_[static_cast<unsigned char>(p[0])] = true;
  int node = 0;
  for (unsigned char ch : p) {
    std::uint64_t key = (static_cast<std::uint64_t>(node) << 8) | ch;
    auto it = edges_.find(key);
    if (it == edges_.end()) {
      nodes_.push_back(Node{});
      it = edges_.emplace(key, static_cast<int>(nodes_.size() - 1)).first;
    }
    node = it->second;
  }
  if (nodes_[node].value < 0) nodes_[node].value = value;  // first added wins, like aho-corasick
  dense_.clear();
}

void PatternSet::finalize() {
  dense_.clear();
  if (nodes_.size() <= 4096) {
    dense_.assign(nodes_.size() * 256, -1);
    for (const auto& [k, v] : edges_) dense_[static_cast<std::size_t>(k >> 8) * 256 + (k & 0xff)] = v;
  }
}

std::size_t PatternSet::longest_at(std::string_view s, std::size_t i, int& value) const {
  int node = 0;
  std::size_t best = 0;
  for (std::size_t j = i; j < s.size(); ++j) {
    node = child(node, static_cast<unsigned char>(s[j]));
    if (node < 0) break;
    if (nodes_[node].value >= 0) {
      best = j + 1 - i;
      value = nodes_[node].value;
    }
  }
  return best;
}

std::uint64_t WordCache::hash(std::string_view s) noexcept {
  return fnv_words64(s);  // FNV-style mixing over 8-byte words: pre-tokens are short
}

void WordCache::grow() {
  std::size_t cap = slots_.empty() ? 4096 : slots_.size() * 2;
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (const Slot& sl : old) {
    if (sl.key_len == kEmpty) continue;
    std::size_t i = sl.hash & mask_;
    while (slots_[i].key_len != kEmpty) i = (i + 1) & mask_;
    slots_[i] = sl;
  }
}

void WordCache::insert(std::string_view word, std::uint64_t h, const std::vector<Tok>& toks) {
  if ((size_ + 1) * 2 > slots_.size()) grow();
  std::size_t i = h & mask_;
  while (slots_[i].key_len != kEmpty) i = (i + 1) & mask_;
  Slot& sl = slots_[i];
  sl.hash = h;
  sl.key_off = static_cast<std::uint32_t>(keys_.size());
  sl.key_len = static_cast<std::uint32_t>(word.size());
  sl.val_off = static_cast<std::uint32_t>(vals_.size());
  sl.val_len = static_cast<std::uint32_t>(toks.size());
  keys_.append(word);
  vals_.insert(vals_.end(), toks.begin(), toks.end());
  ++size_;
}

}  // namespace tok

std::unique_ptr<tok::WordCache> Tokenizer::Impl::take_cache() const {
  std::lock_guard<std::mutex> lk(cache_mu);
  if (cache_pool.empty()) return std::make_unique<tok::WordCache>();
  auto c = std::move(cache_pool.back());
  cache_pool.pop_back();
  return c;
}

void Tokenizer::Impl::give_cache(std::unique_ptr<tok::WordCache> c) const {
  if (c->bytes() > (64u << 20)) c->clear();  // bound memory; the hot words come back fast
  std::lock_guard<std::mutex> lk(cache_mu);
  cache_pool.push_back(std::move(c));
}

}  // namespace modernbert
