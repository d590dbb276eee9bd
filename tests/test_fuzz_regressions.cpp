// Replays the committed fuzzing corpus (tests/data/fuzz/<target>/: minimised crash inputs of
// earlier findings plus a few interesting seeds) through the same entry points the libFuzzer
// targets run (fuzz/fuzz_entries.h). Every file must be processed without a crash, a sanitizer
// report or an exception other than modernbert::Error (an entry only returns when the input was
// handled cleanly; a broken invariant aborts). See docs/fuzzing.md.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "../fuzz/fuzz_entries.h"

namespace {

namespace fs = std::filesystem;
namespace fz = modernbert::fuzz;

// The corpus of one target; fails (not skips) when the directory is missing or empty.
std::vector<std::pair<std::string, std::string>> corpus(const std::string& target) {
  const fs::path dir = fs::path(MB_SOURCE_DIR) / "tests" / "data" / "fuzz" / target;
  std::vector<std::pair<std::string, std::string>> out;
  if (!fs::is_directory(dir)) {
    ADD_FAILURE() << dir << ": regression corpus directory missing";
    return out;
  }
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream f(e.path(), std::ios::binary);
    out.emplace_back(e.path().filename().string(),
                     std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()));
  }
  if (out.empty()) ADD_FAILURE() << dir << ": regression corpus is empty";
  return out;
}

template <class Fn>
void replay(const std::string& target, Fn&& fn) {
  auto files = corpus(target);
  for (const auto& [name, bytes] : files) {
    SCOPED_TRACE(target + "/" + name);
    EXPECT_EQ(fn(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), 0);
  }
  std::printf("[ replayed ] %zu inputs of %s\n", files.size(), target.c_str());
}

TEST(FuzzRegressions, SafetensorsHeader) { replay("fuzz_safetensors_header", fz::fuzz_safetensors_header); }
TEST(FuzzRegressions, SafetensorsFile) { replay("fuzz_safetensors_file", fz::fuzz_safetensors_file); }
TEST(FuzzRegressions, Config) { replay("fuzz_config", fz::fuzz_config); }
TEST(FuzzRegressions, TokenizerLoad) { replay("fuzz_tokenizer_load", fz::fuzz_tokenizer_load); }
TEST(FuzzRegressions, EvalJsonl) { replay("fuzz_eval_jsonl", fz::fuzz_eval_jsonl); }
TEST(FuzzRegressions, FinetuneJsonl) { replay("fuzz_finetune_jsonl", fz::fuzz_finetune_jsonl); }

TEST(FuzzRegressions, TokenizerEncode) {
  // The fuzzer ran against the real ModernBERT tokenizer (committed in tests/data); the other
  // committed tokenizers replay the same inputs through other vocabularies and options.
  std::vector<std::string> paths = {std::string(MB_SOURCE_DIR) + "/tests/data/modernbert-tokenizer/tokenizer.json",
                                    std::string(MB_SOURCE_DIR) + "/tests/data/tokenizer/trained_small/tokenizer.json",
                                    std::string(MB_SOURCE_DIR) + "/tests/data/tokenizer/variants/noregex_trim.json",
                                    std::string(MB_SOURCE_DIR) + "/tests/data/tokenizer/variants/prefix_trim.json"};
  for (const auto& p : paths) {
    SCOPED_TRACE(p);
    const modernbert::Tokenizer tk = modernbert::Tokenizer::from_file(p);
    replay("fuzz_tokenizer_encode",
           [&](const std::uint8_t* d, std::size_t n) { return fz::fuzz_tokenizer_encode(tk, d, n); });
  }
}

// The findings themselves, checked for their named error so that a regression shows even in a
// build without sanitizers (where the undefined conversions they hit pass silently).
std::string finetune_error(const std::string& task, const std::string& jsonl) {
  modernbert::FinetuneOptions o;
  o.task = modernbert::parse_finetune_task(task);
  o.train = o.dev =
      fz::write_scratch("finding.jsonl", reinterpret_cast<const std::uint8_t*>(jsonl.data()), jsonl.size());
  o.model_dir = fz::scratch_dir() + "/no-such-model";
  o.out = fz::scratch_dir() + "/out";
  o.progress = false;
  try {
    (void)modernbert::finetune(o);
  } catch (const modernbert::Error& e) {
    return e.what();
  }
  return "";
}

TEST(FuzzFindings, FinetuneRegressionTargetBeyondFloatIsNamed) {
  const std::string err = finetune_error("regression", "{\"text\":\"a\",\"label\":1e300}\n");
  EXPECT_NE(err.find("finding.jsonl:1: regression target 1e+300 does not fit a 32-bit float"), std::string::npos)
      << err;
}

TEST(FuzzFindings, FinetuneHugeLabelIdIsNamed) {
  const std::string err = finetune_error(
      "classification", "{\"text\":\"a\",\"label\":9223372036854775807}\n{\"text\":\"b\",\"label\":0}\n");
  EXPECT_NE(err.find("finding.jsonl:1: label id 9223372036854775807 is too large"), std::string::npos) << err;
  const std::string err2 = finetune_error("multilabel", "{\"text\":\"a\",\"labels\":[0,2000000]}\n");
  EXPECT_NE(err2.find("label id 2000000 is too large"), std::string::npos) << err2;
}

TEST(FuzzFindings, FinetuneFloatLabelBeyondInt64IsNamed) {
  const std::string err = finetune_error("multilabel", "{\"text\":\"a\",\"labels\":[1e300]}\n");
  EXPECT_NE(err.find("finding.jsonl:1: a label must be an integer id or a label name, found 1e+300"), std::string::npos)
      << err;
}

TEST(FuzzFindings, EvalFloatLabelBeyondInt64IsNamed) {
  const modernbert::LabelSpace ls = modernbert::label_space(modernbert::ModelConfig{}, 3);
  try {
    (void)modernbert::resolve_label(nlohmann::json::parse("1e300"), ls, "dev.jsonl:4");
    ADD_FAILURE() << "1e300 accepted as a label id";
  } catch (const modernbert::Error& e) {
    EXPECT_NE(std::string(e.what()).find("dev.jsonl:4: label id 1e+300 does not fit the checkpoint's head"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(modernbert::resolve_label(nlohmann::json::parse("2.0"), ls, "x"), 2);
}

}  // namespace
