// Byte-level BPE training with ModernBERT's pre-tokenization, in the manner of HF's BpeTrainer:
// count distinct pre-tokens (words) once, then merge the most frequent adjacent pair repeatedly,
// updating pair counts incrementally through a pair -> words index, with a lazy max-heap.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <queue>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/thread_pool.h"
#include "modernbert/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace modernbert {

using nlohmann::json;

namespace {

constexpr int kSpaceRunMax = 24, kSpaceRunMin = 2;
const char* const kBertSpecials[] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"};

json added_token(std::int64_t id, const std::string& content, bool special, bool lstrip) {
  return json{{"id", id},        {"content", content}, {"single_word", false}, {"lstrip", lstrip},
              {"rstrip", false}, {"normalized", !special}, {"special", special}};
}

json template_post() {
  auto sp = [](const char* id) { return json{{"SpecialToken", {{"id", id}, {"type_id", 0}}}}; };
  auto seq = [](const char* id) { return json{{"Sequence", {{"id", id}, {"type_id", 0}}}}; };
  return json{{"type", "TemplateProcessing"},
              {"single", json::array({sp("[CLS]"), seq("A"), sp("[SEP]")})},
              {"pair", json::array({sp("[CLS]"), seq("A"), sp("[SEP]"), seq("B"), sp("[SEP]")})},
              {"special_tokens", json::object()}};
}

std::string byte_level(std::string_view raw) {
  std::string s;
  for (unsigned char b : raw) tok::utf8_append(s, tok::byte_to_char(b));
  return s;
}

// A tokenizer.json with the ModernBERT pipeline, the given BPE vocabulary/merges and the
// layout's added tokens. `vocab` holds model tokens in id order (ids 0..n-1).
std::string build_json(const std::vector<std::string>& vocab,
                       const std::vector<std::pair<std::int32_t, std::int32_t>>& merges,
                       std::size_t final_size) {
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  json added = json::array();
  auto n = static_cast<std::int64_t>(vocab.size());
  // In the model vocabulary: <|endoftext|> (0), <|padding|> (1), space runs (last 23 entries).
  added.push_back(added_token(0, vocab[0], true, false));
  added.push_back(added_token(1, vocab[1], true, false));
  for (int k = kSpaceRunMax; k >= kSpaceRunMin; --k)
    added.push_back(added_token(n - (k - kSpaceRunMin) - 1, std::string(static_cast<std::size_t>(k), ' '), false, false));
  std::int64_t next = n;
  json post = template_post();
  for (const char* s : kBertSpecials) {
    bool mask = std::string(s) == "[MASK]";
    added.push_back(added_token(next, s, true, mask));
    post["special_tokens"][s] = {{"id", s}, {"ids", {next}}, {"tokens", {s}}};
    ++next;
  }
  for (std::size_t k = 0; static_cast<std::size_t>(next) < final_size; ++k, ++next)
    added.push_back(added_token(next, "[unused" + std::to_string(k) + "]", false, false));
  j["added_tokens"] = added;
  j["normalizer"] = {{"type", "NFC"}};
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["post_processor"] = post;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  json v = json::object();
  for (std::size_t i = 0; i < vocab.size(); ++i) v[vocab[i]] = i;
  json m = json::array();
  for (auto [a, b] : merges) m.push_back(json::array({vocab[a], vocab[b]}));
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                {"vocab", v}, {"merges", m}};
  return j.dump(1, ' ', false, json::error_handler_t::strict) + "\n";
}

using CountMap = std::unordered_map<std::string, std::uint64_t, tok::WordCache::Hash, std::equal_to<>>;

