// `mpirun -np N modernbert embed` (#16 point 5): each rank embeds a share of the inputs and rank 0
// writes one output, compared BYTE FOR BYTE (cmp) with one process's output, for .npy, JSONL on
// stdout from stdin, and PyLate ColBERT vectors; the inputs mix every kind embed reads. A bad input
// in rank 1's share ends every rank within bounded time with a message naming the rank and the
// line. Every run uses --threads 1 per process (inference is bitwise equal for the same thread
// count, GEMM backend and batch composition: docs/training.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "hf_layout_fixtures.h"
#include "modernbert/distributed.h"
#include "modernbert/file_io.h"
#include "mpi_util.h"
#include "test_util.h"

using nlohmann::json;

namespace {

#define MB_REQUIRE_MPI() \
  if (!modernbert::mpi_built_in()) GTEST_SKIP() << "built without MPI (-DMODERNBERT_MPI=OFF)"

std::string write(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// Where the data of a .npy file (format 1.0) starts: 10 bytes, then the header of the length at 8.
size_t npy_data_offset(const std::string& npy) {
  EXPECT_GT(npy.size(), 10u);
  return npy.size() > 10 ? 10 + (static_cast<unsigned char>(npy[8]) | static_cast<unsigned char>(npy[9]) << 8) : 0;
}

bool exists(const std::string& path) { return std::ifstream(path).good(); }

// A tiny MLM model with the real tokenizer.
std::string make_model(const mbtest::TempDir& tmp) {
  const std::string dir = tmp / "m";
  auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 21 --heads mlm --out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  mbtest::run_command("cp " + mbtest::tokenizer_json() + " " + dir + "/");
  return dir;
}

// 60 inputs of 1..300 words (about 9000 tokens, so --max-batch-tokens 2000 makes batches of many
// inputs that straddle every rank's share), mixing every input kind: JSONL text, plain lines,
// input_ids, text pairs (unless !pairs: --colbert refuses them), blank lines (skipped, but counted in line numbers) and
// a CRLF line.
std::string corpus(int items, bool pairs = true) {
  static const char* words[] = {"the",  "quick",     "brown",  "fox",   "jumps", "over",    "lazy",  "dog",
                                "rope", "attention", "tokens", "batch", "rank",  "ünïcode", "日本語"};
  uint64_t h = 12345;
  auto next = [&] { return (h = h * 6364136223846793005ULL + 1442695040888963407ULL) >> 33; };
  std::string out;
  for (int i = 0; i < items; ++i) {
    std::string text;
    const int n = 1 + static_cast<int>(next() % 300);
    for (int w = 0; w < n; ++w) text += std::string(w ? " " : "") + words[next() % 15];
    if (i % 11 == 5) out += "\n  \n";
    if (i % 7 == 3) {
      out += text + "\n";  // a plain line
    } else if (i % 7 == 4) {
      json ids = json::array({50281});
      for (int t = 0; t < n; ++t) ids.push_back(1000 + static_cast<int>(next() % 40000));
      ids.push_back(50282);
      out += json({{"input_ids", ids}}).dump() + "\n";
    } else if (i % 7 == 5 && pairs) {
      out += json({{"text", text}, {"text_pair", "a second text of the pair"}}).dump() + "\n";
    } else if (i % 13 == 6) {
      out += json({{"text", text}}).dump() + "\r\n";
    } else {
      out += json({{"text", text}}).dump() + "\n";
    }
  }
  return out;
}

// The non-blank lines of a corpus [first, last) as a corpus of their own.
std::string items_of(const std::string& text, size_t first, size_t last) {
  std::string out, line;
  std::istringstream in(text);
  size_t k = 0;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (k >= first && k < last) out += line + "\n";
    ++k;
  }
  return out;
}

std::string embed(const std::string& model, const std::string& flags) {
  return mbtest::cli() + " embed --model " + model + " --threads 1 --max-batch-tokens 2000 " + flags;
}

// Files in dir other than `expected` (an MPI run must leave only rank 0's one output).
std::vector<std::string> other_files(const std::string& dir, const std::vector<std::string>& expected) {
  auto r = mbtest::run_command("ls -A '" + dir + "'");
  std::vector<std::string> extra;
  std::istringstream in(r.output);
  std::string name;
  while (std::getline(in, name))
    if (std::find(expected.begin(), expected.end(), name) == expected.end()) extra.push_back(name);
  return extra;
}

}  // namespace

