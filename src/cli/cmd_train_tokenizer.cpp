// `modernbert train-tokenizer`: learn a byte-level BPE tokenizer.json with ModernBERT's pipeline.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/tokenizer.h"

namespace modernbert::cli {
namespace {

// Temporary file in the destination directory + fsync + rename: readers never see a partial file.
void write_atomically(const std::filesystem::path& path, const std::string& data) {
  write_file_atomic(path.string(), data);
}

int run(int argc, char** argv) {
  ArgParser args("train-tokenizer", "--input FILES --vocab-size N --out DIR [FLAGS]",
                 "Learns a byte-level BPE tokenizer with ModernBERT's pre-tokenization (NFC +\n"
                 "ByteLevel GPT-2 regex, space runs of 2..24 as added tokens) and writes\n"
                 "DIR/tokenizer.json (Hugging Face format) with <|endoftext|>, <|padding|>, [UNK],\n"
                 "[CLS], [SEP], [PAD], [MASK] (lstrip) and [unusedK] padding to a multiple of 64.\n"
                 "Inputs: .jsonl files (one document per line, field --field) or plain text files\n"
                 "(one document per line).");
  args.option("input", "FILES", "comma-separated input files");
  args.option("vocab-size", "N",
              "BPE vocabulary size (bytes, merges, <|endoftext|>, <|padding|>, space runs); the 5 BERT\n"
              "      specials and [unusedK] padding to a multiple of 64 are added on top");
  args.option("out", "DIR", "output directory (created if needed)");
  args.option("field", "NAME", "JSON field holding the text in .jsonl inputs", "text");
  args.option("min-frequency", "N", "minimum pair count for a merge", "2");
  args.option("threads", "N", "threads for counting words (0 = all cores)", "0");
  args.option("limit", "N", "use only the first N documents (0 = all)", "0");
  args.flag("verbose", "print progress");
  if (!args.parse(argc, argv)) return 0;
  auto files = split_commas(args.require("input"));
  if (files.empty()) throw Error("--input names no file");
  long long vs = args.get_int("vocab-size");
  if (vs <= 0) throw Error("--vocab-size must be positive");
  long long minf = args.get_int("min-frequency"), threads = args.get_int("threads"), limit = args.get_int("limit");
  if (minf < 1 || threads < 0 || limit < 0) throw Error("--min-frequency >= 1, --threads and --limit >= 0");
  std::string out_dir = args.require("out"), field = args.get("field");

  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::string> texts;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw Error("cannot open input " + f);
    bool jsonl = f.size() >= 6 && f.substr(f.size() - 6) == ".jsonl";
    std::string line;
    std::size_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (limit && texts.size() >= static_cast<std::size_t>(limit)) break;
      if (!jsonl) {
        texts.push_back(line);
        continue;
      }
      if (line.empty()) continue;
      try {
        auto j = nlohmann::json::parse(line);
        auto it = j.find(field);
        if (it == j.end() || !it->is_string()) throw Error("no string field \"" + field + "\"");
        texts.push_back(it->get<std::string>());
      } catch (const std::exception& e) {
        throw Error(f + ": line " + std::to_string(n) + ": " + e.what());
      }
    }
  }
  BpeTrainerOptions o;
  o.vocab_size = static_cast<std::size_t>(vs);
  o.min_frequency = static_cast<std::size_t>(minf);
  o.num_threads = static_cast<unsigned>(threads);
  o.verbose = args.has("verbose");
  BpeTrainerStats st;
  std::string json = train_bpe_tokenizer(texts, o, &st);
  std::filesystem::create_directories(out_dir);
  std::filesystem::path dest = std::filesystem::path(out_dir) / "tokenizer.json";
  write_atomically(dest, json);
  double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr,
               "train-tokenizer: %zu documents, %zu distinct words, %zu merges, vocab %zu -> %s\n"
               "  counting %.2f s, merging %.2f s, total %.2f s\n",
               texts.size(), st.num_words, st.num_merges, st.vocab_size, dest.c_str(), st.count_seconds,
               st.merge_seconds, total);
  return 0;
}

CommandRegistrar reg({"train-tokenizer", "learn a byte-level BPE tokenizer.json (ModernBERT layout)", run});

}  // namespace
}  // namespace modernbert::cli