// Step 1: the distinct pre-tokens (words) of `texts` under the pipeline of `pre`, with their
// counts. Throws the first failing text's error.
CountMap count_words(const Tokenizer::Impl& pre, const std::vector<std::string>& texts, unsigned num_threads) {
  unsigned nt = num_threads ? num_threads : std::max(1u, std::thread::hardware_concurrency());
  nt = static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(nt, texts.size())));
  std::vector<CountMap> partial(nt);
  std::vector<std::exception_ptr> errs(nt);
  // nt strided shares of the texts, run on the shared pool (the counts do not depend on which
  // thread runs a share).
  default_pool().parallel_for(nt, 1, [&](int64_t w0, int64_t w1, int) {
    for (int64_t wi = w0; wi < w1; ++wi) {
      const unsigned w = static_cast<unsigned>(wi);
      try {
        tok::WordCache cache;
        std::vector<tok::RawToken> dummy;
        CountMap& m = partial[w];
        std::function<void(std::string_view)> sink = [&](std::string_view word) {
          auto it = m.find(word);
          if (it == m.end())
            m.emplace(std::string(word), 1);
          else
            ++it->second;
        };
        for (std::size_t i = w; i < texts.size(); i += nt) {
          try {
            pre.encode_sequence(texts[i], true, cache, dummy, nullptr, &sink);
          } catch (const Error& e) {
            throw Error("train-tokenizer: text " + std::to_string(i) + ": " + e.what());
          }
        }
      } catch (...) {
        errs[w] = std::current_exception();
      }
    }
  });
  for (auto& e : errs)
    if (e) std::rethrow_exception(e);
  CountMap counts = std::move(partial[0]);
  for (unsigned w = 1; w < nt; ++w)
    for (auto& [k, v] : partial[w]) counts[k] += v;
  return counts;
}

// Step 2: words as symbol sequences (symbol ids are model ids: byte b is 2 + b) and their counts.
struct Words {
  std::vector<std::vector<std::int32_t>> syms;
  std::vector<std::int64_t> count;
};

Words to_symbols(CountMap& counts) {
  Words out;
  std::vector<std::vector<std::int32_t>>& words = out.syms;
  std::vector<std::int64_t>& wcount = out.count;
  words.reserve(counts.size());
  for (auto& [w, c] : counts) {
    std::vector<std::int32_t> syms;
    syms.reserve(w.size());
    for (unsigned char b : w) syms.push_back(2 + b);
    words.push_back(std::move(syms));
    wcount.push_back(static_cast<std::int64_t>(c));
  }
  counts.clear();
  return out;
}

std::uint64_t key(std::int32_t a, std::int32_t b) { return tok::MergeMap::make_key(a, b); }

struct Entry {
  std::int64_t count;
  std::uint64_t pair;
  bool operator<(const Entry& o) const {
    return count != o.count ? count < o.count : pair > o.pair;  // max count, then smallest pair
  }
};

// Step 3 state: pair counts over all words, pair -> words that may hold it (a superset: entries
// go stale as words change and are re-checked on use), and a lazy max-heap of pair counts.
struct PairStats {
  std::unordered_map<std::uint64_t, std::int64_t> pair_count;
  std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> where;
  std::priority_queue<Entry> heap;
  std::vector<std::uint32_t> seen;  // per word: the merge stamp that last visited it
  std::uint32_t stamp = 0;
  std::unordered_set<std::uint64_t> touched;
};

// Initial pair counts of `words`.
void init_pair_stats(const Words& wd, PairStats& st) {
  const auto& words = wd.syms;
  const auto& wcount = wd.count;
  auto& pair_count = st.pair_count;
  auto& where = st.where;
  for (std::uint32_t w = 0; w < words.size(); ++w) {
    const auto& s = words[w];
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      std::uint64_t k = key(s[i], s[i + 1]);
      pair_count[k] += wcount[w];
      auto& v = where[k];
      if (v.empty() || v.back() != w) v.push_back(w);
    }
  }
  for (auto& [k, c] : pair_count) st.heap.push({c, k});
  st.seen.assign(words.size(), 0);
}

