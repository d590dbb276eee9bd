// The bodies of the libFuzzer targets, shared by the fuzz/fuzz_*.cpp drivers and by
// tests/test_fuzz_regressions.cpp, which replays the committed corpus (tests/data/fuzz/<target>/)
// through exactly this code.
//
// Contract of every entry: bad input may only throw modernbert::Error. Anything else (another
// exception type, a sanitizer report, a crash, a hang) is a finding; a broken invariant on a
// successful parse calls fuzz_violation(), which aborts.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "modernbert/config.h"
#include "modernbert/error.h"
#include "modernbert/eval_data.h"
#include "modernbert/finetune.h"
#include "modernbert/safetensors.h"
#include "modernbert/tokenizer.h"

namespace modernbert::fuzz {

[[noreturn]] inline void fuzz_violation(const char* what) {
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  std::abort();
}

// A private directory for readers that only take a path (created once per process, removed at exit).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/mbfuzz.XXXXXX";
    if (!::mkdtemp(tmpl.data())) fuzz_violation("mkdtemp failed");
    static std::string to_remove = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(to_remove, ec);
    });
    return tmpl;
  }();
  return dir;
}

inline std::string write_scratch(const std::string& name, const std::uint8_t* data, std::size_t size) {
  std::string path = scratch_dir() + "/" + name;
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f) fuzz_violation("cannot write the scratch file");
  return path;
}

// Reads every tensor the way the model loader does (to_f32 / to_i64 / f32_in_place).
inline void exercise_safetensors(const SafeTensorsFile& f, std::size_t file_size) {
  for (const TensorInfo& t : f.tensors()) {
    if (t.end < t.begin || t.end > file_size) fuzz_violation("tensor range outside the file");
    if (static_cast<std::uint64_t>(t.numel()) * dtype_size(t.dtype) != t.end - t.begin)
      fuzz_violation("tensor byte size does not match its shape");
    if (f.find(t.name) != &t) fuzz_violation("find() does not return the tensor");
    std::vector<float> v = f.to_f32(t.name);
    if (v.size() != static_cast<std::size_t>(t.numel())) fuzz_violation("to_f32 size");
    if (const float* p = f.f32_in_place(t); p && t.numel() > 0 && std::memcmp(p, v.data(), v.size() * 4) != 0)
      fuzz_violation("f32_in_place differs from to_f32");
    try {
      (void)f.to_i64(t.name);
    } catch (const Error&) {  // float tensors are not integers: a named error is fine
    }
  }
}

// Input: the JSON header only. It is framed as a file with a 256-byte data area of known bytes.
inline int fuzz_safetensors_header(const std::uint8_t* data, std::size_t size) {
  std::string file(8 + size + 256, '\0');
  std::uint64_t n = size;
  std::memcpy(file.data(), &n, 8);
  if (size) std::memcpy(file.data() + 8, data, size);
  for (std::size_t i = 0; i < 256; ++i) file[8 + size + i] = static_cast<char>(i * 37 + 11);
  try {
    auto f = SafeTensorsFile::from_memory(file.data(), file.size(), "header");
    exercise_safetensors(*f, 256);
  } catch (const Error&) {
  }
  return 0;
}

// Input: a whole file, parsed in memory and through open() (mmap) from a file; both must agree.
inline int fuzz_safetensors_file(const std::uint8_t* data, std::size_t size) {
  bool mem_ok = false;
  std::size_t mem_tensors = 0;
  try {
    auto f = SafeTensorsFile::from_memory(data, size, "memory");
    exercise_safetensors(*f, size);
    mem_ok = true;
    mem_tensors = f->tensors().size();
  } catch (const Error&) {
  }
  std::string path = write_scratch("model.safetensors", data, size);
  try {
    auto f = SafeTensorsFile::open(path);
    exercise_safetensors(*f, size);
    if (!mem_ok || f->tensors().size() != mem_tensors) fuzz_violation("open() and from_memory() disagree");
  } catch (const Error&) {
    if (mem_ok) fuzz_violation("open() rejects what from_memory() accepts");
  }
  return 0;
}

