// tokenizer.json ids are bounded by the number of entries the file defines (issue 12, item 3):
// a 120-byte file with one vocabulary id of 67,108,863 used to allocate 2.1 GB of id tables and
// then tokenize "hello" to [] without an error.
#include <gtest/gtest.h>

#include <string>

#include "modernbert/error.h"
#include "modernbert/tokenizer.h"

namespace {

using modernbert::Error;
using modernbert::Tokenizer;

std::string error_of(const std::string& text) {
  try {
    (void)Tokenizer::from_json_string(text, "ids.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string with_vocab(const std::string& vocab, const std::string& extra = "") {
  return R"({"pre_tokenizer":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":)" + vocab + R"(,"merges":[]})" +
         extra + "}";
}

TEST(TokenizerIdBounds, HugeSparseVocabularyIdIsRejectedByName) {
  // The reproduction of the issue, byte for byte in spirit: one entry, one enormous id.
  const std::string text = with_vocab(R"({"h":67108863})");
  ASSERT_LT(text.size(), 130u);
  const std::string err = error_of(text);
  EXPECT_NE(err.find("ids.json"), std::string::npos) << err;
  EXPECT_NE(err.find("model.vocab[\"h\"]"), std::string::npos) << err;
  EXPECT_NE(err.find("67108863"), std::string::npos) << err;
  EXPECT_NE(err.find("1 vocabulary + 0 added tokens"), std::string::npos) << err;
}

TEST(TokenizerIdBounds, GapBeyondTheDefinedEntriesIsRejected) {
  // Three entries, the last id is 3: no entry can fill ids 0..3 densely.
  const std::string err = error_of(with_vocab(R"({"a":0,"b":1,"c":3})"));
  EXPECT_NE(err.find("model.vocab[\"c\"]"), std::string::npos) << err;
  EXPECT_NE(err.find("id 3"), std::string::npos) << err;
}

TEST(TokenizerIdBounds, DenseVocabularyStillLoadsAndEncodes) {
  Tokenizer t = Tokenizer::from_json_string(with_vocab(R"({"a":0,"b":1,"c":2})"), "ids.json");
  EXPECT_EQ(t.vocab_size(), 3u);
  modernbert::EncodeOptions o;
  o.add_special_tokens = false;
  EXPECT_EQ(t.encode("cab", o).ids, (std::vector<std::int32_t>{2, 0, 1}));
}

TEST(TokenizerIdBounds, TemplateSpecialTokenIdOutsideTheVocabularyIsRejected) {
  const std::string post =
      R"(,"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"[CLS]"}},)"
      R"({"Sequence":{"id":"A"}}],"pair":[{"Sequence":{"id":"A"}},{"Sequence":{"id":"B"}}],)"
      R"("special_tokens":{"[CLS]":{"id":"[CLS]","ids":[5000000]}}})";
  const std::string err = error_of(with_vocab(R"({"a":0,"b":1})", post));
  EXPECT_NE(err.find("post_processor.special_tokens[\"[CLS]\"].ids"), std::string::npos) << err;
  EXPECT_NE(err.find("5000000"), std::string::npos) << err;
}

}  // namespace