// Replaces every (a, b) in the words that hold it by c and updates the pair statistics.
void apply_merge(std::int32_t a, std::int32_t b, std::int32_t c, std::uint64_t pair, Words& wd, PairStats& st) {
  auto& words = wd.syms;
  const auto& wcount = wd.count;
  auto& pair_count = st.pair_count;
  auto& where = st.where;
  auto& seen = st.seen;
  auto& stamp = st.stamp;
  auto& touched = st.touched;
  auto& heap = st.heap;
  ++stamp;
  touched.clear();
  std::vector<std::uint32_t> ws = std::move(where[pair]);
  where.erase(pair);
  for (std::uint32_t w : ws) {
    if (seen[w] == stamp) continue;
    seen[w] = stamp;
    auto& s = words[w];
    bool has = false;
    for (std::size_t i = 0; i + 1 < s.size(); ++i)
      if (s[i] == a && s[i + 1] == b) {
        has = true;
        break;
      }
    if (!has) continue;
    std::int64_t wc = wcount[w];
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      std::uint64_t k = key(s[i], s[i + 1]);
      pair_count[k] -= wc;
      touched.insert(k);
    }
    std::vector<std::int32_t> ns;
    ns.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
      if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
        ns.push_back(c);
        i += 2;
      } else {
        ns.push_back(s[i++]);
      }
    }
    s = std::move(ns);
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      std::uint64_t k = key(s[i], s[i + 1]);
      pair_count[k] += wc;
      touched.insert(k);
      if (s[i] == c || s[i + 1] == c) {
        auto& v = where[k];
        if (v.empty() || v.back() != w) v.push_back(w);
      }
    }
  }
  pair_count.erase(pair);
  for (std::uint64_t k : touched) {
    auto it = pair_count.find(k);
    if (it == pair_count.end()) continue;
    if (it->second <= 0) {
      pair_count.erase(it);
      continue;
    }
    // Pairs that gained count need a fresh heap entry; lost counts are fixed lazily.
    if ((static_cast<std::int32_t>(k >> 32) == c || static_cast<std::int32_t>(k & 0xffffffffu) == c))
      heap.push({it->second, k});
  }
}

// Step 3: the merge loop. Merges the most frequent pair (ties: smallest pair key) until
// `max_bpe` tokens are learned or no pair reaches min_frequency; extends `vocab` and
// `vocab_index` with the learned tokens and returns the merges in order.
std::vector<std::pair<std::int32_t, std::int32_t>> learn_merges(
    Words& wd, std::vector<std::string>& vocab, std::unordered_map<std::string, std::int32_t>& vocab_index,
    const std::unordered_set<std::string>& reserved, std::size_t max_bpe, const BpeTrainerOptions& opts) {
  PairStats st;
  init_pair_stats(wd, st);
  auto& pair_count = st.pair_count;
  auto& heap = st.heap;
  std::vector<std::pair<std::int32_t, std::int32_t>> merges;
  std::size_t learned = 0;
  while (learned < max_bpe && !heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.pair);
    std::int64_t cur = pc == pair_count.end() ? 0 : pc->second;
    if (cur != top.count) {
      if (cur > 0) heap.push({cur, top.pair});
      continue;
    }
    if (cur < static_cast<std::int64_t>(std::max<std::size_t>(opts.min_frequency, 1))) break;
    auto a = static_cast<std::int32_t>(top.pair >> 32), b = static_cast<std::int32_t>(top.pair & 0xffffffffu);
    std::string merged = vocab[a] + vocab[b];
    if (reserved.count(merged)) {  // would collide with an added token: never merge this pair
      pair_count.erase(top.pair);
      continue;
    }
    std::int32_t c;
    if (auto it = vocab_index.find(merged); it != vocab_index.end()) {
      c = it->second;  // same string reached by another path: reuse the id, like HF
    } else {
      c = static_cast<std::int32_t>(vocab.size());
      vocab.push_back(merged);
      vocab_index.emplace(merged, c);
      ++learned;
    }
    merges.emplace_back(a, b);
    apply_merge(a, b, c, top.pair, wd, st);
    if (opts.verbose && merges.size() % 1000 == 0)
      std::fprintf(stderr, "train-tokenizer: %zu merges, last count %lld\n", merges.size(),
                   static_cast<long long>(cur));
  }
  return merges;
}

}  // namespace

