#include "cli/infer_common.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "kernels/backend.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/token_ids.h"
#include "tokenizer/unicode.h"

namespace modernbert::cli {

using nlohmann::json;

bool is_blank_input_line(const std::string& line) { return line.find_first_not_of(" \t") == std::string::npos; }

InputRecord parse_input_line(std::string line, const std::string& label, size_t lineno, int64_t vocab_size,
                             bool lossy_utf8) {
  InputRecord r;
  r.source = label;
  r.line = lineno;
  auto where = [&] { return r.where() + ": "; };
  const size_t first = line.find_first_not_of(" \t");
  if (first != std::string::npos && line[first] == '{') {
    // The JSON parser rejects invalid UTF-8 (an error naming the line); with --lossy-utf8 it is
    // replaced first, as the tokenizer would replace it in a plain line.
    if (lossy_utf8 && tok::utf8_first_invalid(line) != std::string::npos) line = tok::utf8_lossy(line, nullptr);
    json j;
    try {
      j = json::parse(line);
    } catch (const std::exception& e) {
      throw Error(where() + "malformed JSON: " + e.what());
    }
    if (j.contains("input_ids")) {
      r.ids = parse_token_ids(j["input_ids"], vocab_size, r.where() + ": field input_ids");
      r.has_ids = true;
    } else if (j.contains("text")) {
      if (!j["text"].is_string()) throw Error(where() + "\"text\" must be a string");
      r.text = j["text"].get<std::string>();
      if (j.contains("text_pair") && !j["text_pair"].is_null()) {
        if (!j["text_pair"].is_string()) throw Error(where() + "\"text_pair\" must be a string");
        r.text_pair = j["text_pair"].get<std::string>();
        r.has_pair = true;
      }
    } else {
      throw Error(where() + "expected an object with \"text\" or \"input_ids\"");
    }
    r.extra = std::move(j);
  } else {
    r.text = std::move(line);
  }
  if (!r.has_ids && r.text.find_first_not_of(" \t\r\n") == std::string::npos && !r.has_pair)
    throw Error(where() + "empty text");
  return r;
}

std::vector<InputRecord> read_inputs(std::istream& in, const std::string& label, int64_t vocab_size, bool lossy_utf8) {
  std::vector<InputRecord> out;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (is_blank_input_line(line)) continue;  // blank lines separate nothing
    out.push_back(parse_input_line(std::move(line), label, lineno, vocab_size, lossy_utf8));
  }
  if (in.bad()) throw Error(label + ": read error");
  if (out.empty()) throw Error(label + ": no input (empty file)");
  return out;
}

std::vector<InputRecord> read_inputs_from(const std::string& path, int64_t vocab_size, bool lossy_utf8) {
  if (path == "-") return read_inputs(std::cin, "<stdin>", vocab_size, lossy_utf8);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open input");
  return read_inputs(in, path, vocab_size, lossy_utf8);
}

void rethrow_tokenizer_error(const std::exception& e, const std::function<std::string(size_t)>& where_of) {
  // Tokenizer::encode_batch reports the failing text's index in the batch (BatchItemError).
  const auto* item = dynamic_cast<const BatchItemError*>(&e);
  std::string msg = item ? item->detail() : std::string(e.what());
  // The library's hint names its option; on the command line it is a flag.
  if (const size_t h = msg.find("use lossy mode"); h != std::string::npos) msg.replace(h, 14, "use --lossy-utf8");
  if (item) throw Error(where_of(item->index()) + ": " + msg);
  throw Error(std::string("tokenizing input: ") + msg);
}

