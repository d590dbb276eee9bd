// Tokenizer unit tests: loader validation (unsupported components rejected by name, both merge
// formats), invalid UTF-8 handling, batch encoding, truncation, decode, and the CLI.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "modernbert/error.h"
#include "modernbert/tokenizer.h"
#include "tokenizer_test_util.h"

namespace {

using modernbert::EncodeOptions;
using modernbert::Encoding;
using modernbert::Error;
using modernbert::Tokenizer;
using nlohmann::json;

std::string byte_char(int b) {
  // GPT-2 byte-level alphabet.
  int n = 0;
  for (int c = 0; c < 256; ++c) {
    bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
    int cp = printable ? c : 256 + n++;
    if (c == b) {
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      return s;
    }
  }
  return "";
}

// A tiny ModernBERT-shaped tokenizer.json: 256 byte symbols, a few merges, added tokens.
json tiny_tokenizer(bool string_merges) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}, {"l", "d"}, {"Ġwor", "ld"}};
  int next = 256;
  json m = json::array();
  for (auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    if (string_merges) m.push_back(a + " " + b);
    else m.push_back(json::array({a, b}));
  }
  json added = json::array();
  auto add = [&](const std::string& c, bool special, bool lstrip, bool normalized) {
    added.push_back({{"id", next++}, {"content", c}, {"single_word", false}, {"lstrip", lstrip},
                     {"rstrip", false}, {"normalized", normalized}, {"special", special}});
  };
  add("  ", false, false, true);
  add("[CLS]", true, false, false);
  add("[SEP]", true, false, false);
  add("[MASK]", true, true, false);
  json t = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}})},
        {"pair", json::array({{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}},
                              {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 1}}}}})},
        {"special_tokens",
         {{"[CLS]", {{"id", "[CLS]"}, {"ids", {added[1]["id"]}}, {"tokens", {"[CLS]"}}}},
          {"[SEP]", {{"id", "[SEP]"}, {"ids", {added[2]["id"]}}, {"tokens", {"[SEP]"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
                 {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                 {"ignore_merges", false}, {"vocab", vocab}, {"merges", m}}}};
  return t;
}

Tokenizer load(const json& j) { return Tokenizer::from_json_string(j.dump(), "tiny.json"); }

std::string error_of(const json& j) {
  try {
    load(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Tokenizer, TinyEncodeBothMergeFormats) {
  Tokenizer a = load(tiny_tokenizer(true)), b = load(tiny_tokenizer(false));
  Encoding ea = a.encode("hello world"), eb = b.encode("hello world");
  EXPECT_EQ(ea.ids, eb.ids);
  ASSERT_EQ(ea.size(), 4u);  // [CLS] hello Ġworld [SEP]
  EXPECT_EQ(a.id_to_token(ea.ids[1]).value(), "hello");
  EXPECT_EQ(a.id_to_token(ea.ids[2]).value(), "Ġworld");
  EXPECT_EQ(ea.offsets[1], (std::pair<std::size_t, std::size_t>{0, 5}));
  EXPECT_EQ(ea.offsets[2], (std::pair<std::size_t, std::size_t>{5, 11}));
  EXPECT_EQ(ea.offsets[0], (std::pair<std::size_t, std::size_t>{0, 0}));
  EXPECT_EQ(a.decode(ea.ids, true), "hello world");
  EXPECT_EQ(a.decode(ea.ids, false), "[CLS]hello world[SEP]");
}

TEST(Tokenizer, RejectsUnsupportedComponentsByName) {
  struct Case {
    std::string field;
    json value;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"normalizer", {{"type", "Lowercase"}}, "Lowercase"},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "NFKD"}}}}}, "NFKD"},
      {"pre_tokenizer", {{"type", "Whitespace"}}, "Whitespace"},
      {"pre_tokenizer", nullptr, "pre_tokenizer"},
      {"post_processor", {{"type", "BertProcessing"}}, "BertProcessing"},
      {"decoder", {{"type", "WordPiece"}}, "WordPiece"},
      {"padding", {{"strategy", "BatchLongest"}}, "padding"},
      {"version", "2.0", "version"},
  };
  for (const auto& c : cases) {
    json t = tiny_tokenizer(false);
    t[c.field] = c.value;
    std::string err = error_of(t);
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.field << ": '" << err << "'";
    EXPECT_NE(err.find("tiny.json"), std::string::npos) << err;
  }
  json t = tiny_tokenizer(false);
  t["model"]["type"] = "WordPiece";
  EXPECT_NE(error_of(t).find("WordPiece"), std::string::npos);
  t = tiny_tokenizer(false);
  t["model"]["byte_fallback"] = true;
  EXPECT_NE(error_of(t).find("byte_fallback"), std::string::npos);
  t = tiny_tokenizer(false);
  t["model"]["dropout"] = 0.1;
  EXPECT_NE(error_of(t).find("dropout"), std::string::npos);
  t = tiny_tokenizer(false);
  t["model"]["merges"].push_back(json::array({"zz_missing", "h"}));
  EXPECT_NE(error_of(t).find("zz_missing"), std::string::npos);
  t = tiny_tokenizer(true);
  t["model"]["merges"].push_back("a b c");
  EXPECT_NE(error_of(t).find("merges["), std::string::npos);
  EXPECT_NE(error_of(json::parse("[1,2]")).find("object"), std::string::npos);
  EXPECT_THROW(Tokenizer::from_json_string("{not json", "x"), Error);
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), Error);
}

