// `modernbert tokenize`: text (JSONL or plain lines) -> JSONL of input_ids and UTF-8 byte offsets.
// `modernbert detokenize`: JSONL with input_ids (or lines of ids) -> JSONL {"text": ...}.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "cli/infer_common.h"
#include "modernbert/error.h"
#include "modernbert/token_ids.h"
#include "modernbert/tokenizer.h"
#include "tokenizer/unicode.h"

namespace modernbert::cli {
namespace {

std::string tokenizer_path(const ArgParser& args) {
  if (args.has("tokenizer") && args.has("model")) throw Error("give either --tokenizer or --model, not both");
  if (args.has("tokenizer")) return args.get("tokenizer");
  if (args.has("model")) return args.get("model") + "/tokenizer.json";
  throw Error("missing --tokenizer FILE or --model DIR");
}

// Input stream and its name for errors ("<stdin>" or the file).
struct Input {
  std::istream* in = &std::cin;
  std::string name = "<stdin>";
  std::unique_ptr<std::ifstream> fin;
  explicit Input(const ArgParser& args) {
    if (args.has("input") && args.get("input") != "-") {
      name = args.get("input");
      fin = std::make_unique<std::ifstream>(name, std::ios::binary);
      if (!*fin) throw Error("cannot open input file " + name);
      in = fin.get();
    }
  }
  std::string at(std::size_t line) const { return name + ":" + std::to_string(line); }
};

void append_int(std::string& s, long long v) {
  char buf[24];
  int n = std::snprintf(buf, sizeof buf, "%lld", v);
  s.append(buf, static_cast<std::size_t>(n));
}

int run_tokenize(int argc, char** argv) {
  ArgParser args("tokenize", "[--tokenizer FILE | --model DIR] [--input FILE] [--output FILE] [FLAGS]",
                 "Tokenizes text with a Hugging Face tokenizer.json. Input: one item per line,\n"
                 "either a JSON object {\"text\": ..., \"text_pair\": ...(optional)} (a line starting\n"
                 "with '{') or a plain line of text. Output: one JSON object per input line,\n"
                 "{\"input_ids\": [...], \"offsets\": [[start, end], ...]} with UTF-8 byte offsets into\n"
                 "the text ([0, 0] for special tokens added by the post-processor).");
  args.option("tokenizer", "FILE", "tokenizer.json to use");
  args.option("model", "DIR", "model directory holding tokenizer.json");
  args.option("input", "FILE", "input file ('-' = stdin)", "-");
  args.option("output", "FILE", "output file ('-' = stdout)", "-");
  args.flag("no-special", "do not add the post-processor's special tokens ([CLS], [SEP])");
  args.option("max-length", "N", "maximum number of tokens per item (error if exceeded, unless --truncate)");
  args.flag("truncate", "truncate to --max-length (longest first for pairs)");
  args.flag("lossy-utf8", "replace invalid UTF-8 with U+FFFD instead of failing");
  args.option("threads", "N", "encoding threads (0 = all cores)", "0");
  if (!args.parse(argc, argv)) return 0;

  Tokenizer tk = Tokenizer::from_file(tokenizer_path(args));
  EncodeOptions opts;
  opts.add_special_tokens = !args.has("no-special");
  opts.lossy_utf8 = args.has("lossy-utf8");
  long long max_len = args.get_int_or("max-length", 0);
  if (args.has("max-length") && max_len <= 0) throw Error("--max-length must be positive");
  if (args.has("truncate")) {
    if (!args.has("max-length")) throw Error("--truncate needs --max-length N");
    opts.max_length = static_cast<std::size_t>(max_len);
  }
  long long threads = args.get_int("threads");
  if (threads < 0) throw Error("--threads must be >= 0");
  Input io(args);
  // The output file appears only once every line has been encoded (commit below).
  Output output(args.get("output"));

  // Read and encode in blocks so that large inputs stream with bounded memory.
  const std::size_t kBlock = 4096;
  std::size_t line_no = 0;
  std::string line;
  bool eof = false;
  while (!eof) {
    std::vector<std::pair<std::string, std::string>> items;
    std::vector<std::size_t> lines;
    std::vector<char> is_pair;
    while (items.size() < kBlock) {
      if (!std::getline(*io.in, line)) {
        eof = true;
        break;
      }
      ++line_no;
      if (!line.empty() && line[0] == '{') {
        // JSON cannot carry invalid UTF-8; with --lossy-utf8 it is replaced before parsing.
        if (opts.lossy_utf8 && tok::utf8_first_invalid(line) != std::string::npos)
          line = tok::utf8_lossy(line, nullptr);
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          throw Error(io.at(line_no) + ": invalid JSON: " + e.what());
        }
        auto t = j.find("text");
        if (t == j.end() || !t->is_string()) throw Error(io.at(line_no) + ": JSON object has no string field \"text\"");
        auto p = j.find("text_pair");
        std::string second;
        bool pair = p != j.end() && !p->is_null();
        if (pair) {
          if (!p->is_string()) throw Error(io.at(line_no) + ": \"text_pair\" is not a string");
          second = p->get<std::string>();
        }
        items.emplace_back(t->get<std::string>(), std::move(second));
        is_pair.push_back(pair);
      } else {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        items.emplace_back(line, std::string());
        is_pair.push_back(0);
      }
      lines.push_back(line_no);
    }
    if (items.empty()) break;
    std::vector<Encoding> encs(items.size());
    // Encode singles and pairs in one parallel pass: a pair item goes through encode_pair.
    std::vector<std::string> singles;
    std::vector<std::size_t> single_idx, pair_idx;
    std::vector<std::pair<std::string, std::string>> pairs;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (is_pair[i]) {
        pair_idx.push_back(i);
        pairs.push_back(std::move(items[i]));
      } else {
        single_idx.push_back(i);
        singles.push_back(std::move(items[i].first));
      }
    }
    try {
      auto r = tk.encode_batch(singles, opts, static_cast<unsigned>(threads));
      for (std::size_t i = 0; i < r.size(); ++i) encs[single_idx[i]] = std::move(r[i]);
    } catch (const Error& e) {
      rethrow_tokenizer_error(e, [&](std::size_t k) { return io.at(lines.at(single_idx.at(k))); });
    }
    try {
      auto r = tk.encode_batch_pairs(pairs, opts, static_cast<unsigned>(threads));
      for (std::size_t i = 0; i < r.size(); ++i) encs[pair_idx[i]] = std::move(r[i]);
    } catch (const Error& e) {
      rethrow_tokenizer_error(e, [&](std::size_t k) { return io.at(lines.at(pair_idx.at(k))); });
    }
    std::string out;
    for (std::size_t i = 0; i < encs.size(); ++i) {
      const Encoding& e = encs[i];
      if (max_len > 0 && !opts.max_length && e.size() > static_cast<std::size_t>(max_len))
        throw Error(io.at(lines[i]) + ": " + std::to_string(e.size()) + " tokens exceed --max-length " +
                    std::to_string(max_len) + " (add --truncate to truncate)");
      out += "{\"input_ids\": [";
      for (std::size_t k = 0; k < e.ids.size(); ++k) {
        if (k) out += ", ";
        append_int(out, e.ids[k]);
      }
      out += "], \"offsets\": [";
      for (std::size_t k = 0; k < e.offsets.size(); ++k) {
        if (k) out += ", ";
        out += '[';
        append_int(out, static_cast<long long>(e.offsets[k].first));
        out += ", ";
        append_int(out, static_cast<long long>(e.offsets[k].second));
        out += ']';
      }
      out += "]}\n";
    }
    output.write(out);
  }
  if (io.in->bad()) throw Error(io.name + ": read error");
  output.commit();
  return 0;
}