void add_common_flags(ArgParser& a, bool with_output) {
  a.option("model", "DIR", "model directory (config.json, model.safetensors, tokenizer.json)");
  a.option("input", "FILE",
           "input: JSONL {\"text\"[, \"text_pair\"]} | {\"input_ids\": [...]} or plain lines ('-' = stdin)", "-");
  if (with_output) a.option("output", "FILE", "output file ('-' = stdout)", "-");
  a.flag("truncate", "truncate inputs longer than max_position_embeddings instead of failing");
  a.flag("lossy-utf8", "replace invalid UTF-8 in the input with U+FFFD instead of failing");
  a.option("max-batch-tokens", "N", "token budget of one unpadded batch", "16384");
  a.option("threads", "N", "compute threads (default: all cores)");
  a.option("dtype", "TYPE",
           "weights and compute: f32 | bf16 | f16 | int8 (default: f32, or the type of a checkpoint written by "
           "'modernbert quantize'; docs/precision.md)");
}

std::optional<Precision> dtype_option(const ArgParser& a) {
  if (!a.has("dtype")) return std::nullopt;
  Precision p;
  const std::string v = a.get("dtype");
  if (!parse_precision(v, &p)) throw Error("--dtype: expected f32, bf16, f16 or int8, got '" + v + "'");
  return p;
}

void apply_threads(const ArgParser& a) {
  if (!a.has("threads")) return;
  long long n = a.get_int("threads");
  if (n <= 0) throw Error("--threads must be positive");
  kernels::set_num_threads(static_cast<int>(n));
}

InferenceContext load_inference(const std::string& dir, std::optional<Precision> precision) {
  LoadOptions lo;
  lo.precision = precision;
  InferenceContext ctx{load_model_dir(dir, lo), std::nullopt, nullptr};
  struct stat st {};
  std::string tk = dir + "/tokenizer.json";
  if (::stat(tk.c_str(), &st) == 0) ctx.tokenizer = Tokenizer::from_file(tk);
  ctx.encoder = std::make_unique<Encoder>(ctx.model.weights);
  return ctx;
}

std::vector<std::vector<int32_t>> records_to_ids(const InferenceContext& ctx, const std::vector<InputRecord>& recs,
                                                 bool truncate, bool lossy_utf8, const std::string& prefix,
                                                 std::vector<Encoding>* encodings) {
  const ModelConfig& cfg = ctx.model.config;
  std::vector<SequenceInput> in(recs.size());
  for (size_t i = 0; i < recs.size(); ++i) {
    const InputRecord& r = recs[i];
    if (!r.has_ids && !ctx.tokenizer)
      throw Error(r.where() + ": text input needs " + ctx.model.dir + "/tokenizer.json (or give input_ids)");
    // Ids were range-checked by read_inputs (parse_token_ids); records built elsewhere (fill-mask
    // arguments) are checked by inputs_to_ids (vocab_size).
    in[i] = {r.text, r.text_pair, r.has_pair, r.ids, r.has_ids};
  }
  SequenceOptions o;
  o.max_position = cfg.max_position_embeddings;
  if (truncate) o.truncate_to = cfg.max_position_embeddings;
  o.vocab_size = cfg.vocab_size;
  o.lossy_utf8 = lossy_utf8;
  o.prefix = prefix;
  o.too_long_hint = "use --truncate";
  try {
    return inputs_to_ids(ctx.tokenizer ? &*ctx.tokenizer : nullptr, in, o, encodings);
  } catch (const Error& e) {
    rethrow_tokenizer_error(e, [&](size_t k) { return recs.at(k).where(); });
  }
}

Output::Output(const std::string& path) {
  if (path != "-") file_ = std::make_unique<AtomicOutputFile>(path);
}

void Output::write(const void* data, size_t n) {
  if (file_) return file_->write(data, n);
  std::cout.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  if (!std::cout) throw Error("<stdout>: write failed");
}

void Output::commit() {
  if (file_) return file_->commit();
  std::cout.flush();
  if (!std::cout) throw Error("<stdout>: write failed");
}

void write_output(const std::string& path, const std::string& content) {
  if (path == "-") {
    std::cout.write(content.data(), static_cast<std::streamsize>(content.size()));
    std::cout.flush();
    return;
  }
  write_file_atomic(path, content);
}

void l2_normalize(float* v, int64_t n) { kernels::l2norm(v, v, nullptr, 1, n); }

}  // namespace modernbert::cli
