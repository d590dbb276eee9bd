// Helpers of the C API tests (test_c_api.cpp, test_c_api_tasks.cpp): the tiny test models, owning
// wrappers of the C result objects, and text arrays as the C API takes them.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "inference_api_test_util.h"
#include "modernbert.h"
#include "modernbert/inference.h"
#include "test_util.h"

namespace capitest {

// Owning pointers: freed by the C API's own free functions.
template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Model = std::unique_ptr<mb_model, Deleter<mb_model, mb_model_free>>;
using Encoding = std::unique_ptr<mb_encoding, Deleter<mb_encoding, mb_encoding_free>>;
using Embeddings = std::unique_ptr<mb_embeddings, Deleter<mb_embeddings, mb_embeddings_free>>;
using TokenEmbeddings = std::unique_ptr<mb_token_embeddings, Deleter<mb_token_embeddings, mb_token_embeddings_free>>;
using Classifications = std::unique_ptr<mb_classifications, Deleter<mb_classifications, mb_classifications_free>>;
using TokenLabels = std::unique_ptr<mb_token_labels, Deleter<mb_token_labels, mb_token_labels_free>>;
using FillMask = std::unique_ptr<mb_fill_mask_result, Deleter<mb_fill_mask_result, mb_fill_mask_free>>;
using Rerank = std::unique_ptr<mb_rerank_result, Deleter<mb_rerank_result, mb_rerank_free>>;

// The C view of a list of strings (valid while `v` lives).
inline std::vector<const char*> c_strs(const std::vector<std::string>& v) {
  std::vector<const char*> p;
  for (const auto& s : v) p.push_back(s.c_str());
  return p;
}

// The tiny model directories, written once per test binary run (the `modernbert init` CLI and the
// repository's tokenizer):
//   mc:      heads mlm,cls:3, the tokenizer, sentence-transformers mean pooling and prompts
//            (query/document)
//   tok:     heads token:4, the tokenizer
//   notok:   heads mlm, no tokenizer.json
//   st:      heads mlm, sentence-transformers CLS pooling, Dense 64 -> 8 (ColBERT vectors),
//            Normalize, default prompt "document" (test_inference_api's layout)
struct Models {
  mbtest::TempDir tmp{"c_api"};
  std::string mc, tok, notok, st;
  Models() {
    mc = make("mc", "mlm,cls:3", true);
    tok = make("tok", "token:4", true);
    notok = make("notok", "mlm", false);
    st = make("st", "mlm", true);
    mbapi::add_sentence_transformers(st, "cls", /*dense=*/true, "document");
    // sentence-transformers files (prompts are read for a directory with modules.json).
    std::ofstream(mc + "/modules.json")
        << R"([{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])";
    mbtest::run_command("mkdir -p " + mc + "/1_Pooling");
    std::ofstream(mc + "/1_Pooling/config.json") << R"({"pooling_mode_mean_tokens": true})";
    std::ofstream(mc + "/config_sentence_transformers.json")
        << R"({"prompts": {"query": "search_query: ", "document": "search_document: "}, "default_prompt_name": null})";
  }
  std::string make(const std::string& name, const std::string& heads, bool tokenizer) {
    std::string dir = tmp / name;
    auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 21 --heads " + heads + " --out " + dir);
    EXPECT_EQ(r.status, 0) << r.output;
    if (tokenizer) mbtest::run_command("cp " + mbtest::tokenizer_json() + " " + dir + "/");
    return dir;
  }
  static const Models& get() {
    static Models m;
    return m;
  }
};

// Loads `dir` through the C API (the test fails if it cannot).
inline Model load(const std::string& dir, const mb_model_options* o = nullptr) {
  mb_model* m = nullptr;
  mb_status s = mb_model_load(dir.c_str(), o, &m);
  EXPECT_EQ(s, MB_OK) << mb_last_error_message();
  return Model(m);
}

// Expects status `want` and, when `index` >= 0, that the failure names input `index`; the message
// must be non-empty and mention `needle`.
inline void expect_error(mb_status got, mb_status want, int64_t index, const std::string& needle = "") {
  EXPECT_EQ(mb_status_name(got), std::string(mb_status_name(want))) << mb_last_error_message();
  EXPECT_EQ(mb_last_error_input_index(), index) << mb_last_error_message();
  EXPECT_NE(std::string(mb_last_error_message()), "");
  if (!needle.empty()) {
    EXPECT_NE(std::string(mb_last_error_message()).find(needle), std::string::npos) << mb_last_error_message();
  }
}

}  // namespace capitest