int run_detokenize(int argc, char** argv) {
  ArgParser args("detokenize", "[--tokenizer FILE | --model DIR] [--input FILE] [--output FILE]",
                 "Decodes token ids back to text. Input: one item per line, either a JSON object\n"
                 "with \"input_ids\" (as `modernbert tokenize` writes) or ids separated by spaces or\n"
                 "commas. Output: {\"text\": ...} per line.");
  args.option("tokenizer", "FILE", "tokenizer.json to use");
  args.option("model", "DIR", "model directory holding tokenizer.json");
  args.option("input", "FILE", "input file ('-' = stdin)", "-");
  args.option("output", "FILE", "output file ('-' = stdout)", "-");
  args.flag("skip-special", "drop special tokens ([CLS], [SEP], [MASK], ...)");
  if (!args.parse(argc, argv)) return 0;
  Tokenizer tk = Tokenizer::from_file(tokenizer_path(args));
  const auto vocab = static_cast<std::int64_t>(tk.vocab_size());
  Input io(args);
  Output output(args.get("output"));  // the file appears only if every line decodes
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(*io.in, line)) {
    ++line_no;
    const std::string where = io.at(line_no);
    std::vector<std::int32_t> ids;
    if (!line.empty() && line[0] == '{') {
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        throw Error(where + ": invalid JSON: " + e.what());
      }
      if (!j.is_object() || !j.contains("input_ids")) throw Error(where + ": no \"input_ids\" array");
      ids = parse_token_ids(j["input_ids"], vocab, where + ": field input_ids", /*allow_empty=*/true);
    } else {
      ids = parse_token_id_line(line, vocab, where + ": ids");
    }
    nlohmann::json o;
    o["text"] = tk.decode(ids, args.has("skip-special"));
    output.write(o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }
  if (io.in->bad()) throw Error(io.name + ": read error");
  output.commit();
  return 0;
}

CommandRegistrar reg_tokenize({"tokenize", "tokenize text to ids and byte offsets (JSONL)", run_tokenize});
CommandRegistrar reg_detokenize({"detokenize", "decode token ids back to text (JSONL)", run_detokenize});

}  // namespace
}  // namespace modernbert::cli
