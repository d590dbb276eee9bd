// Text -> token ids -> token-budget batches (batching.h).
#include "modernbert/batching.h"

#include <utility>

#include "modernbert/error.h"

namespace modernbert {

std::vector<std::vector<int32_t>> inputs_to_ids(const Tokenizer* tok, const std::vector<SequenceInput>& inputs,
                                                const SequenceOptions& o, std::vector<Encoding>* encodings) {
  std::vector<std::vector<int32_t>> out(inputs.size());
  // All single texts in one encode_batch call and all pairs in another (every core); idx maps a
  // position in the call back to the input.
  std::vector<std::string> singles;
  std::vector<std::pair<std::string, std::string>> pairs;
  std::vector<size_t> single_idx, pair_idx;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const SequenceInput& in = inputs[i];
    if (in.has_ids) continue;
    if (!tok) throw BatchItemError(i, "no tokenizer");
    if (in.has_pair) {
      pairs.emplace_back(o.prefix + in.text, in.text_pair);
      pair_idx.push_back(i);
    } else {
      singles.push_back(o.prefix + in.text);
      single_idx.push_back(i);
    }
  }
  EncodeOptions eo;
  if (o.truncate_to > 0) eo.max_length = static_cast<size_t>(o.truncate_to);
  eo.lossy_utf8 = o.lossy_utf8;
  if (encodings) encodings->assign(inputs.size(), Encoding{});
  auto encode = [&](auto&& call, const std::vector<size_t>& idx) {
    std::vector<Encoding> encs;
    try {
      encs = call();
    } catch (const BatchItemError& e) {
      // The index is into this call's texts: name the input instead.
      if (e.index() < idx.size()) throw SequenceInputError(SequenceIssue::kTokenizer, idx[e.index()], e.detail());
      throw;
    }
    for (size_t k = 0; k < idx.size(); ++k) {
      out[idx[k]] = encs[k].ids;
      if (encodings) (*encodings)[idx[k]] = std::move(encs[k]);
    }
  };
  if (!singles.empty()) encode([&] { return tok->encode_batch(singles, eo, o.tokenizer_threads); }, single_idx);
  if (!pairs.empty()) encode([&] { return tok->encode_batch_pairs(pairs, eo, o.tokenizer_threads); }, pair_idx);

  for (size_t i = 0; i < inputs.size(); ++i) {
    const SequenceInput& in = inputs[i];
    if (in.has_ids) {
      out[i] = in.ids;
      if (o.vocab_size > 0)
        for (int32_t id : out[i])
          if (id < 0 || id >= o.vocab_size)
            throw SequenceInputError(SequenceIssue::kIdOutOfRange, i,
                                     "field input_ids: id " + std::to_string(id) + " outside the vocabulary [0, " +
                                         std::to_string(o.vocab_size) + ")");
      if (o.truncate_to > 0 && static_cast<int64_t>(out[i].size()) > o.truncate_to)
        out[i].resize(static_cast<size_t>(o.truncate_to));
    }
    if (o.max_position > 0 && static_cast<int64_t>(out[i].size()) > o.max_position)
      throw SequenceInputError(SequenceIssue::kTooLong, i,
                               std::to_string(out[i].size()) + " tokens exceed max_position_embeddings " +
                                   std::to_string(o.max_position) +
                                   (o.too_long_hint.empty() ? "" : " (" + o.too_long_hint + ")"));
    if (out[i].empty()) throw SequenceInputError(SequenceIssue::kEmpty, i, "no tokens");
  }
  return out;
}

size_t batch_end(const std::vector<std::vector<int32_t>>& seqs, size_t first, int64_t max_batch_tokens) {
  size_t end = first;
  int64_t tokens = 0;
  while (end < seqs.size()) {
    const auto n = static_cast<int64_t>(seqs[end].size());
    if (end > first && tokens + n > max_batch_tokens) break;
    tokens += n;
    ++end;
  }
  return end;
}

namespace {
void check_budget(int64_t max_batch_tokens) {
  if (max_batch_tokens <= 0) throw Error("--max-batch-tokens must be positive");
}

Batch build_batch(const std::vector<std::vector<int32_t>>& seqs, size_t first, size_t end) {
  Batch b;
  for (size_t i = first; i < end; ++i) b.add(seqs[i]);
  return b;
}
}  // namespace

std::vector<InputBatch> make_batches(const std::vector<std::vector<int32_t>>& seqs, int64_t max_batch_tokens) {
  check_budget(max_batch_tokens);
  std::vector<InputBatch> out;
  for (size_t i = 0; i < seqs.size();) {
    const size_t end = batch_end(seqs, i, max_batch_tokens);
    out.push_back({build_batch(seqs, i, end), i});
    i = end;
  }
  return out;
}

void for_each_batch(Encoder& enc, const std::vector<std::vector<int32_t>>& seqs, int64_t max_batch_tokens,
                    const std::function<void(const Batch&, size_t, const std::vector<float>&)>& fn) {
  check_budget(max_batch_tokens);
  std::vector<float> hidden;
  for (size_t i = 0; i < seqs.size();) {
    const size_t end = batch_end(seqs, i, max_batch_tokens);
    const Batch b = build_batch(seqs, i, end);
    enc.forward(b, hidden);
    fn(b, i, hidden);
    i = end;
  }
}

}  // namespace modernbert
