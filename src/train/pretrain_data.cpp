// Pretraining data (see pretrain_data.h).
#include "train/pretrain_data.h"

#include <algorithm>
#include <fstream>

#include "modernbert/error.h"
#include "modernbert/token_ids.h"
#include "tokenizer/unicode.h"

namespace modernbert::train {

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

std::vector<std::vector<int32_t>> load_documents(const std::vector<std::string>& files, const Tokenizer* tok,
                                                 int64_t seq_len, bool split, bool lossy_utf8) {
  std::vector<std::vector<int32_t>> docs;
  std::vector<std::string> texts, text_where;
  auto add_ids = [&](std::vector<int32_t> ids) {
    if (ids.empty()) return;
    if (!split) {
      if (static_cast<int64_t>(ids.size()) > seq_len) ids.resize(static_cast<size_t>(seq_len));
      docs.push_back(std::move(ids));
      return;
    }
    for (size_t s = 0; s < ids.size(); s += static_cast<size_t>(seq_len))
      docs.emplace_back(ids.begin() + static_cast<long>(s),
                        ids.begin() + static_cast<long>(std::min(ids.size(), s + static_cast<size_t>(seq_len))));
  };
  auto flush_texts = [&] {
    if (texts.empty()) return;
    if (!tok) throw Error(text_where.front() + ": text documents need a tokenizer (field tokenizer)");
    EncodeOptions eo;
    eo.lossy_utf8 = lossy_utf8;
    std::vector<Encoding> enc;
    try {
      enc = tok->encode_batch(texts, eo);
    } catch (const BatchItemError& e) {
      if (e.index() >= text_where.size()) throw;
      std::string msg = e.detail();
      if (const size_t h = msg.find("use lossy mode"); h != std::string::npos) msg.replace(h, 14, "use --lossy-utf8");
      throw Error(text_where[e.index()] + ": " + msg);
    }
    for (auto& e : enc) add_ids(std::move(e.ids));
    texts.clear();
    text_where.clear();
  };
  for (const auto& f : files) {
    std::ifstream in(f);
    if (!in) throw Error("data: cannot open " + f);
    const bool jsonl = ends_with(f, ".jsonl") || ends_with(f, ".json");
    std::string line;
    int64_t ln = 0;
    while (std::getline(in, line)) {
      ++ln;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = f + ":" + std::to_string(ln);
      if (!jsonl) {
        texts.push_back(line);
        text_where.push_back(where);
        continue;
      }
      // A JSON parser cannot carry invalid UTF-8: with --lossy-utf8 the line is repaired first.
      if (lossy_utf8) line = modernbert::tok::utf8_lossy(line, nullptr);
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        throw Error(where + ": invalid JSON: " + e.what());
      }
      if (!j.is_object()) throw Error(where + ": needs a JSON object with input_ids or text");
      if (j.contains("input_ids")) {
        flush_texts();  // keep document order
        // Range against the vocabulary is checked once the model is known; here: integers, no wrap.
        add_ids(parse_token_ids(j["input_ids"], 0, where + ": field input_ids", /*allow_empty=*/true));
      } else if (j.contains("text") && j["text"].is_string()) {
        texts.push_back(j["text"].get<std::string>());
        text_where.push_back(where);
      } else {
        throw Error(where + ": needs field input_ids (list of ints) or text (string)");
      }
    }
    flush_texts();
  }
  return docs;
}

TrainBatch make_micro_batch(const std::vector<PackedRow>& rows, const std::vector<std::vector<int32_t>>& labels,
                            size_t r0, size_t r1) {
  TrainBatch tb;
  tb.batch.ids.clear();
  for (size_t r = r0; r < r1; ++r) {
    const auto& row = rows[r];
    const int64_t base = tb.batch.num_tokens();
    tb.batch.ids.insert(tb.batch.ids.end(), row.ids.begin(), row.ids.end());
    for (size_t s = 1; s < row.cu_seqlens.size(); ++s) tb.batch.cu_seqlens.push_back(base + row.cu_seqlens[s]);
    tb.token_labels.insert(tb.token_labels.end(), labels[r].begin(), labels[r].end());
  }
  return tb;
}

}  // namespace modernbert::train