TEST(DistributedEmbed, NpyAndJsonlEqualOneProcessByteForByte) {
  MB_REQUIRE_MPI();
  mbtest::TempDir tmp("dembed");
  const std::string model = make_model(tmp);
  const std::string text = corpus(60);
  const std::string in = write(tmp / "in.jsonl", text);
  const std::string out_dir = tmp / "out";
  mbtest::run_command("mkdir -p " + out_dir);

  // One process: .npy and JSONL.
  auto r = mbtest::run_command(embed(model, "--input " + in + " --format npy --output " + tmp / "one.npy"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = mbtest::run_command(embed(model, "--input " + in + " --output " + tmp / "one.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(mbtest::jsonl(modernbert::read_file(tmp / "one.jsonl")).size(), 60u);

  // The batches matter: rank 1's share of 2 ranks (inputs 30..59) embedded on its own, as a naive
  // split would, differs from the same rows of the whole run (other batch boundaries, other GEMM
  // blocking). So equality below is not an accident of this model.
  write(tmp / "tail.jsonl", items_of(text, 30, 60));
  r = mbtest::run_command(embed(model, "--input " + tmp / "tail.jsonl" + " --format npy --output " + tmp / "tail.npy"));
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string one = modernbert::read_file(tmp / "one.npy"), tail = modernbert::read_file(tmp / "tail.npy");
  const size_t h1 = npy_data_offset(one), ht = npy_data_offset(tail);
  ASSERT_EQ(one.size() - h1, 2 * (tail.size() - ht));  // 60 vs 30 rows
  EXPECT_NE(std::memcmp(one.data() + h1 + (one.size() - h1) / 2, tail.data() + ht, tail.size() - ht), 0)
      << "embedding inputs 30..59 alone gives the same bytes: the test corpus does not exercise batch alignment";

  // 3 ranks, .npy to a file: byte-identical, nothing printed, nothing else written. One batch per
  // round (a test hook; 8 by default), so that the ranks run several rounds, not all equally many.
  r = mbtest::run_command("MODERNBERT_TEST_EMBED_ROUND_BATCHES=1 " + mb_test::mpirun(3) +
                          embed(model, "--input " + in + " --format npy --output " + out_dir + "/three.npy"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "") << "progress or logging from an MPI run";
  EXPECT_EQ(mbtest::run_command("cmp " + tmp / "one.npy" + " " + out_dir + "/three.npy").status, 0);
  // 2 ranks, JSONL from stdin (rank 0 reads it and broadcasts) to stdout (rank 0 writes it).
  r = mbtest::run_command("(" + mb_test::mpirun(2) + embed(model, "--input - --output -") + " < " + in + " > " +
                          out_dir + "/two.jsonl)");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(mbtest::run_command("cmp " + tmp / "one.jsonl" + " " + out_dir + "/two.jsonl").status, 0);
  EXPECT_EQ(other_files(out_dir, {"three.npy", "two.jsonl"}), std::vector<std::string>{});

  // More ranks than batches: 2 inputs at 3 ranks (rank 2's share is empty, rank 1's lies inside
  // rank 0's batch).
  const std::string in2 = write(tmp / "in2.jsonl", items_of(text, 0, 2));
  r = mbtest::run_command(embed(model, "--input " + in2 + " --format npy --output " + tmp / "one2.npy"));
  ASSERT_EQ(r.status, 0) << r.output;
  r = mbtest::run_command(mb_test::mpirun(3) +
                          embed(model, "--input " + in2 + " --format npy --output " + tmp / "three2.npy"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(mbtest::run_command("cmp " + tmp / "one2.npy" + " " + tmp / "three2.npy").status, 0);
}

TEST(DistributedEmbed, ColbertDocumentVectorsEqualOneProcessByteForByte) {
  MB_REQUIRE_MPI();
  mbtest::TempDir tmp("dembedcb");
  // The PyLate stand-in: [D] prefix, document length, skiplist (which token vectors are kept is
  // decided per input, and must travel with its input's share).
  const std::string model = tmp / "colbert";
  ASSERT_TRUE(mbtest::hf::write_fixture("lightonai/GTE-ModernColBERT-v1", model));
  std::string text;
  for (const std::string& line :
       {std::string("{\"text\": \"Punctuation, commas; and: stops.\"}"), std::string("plain line, with a comma"),
        std::string("{\"input_ids\": [50281, 50369, 510, 15, 50282]}")})
    text += line + "\n";
  text += items_of(corpus(30, false), 0, 30);
  const std::string in = write(tmp / "in.jsonl", text);
  auto r = mbtest::run_command(embed(model, "--colbert --input " + in + " --output " + tmp / "one.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(mbtest::jsonl(modernbert::read_file(tmp / "one.jsonl")).size(), 33u);
  r = mbtest::run_command(mb_test::mpirun(3) +
                          embed(model, "--colbert --input " + in + " --output " + tmp / "three.jsonl"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(mbtest::run_command("cmp " + tmp / "one.jsonl" + " " + tmp / "three.jsonl").status, 0);
}

TEST(DistributedEmbed, BadInputInRank1ShareNamesRankAndLineAndEndsEveryRank) {
  MB_REQUIRE_MPI();
  mbtest::TempDir tmp("dembedbad");
  const std::string model = make_model(tmp);
  // 40 plain lines; at 2 ranks rank 1 holds inputs 20..39 (lines 21..40). Line 31 is invalid UTF-8
  // (a tokenizer error); at 3 ranks, line 35 (input 34, rank 2's share 27..39) holds an id outside
  // the vocabulary (a parse error).
  std::string text;
  for (int i = 1; i <= 40; ++i)
    text += i == 31 ? std::string("bad \xff\xfe bytes\n") : "line number " + std::to_string(i) + "\n";
  const std::string in = write(tmp / "in.txt", text);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = mbtest::run_command(mb_test::mpirun(2) +
                               embed(model, "--input " + in + " --format npy --output " + tmp / "out.npy"));
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(wall, 60.0) << r.output;
  EXPECT_NE(r.output.find("modernbert: rank 1 of 2: modernbert embed: error: " + in + ":31: invalid UTF-8"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(exists(tmp / "out.npy"));

  std::string text3;
  for (int i = 1; i <= 40; ++i)
    text3 += i == 35 ? std::string("{\"input_ids\": [50281, 99999999, 50282]}\n")
                     : "line number " + std::to_string(i) + "\n";
  const std::string in3 = write(tmp / "in3.txt", text3);
  const auto t1 = std::chrono::steady_clock::now();
  r = mbtest::run_command(mb_test::mpirun(3) + embed(model, "--input " + in3 + " --output " + tmp / "out.jsonl"));
  const double wall3 = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_LT(wall3, 60.0) << r.output;
  EXPECT_NE(r.output.find("modernbert: rank 2 of 3: modernbert embed: error: " + in3 + ":35: field input_ids"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(exists(tmp / "out.jsonl"));
  // Nothing left behind by any rank (no temporary output files).
  EXPECT_EQ(other_files(tmp.path(), {"m", "in.txt", "in3.txt"}), std::vector<std::string>{});
}

TEST(DistributedEmbed, RanksThatReadDifferentInputsRefuse) {
  MB_REQUIRE_MPI();
  mbtest::TempDir tmp("dembeddiff");
  const std::string model = make_model(tmp);
  const std::string a = write(tmp / "a.txt", "one\ntwo\nthree\n"), b = write(tmp / "b.txt", "one\ntwo\nthree!\n");
  // Two application contexts of one job (MPMD): rank 0 reads a.txt, rank 1 b.txt, as ranks on hosts
  // without a shared file system might.
  const std::string prefix = mb_test::mpirun(1);
  auto r = mbtest::run_command(prefix + embed(model, "--input " + a + " --output " + tmp / "o.jsonl") + " : -np 1 " +
                               embed(model, "--input " + b + " --output " + tmp / "o.jsonl"));
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("every rank must read the same input"), std::string::npos) << r.output;
  EXPECT_FALSE(exists(tmp / "o.jsonl"));
}
