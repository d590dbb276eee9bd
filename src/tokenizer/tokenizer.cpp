// The Tokenizer facade: single, pair and batch encoding (word caches checked out per call or
// per worker), decoding, and vocabulary lookups. The encoding pipeline itself is described in
// pre_tokenizer.cpp.
#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>

#include "core/thread_pool.h"
#include "modernbert/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace modernbert {

Encoding Tokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  auto cache = impl_->take_cache();
  struct Return {
    const Impl* impl;
    std::unique_ptr<tok::WordCache>& c;
    ~Return() { impl->give_cache(std::move(c)); }
  } ret{impl_.get(), cache};
  return impl_->encode_full(text, nullptr, opts, *cache);
}

Encoding Tokenizer::encode_pair(std::string_view first, std::string_view second,
                                const EncodeOptions& opts) const {
  auto cache = impl_->take_cache();
  struct Return {
    const Impl* impl;
    std::unique_ptr<tok::WordCache>& c;
    ~Return() { impl->give_cache(std::move(c)); }
  } ret{impl_.get(), cache};
  return impl_->encode_full(first, &second, opts, *cache);
}

namespace {

template <typename Fn>
void for_each_text(std::size_t n, unsigned num_threads, Fn fn) {
  unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  unsigned nt = num_threads ? num_threads : hw;
  nt = static_cast<unsigned>(std::min<std::size_t>(nt, n));
  std::atomic<std::size_t> next{0};
  std::vector<std::exception_ptr> errors(nt);
  std::vector<std::size_t> error_index(nt, 0);
  auto worker = [&](unsigned w) {
    try {
      fn([&](auto&& body) {
        while (true) {
          std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
          if (i >= n) break;
          error_index[w] = i;
          body(i);
        }
      });
    } catch (...) {
      errors[w] = std::current_exception();
      next.store(n);
    }
  };
  if (nt <= 1) {
    worker(0);
  } else {
    // nt workers claiming texts from one counter, run on the shared pool.
    default_pool().parallel_for(nt, 1, [&](int64_t w0, int64_t w1, int) {
      for (int64_t w = w0; w < w1; ++w) worker(static_cast<unsigned>(w));
    });
  }
  // Report the failing text with the smallest index.
  std::size_t best = n;
  std::exception_ptr err;
  for (unsigned w = 0; w < nt; ++w)
    if (errors[w] && error_index[w] < best) {
      best = error_index[w];
      err = errors[w];
    }
  if (err) {
    try {
      std::rethrow_exception(err);
    } catch (const std::exception& e) {
      throw BatchItemError(best, e.what());
    }
  }
}

}  // namespace

std::vector<Encoding> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                              const EncodeOptions& opts, unsigned num_threads) const {
  std::vector<Encoding> out(texts.size());
  for_each_text(texts.size(), num_threads, [&](auto loop) {
    auto cache = impl_->take_cache();
    struct Return {
      const Impl* impl;
      std::unique_ptr<tok::WordCache>& c;
      ~Return() { impl->give_cache(std::move(c)); }
    } ret{impl_.get(), cache};
    loop([&](std::size_t i) { out[i] = impl_->encode_full(texts[i], nullptr, opts, *cache); });
  });
  return out;
}

std::vector<Encoding> Tokenizer::encode_batch_pairs(
    const std::vector<std::pair<std::string, std::string>>& pairs, const EncodeOptions& opts,
    unsigned num_threads) const {
  std::vector<Encoding> out(pairs.size());
  for_each_text(pairs.size(), num_threads, [&](auto loop) {
    auto cache = impl_->take_cache();
    struct Return {
      const Impl* impl;
      std::unique_ptr<tok::WordCache>& c;
      ~Return() { impl->give_cache(std::move(c)); }
    } ret{impl_.get(), cache};
    loop([&](std::size_t i) {
      std::string_view second = pairs[i].second;
      out[i] = impl_->encode_full(pairs[i].first, &second, opts, *cache);
    });
  });
  return out;
}

std::string Tokenizer::decode(std::span<const std::int32_t> ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::string bytes;
  bool first = true;
  for (std::int32_t id : ids) {
    const std::string* tokstr = nullptr;
    bool special = false;
    if (auto it = t.added_by_id.find(id); it != t.added_by_id.end()) {
      tokstr = &t.added[it->second].content;
      special = t.added[it->second].special;
    } else if (id >= 0 && static_cast<std::size_t>(id) < t.id_to_vocab.size() && t.has_vocab[id]) {
      tokstr = &t.id_to_vocab[id];
      // A vocabulary token whose content is also a special added token counts as special.
      if (auto ai = t.added_by_content.find(*tokstr); ai != t.added_by_content.end())
        special = t.added[t.added_by_id.at(ai->second)].special;
    }
    if (!tokstr || (skip_special_tokens && special)) continue;
    if (!t.byte_level_decoder) {
      if (!first) bytes += ' ';
      bytes += *tokstr;
      first = false;
      continue;
    }
    // ByteLevel decoder: a token whose every character is in the byte alphabet becomes those
    // bytes, any other token is kept as its UTF-8.
    std::string tb;
    bool all = true;
    const auto* s = reinterpret_cast<const unsigned char*>(tokstr->data());
    for (std::size_t i = 0; i < tokstr->size();) {
      int len;
      char32_t cp = tok::peek(s, i, len);
      int byte = tok::char_to_byte(cp);
      if (byte < 0) {
        all = false;
        break;
      }
      tb += static_cast<char>(byte);
      i += len;
    }
    bytes += all ? tb : *tokstr;
  }
  if (!t.byte_level_decoder) return bytes;
  return tok::utf8_lossy(bytes, nullptr);
}

std::optional<std::int32_t> Tokenizer::token_to_id(std::string_view token) const {
  std::string s(token);
  if (auto it = impl_->added_by_content.find(s); it != impl_->added_by_content.end())
    return it->second;
  if (auto it = impl_->vocab.find(s); it != impl_->vocab.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::id_to_token(std::int32_t id) const {
  if (auto it = impl_->added_by_id.find(id); it != impl_->added_by_id.end())
    return impl_->added[it->second].content;
  if (id >= 0 && static_cast<std::size_t>(id) < impl_->id_to_vocab.size() && impl_->has_vocab[id])
    return impl_->id_to_vocab[id];
  return std::nullopt;
}

bool Tokenizer::is_special_id(std::int32_t id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

std::size_t Tokenizer::vocab_size() const { return impl_->max_id_plus_one; }

std::size_t Tokenizer::num_special_tokens_to_add(bool pair) const {
  std::size_t n = 0;
  for (const auto& step : impl_->post)
    if (step.kind == tok::PostStep::kTemplate)
      for (const auto& p : pair ? step.pair : step.single)
        if (!p.is_sequence) n += step.special_ids.at(p.special).size();
  return n;
}

std::string clean_up_tokenization(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f = from, t = to;
    std::string r;
    size_t pos = 0, hit;
    while ((hit = s.find(f, pos)) != std::string::npos) {
      r.append(s, pos, hit - pos);
      r += t;
      pos = hit + f.size();
    }
    r.append(s, pos, std::string::npos);
    s = std::move(r);
  }
  return s;
}

}  // namespace modernbert
