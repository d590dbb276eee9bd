// Parity with Hugging Face tokenizers (the npm Rust binding) on the real ModernBERT tokenizer:
// the 34 shared test vectors, the adversarial set and documents of the corpus and the downstream
// sets (goldens from scripts/tokenizer_reference/make_goldens.mjs, one hash per document of the
// full sets). The suite checks the committed sample of those documents
// (tests/data/tokenizer/parity_sample.jsonl); scripts/check_tokenizer_parity_full.sh runs the same
// test over every document of the full data set (MB_PARITY_FULL_DATA=its folder).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "modernbert/error.h"
#include "modernbert/tokenizer.h"
#include "tokenizer_test_util.h"

namespace {

using modernbert::EncodeOptions;
using modernbert::Encoding;
using modernbert::Tokenizer;
using nlohmann::json;

const std::string kGoldDir = std::string(MB_SOURCE_DIR) + "/tests/data/tokenizer";

std::string show(const Encoding& e, std::size_t i) {
  if (i >= e.ids.size()) return "<end>";
  return std::to_string(e.ids[i]) + "@[" + std::to_string(e.offsets[i].first) + "," +
         std::to_string(e.offsets[i].second) + ")";
}

// Compares and describes the first difference.
::testing::AssertionResult same(const Encoding& got, const json& ids, const json& offsets) {
  auto want_ids = mbtest::ids_of(ids);
  auto want_off = mbtest::offsets_of(offsets);
  std::size_t n = std::max(got.ids.size(), want_ids.size());
  for (std::size_t i = 0; i < n; ++i) {
    bool ok = i < got.ids.size() && i < want_ids.size() && got.ids[i] == want_ids[i] && got.offsets[i] == want_off[i];
    if (!ok) {
      std::string w = i < want_ids.size() ? std::to_string(want_ids[i]) + "@[" + std::to_string(want_off[i].first) +
                                                "," + std::to_string(want_off[i].second) + ")"
                                          : "<end>";
      return ::testing::AssertionFailure() << "token " << i << ": got " << show(got, i) << ", HF has " << w
                                           << " (lengths " << got.ids.size() << " vs " << want_ids.size() << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(TokenizerParity, SharedTestVectors) {
  MB_REQUIRE_TOKENIZER(path);
  const Tokenizer& tk = mbtest::modernbert_tokenizer();
  std::string dir = std::string(MB_SOURCE_DIR) + "/tests/data/modernbert-tokenizer/testcases/";
  auto cases = mbtest::read_jsonl(dir + "cases.jsonl");
  auto with = mbtest::read_jsonl(dir + "expected_with_special.jsonl");
  auto without = mbtest::read_jsonl(dir + "expected_no_special.jsonl");
  ASSERT_EQ(cases.size(), 34u);
  ASSERT_EQ(with.size(), cases.size());
  ASSERT_EQ(without.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const json& c = cases[i];
    std::string text = c["text"];
    for (bool special : {true, false}) {
      const json& exp = special ? with[i] : without[i];
      EncodeOptions o;
      o.add_special_tokens = special;
      Encoding e =
          c.contains("text_pair") ? tk.encode_pair(text, c["text_pair"].get<std::string>(), o) : tk.encode(text, o);
      EXPECT_TRUE(same(e, exp["ids"], exp["offsets_utf8"]))
          << "case " << c["id"] << (special ? " with" : " without") << " special tokens";
      EXPECT_EQ(tk.decode(e.ids, false), exp["decoded"].get<std::string>()) << "case " << c["id"];
      EXPECT_EQ(tk.decode(e.ids, true), exp["decoded_skip_special"].get<std::string>()) << "case " << c["id"];
      std::vector<std::uint8_t> mask = exp["special_tokens_mask"].get<std::vector<std::uint8_t>>();
      EXPECT_EQ(e.special_tokens_mask, mask) << "case " << c["id"];
    }
  }
}

TEST(TokenizerParity, AdversarialSet) {
  MB_REQUIRE_TOKENIZER(path);
  const Tokenizer& tk = mbtest::modernbert_tokenizer();
  auto cases = mbtest::read_jsonl(kGoldDir + "/adversarial.jsonl");
  ASSERT_GT(cases.size(), 1000u) << "adversarial goldens missing";
  std::size_t failures = 0;
  for (std::size_t i = 0; i < cases.size() && failures < 20; ++i) {
    const json& c = cases[i];
    std::string text = c["text"];
    bool pair = c.contains("text_pair");
    std::string second = pair ? c["text_pair"].get<std::string>() : "";
    for (bool special : {true, false}) {
      EncodeOptions o;
      o.add_special_tokens = special;
      if (c.contains("max_length")) o.max_length = c["max_length"].get<std::size_t>();
      Encoding e = pair ? tk.encode_pair(text, second, o) : tk.encode(text, o);
      auto r = same(e, c[special ? "ids" : "ids_no_special"], c[special ? "offsets" : "offsets_no_special"]);
      if (!r) {
        ++failures;
        ADD_FAILURE() << "adversarial case " << i << " " << json(text).dump() << " (special=" << special
                      << "): " << r.message();
      }
      if (special) {
        EXPECT_EQ(tk.decode(e.ids, false), c["decoded"].get<std::string>()) << "case " << i;
        EXPECT_EQ(tk.decode(e.ids, true), c["decoded_skip_special"].get<std::string>()) << "case " << i;
      }
    }
  }
  EXPECT_EQ(failures, 0u);
}

struct ParityDoc {
  std::size_t index;
  std::string text;
};

// The documents to check per set: the committed sample, or with MB_PARITY_FULL_DATA (the data
// folder of tests/data/README.md) every document of the full files.
std::map<std::string, std::vector<ParityDoc>> parity_docs(const json& index, bool& full) {
  std::map<std::string, std::vector<ParityDoc>> docs;
  const char* root = std::getenv("MB_PARITY_FULL_DATA");
  full = root && *root;
  if (full) {
    for (const auto& set : index) {
      auto rows = mbtest::read_jsonl(std::string(root) + "/" + set["file"].get<std::string>());
      EXPECT_EQ(rows.size(), set["docs"].get<std::size_t>()) << set["name"];
      auto& v = docs[set["name"]];
      for (std::size_t i = 0; i < rows.size(); ++i) v.push_back({i, rows[i][set["field"].get<std::string>()]});
    }
  } else {
    for (const auto& s : mbtest::read_jsonl(kGoldDir + "/parity_sample.jsonl"))
      docs[s["set"]].push_back({s["index"].get<std::size_t>(), s["text"].get<std::string>()});
  }
  return docs;
}

// Documents of the corpus and downstream sets, compared by per-document hash with the goldens.
TEST(TokenizerParity, CorpusAndDownstreamSets) {
  MB_REQUIRE_TOKENIZER(path);
  const Tokenizer& tk = mbtest::modernbert_tokenizer();
  json index = json::parse(mbtest::read_file(kGoldDir + "/corpus/index.json"));
  ASSERT_GE(index.size(), 19u);
  std::map<std::string, std::vector<json>> samples;
  for (const auto& s : mbtest::read_jsonl(kGoldDir + "/corpus_samples.jsonl"))
    samples[s["set"].get<std::string>()].push_back(s);
  bool full = false;
  auto docs = parity_docs(index, full);
  std::size_t total_docs = 0, total_tokens = 0;
  for (const auto& set : index) {
    std::string name = set["name"];
    const auto& mine = docs[name];
    // The sample holds at least 8 documents of every set (scripts/make_test_fixtures.sh).
    ASSERT_GE(mine.size(), std::min<std::size_t>(8, set["docs"].get<std::size_t>())) << name;
    std::ifstream gf(kGoldDir + "/corpus/" + name + ".txt");
    std::vector<std::pair<std::string, std::size_t>> gold;
    std::string h;
    std::size_t n;
    while (gf >> h >> n) gold.emplace_back(h, n);
    ASSERT_EQ(gold.size(), set["docs"].get<std::size_t>()) << name;
    std::vector<std::string> texts;
    for (const auto& d : mine) texts.push_back(d.text);
    auto encs = tk.encode_batch(texts, {}, 2);
    std::size_t mismatches = 0;
    std::map<std::size_t, std::size_t> at;  // document index -> position in `mine`
    for (std::size_t k = 0; k < mine.size(); ++k) {
      std::size_t i = mine[k].index;
      ASSERT_LT(i, gold.size()) << name;
      at[i] = k;
      std::string got = mbtest::sha256_hex(mbtest::canonical(encs[k])).substr(0, 12);
      if (got != gold[i].first || encs[k].size() != gold[i].second) {
        if (++mismatches <= 5)
          ADD_FAILURE() << name << " document " << i << ": " << encs[k].size() << " tokens, HF " << gold[i].second
                        << "; hash " << got << " vs " << gold[i].first;
      }
      total_tokens += encs[k].size();
    }
    EXPECT_EQ(mismatches, 0u) << name;
    for (const auto& s : samples[name]) {
      std::size_t i = s["index"];
      ASSERT_TRUE(at.count(i)) << name << " sample " << i << " is not among the checked documents";
      EXPECT_TRUE(same(encs[at[i]], s["ids"], s["offsets"])) << name << " sample " << i;
    }
    total_docs += mine.size();
  }
  std::printf("[ parity  ] %zu documents (%s), %zu tokens compared with HF tokenizers\n", total_docs,
              full ? "every document of MB_PARITY_FULL_DATA" : "committed sample", total_tokens);
}

}  // namespace
