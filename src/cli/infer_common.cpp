#include "cli/infer_common.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include <cblas.h>

#include "modernbert/error.h"
#include "modernbert/safetensors.h"

namespace modernbert::cli {

using nlohmann::json;

std::vector<InputRecord> read_inputs(std::istream& in, const std::string& label) {
  std::vector<InputRecord> out;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos) continue;  // blank lines separate nothing
    InputRecord r;
    r.line = lineno;
    auto where = [&] { return label + ":" + std::to_string(lineno) + ": "; };
    if (line[first] == '{') {
      json j;
      try {
        j = json::parse(line);
      } catch (const std::exception& e) {
        throw Error(where() + "malformed JSON: " + e.what());
      }
      if (j.contains("input_ids")) {
        const json& ids = j["input_ids"];
        if (!ids.is_array()) throw Error(where() + "\"input_ids\" must be a list of integers");
        for (const auto& v : ids) {
          if (!v.is_number_integer()) throw Error(where() + "\"input_ids\" must be a list of integers, found " + v.dump());
          int64_t id = v.get<int64_t>();
          if (id < 0 || id > INT32_MAX) throw Error(where() + "token id " + std::to_string(id) + " is out of range");
          r.ids.push_back(static_cast<int32_t>(id));
        }
        if (r.ids.empty()) throw Error(where() + "\"input_ids\" is empty");
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
      r.text = line;
    }
    if (!r.has_ids && r.text.find_first_not_of(" \t\r\n") == std::string::npos && !r.has_pair)
      throw Error(where() + "empty text");
    out.push_back(std::move(r));
  }
  if (in.bad()) throw Error(label + ": read error");
  if (out.empty()) throw Error(label + ": no input (empty file)");
  return out;
}

std::vector<InputRecord> read_inputs_from(const std::string& path) {
  if (path == "-") return read_inputs(std::cin, "<stdin>");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open input");
  return read_inputs(in, path);
}

void add_common_flags(ArgParser& a, bool with_output) {
  a.option("model", "DIR", "model directory (config.json, model.safetensors, tokenizer.json)");
  a.option("input", "FILE", "input: JSONL {\"text\"[, \"text_pair\"]} | {\"input_ids\": [...]} or plain lines ('-' = stdin)", "-");
  if (with_output) a.option("output", "FILE", "output file ('-' = stdout)", "-");
  a.flag("truncate", "truncate inputs longer than max_position_embeddings instead of failing");
  a.option("max-batch-tokens", "N", "token budget of one unpadded batch", "16384");
  a.option("threads", "N", "compute threads (default: all cores)");
}

void apply_threads(const ArgParser& a) {
  if (!a.has("threads")) return;
  long long n = a.get_int("threads");
  if (n <= 0) throw Error("--threads must be positive");
  ::setenv("MODERNBERT_THREADS", std::to_string(n).c_str(), 1);
  openblas_set_num_threads(static_cast<int>(n));
}

InferenceContext load_inference(const std::string& dir) {
  InferenceContext ctx{load_model_dir(dir), std::nullopt, nullptr};
  struct stat st {};
  std::string tk = dir + "/tokenizer.json";
  if (::stat(tk.c_str(), &st) == 0) ctx.tokenizer = Tokenizer::from_file(tk);
  ctx.encoder = std::make_unique<Encoder>(ctx.model.weights);
  return ctx;
}

std::vector<std::vector<int32_t>> records_to_ids(const InferenceContext& ctx, const std::vector<InputRecord>& recs,
                                                 bool truncate, const std::string& prefix,
                                                 std::vector<Encoding>* encodings) {
  const ModelConfig& cfg = ctx.model.config;
  const int64_t max_len = cfg.max_position_embeddings;
  std::vector<std::vector<int32_t>> out(recs.size());
  // Tokenize all text records at once on every core.
  std::vector<size_t> text_idx;
  std::vector<std::pair<std::string, std::string>> pairs;
  std::vector<std::string> singles;
  std::vector<size_t> single_idx, pair_idx;
  for (size_t i = 0; i < recs.size(); ++i) {
    if (recs[i].has_ids) continue;
    if (!ctx.tokenizer) throw Error("line " + std::to_string(recs[i].line) + ": text input needs " + ctx.model.dir + "/tokenizer.json (or give input_ids)");
    if (recs[i].has_pair) {
      pairs.emplace_back(prefix + recs[i].text, recs[i].text_pair);
      pair_idx.push_back(i);
    } else {
      singles.push_back(prefix + recs[i].text);
      single_idx.push_back(i);
    }
  }
  EncodeOptions opts;
  if (truncate) opts.max_length = static_cast<size_t>(max_len);
  if (encodings) encodings->assign(recs.size(), Encoding{});
  auto take = [&](std::vector<Encoding>&& encs, const std::vector<size_t>& idx) {
    for (size_t k = 0; k < idx.size(); ++k) {
      out[idx[k]] = encs[k].ids;
      if (encodings) (*encodings)[idx[k]] = std::move(encs[k]);
    }
  };
  try {
    if (!singles.empty()) take(ctx.tokenizer->encode_batch(singles, opts), single_idx);
    if (!pairs.empty()) take(ctx.tokenizer->encode_batch_pairs(pairs, opts), pair_idx);
  } catch (const Error& e) {
    throw Error(std::string("tokenizing input: ") + e.what());
  }
  for (size_t i = 0; i < recs.size(); ++i) {
    const InputRecord& r = recs[i];
    if (r.has_ids) {
      out[i] = r.ids;
      for (int32_t id : out[i])
        if (id >= cfg.vocab_size)
          throw Error("line " + std::to_string(r.line) + ": token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                      std::to_string(cfg.vocab_size) + ")");
      if (truncate && static_cast<int64_t>(out[i].size()) > max_len) out[i].resize(static_cast<size_t>(max_len));
    }
    if (static_cast<int64_t>(out[i].size()) > max_len)
      throw Error("line " + std::to_string(r.line) + ": " + std::to_string(out[i].size()) +
                  " tokens exceed max_position_embeddings " + std::to_string(max_len) + " (use --truncate)");
    if (out[i].empty()) throw Error("line " + std::to_string(r.line) + ": no tokens");
  }
  return out;
}

void for_each_batch(Encoder& enc, const std::vector<std::vector<int32_t>>& seqs, int64_t max_batch_tokens,
                    const std::function<void(const Batch&, size_t, const std::vector<float>&)>& fn) {
  if (max_batch_tokens <= 0) throw Error("--max-batch-tokens must be positive");
  std::vector<float> hidden;
  size_t i = 0;
  while (i < seqs.size()) {
    Batch b;
    size_t first = i;
    while (i < seqs.size() && (b.num_seqs() == 0 || b.num_tokens() + static_cast<int64_t>(seqs[i].size()) <= max_batch_tokens))
      b.add(seqs[i++]);
    enc.forward(b, hidden);
    fn(b, first, hidden);
  }
}

void write_output(const std::string& path, const std::string& content) {
  if (path == "-") {
    std::cout.write(content.data(), static_cast<std::streamsize>(content.size()));
    std::cout.flush();
    return;
  }
  write_file_atomic(path, content);
}

void l2_normalize(float* v, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(v[i]) * v[i];
  float inv = s > 0 ? static_cast<float>(1.0 / std::sqrt(s)) : 0.0f;
  for (int64_t i = 0; i < n; ++i) v[i] *= inv;
}

}  // namespace modernbert::cli
