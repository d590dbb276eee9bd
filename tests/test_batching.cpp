// The text -> ids -> token-budget batches helper (batching.h): input order, greedy packing, and
// errors that name the input by its index.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "modernbert/batching.h"
#include "modernbert/error.h"
#include "modernbert/tokenizer.h"

namespace {

using modernbert::BatchItemError;
using modernbert::SequenceInput;
using modernbert::SequenceOptions;

const std::string kTokenizer = std::string(MB_SOURCE_DIR) + "/tests/data/tokenizer/trained_small/tokenizer.json";

SequenceInput ids(std::vector<int32_t> v) {
  SequenceInput s;
  s.ids = std::move(v);
  s.has_ids = true;
  return s;
}

SequenceInput text(std::string t, std::string pair = "", bool has_pair = false) {
  SequenceInput s;
  s.text = std::move(t);
  s.text_pair = std::move(pair);
  s.has_pair = has_pair;
  return s;
}

// The BatchItemError of f(), or a failure.
template <class F>
BatchItemError item_error(F&& f) {
  try {
    f();
  } catch (const BatchItemError& e) {
    return e;
  }
  ADD_FAILURE() << "no BatchItemError";
  return BatchItemError(~size_t{0}, "");
}

TEST(Batching, PacksGreedilyInInputOrder) {
  std::vector<std::vector<int32_t>> seqs;
  for (int n : {5, 7, 30, 3, 9}) seqs.emplace_back(static_cast<size_t>(n), 1);
  // Budget 20: [5, 7] | [30] (longer than the budget: alone) | [3, 9].
  EXPECT_EQ(modernbert::batch_end(seqs, 0, 20), 2u);
  EXPECT_EQ(modernbert::batch_end(seqs, 2, 20), 3u);
  EXPECT_EQ(modernbert::batch_end(seqs, 3, 20), 5u);
  const auto batches = modernbert::make_batches(seqs, 20);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].first, 0u);
  EXPECT_EQ(batches[1].first, 2u);
  EXPECT_EQ(batches[2].first, 3u);
  EXPECT_EQ(batches[0].batch.num_seqs(), 2);
  EXPECT_EQ(batches[1].batch.num_tokens(), 30);
  EXPECT_EQ(batches[2].batch.cu_seqlens, (std::vector<int64_t>{0, 3, 12}));
  // Exactly the budget fits.
  EXPECT_EQ(modernbert::batch_end(seqs, 0, 12), 2u);
  EXPECT_THROW(modernbert::make_batches(seqs, 0), modernbert::Error);
}

TEST(Batching, IdErrorsNameTheInputIndex) {
  SequenceOptions o;
  o.vocab_size = 50;
  o.max_position = 4;
  o.too_long_hint = "use --truncate";
  auto e = item_error([&] { modernbert::inputs_to_ids(nullptr, {ids({1, 2}), ids({3}), ids({4, 50})}, o); });
  EXPECT_EQ(e.index(), 2u);
  EXPECT_EQ(e.detail(), "field input_ids: id 50 outside the vocabulary [0, 50)");
  e = item_error([&] { modernbert::inputs_to_ids(nullptr, {ids({1}), ids({1, 2, 3, 4, 5})}, o); });
  EXPECT_EQ(e.index(), 1u);
  EXPECT_EQ(e.detail(), "5 tokens exceed max_position_embeddings 4 (use --truncate)");
  e = item_error([&] { modernbert::inputs_to_ids(nullptr, {ids({}), ids({1})}, o); });
  EXPECT_EQ(e.index(), 0u);
  EXPECT_EQ(e.detail(), "no tokens");
  e = item_error([&] { modernbert::inputs_to_ids(nullptr, {ids({1}), text("a")}, o); });
  EXPECT_EQ(e.index(), 1u);
  EXPECT_EQ(e.detail(), "no tokenizer");
  // Truncation cuts ids to the limit.
  o.truncate_to = 4;
  EXPECT_EQ(modernbert::inputs_to_ids(nullptr, {ids({1, 2, 3, 4, 5})}, o)[0], (std::vector<int32_t>{1, 2, 3, 4}));
}

TEST(Batching, TextsPairsAndIdsKeepInputOrder) {
  const auto tok = modernbert::Tokenizer::from_file(kTokenizer);
  SequenceOptions o;
  o.prefix = "p: ";
  std::vector<SequenceInput> in{text("first text"), text("a", "pair", true), ids({7, 8}), text("last")};
  std::vector<modernbert::Encoding> encs;
  const auto out = modernbert::inputs_to_ids(&tok, in, o, &encs);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0], tok.encode("p: first text").ids);
  EXPECT_EQ(out[1], tok.encode_pair("p: a", "pair").ids);
  EXPECT_EQ(out[2], (std::vector<int32_t>{7, 8}));
  EXPECT_EQ(out[3], tok.encode("p: last").ids);
  ASSERT_EQ(encs.size(), 4u);
  EXPECT_EQ(encs[1].ids, out[1]);
  EXPECT_TRUE(encs[2].ids.empty());  // id inputs have no encoding
  // A tokenizer failure names the input, not its position among the texts.
  auto e = item_error([&] { modernbert::inputs_to_ids(&tok, {ids({1}), text("ok"), text("bad \xff")}, o); });
  EXPECT_EQ(e.index(), 2u);
  EXPECT_NE(e.detail().find("invalid UTF-8"), std::string::npos) << e.detail();
}

}  // namespace
