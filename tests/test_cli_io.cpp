// The CLI's input and output contracts (issue 12, items 3-5):
//  * token ids from user input go through parse_token_ids: negative, >= vocabulary, > 2^31,
//    non-integer and float ids are errors naming file:line and field[K], never wrapped to 32 bits;
//  * a classifier tensor with zero rows or a mismatched bias is refused at load, naming the tensor;
//  * every output file appears whole or not at all (AtomicOutputFile): an error on a later input
//    line leaves no file and an existing one unchanged; safetensors are streamed from the tensors;
//  * errors about an input name FILE:LINE (1-based), and every text command takes --lossy-utf8.
// Everything here runs from files in the repository (tests/data) and the CLI; nothing is skipped.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/safetensors.h"
#include "modernbert/token_ids.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// The small byte-level BPE tokenizer committed with the tokenizer tests ([CLS]/[SEP]/[MASK] as
// added tokens, ids < 1100).
std::string small_tokenizer() {
  return std::string(MB_SOURCE_DIR) + "/tests/data/tokenizer/trained_small/tokenizer.json";
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void put(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary);
  f << content;
}

// Files in `dir` whose name contains ".tmp." (left-over temporaries of an atomic write).
int temp_files(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) ++n;
  return n;
}

// Text with invalid UTF-8 (a lone continuation byte and a truncated 3-byte sequence).
const std::string kBadUtf8 = std::string("caf") + '\xC3' + " and " + '\x80' + "x";

// A tiny checkpoint (random weights) with the committed tokenizer; heads as given.
std::string make_model(const mbtest::TempDir& tmp, const std::string& name, const std::string& heads) {
  const std::string dir = tmp / name;
  auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 3 --heads " + heads + " --out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  fs::copy_file(small_tokenizer(), dir + "/tokenizer.json");
  return dir;
}

// Five plain input lines; line 3 holds invalid UTF-8.
std::string five_lines_bad_third() {
  return "hello world\nthe second line\n" + kBadUtf8 + "\nfourth line here\nand the fifth\n";
}

}  // namespace

// ---- token ids ----------------------------------------------------------------------------------

TEST(TokenIds, AcceptsIdsInsideTheVocabulary) {
  EXPECT_EQ(parse_token_ids(json::parse("[0, 5, 99]"), 100, "f:1: field input_ids"), (std::vector<int32_t>{0, 5, 99}));
  EXPECT_EQ(parse_token_id_line("1, 2\t3 ,4", 10, "f:1"), (std::vector<int32_t>{1, 2, 3, 4}));
  // Without a known vocabulary the bound is the int32 range.
  EXPECT_EQ(parse_token_ids(json::parse("[2147483647]"), 0, "w"), (std::vector<int32_t>{2147483647}));
}