// Input: a config.json. A loaded config must validate, answer its derived queries, and load again
// from what it would save.
inline int fuzz_config(const std::uint8_t* data, std::size_t size) {
  std::string path = write_scratch("config.json", data, size);
  ModelConfig c;
  try {
    c = ModelConfig::from_file(path);
  } catch (const Error&) {
    return 0;
  }
  c.validate();  // from_file validated: must not throw now
  if (c.head_dim() <= 0) fuzz_violation("head_dim");
  if (static_cast<std::int64_t>(c.layer_types.size()) != c.num_hidden_layers) fuzz_violation("layer_types");
  for (std::int64_t l = 0; l < c.num_hidden_layers; ++l) {
    (void)c.rope_theta(l);
    (void)c.half_window(l);
  }
  (void)c.num_labels();
  ModelConfig again = ModelConfig::from_json(c.to_json(), "round trip");
  if (again.to_json() != c.to_json()) fuzz_violation("config does not round-trip through to_json");
  return 0;
}

inline void check_encoding(const Tokenizer& tk, const Encoding& e, std::size_t len_a, std::size_t len_b) {
  if (e.offsets.size() != e.ids.size() || e.sequence_ids.size() != e.ids.size())
    fuzz_violation("encoding fields of different lengths");
  for (std::size_t i = 0; i < e.ids.size(); ++i) {
    if (e.ids[i] < 0 || static_cast<std::size_t>(e.ids[i]) >= tk.vocab_size())
      fuzz_violation("id outside the vocabulary");
    auto [s, t] = e.offsets[i];
    std::size_t lim = e.sequence_ids[i] == 1 ? len_b : len_a;
    if (s > t || t > lim) fuzz_violation("offsets outside the text");
  }
}