std::string train_bpe_tokenizer(const std::vector<std::string>& texts, const BpeTrainerOptions& opts,
                                BpeTrainerStats* stats) {
  using Clock = std::chrono::steady_clock;
  // Model vocabulary: 2 specials, 256 bytes, learned tokens, 23 space runs = opts.vocab_size;
  // then 5 BERT specials and [unusedK] up to the next multiple of 64.
  const std::size_t fixed = 2 + 256 + (kSpaceRunMax - kSpaceRunMin + 1);
  if (opts.vocab_size < fixed + 1)
    throw Error("train-tokenizer: vocab size " + std::to_string(opts.vocab_size) + " is below the minimum " +
                std::to_string(fixed + 1));
  if (opts.vocab_size > (1u << 24)) throw Error("train-tokenizer: vocab size too large");
  const std::size_t max_bpe = opts.vocab_size - fixed;  // learned tokens we may add
  auto padded = [](std::size_t model_size) { return (model_size + 5 + 63) / 64 * 64; };
  const std::size_t final_size = padded(opts.vocab_size);

  // 1. Pre-tokenize with the target pipeline (NFC, space-run and special tokens cut out, GPT-2
  //    regex): a tokenizer with only the byte alphabet and the layout's added tokens.
  auto t0 = Clock::now();
  std::vector<std::string> base_vocab = {"<|endoftext|>", "<|padding|>"};
  for (int b = 0; b < 256; ++b) base_vocab.push_back(byte_level(std::string(1, static_cast<char>(b))));
  for (int k = kSpaceRunMax; k >= kSpaceRunMin; --k)
    base_vocab.push_back(std::string(static_cast<std::size_t>(k), ' '));
  Tokenizer pre = Tokenizer::from_json_string(build_json(base_vocab, {}, final_size), "<trainer>");

  CountMap counts = count_words(*pre.impl_, texts, opts.num_threads);

  // 2. Words as symbol sequences. Symbol ids are indices into `vocab` (model ids).
  std::vector<std::string> vocab(base_vocab.begin(), base_vocab.begin() + 258);  // specials + bytes
  std::unordered_map<std::string, std::int32_t> vocab_index;
  for (std::size_t i = 0; i < vocab.size(); ++i) vocab_index[vocab[i]] = static_cast<std::int32_t>(i);
  std::unordered_set<std::string> reserved = {"<|endoftext|>", "<|padding|>"};
  for (const char* s : kBertSpecials) reserved.insert(s);
  for (int k = kSpaceRunMin; k <= kSpaceRunMax; ++k) reserved.insert(std::string(static_cast<std::size_t>(k), ' '));
  Words words = to_symbols(counts);
  auto t1 = Clock::now();

  // 3. Pair statistics and the merge loop.
  std::vector<std::pair<std::int32_t, std::int32_t>> merges =
      learn_merges(words, vocab, vocab_index, reserved, max_bpe, opts);
  auto t2 = Clock::now();

  // 4. Final layout: model vocab = specials, bytes, learned tokens, space runs.
  for (int k = kSpaceRunMax; k >= kSpaceRunMin; --k) vocab.push_back(std::string(static_cast<std::size_t>(k), ' '));
  std::string out = build_json(vocab, merges, padded(vocab.size()));
  if (stats) {
    stats->num_words = words.syms.size();
    stats->num_merges = merges.size();
    stats->vocab_size = padded(vocab.size());
    stats->count_seconds = std::chrono::duration<double>(t1 - t0).count();
    stats->merge_seconds = std::chrono::duration<double>(t2 - t1).count();
  }
  return out;
}

}  // namespace modernbert