TEST(TokenIds, RejectsEveryBadIdNamingWhereItWas) {
  auto msg = [](const std::string& ids, int64_t vocab) {
    try {
      parse_token_ids(json::parse(ids), vocab, "data.jsonl:3: field input_ids");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // 4294967807 = 2^32 + 511: a 32-bit wrap would make it id 511, inside the vocabulary.
  EXPECT_EQ(msg("[1, 4294967807]", 50368),
            "data.jsonl:3: field input_ids[1]: id 4294967807 outside the vocabulary [0, 50368)");
  EXPECT_EQ(msg("[2147483648]", 0),
            "data.jsonl:3: field input_ids[0]: id 2147483648 outside the vocabulary [0, 2147483648)");
  EXPECT_EQ(msg("[18446744073709551615]", 50368),
            "data.jsonl:3: field input_ids[0]: id 18446744073709551615 outside the vocabulary [0, 50368)");
  EXPECT_EQ(msg("[7, -1]", 50368), "data.jsonl:3: field input_ids[1]: id -1 outside the vocabulary [0, 50368)");
  EXPECT_EQ(msg("[50368]", 50368), "data.jsonl:3: field input_ids[0]: id 50368 outside the vocabulary [0, 50368)");
  EXPECT_NE(msg("[3.0]", 50368).find("input_ids[0]: expected an integer token id, found 3.0"), std::string::npos);
  EXPECT_NE(msg("[1.5]", 50368).find("input_ids[0]: expected an integer token id"), std::string::npos);
  EXPECT_NE(msg("[\"5\"]", 50368).find("input_ids[0]: expected an integer token id, found \"5\""), std::string::npos);
  EXPECT_NE(msg("[null]", 50368).find("input_ids[0]: expected an integer token id"), std::string::npos);
  EXPECT_NE(msg("{\"a\": 1}", 50368).find("field input_ids: expected a list"), std::string::npos);
  EXPECT_NE(msg("[]", 50368).find("empty list"), std::string::npos);
  EXPECT_NO_THROW(parse_token_ids(json::array(), 10, "w", /*allow_empty=*/true));
}

TEST(TokenIds, LineOfIdsIsCheckedBeforeNarrowing) {
  auto msg = [](const std::string& line) {
    try {
      parse_token_id_line(line, 1000, "ids.txt:2: ids");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg("1 4294967807"), "ids.txt:2: ids[1]: id 4294967807 outside the vocabulary [0, 1000)");
  EXPECT_EQ(msg("99999999999999999999999999"),
            "ids.txt:2: ids[0]: id 99999999999999999999999999 outside the vocabulary [0, 1000)");
  EXPECT_EQ(msg("-3"), "ids.txt:2: ids[0]: id -3 outside the vocabulary [0, 1000)");
  EXPECT_EQ(msg("1000"), "ids.txt:2: ids[0]: id 1000 outside the vocabulary [0, 1000)");
  EXPECT_EQ(msg("12 1.5"), "ids.txt:2: ids[1]: expected an integer token id, found '1.5'");
  EXPECT_EQ(msg("abc"), "ids.txt:2: ids[0]: expected an integer token id, found 'abc'");
  EXPECT_EQ(msg("-"), "ids.txt:2: ids[0]: expected an integer token id, found '-'");
}

TEST(CliTokenIds, DetokenizeRefusesIdsThatWouldWrap) {
  mbtest::TempDir tmp("cliio_detok");
  put(tmp / "ids.jsonl", "{\"input_ids\": [72, 101]}\n{\"input_ids\": [4294967807]}\n");
  auto r = mbtest::run_command(mbtest::cli() + " detokenize --tokenizer " + small_tokenizer() + " --input " +
                               (tmp / "ids.jsonl") + " --output " + (tmp / "out.jsonl"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(tmp / "ids.jsonl" + ":2: field input_ids[0]: id 4294967807 outside the vocabulary"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(tmp / "out.jsonl"));
  EXPECT_EQ(temp_files(tmp.path()), 0);
  // Plain lines of ids: negative and float ids.
  put(tmp / "ids.txt", "72 101\n5 -1\n");
  r = mbtest::run_command(mbtest::cli() + " detokenize --tokenizer " + small_tokenizer() + " --input " +
                          (tmp / "ids.txt"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(tmp / "ids.txt" + ":2: ids[1]: id -1 outside the vocabulary"), std::string::npos) << r.output;
  put(tmp / "ids.txt", "72 101.0\n");
  r = mbtest::run_command(mbtest::cli() + " detokenize --tokenizer " + small_tokenizer() + " --input " +
                          (tmp / "ids.txt"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(":1: ids[1]: expected an integer token id, found '101.0'"), std::string::npos) << r.output;
}

TEST(CliTokenIds, EncodeGradAndBenchRefuseOutOfRangeIds) {
  mbtest::TempDir tmp("cliio_ids");
  const std::string model = make_model(tmp, "m", "mlm");
  put(tmp / "in.jsonl", "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [1, 4294967807, 3]}\n");
  put(tmp / "out.safetensors", "old");
  auto r = mbtest::run_command(mbtest::cli() + " encode --model " + model + " --input " + (tmp / "in.jsonl") +
                               " --output " + (tmp / "out.safetensors"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(tmp / "in.jsonl" + ":2: field input_ids[1]: id 4294967807 outside the vocabulary [0, 50368)"),
            std::string::npos)
      << r.output;
  EXPECT_EQ(slurp(tmp / "out.safetensors"), "old");

  // grad read ids through get<int32_t> (wrapping); now the same named error.
  put(tmp / "g.jsonl",
      "{\"input_ids\": [5, 6, 7], \"labels\": [-100, 6, -100]}\n"
      "{\"input_ids\": [5, -2], \"labels\": [-100, 6]}\n");
  r = mbtest::run_command(mbtest::cli() + " grad --model " + model + " --input " + (tmp / "g.jsonl") + " --output " +
                          (tmp / "g.safetensors"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(tmp / "g.jsonl" + ":2: field input_ids[1]: id -2 outside the vocabulary"), std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(tmp / "g.safetensors"));
  put(tmp / "g.jsonl", "{\"input_ids\": [5, 4294967302], \"labels\": [-100, 6]}\n");
  r = mbtest::run_command(mbtest::cli() + " grad --model " + model + " --input " + (tmp / "g.jsonl") + " --output " +
                          (tmp / "g.safetensors"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(":1: field input_ids[1]: id 4294967302 outside the vocabulary"), std::string::npos)
      << r.output;

  put(tmp / "b.jsonl", "{\"input_ids\": [5, 6]}\n{\"input_ids\": [2.5]}\n");
  r = mbtest::run_command(mbtest::cli() + " bench --model " + model + " --input " + (tmp / "b.jsonl") +
                          " --threads 1 --repeat 1 --warmup 0");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(tmp / "b.jsonl" + ":2: field input_ids[0]: expected an integer token id, found 2.5"),
            std::string::npos)
      << r.output;
}

// ---- classifier tensors ---------------------------------------------------------------------------

namespace {
// Rewrites DIR/model.safetensors with classifier.weight [rows, H] and classifier.bias [bias_rows],
// and drops id2label/label2id from the config (so that only the tensors disagree).
void set_classifier(const std::string& dir, int64_t rows, int64_t bias_rows) {
  std::string bytes = slurp(dir + "/model.safetensors");
  auto in = SafeTensorsFile::from_memory(bytes.data(), bytes.size(), "model");
  SafeTensorsWriter w;
  int64_t H = 0;
  for (const auto& t : in->tensors()) {
    if (t.name == "classifier.weight") {
      H = t.shape[1];
      continue;
    }
    if (t.name == "classifier.bias") continue;
    w.add(t.name, t.dtype, t.shape, in->data(t));
  }
  std::vector<float> wt(static_cast<size_t>(rows * H), 0.01f), b(static_cast<size_t>(bias_rows), 0.0f);
  w.add_f32("classifier.weight", {rows, H}, wt.data());
  w.add_f32("classifier.bias", {bias_rows}, b.data());
  in.reset();
  w.write(dir + "/model.safetensors");
  json cfg = json::parse(slurp(dir + "/config.json"));
  cfg.erase("id2label");
  cfg.erase("label2id");
  put(dir + "/config.json", cfg.dump(2));
}
}  // namespace

TEST(CliClassifier, ZeroRowClassifierIsRefusedAtLoadNamingTheTensor) {
  mbtest::TempDir tmp("cliio_cls0");
  const std::string model = make_model(tmp, "m", "cls:2");
  put(tmp / "in.txt", "hello world\n");
  // Sanity: the unmodified head classifies.
  auto ok = mbtest::run_command(mbtest::cli() + " classify --model " + model + " --input " + (tmp / "in.txt"));
  ASSERT_EQ(ok.status, 0) << ok.output;
  set_classifier(model, 0, 0);
  for (const std::string& cmd : {" classify --model " + model + " --input " + (tmp / "in.txt"), " info " + model}) {
    auto r = mbtest::run_command(mbtest::cli() + cmd);
    EXPECT_EQ(r.status, 1) << cmd << "\n" << r.output;
    EXPECT_NE(r.output.find("tensor 'classifier.weight' has shape [0, 64]"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("cls:0"), std::string::npos) << r.output;
  }
}

TEST(CliClassifier, MismatchedClassifierBiasIsRefusedNamingTheTensor) {
  mbtest::TempDir tmp("cliio_clsb");
  const std::string model = make_model(tmp, "m", "token:3");
  set_classifier(model, 3, 2);
  put(tmp / "in.txt", "hello world\n");
  auto r = mbtest::run_command(mbtest::cli() + " classify --tokens --model " + model + " --input " + (tmp / "in.txt"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("tensor 'classifier.bias' has shape [2], expected [3]"), std::string::npos) << r.output;
}

// ---- atomic outputs -------------------------------------------------------------------------------

TEST(AtomicOutputFile, NothingAppearsWithoutCommitAndAnOldFileSurvives) {
  mbtest::TempDir tmp("cliio_atomic");
  const std::string p = tmp / "out.bin";
  {
    AtomicOutputFile f(p);
    f.write(std::string(3u << 20, 'x'));  // larger than the write buffer: bytes reach the temp file
    EXPECT_TRUE(fs::exists(f.temp_path()));
    EXPECT_FALSE(fs::exists(p));
  }  // destroyed without commit (as when an exception unwinds)
  EXPECT_FALSE(fs::exists(p));
  EXPECT_EQ(temp_files(tmp.path()), 0);
  put(p, "old content");
  {
    AtomicOutputFile f(p);
    f.write("new");
  }
  EXPECT_EQ(slurp(p), "old content");
  {
    AtomicOutputFile f(p);
    f.write("new ");
    f.write(std::string("content"));
    f.commit();
  }
  EXPECT_EQ(slurp(p), "new content");
  EXPECT_EQ(temp_files(tmp.path()), 0);
  EXPECT_THROW(AtomicOutputFile(tmp / "no/such/dir/x"), Error);
}

TEST(AtomicOutputFile, AProcessKilledMidWriteLeavesTheOldFile) {
  mbtest::TempDir tmp("cliio_kill");
  const std::string p = tmp / "out.bin";
  put(p, "old content");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    AtomicOutputFile f(p);
    f.write(std::string(5u << 20, 'y'));
    ::kill(::getpid(), SIGKILL);  // dies between writes, before commit
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(waitpid(pid, &st, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(st));
  EXPECT_EQ(slurp(p), "old content");
}

TEST(SafeTensorsStreaming, ViewsAreWrittenFromTheCallersBuffersAndRoundTrip) {
  mbtest::TempDir tmp("cliio_st");
  std::vector<float> big(100000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<float>(i) * 0.5f - 7.0f;
  std::vector<int64_t> ids = {3, -1, 1LL << 40};
  const float scalar = 2.5f;
  SafeTensorsWriter w;
  w.set_metadata("k", "v");
  w.add_f32_view("big", {1000, 100}, big.data());
  w.add_i64_view("ids", {3}, ids.data());
  w.add_f32("scalar", {}, &scalar);  // copied
  w.add_f32_view("empty", {0, 4}, nullptr);
  w.add_f32("half", {2}, big.data() + 1, DType::kF16);

  // write_to hands the sink the caller's own buffer for a view: no copy is made.
  std::vector<const void*> chunks;
  size_t total = 0;
  w.write_to([&](const void* p, size_t n) {
    chunks.push_back(p);
    total += n;
  });
  ASSERT_EQ(chunks.size(), 5u);  // header, big, ids, scalar, half (the empty tensor has no bytes)
  EXPECT_EQ(chunks[1], static_cast<const void*>(big.data()));
  EXPECT_EQ(chunks[2], static_cast<const void*>(ids.data()));
  EXPECT_EQ(total, w.file_size());

  w.write(tmp / "s.safetensors");
  EXPECT_EQ(slurp(tmp / "s.safetensors"), w.serialize());
  auto f = SafeTensorsFile::open(tmp / "s.safetensors");
  EXPECT_EQ(f->metadata().at("k"), "v");
  EXPECT_EQ(f->at("big").shape, (std::vector<int64_t>{1000, 100}));
  EXPECT_EQ(f->to_f32("big"), big);
  EXPECT_EQ(f->to_i64("ids"), ids);
  EXPECT_EQ(f->to_f32("scalar"), std::vector<float>{2.5f});
  EXPECT_EQ(f->at("empty").numel(), 0);
  EXPECT_EQ(f->to_f32("half"), (std::vector<float>{-6.5f, -6.0f}));
  EXPECT_EQ(temp_files(tmp.path()), 0);
}

TEST(CliAtomicOutput, TokenizeWithABadThirdLineWritesNothing) {
  mbtest::TempDir tmp("cliio_tok");
  put(tmp / "in.txt", five_lines_bad_third());
  const std::string base =
      mbtest::cli() + " tokenize --tokenizer " + small_tokenizer() + " --input " + (tmp / "in.txt");
  auto r = mbtest::run_command(base + " --output " + (tmp / "new.jsonl"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(tmp / "in.txt" + ":3: "), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp / "new.jsonl"));
  put(tmp / "old.jsonl", "previous run\n");
  r = mbtest::run_command(base + " --output " + (tmp / "old.jsonl"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_EQ(slurp(tmp / "old.jsonl"), "previous run\n");
  EXPECT_EQ(temp_files(tmp.path()), 0);
  // A malformed JSON line 4 (after good lines) as well.
  put(tmp / "in.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"}\n{\"text\": 5}\n");
  r = mbtest::run_command(mbtest::cli() + " tokenize --tokenizer " + small_tokenizer() + " --input " +
                          (tmp / "in.jsonl") + " --output " + (tmp / "old.jsonl"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find(tmp / "in.jsonl" + ":4: "), std::string::npos) << r.output;
  EXPECT_EQ(slurp(tmp / "old.jsonl"), "previous run\n");
  // With --lossy-utf8 the same input succeeds and the file holds all five lines.
  r = mbtest::run_command(base + " --lossy-utf8 --output " + (tmp / "old.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  std::stringstream ss(slurp(tmp / "old.jsonl"));
  std::string line;
  int n = 0;
  while (std::getline(ss, line)) {
    EXPECT_TRUE(json::parse(line).contains("input_ids"));
    ++n;
  }
  EXPECT_EQ(n, 5);
}

TEST(CliAtomicOutput, InferenceCommandsLeaveNoPartialOrClobberedOutput) {
  mbtest::TempDir tmp("cliio_inf");
  const std::string model = make_model(tmp, "m", "mlm");
  // Line 4 is fine for the JSON parser but has no text: the failure comes after good records.
  put(tmp / "in.jsonl",
      "{\"text\": \"one [MASK]\"}\n{\"text\": \"two [MASK]\"}\n{\"text\": \"three [MASK]\"}\n"
      "{\"label\": 1}\n");
  struct Case {
    std::string cmd, out;
  };
  for (const Case& c : {Case{"encode --outputs input_ids,mlm_logits", "o.safetensors"}, Case{"embed", "o.jsonl"},
                        Case{"embed --format npy", "o.npy"}, Case{"fill-mask", "o.jsonl"}}) {
    put(tmp / c.out, "old");
    auto r = mbtest::run_command(mbtest::cli() + " " + c.cmd + " --model " + model + " --input " + (tmp / "in.jsonl") +
                                 " --output " + (tmp / c.out));
    EXPECT_EQ(r.status, 1) << c.cmd << "\n" << r.output;
    EXPECT_NE(r.output.find(tmp / "in.jsonl" + ":4: "), std::string::npos) << c.cmd << "\n" << r.output;
    EXPECT_EQ(slurp(tmp / c.out), "old") << c.cmd;
    fs::remove(tmp / c.out);
    r = mbtest::run_command(mbtest::cli() + " " + c.cmd + " --model " + model + " --input " + (tmp / "in.jsonl") +
                            " --output " + (tmp / c.out));
    EXPECT_EQ(r.status, 1);
    EXPECT_FALSE(fs::exists(tmp / c.out)) << c.cmd;
  }
  EXPECT_EQ(temp_files(tmp.path()), 0);
}

// ---- FILE:LINE and --lossy-utf8 -------------------------------------------------------------------

TEST(CliInputErrors, InvalidUtf8OnLine3IsNamedAndLossyUtf8Succeeds) {
  mbtest::TempDir tmp("cliio_utf8");
  const std::string mlm = make_model(tmp, "mlm", "mlm");
  const std::string cls = make_model(tmp, "cls", "cls:2");
  put(tmp / "in.txt", five_lines_bad_third());
  // The same text as JSON records (the JSON parser sees the bad bytes).
  put(tmp / "in.jsonl", "{\"text\": \"hello world\"}\n{\"text\": \"second\"}\n{\"text\": \"" + kBadUtf8 + "\"}\n");
  put(tmp / "mask.txt", "a [MASK] b\nc [MASK]\n[MASK] " + kBadUtf8 + "\n");
  struct Case {
    std::string cmd, input;
  };
  const std::vector<Case> cases = {
      {"encode --model " + mlm + " --output " + (tmp / "o.safetensors"), "in.txt"},
      {"encode --model " + mlm + " --output " + (tmp / "o.safetensors"), "in.jsonl"},
      {"embed --model " + mlm, "in.txt"},
      {"embed --model " + mlm, "in.jsonl"},
      {"classify --model " + cls, "in.txt"},
      {"fill-mask --model " + mlm, "mask.txt"},
      {"tokenize --tokenizer " + small_tokenizer(), "in.txt"},
      {"tokenize --tokenizer " + small_tokenizer(), "in.jsonl"},
  };
  for (const Case& c : cases) {
    const std::string base = mbtest::cli() + " " + c.cmd + " --input " + (tmp / c.input);
    // stdout is dropped; stderr (the error) is what the test reads.
    auto r = mbtest::run_command("(" + base + " > /dev/null)");
    EXPECT_EQ(r.status, 1) << c.cmd << " " << c.input << "\n" << r.output;
    EXPECT_NE(r.output.find(tmp / c.input + ":3: "), std::string::npos) << c.cmd << " " << c.input << "\n" << r.output;
    EXPECT_EQ(r.output.find("text 2"), std::string::npos) << r.output;  // no index among text records
    r = mbtest::run_command("(" + base + " --lossy-utf8 > /dev/null)");
    EXPECT_EQ(r.status, 0) << c.cmd << " " << c.input << " --lossy-utf8\n" << r.output;
  }
  // stdin is named <stdin>.
  auto r = mbtest::run_command(mbtest::cli() + " embed --model " + mlm + " < " + (tmp / "in.txt"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("<stdin>:3: "), std::string::npos) << r.output;
}

TEST(CliInputErrors, EvalBaselineBenchFinetuneNameTheLineAndTakeLossyUtf8) {
  mbtest::TempDir tmp("cliio_eval");
  const std::string cls = make_model(tmp, "cls", "cls:2");
  const std::string data =
      "{\"text\": \"good movie\", \"label\": 1}\n{\"text\": \"bad movie\", \"label\": 0}\n"
      "{\"text\": \"" +
      kBadUtf8 + "\", \"label\": 1}\n{\"text\": \"fine\", \"label\": 0}\n";
  fs::create_directory(tmp / "d");
  for (const char* split : {"train", "dev", "test"}) put(tmp / ("d/" + std::string(split) + ".jsonl"), data);
  put(tmp / "b.jsonl", "{\"text\": \"hello\"}\n{\"text\": \"world\"}\n{\"text\": \"" + kBadUtf8 + "\"}\n");
  struct Case {
    std::string cmd, file;
  };
  const std::vector<Case> cases = {
      {"eval --task classification --model " + cls + " --data " + (tmp / "d/test.jsonl") + " --quiet",
       tmp / "d/test.jsonl"},
      {"baseline --task classification --data " + (tmp / "d") + " --min-df 1 --quiet", tmp / "d/train.jsonl"},
      {"bench --model " + cls + " --input " + (tmp / "b.jsonl") + " --threads 1 --repeat 1 --warmup 0",
       tmp / "b.jsonl"},
      {"finetune --task classification --model " + cls + " --train " + (tmp / "d/train.jsonl") + " --dev " +
           (tmp / "d/dev.jsonl") + " --out " + (tmp / "ft") + " --epochs 1 --quiet",
       tmp / "d/train.jsonl"},
  };
  for (const Case& c : cases) {
    auto r = mbtest::run_command("(" + mbtest::cli() + " " + c.cmd + " > /dev/null)");
    EXPECT_EQ(r.status, 1) << c.cmd << "\n" << r.output;
    EXPECT_NE(r.output.find(c.file + ":3: "), std::string::npos) << c.cmd << "\n" << r.output;
    r = mbtest::run_command("(" + mbtest::cli() + " " + c.cmd + " --lossy-utf8 > /dev/null)");
    EXPECT_EQ(r.status, 0) << c.cmd << " --lossy-utf8\n" << r.output;
  }
}
