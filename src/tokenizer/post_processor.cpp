// Post-processing of one or two encoded sequences: truncation (HF TruncationStrategy), then
// the post-processor steps (ByteLevel offset trimming, TemplateProcessing special tokens).
#include <algorithm>

#include "modernbert/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace modernbert {

using tok::RawToken;

namespace {

struct SeqTokens {
  std::vector<RawToken> toks;
  std::vector<std::pair<std::uint16_t, std::uint16_t>> ws;
};

// HF TruncationStrategy on token counts; `budget` excludes the special tokens.
void truncate(SeqTokens& a, SeqTokens* b, std::size_t budget, int strategy) {
  auto cut = [](SeqTokens& s, std::size_t n) {
    if (s.toks.size() > n) s.toks.resize(n);
    if (s.ws.size() > n) s.ws.resize(n);
  };
  if (!b) {
    if (strategy == 2) throw Error("truncation: OnlySecond needs a pair of sequences");
    cut(a, budget);
    return;
  }
  std::size_t n1 = a.toks.size(), n2 = b->toks.size();
  if (n1 + n2 <= budget) return;
  if (strategy == 1 || strategy == 2) {
    SeqTokens& t = strategy == 1 ? a : *b;
    std::size_t other = strategy == 1 ? n2 : n1;
    if (other >= budget || t.toks.size() < n1 + n2 - budget)
      throw Error("truncation: the sequence to truncate is too short to respect max_length");
    cut(t, t.toks.size() - (n1 + n2 - budget));
    return;
  }
  bool swap = false;
  if (n1 > n2) {
    swap = true;
    std::swap(n1, n2);
  }
  if (n1 > budget)
    n2 = n1;
  else
    n2 = std::max(n1, budget - n1);
  if (n1 + n2 > budget) {
    n1 = budget / 2;
    n2 = n1 + budget % 2;
  }
  if (swap) std::swap(n1, n2);
  cut(a, n1);
  cut(*b, n2);
}

}  // namespace

Encoding Tokenizer::Impl::encode_full(std::string_view a, const std::string_view* b, const EncodeOptions& o,
                                      tok::WordCache& cache) const {
  SeqTokens sa, sb;
  encode_sequence(a, o.lossy_utf8, cache, sa.toks, has_trim ? &sa.ws : nullptr);
  if (b) encode_sequence(*b, o.lossy_utf8, cache, sb.toks, has_trim ? &sb.ws : nullptr);

  std::size_t max_len = o.max_length ? *o.max_length : file_max_length;
  if (max_len) {
    std::size_t added_n = 0;
    if (o.add_special_tokens) {
      for (const auto& step : post)
        if (step.kind == tok::PostStep::kTemplate) {
          for (const auto& p : b ? step.pair : step.single)
            if (!p.is_sequence) added_n += step.special_ids.at(p.special).size();
        }
    }
    if (max_len < added_n)
      throw Error("truncation: max_length " + std::to_string(max_len) + " is smaller than the " +
                  std::to_string(added_n) + " special tokens to add");
    truncate(sa, b ? &sb : nullptr, max_len - added_n, o.max_length ? 0 : file_trunc_strategy);
  }

  // Post-processing on a list of encodings (one per sequence), HF PostProcessor semantics.
  struct Enc {
    std::vector<std::int32_t> ids;
    std::vector<std::pair<std::size_t, std::size_t>> offs;
    std::vector<std::uint32_t> type_ids;
    std::vector<std::uint8_t> special;
    std::vector<std::int8_t> seq;
    std::vector<std::pair<std::uint16_t, std::uint16_t>> ws;
  };
  auto to_enc = [&](SeqTokens& s, std::int8_t seq_id) {
    Enc e;
    e.ids.reserve(s.toks.size() + 4);
    e.offs.reserve(s.toks.size() + 4);
    for (const auto& t : s.toks) {
      e.ids.push_back(t.id);
      e.offs.emplace_back(t.start, t.end);
    }
    e.type_ids.assign(s.toks.size(), seq_id);
    e.special.assign(s.toks.size(), 0);
    e.seq.assign(s.toks.size(), seq_id);
    e.ws = std::move(s.ws);
    return e;
  };
  std::vector<Enc> encs;
  encs.push_back(to_enc(sa, 0));
  if (b) encs.push_back(to_enc(sb, 1));
  for (const auto& step : post) {
    if (step.kind == tok::PostStep::kByteLevel) {
      if (!step.trim_offsets) continue;
      for (auto& e : encs) {
        for (std::size_t i = 0; i < e.ids.size(); ++i) {
          if (i >= e.ws.size()) break;
          auto [lead, trail] = e.ws[i];
          auto& off = e.offs[i];
          if (lead > 0) {
            bool is_first = i == 0 || off.first == 0;
            if (is_first && step.add_prefix_space && lead == 1) lead = 0;
            off.first = std::min(off.first + lead, off.second);
          }
          if (trail > 0 && off.second >= trail) off.second = std::max(off.second - trail, off.first);
        }
      }
    } else if (o.add_special_tokens) {
      Enc m;
      const auto& tpl = encs.size() > 1 ? step.pair : step.single;
      for (const auto& p : tpl) {
        if (p.is_sequence) {
          if (static_cast<std::size_t>(p.sequence) >= encs.size()) continue;
          const Enc& e = encs[static_cast<std::size_t>(p.sequence)];
          m.ids.insert(m.ids.end(), e.ids.begin(), e.ids.end());
          m.offs.insert(m.offs.end(), e.offs.begin(), e.offs.end());
          m.type_ids.insert(m.type_ids.end(), e.ids.size(), p.type_id);
          m.special.insert(m.special.end(), e.special.begin(), e.special.end());
          m.seq.insert(m.seq.end(), e.seq.begin(), e.seq.end());
          m.ws.insert(m.ws.end(), e.ws.begin(), e.ws.end());
        } else {
          for (std::int32_t id : step.special_ids.at(p.special)) {
            m.ids.push_back(id);
            m.offs.emplace_back(0, 0);
            m.type_ids.push_back(p.type_id);
            m.special.push_back(1);
            m.seq.push_back(-1);
            m.ws.emplace_back(0, 0);
          }
        }
      }
      encs.clear();
      encs.push_back(std::move(m));
    }
  }
  Encoding r;
  for (auto& e : encs) {
    r.ids.insert(r.ids.end(), e.ids.begin(), e.ids.end());
    r.offsets.insert(r.offsets.end(), e.offs.begin(), e.offs.end());
    r.type_ids.insert(r.type_ids.end(), e.type_ids.begin(), e.type_ids.end());
    r.special_tokens_mask.insert(r.special_tokens_mask.end(), e.special.begin(), e.special.end());
    r.sequence_ids.insert(r.sequence_ids.end(), e.seq.begin(), e.seq.end());
  }
  return r;
}

}  // namespace modernbert
