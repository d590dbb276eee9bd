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
#include "modernbert/error.h"
#include "modernbert/tokenizer.h"

namespace modernbert::cli {
namespace {

std::string tokenizer_path(const ArgParser& args) {
  if (args.has("tokenizer") && args.has("model"))
    throw Error("give either --tokenizer or --model, not both");
  if (args.has("tokenizer")) return args.get("tokenizer");
  if (args.has("model")) return args.get("model") + "/tokenizer.json";
  throw Error("missing --tokenizer FILE or --model DIR");
}

struct Streams {
  std::istream* in = &std::cin;
  std::ostream* out = &std::cout;
  std::unique_ptr<std::ifstream> fin;
  std::unique_ptr<std::ofstream> fout;
  Streams(const ArgParser& args) {
    if (args.has("input") && args.get("input") != "-") {
      fin = std::make_unique<std::ifstream>(args.get("input"), std::ios::binary);
      if (!*fin) throw Error("cannot open input file " + args.get("input"));
      in = fin.get();
    }
    if (args.has("output") && args.get("output") != "-") {
      fout = std::make_unique<std::ofstream>(args.get("output"), std::ios::binary);
      if (!*fout) throw Error("cannot open output file " + args.get("output"));
      out = fout.get();
    }
  }
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
  Streams io(args);

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
        nlohmann::json j;
        try {
          j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
          throw Error("line " + std::to_string(line_no) + ": invalid JSON: " + e.what());
        }
        auto t = j.find("text");
        if (t == j.end() || !t->is_string())
          throw Error("line " + std::to_string(line_no) + ": JSON object has no string field \"text\"");
        auto p = j.find("text_pair");
        std::string second;
        bool pair = p != j.end() && !p->is_null();
        if (pair) {
          if (!p->is_string())
            throw Error("line " + std::to_string(line_no) + ": \"text_pair\" is not a string");
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
    auto rethrow_with_line = [&](const Error& e, const std::vector<std::size_t>& idx) {
      // Messages from encode_batch start with "text K: "; map K back to the input line.
      std::string msg = e.what();
      std::size_t k = 0;
      if (msg.rfind("text ", 0) == 0) {
        k = std::stoul(msg.substr(5));
        msg = msg.substr(msg.find(':') + 2);
      }
      throw Error("line " + std::to_string(lines[idx[k]]) + ": " + msg);
    };
    try {
      auto r = tk.encode_batch(singles, opts, static_cast<unsigned>(threads));
      for (std::size_t i = 0; i < r.size(); ++i) encs[single_idx[i]] = std::move(r[i]);
    } catch (const Error& e) {
      rethrow_with_line(e, single_idx);
    }
    try {
      auto r = tk.encode_batch_pairs(pairs, opts, static_cast<unsigned>(threads));
      for (std::size_t i = 0; i < r.size(); ++i) encs[pair_idx[i]] = std::move(r[i]);
    } catch (const Error& e) {
      rethrow_with_line(e, pair_idx);
    }
    std::string out;
    for (std::size_t i = 0; i < encs.size(); ++i) {
      const Encoding& e = encs[i];
      if (max_len > 0 && !opts.max_length && e.size() > static_cast<std::size_t>(max_len))
        throw Error("line " + std::to_string(lines[i]) + ": " + std::to_string(e.size()) +
                    " tokens exceed --max-length " + std::to_string(max_len) +
                    " (add --truncate to truncate)");
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
    io.out->write(out.data(), static_cast<std::streamsize>(out.size()));
    if (!*io.out) throw Error("write error on output");
  }
  io.out->flush();
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
  Streams io(args);
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(*io.in, line)) {
    ++line_no;
    std::vector<std::int32_t> ids;
    try {
      if (!line.empty() && line[0] == '{') {
        auto j = nlohmann::json::parse(line);
        auto it = j.find("input_ids");
        if (it == j.end() || !it->is_array()) throw Error("no \"input_ids\" array");
        for (const auto& v : *it) {
          if (!v.is_number_integer()) throw Error("\"input_ids\" holds a non-integer");
          ids.push_back(v.get<std::int32_t>());
        }
      } else {
        std::size_t i = 0;
        while (i < line.size()) {
          while (i < line.size() && (line[i] == ' ' || line[i] == ',' || line[i] == '\t' || line[i] == '\r')) ++i;
          if (i >= line.size()) break;
          std::size_t used = 0;
          long long v = std::stoll(line.substr(i), &used);
          if (v < 0 || v > INT32_MAX) throw Error("id out of range");
          ids.push_back(static_cast<std::int32_t>(v));
          i += used;
        }
      }
    } catch (const std::exception& e) {
      throw Error("line " + std::to_string(line_no) + ": " + e.what());
    }
    nlohmann::json o;
    o["text"] = tk.decode(ids, args.has("skip-special"));
    *io.out << o.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  io.out->flush();
  return 0;
}

CommandRegistrar reg_tokenize({"tokenize", "tokenize text to ids and byte offsets (JSONL)", run_tokenize});
CommandRegistrar reg_detokenize({"detokenize", "decode token ids back to text (JSONL)", run_detokenize});

}  // namespace
}  // namespace modernbert::cli