// Input: a tokenizer.json. It must load or throw Error; a loaded tokenizer must encode and decode
// (lossy UTF-8) without crashing and only produce ids below vocab_size().
inline int fuzz_tokenizer_load(const std::uint8_t* data, std::size_t size) {
  std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    Tokenizer tk = Tokenizer::from_json_string(json, "fuzz");
    // Every id the file defines takes several bytes of JSON: ids beyond that are sparse ones the
    // loader must reject (one id of 2^26-1 once sized 2.1 GB of tables).
    if (tk.vocab_size() > size) fuzz_violation("vocab_size() exceeds what the file can define");
    EncodeOptions o;
    o.lossy_utf8 = true;
    for (std::string_view text :
         {std::string_view("Hello  world [MASK] caf\xC3\xA9 e\xCC\x81 \xF0\x9F\x98\x80!"), json.substr(0, 256)}) {
      try {
        Encoding e = tk.encode(text, o);
        check_encoding(tk, e, text.size(), 0);
        (void)tk.decode(e.ids, true);
        Encoding p = tk.encode_pair(text, text, o);
        check_encoding(tk, p, text.size(), text.size());
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}

// The tokenizer the encode target uses: $MB_FUZZ_TOKENIZER, else the real ModernBERT tokenizer
// under $MB_SHARED_DATA (scripts/fuzz.sh sets MB_FUZZ_TOKENIZER to the copy in tests/data).
inline const Tokenizer& fuzz_encode_tokenizer() {
  static const Tokenizer* t = [] {
    std::string path;
    if (const char* p = std::getenv("MB_FUZZ_TOKENIZER"))
      path = p;
    else if (const char* d = std::getenv("MB_SHARED_DATA"))
      path = std::string(d) + "/modernbert-tokenizer/tokenizer.json";
    else
      fuzz_violation("set MB_FUZZ_TOKENIZER or MB_SHARED_DATA");
    return new Tokenizer(Tokenizer::from_file(path));
  }();
  return *t;
}

// Input byte 0 selects options (special tokens, lossy UTF-8, pair split, truncation); the rest is
// the text. Strict mode throws only Error; lossy mode never throws; offsets stay inside the text;
// ids are in the vocabulary.
inline int fuzz_tokenizer_encode(const Tokenizer& tk, const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::uint8_t flags = data[0];
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  EncodeOptions o;
  o.add_special_tokens = flags & 1;
  if (flags & 4) o.max_length = 3 + (flags >> 4);
  std::string_view a = text, b;
  bool pair = flags & 8;
  if (pair) {
    a = text.substr(0, text.size() / 2);
    b = text.substr(text.size() / 2);
  }
  for (bool lossy : {false, true}) {
    o.lossy_utf8 = lossy;
    try {
      Encoding e = pair ? tk.encode_pair(a, b, o) : tk.encode(a, o);
      check_encoding(tk, e, a.size(), b.size());
      (void)tk.decode(e.ids, flags & 2);
    } catch (const Error&) {
      if (lossy) fuzz_violation("lossy mode threw");  // truncation of pairs aside, see below
    }
    if (o.max_length) break;
  }
  return 0;
}

// Input byte 0 selects the reader; the rest is a JSONL file.
//   0: read_examples + resolve_label of "label" against a 3-label head (named when bit 4 is set)
//   1: read_corpus + make_scopes;  2: read_queries
//   3: corpus and queries split at the first NUL byte, scored with score_rankings
inline int fuzz_eval_jsonl(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  ++data;
  --size;
  try {
    switch (mode & 3) {
      case 0: {
        auto ex = read_examples(write_scratch("eval.jsonl", data, size), "text", "text_pair");
        ModelConfig cfg;
        if (mode & 16) cfg.id2label = {{0, "neg"}, {1, "neu"}, {2, "pos"}};
        LabelSpace ls = label_space(cfg, 3);
        for (const Example& e : ex) {
          if (e.line == 0 || !e.record.is_object()) fuzz_violation("example line/record");
          if (auto it = e.record.find("label"); it != e.record.end()) {
            int64_t id = resolve_label(*it, ls, "label");
            if (id < 0 || id >= 3) fuzz_violation("resolve_label out of range");
          }
        }
        break;
      }
      case 1: {
        auto corpus = read_corpus(write_scratch("corpus.jsonl", data, size));
        for (const ScopeMode scope : {ScopeMode::kFull, ScopeMode::kClosed}) {
          try {
            (void)make_scopes(corpus, scope, "test");
          } catch (const Error&) {
          }
        }
        break;
      }
      case 2:
        (void)read_queries(write_scratch("queries.jsonl", data, size));
        break;
      case 3: {
        const std::uint8_t* nul = static_cast<const std::uint8_t*>(std::memchr(data, 0, size));
        if (!nul) return 0;
        const std::size_t na = static_cast<std::size_t>(nul - data);
        auto corpus = read_corpus(write_scratch("corpus.jsonl", data, na));
        auto queries = read_queries(write_scratch("queries.jsonl", nul + 1, size - na - 1));
        auto scopes = make_scopes(corpus, ScopeMode::kFull, "");
        std::vector<std::vector<int64_t>> rankings(queries.size());
        for (std::size_t q = 0; q < queries.size(); ++q)
          for (std::size_t r = 0; r < scopes[0].doc_rows.size() && r < 100; ++r)
            rankings[q].push_back(static_cast<int64_t>((r + q) % scopes[0].doc_rows.size()));
        (void)score_rankings(corpus, scopes[0], queries, rankings);
        break;
      }
    }
  } catch (const Error&) {
  }
  return 0;
}

// Input byte 0 selects the task (and --num-labels); the rest is the training file, also used as
// the dev file (and as the corpus for retrieval when bit 3 is set). finetune() reads and checks all
// data and labels before it opens the model directory, which does not exist: a clean run ends in
// that Error, after every reader and the label-space logic ran.
inline int fuzz_finetune_jsonl(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  static const FinetuneTask kTasks[] = {FinetuneTask::kClassification, FinetuneTask::kRegression,
                                        FinetuneTask::kMultiLabel,     FinetuneTask::kTokenClassification,
                                        FinetuneTask::kEmbedding,      FinetuneTask::kColbert};
  const std::uint8_t mode = data[0];
  FinetuneOptions o;
  o.task = kTasks[(mode & 7) % 6];
  o.num_labels = (mode >> 4) & 3;  // 0 = from the data
  o.train = o.dev = write_scratch("train.jsonl", data + 1, size - 1);
  if (mode & 8) o.corpus = o.train;
  o.model_dir = scratch_dir() + "/no-such-model";
  o.out = scratch_dir() + "/out";
  o.progress = false;
  try {
    (void)finetune(o);
    fuzz_violation("finetune succeeded without a model");
  } catch (const Error&) {
  }
  return 0;
}

}  // namespace modernbert::fuzz