TEST(Tokenizer, AddedTokensLstripAndSpaceRuns) {
  Tokenizer t = load(tiny_tokenizer(false));
  EncodeOptions o;
  o.add_special_tokens = false;
  Encoding e = t.encode("he [MASK]  x", o);
  // he, " [MASK]" (lstrip absorbs the space), "  " (normalized added token), x
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(t.id_to_token(e.ids[1]).value(), "[MASK]");
  EXPECT_EQ(e.offsets[1], (std::pair<std::size_t, std::size_t>{2, 9}));
  EXPECT_EQ(t.id_to_token(e.ids[2]).value(), "  ");
  EXPECT_EQ(e.offsets[2], (std::pair<std::size_t, std::size_t>{9, 11}));
}

TEST(Tokenizer, InvalidUtf8IsAnErrorWithPositionOrLossy) {
  Tokenizer t = load(tiny_tokenizer(false));
  std::string bad = "hello\xff world";
  try {
    t.encode(bad);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("byte 5"), std::string::npos) << e.what();
  }
  EncodeOptions o;
  o.lossy_utf8 = true;
  o.add_special_tokens = false;
  Encoding e = t.encode(bad, o);
  // hello, U+FFFD as 3 byte tokens covering the one invalid byte, Ġworld
  ASSERT_EQ(e.size(), 5u);
  EXPECT_EQ(e.offsets[1], (std::pair<std::size_t, std::size_t>{5, 6}));
  EXPECT_EQ(e.offsets[3], (std::pair<std::size_t, std::size_t>{5, 6}));
  EXPECT_EQ(e.offsets[4], (std::pair<std::size_t, std::size_t>{6, 12}));
  EXPECT_EQ(t.decode(e.ids), "hello\xEF\xBF\xBD world");
  // Truncated multi-byte sequences, overlongs, surrogates: lossy never throws, strict always does.
  for (std::string s : {std::string("\xE2\x82"), std::string("a\xC0\xAF"), std::string("\xED\xA0\x80x"),
                        std::string("\xF4\x90\x80\x80"), std::string("x\x80\x80y"), std::string("\xF0\x9F\x98")}) {
    EXPECT_THROW(t.encode(s), Error);
    Encoding l = t.encode(s, o);
    for (auto& off : l.offsets) EXPECT_LE(off.second, s.size());
  }
  // In a batch, the error names the text.
  try {
    t.encode_batch({"ok", "fine", bad}, {}, 2);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("text 2"), std::string::npos) << err.what();
  }
}

TEST(Tokenizer, BatchMatchesSequential) {
  MB_REQUIRE_TOKENIZER(path);
  const Tokenizer& tk = mbtest::modernbert_tokenizer();
  std::vector<std::string> texts;
  for (int i = 0; i < 500; ++i)
    texts.push_back("document " + std::to_string(i) + std::string(static_cast<std::size_t>(i % 7), ' ') +
                    " with [MASK] and café " + std::string(static_cast<std::size_t>(i % 13), 'x'));
  for (unsigned threads : {1u, 2u, 3u, 0u}) {
    auto batch = tk.encode_batch(texts, {}, threads);
    ASSERT_EQ(batch.size(), texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      Encoding e = tk.encode(texts[i]);
      EXPECT_EQ(batch[i].ids, e.ids);
      EXPECT_EQ(batch[i].offsets, e.offsets);
    }
  }
  std::vector<std::pair<std::string, std::string>> pairs = {{"a b", "c d"}, {"", "x"}};
  auto pb = tk.encode_batch_pairs(pairs, {}, 2);
  EXPECT_EQ(pb[0].ids, tk.encode_pair("a b", "c d").ids);
  EXPECT_TRUE(tk.encode_batch({}, {}, 2).empty());
}

TEST(Tokenizer, TruncationLongestFirst) {
  MB_REQUIRE_TOKENIZER(path);
  const Tokenizer& tk = mbtest::modernbert_tokenizer();
  EncodeOptions o;
  o.max_length = 8;
  Encoding e = tk.encode("one two three four five six seven eight nine ten", o);
  EXPECT_EQ(e.size(), 8u);
  EXPECT_EQ(e.ids.front(), 50281);
  EXPECT_EQ(e.ids.back(), 50282);
  // Pair: 3 specials, budget 5 -> the longer side gives way first (2 + 3).
  Encoding p = tk.encode_pair("a b", "one two three four five six seven eight", o);
  EXPECT_EQ(p.size(), 8u);
  std::size_t first = 0, second = 0;
  for (auto s : p.sequence_ids) {
    first += s == 0;
    second += s == 1;
  }
  EXPECT_EQ(first, 2u);
  EXPECT_EQ(second, 3u);
  o.max_length = 2;
  EXPECT_EQ(tk.encode("x", o).ids, (std::vector<std::int32_t>{50281, 50282}));
  o.max_length = 1;
  EXPECT_THROW(tk.encode("x", o), Error);
  EXPECT_EQ(tk.num_special_tokens_to_add(false), 2u);
  EXPECT_EQ(tk.num_special_tokens_to_add(true), 3u);
}

