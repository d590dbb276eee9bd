// PyLate ColBERT input treatment: prefix token after [CLS], query/document lengths, query expansion
// and the document skiplist (tasks.h says what is exact and what differs from PyLate).
#include <algorithm>

#include "modernbert/error.h"
#include "modernbert/tasks.h"

namespace modernbert {

ColbertTokenIds colbert_token_ids(const Tokenizer& tok, const ColbertSettings& s) {
  ColbertTokenIds t;
  auto prefix_id = [&](const std::string& p, const char* what) -> int32_t {
    if (p.empty()) return -1;
    auto id = tok.token_to_id(p);
    if (!id)
      throw Error(std::string("PyLate ") + what + " '" + p +
                  "' is not a token of tokenizer.json (PyLate adds it as an added token)");
    return *id;
  };
  t.query_prefix = prefix_id(s.query_prefix, "query_prefix");
  t.document_prefix = prefix_id(s.document_prefix, "document_prefix");
  auto mask = tok.token_to_id("[MASK]");
  // PyLate pads with the tokenizer's mask token; a query can only be expanded when there is one.
  if (!mask && s.do_query_expansion) throw Error("PyLate query expansion needs a [MASK] token in tokenizer.json");
  t.mask = mask ? *mask : -1;
  // PyLate: tokenizer.convert_tokens_to_ids(word) per word; a word that is no token maps to the
  // unknown token there, which never occurs in byte-level BPE output, so it is skipped here.
  for (const auto& w : s.skiplist_words)
    if (auto id = tok.token_to_id(w)) t.skiplist.push_back(*id);
  std::sort(t.skiplist.begin(), t.skiplist.end());
  return t;
}

ColbertInput colbert_input(const Tokenizer& tok, const ColbertSettings& s, const ColbertTokenIds& t,
                           std::string_view text, bool is_query, bool lossy_utf8) {
  const int64_t max_len = is_query ? s.query_length : s.document_length;
  const int32_t prefix = is_query ? t.query_prefix : t.document_prefix;
  // PyLate sets the Transformer's max_seq_length to max_len - 1 when a prefix is inserted, so the
  // tokenizer truncates [CLS] text [SEP] to that (the final [SEP] kept).
  EncodeOptions eo;
  eo.max_length = static_cast<size_t>(prefix >= 0 ? max_len - 1 : max_len);
  eo.lossy_utf8 = lossy_utf8;
  Encoding e = tok.encode(text, eo);
  ColbertInput in;
  in.ids = e.ids;
  if (prefix >= 0) in.ids.insert(in.ids.begin() + (in.ids.empty() ? 0 : 1), prefix);
  const bool expand = is_query && s.do_query_expansion;
  const int64_t pad = expand ? std::max<int64_t>(0, max_len - static_cast<int64_t>(in.ids.size())) : 0;
  if (expand && s.attend_to_expansion_tokens)
    in.ids.insert(in.ids.end(), static_cast<size_t>(pad), t.mask);
  else
    in.expansion_dropped = pad;
  in.keep.assign(in.ids.size(), 1);
  if (!is_query)
    for (size_t i = 0; i < in.ids.size(); ++i)
      if (std::binary_search(t.skiplist.begin(), t.skiplist.end(), in.ids[i])) in.keep[i] = 0;
  return in;
}

}  // namespace modernbert