TEST(Tokenizer, ModernBertIdsAndDecode) {
  MB_REQUIRE_TOKENIZER(path);
  const Tokenizer& tk = mbtest::modernbert_tokenizer();
  EXPECT_EQ(tk.vocab_size(), 50368u);
  EXPECT_EQ(tk.token_to_id("[MASK]").value(), 50284);
  EXPECT_EQ(tk.token_to_id("<|padding|>").value(), 1);
  EXPECT_TRUE(tk.is_special_id(50281));
  EXPECT_FALSE(tk.is_special_id(50276));
  std::vector<std::int32_t> want = {50281, 510, 5347, 273, 6181, 310, 50284, 15, 50282};
  EXPECT_EQ(tk.encode("The capital of France is [MASK].").ids, want);
  std::string s = "Grüße, 世界! 👍🏽  code\n\tx";
  EXPECT_EQ(tk.decode(tk.encode(s).ids, true), s);
  // Unknown ids are skipped, not a crash.
  std::vector<std::int32_t> odd = {-5, 999999, 15};
  EXPECT_EQ(tk.decode(odd), ".");
}

std::string run_cli(const std::string& args, int* rc) {
  std::string cmd = std::string(MB_CLI_PATH) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  *rc = WEXITSTATUS(status);
  return out;
}

TEST(Tokenizer, CliTokenize) {
  MB_REQUIRE_TOKENIZER(path);
  std::string dir = std::string(MB_BINARY_DIR) + "/tokenizer_cli_test";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir + "/in.txt", std::ios::binary);
    f << "{\"text\": \"The capital of France is [MASK].\"}\n"
      << "plain line café\n"
      << "{\"text\": \"What?\", \"text_pair\": \"Paris.\"}\n"
      << "\n";
  }
  int rc;
  std::string out = run_cli("tokenize --tokenizer " + path + " --input " + dir + "/in.txt", &rc);
  ASSERT_EQ(rc, 0) << out;
  std::istringstream ss(out);
  std::vector<json> lines;
  std::string l;
  while (std::getline(ss, l)) lines.push_back(json::parse(l));
  ASSERT_EQ(lines.size(), 4u) << out;
  EXPECT_EQ(lines[0]["input_ids"], json({50281, 510, 5347, 273, 6181, 310, 50284, 15, 50282}));
  EXPECT_EQ(lines[0]["offsets"][6], json({24, 31}));
  EXPECT_EQ(lines[0]["offsets"][0], json({0, 0}));
  const Tokenizer& tk = mbtest::modernbert_tokenizer();
  EXPECT_EQ(lines[1]["input_ids"].get<std::vector<std::int32_t>>(), tk.encode("plain line café").ids);
  EXPECT_EQ(lines[2]["input_ids"].get<std::vector<std::int32_t>>(), tk.encode_pair("What?", "Paris.").ids);
  EXPECT_EQ(lines[3]["input_ids"], json({50281, 50282}));

  out = run_cli("tokenize --no-special --tokenizer " + path + " --input " + dir + "/in.txt --max-length 3 --truncate", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(json::parse(out.substr(0, out.find('\n')))["input_ids"], json({510, 5347, 273}));

  {
    std::ofstream f(dir + "/bad.txt", std::ios::binary);
    f << "fine\nalso fine\nbroken \xff byte\n";
  }
  out = run_cli("tokenize --tokenizer " + path + " --input " + dir + "/bad.txt", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("bad.txt:3: "), std::string::npos) << out;
  EXPECT_NE(out.find("byte 7"), std::string::npos) << out;
  out = run_cli("tokenize --lossy-utf8 --tokenizer " + path + " --input " + dir + "/bad.txt", &rc);
  EXPECT_EQ(rc, 0) << out;
  out = run_cli("tokenize --tokenizer " + path + " --input " + dir + "/in.txt --max-length 4", &rc);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("in.txt:1: "), std::string::npos) << out;
  out = run_cli("tokenize --help", &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("--lossy-utf8"), std::string::npos);
  // detokenize round trip
  {
    std::ofstream f(dir + "/ids.txt");
    f << "{\"input_ids\": [50281, 510, 5347, 50282]}\n510 5347\n";
  }
  out = run_cli("detokenize --skip-special --tokenizer " + path + " --input " + dir + "/ids.txt", &rc);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("{\"text\":\"The capital\"}"), std::string::npos) << out;
}

}  // namespace
