// The C API (modernbert.h), part 1: version, status names, loading and its errors, model info,
// tokenize, sentence embeddings, the text errors, NULL handling and threads. Every result is
// compared for exact equality with modernbert::Model's for the same input and options (the C API
// calls the same code; the C++ API is itself checked against the CLI in test_inference_api.cpp).
// Part 2 (the other tasks) is test_c_api_tasks.cpp.
#include <cmath>
#include <functional>
#include <stdexcept>
#include <thread>

#include "c_api_test_util.h"
#include "capi/capi_internal.h"

using namespace capitest;

namespace {

modernbert::Model cpp_model(const std::string& dir, const modernbert::ModelOptions& o = {}) {
  return modernbert::Model(dir, o);
}

std::vector<float> data_of(const mb_embeddings* e) {
  return std::vector<float>(mb_embeddings_data(e),
                            mb_embeddings_data(e) + mb_embeddings_rows(e) * mb_embeddings_cols(e));
}

// mb_embed of `texts` with `p` (expects MB_OK).
Embeddings embed(mb_model* m, const std::vector<std::string>& texts, const mb_embed_params* p) {
  auto t = c_strs(texts);
  mb_embeddings* e = nullptr;
  EXPECT_EQ(mb_embed(m, t.data(), t.size(), p, &e), MB_OK) << mb_last_error_message();
  return Embeddings(e);
}

const std::vector<std::string> kTexts = {"hello world", "The capital of France is Paris.",
                                         "ModernBERT runs from C: ünïcödé ✓"};

}  // namespace

TEST(CApi, VersionAndStatusNames) {
  EXPECT_STREQ(mb_version(), MODERNBERT_VERSION_STRING);
  EXPECT_EQ(std::string(MODERNBERT_VERSION_STRING), std::to_string(MODERNBERT_VERSION_MAJOR) + "." +
                                                        std::to_string(MODERNBERT_VERSION_MINOR) + "." +
                                                        std::to_string(MODERNBERT_VERSION_PATCH));
  const std::vector<std::pair<mb_status, std::string>> names = {{MB_OK, "MB_OK"},
                                                                {MB_ERR_INVALID_ARGUMENT, "MB_ERR_INVALID_ARGUMENT"},
                                                                {MB_ERR_LOAD, "MB_ERR_LOAD"},
                                                                {MB_ERR_UNSUPPORTED, "MB_ERR_UNSUPPORTED"},
                                                                {MB_ERR_INPUT, "MB_ERR_INPUT"},
                                                                {MB_ERR_TOO_LONG, "MB_ERR_TOO_LONG"},
                                                                {MB_ERR_TOKENIZER, "MB_ERR_TOKENIZER"},
                                                                {MB_ERR_OUT_OF_MEMORY, "MB_ERR_OUT_OF_MEMORY"},
                                                                {MB_ERR_INTERNAL, "MB_ERR_INTERNAL"}};
  for (const auto& [s, n] : names) EXPECT_EQ(mb_status_name(s), n);
  EXPECT_STREQ(mb_status_name(-1), "MB_ERR_UNKNOWN");
  EXPECT_STREQ(mb_status_name(99), "MB_ERR_UNKNOWN");
}

TEST(CApi, LoadErrors) {
  const auto& M = Models::get();
  mb_model* const junk = reinterpret_cast<mb_model*>(0x1);
  mb_model* m = junk;
  expect_error(mb_model_load(nullptr, nullptr, &m), MB_ERR_INVALID_ARGUMENT, -1, "dir is NULL");
  EXPECT_EQ(m, nullptr);
  expect_error(mb_model_load(M.mc.c_str(), nullptr, nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out is NULL");
  m = junk;
  const std::string missing = M.tmp / "no-such-model";
  expect_error(mb_model_load(missing.c_str(), nullptr, &m), MB_ERR_LOAD, -1, "no-such-model");
  EXPECT_EQ(m, nullptr);

  // Each bad option names itself.
  struct Case {
    void (*set)(mb_model_options*);
    const char* needle;
  };
  const Case cases[] = {
      {[](mb_model_options* o) { o->dtype = "f64"; }, "unknown dtype 'f64'"},
      {[](mb_model_options* o) { o->dtype = "BF16x"; }, "BF16x"},
      {[](mb_model_options* o) { o->struct_size = 8; }, "struct_size"},
      {[](mb_model_options* o) { o->threads = -1; }, "threads"},
      {[](mb_model_options* o) { o->max_batch_tokens = 0; }, "max_batch_tokens"},
      {[](mb_model_options* o) { o->batch_size = -1; }, "batch_size"},
  };
  for (const Case& c : cases) {
    mb_model_options o = mb_model_options_default();
    c.set(&o);
    m = junk;
    expect_error(mb_model_load(M.mc.c_str(), &o, &m), MB_ERR_INVALID_ARGUMENT, -1, c.needle);
    EXPECT_EQ(m, nullptr);
  }
  // A directory that is not a model: the message comes from the loader.
  const std::string empty_dir = M.tmp / "empty";
  mbtest::run_command("mkdir -p " + empty_dir);
  expect_error(mb_model_load(empty_dir.c_str(), nullptr, &m), MB_ERR_LOAD, -1, "config.json");
}

TEST(CApi, OptionsDefaultsMatchTheCppApi) {
  const mb_model_options o = mb_model_options_default();
  const modernbert::ModelOptions cpp;
  EXPECT_EQ(o.struct_size, sizeof(mb_model_options));
  EXPECT_EQ(o.dtype, nullptr);
  EXPECT_EQ(o.threads, cpp.threads);
  EXPECT_EQ(o.max_batch_tokens, cpp.max_batch_tokens);
  EXPECT_EQ(o.batch_size, cpp.batch_size);
  EXPECT_EQ(o.truncate != 0, cpp.truncate);
  EXPECT_EQ(o.lossy_utf8 != 0, cpp.lossy_utf8);
  const mb_embed_params p = mb_embed_params_default();
  EXPECT_EQ(p.prompt_name, nullptr);
  EXPECT_EQ(p.pooling, MB_POOLING_DEFAULT);
  EXPECT_EQ(p.dim, 0);
}

TEST(CApi, InfoEqualsTheCppApi) {
  const auto& M = Models::get();
  for (const std::string& dir : {M.mc, M.tok, M.notok}) {
    Model m = load(dir);
    ASSERT_TRUE(m);
    const mb_model_info* i = nullptr;
    ASSERT_EQ(mb_model_get_info(m.get(), &i), MB_OK);
    const modernbert::ModelInfo ref = cpp_model(dir).info();
    EXPECT_EQ(i->dir, ref.dir);
    EXPECT_EQ(i->hidden_size, ref.hidden_size);
    EXPECT_EQ(i->num_layers, ref.num_layers);
    EXPECT_EQ(i->vocab_size, ref.vocab_size);
    EXPECT_EQ(i->max_length, ref.max_length);
    EXPECT_EQ(i->embedding_dim, ref.embedding_dim);
    EXPECT_EQ(i->stored_dtype, ref.stored_dtype);
    EXPECT_STREQ(i->precision, "f32");
    EXPECT_EQ(i->has_tokenizer != 0, ref.has_tokenizer);
    EXPECT_EQ(i->has_mlm != 0, ref.has_mlm);
    EXPECT_EQ(i->has_classifier != 0, ref.has_classifier);
    EXPECT_EQ(i->has_token_classifier != 0, ref.has_token_classifier);
    EXPECT_EQ(i->has_colbert != 0, ref.has_colbert);
    EXPECT_EQ(i->num_labels, ref.num_labels);
    ASSERT_EQ(static_cast<size_t>(i->num_labels), ref.labels.size());
    for (size_t k = 0; k < ref.labels.size(); ++k) EXPECT_EQ(i->label_names[k], ref.labels[k]);
    EXPECT_EQ(i->normalize != 0, ref.normalize);
    ASSERT_EQ(i->num_prompts, ref.prompts.size());
    size_t k = 0;
    for (const auto& [name, text] : ref.prompts) {
      EXPECT_EQ(i->prompt_names[k], name);
      EXPECT_EQ(i->prompt_texts[k], text);
      ++k;
    }
    EXPECT_EQ(i->default_prompt_name, ref.default_prompt_name);
    EXPECT_EQ(i->query_prefix, ref.query_prefix);
    EXPECT_EQ(i->document_prefix, ref.document_prefix);
  }
  // What the test models are (so that the error-path tests below mean what they say).
  Model mc = load(M.mc), tok = load(M.tok), notok = load(M.notok);
  const mb_model_info *a = nullptr, *b = nullptr, *c = nullptr;
  ASSERT_EQ(mb_model_get_info(mc.get(), &a), MB_OK);
  ASSERT_EQ(mb_model_get_info(tok.get(), &b), MB_OK);
  ASSERT_EQ(mb_model_get_info(notok.get(), &c), MB_OK);
  EXPECT_TRUE(a->has_mlm && a->has_classifier && !a->has_token_classifier && a->num_labels == 3);
  EXPECT_STREQ(a->label_names[2], "LABEL_2");
  EXPECT_EQ(a->num_prompts, 2u);
  EXPECT_TRUE(!b->has_mlm && !b->has_classifier && b->has_token_classifier && b->num_labels == 4);
  EXPECT_TRUE(!c->has_tokenizer);
  EXPECT_STREQ(a->pooling, "mean");

  const mb_model_info* i = reinterpret_cast<const mb_model_info*>(0x1);
  expect_error(mb_model_get_info(nullptr, &i), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(i, nullptr);
  expect_error(mb_model_get_info(mc.get(), nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out is NULL");
}

TEST(CApi, DtypeOptionSelectsThePrecision) {
  const auto& M = Models::get();
  for (const char* d : {"bf16", "f16", "int8", "float32"}) {
    mb_model_options o = mb_model_options_default();
    o.dtype = d;
    Model m = load(M.mc, &o);
    ASSERT_TRUE(m) << d;
    const mb_model_info* i = nullptr;
    ASSERT_EQ(mb_model_get_info(m.get(), &i), MB_OK);
    modernbert::Precision p{};
    ASSERT_TRUE(modernbert::parse_precision(d, &p));
    EXPECT_STREQ(i->precision, modernbert::precision_name(p));
    // Same code path, same result as the C++ API with the same precision.
    Embeddings e = embed(m.get(), kTexts, nullptr);
    modernbert::ModelOptions cpp_opts;
    cpp_opts.precision = p;
    const modernbert::Matrix ref = cpp_model(M.mc, cpp_opts).embed(kTexts);
    EXPECT_EQ(data_of(e.get()), ref.data) << d;
  }
}

TEST(CApi, TokenizeEqualsTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  modernbert::Model ref = cpp_model(M.mc);
  for (const std::string& text : kTexts) {
    for (int special : {1, 0}) {
      mb_encoding* e = nullptr;
      ASSERT_EQ(mb_tokenize(m.get(), text.c_str(), special, &e), MB_OK) << mb_last_error_message();
      Encoding owned(e);
      const modernbert::Encoding want = ref.tokenize(text, special != 0);
      ASSERT_EQ(mb_encoding_size(e), want.ids.size());
      EXPECT_EQ(std::vector<int32_t>(mb_encoding_ids(e), mb_encoding_ids(e) + want.ids.size()), want.ids);
      EXPECT_EQ(std::vector<uint8_t>(mb_encoding_special_mask(e), mb_encoding_special_mask(e) + want.ids.size()),
                want.special_tokens_mask);
      for (size_t k = 0; k < want.ids.size(); ++k) {
        EXPECT_EQ(mb_encoding_offsets(e)[2 * k], want.offsets[k].first);
        EXPECT_EQ(mb_encoding_offsets(e)[2 * k + 1], want.offsets[k].second);
      }
      if (special) {
        EXPECT_EQ(mb_encoding_special_mask(e)[0], 1);  // [CLS]
      }
    }
  }
  // Errors: NULLs, no tokenizer, invalid UTF-8 (then lossy_utf8 accepts it).
  mb_encoding* e = reinterpret_cast<mb_encoding*>(0x1);
  expect_error(mb_tokenize(nullptr, "x", 1, &e), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(e, nullptr);
  expect_error(mb_tokenize(m.get(), nullptr, 1, &e), MB_ERR_INVALID_ARGUMENT, -1, "text is NULL");
  expect_error(mb_tokenize(m.get(), "x", 1, nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out is NULL");
  Model notok = load(M.notok);
  expect_error(mb_tokenize(notok.get(), "x", 1, &e), MB_ERR_UNSUPPORTED, -1, "tokenizer.json");
  expect_error(mb_tokenize(m.get(), "bad \xff\xfe utf-8", 1, &e), MB_ERR_TOKENIZER, 0);
  EXPECT_EQ(e, nullptr);
  mb_model_options o = mb_model_options_default();
  o.lossy_utf8 = 1;
  Model lossy = load(M.mc, &o);
  ASSERT_EQ(mb_tokenize(lossy.get(), "bad \xff\xfe utf-8", 1, &e), MB_OK) << mb_last_error_message();
  Encoding owned(e);
  EXPECT_GT(mb_encoding_size(e), 2u);
}

TEST(CApi, EmbedEqualsTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  modernbert::Model ref = cpp_model(M.mc);
  const mb_model_info* info = nullptr;
  ASSERT_EQ(mb_model_get_info(m.get(), &info), MB_OK);

  // Defaults (NULL params): [N, D].
  Embeddings e = embed(m.get(), kTexts, nullptr);
  ASSERT_EQ(mb_embeddings_rows(e.get()), kTexts.size());
  ASSERT_EQ(mb_embeddings_cols(e.get()), static_cast<size_t>(info->embedding_dim));
  EXPECT_EQ(data_of(e.get()), ref.embed(kTexts).data);

  // Every knob, one at a time and together.
  struct Case {
    const char* what;
    mb_embed_params c;
    modernbert::EmbedParams cpp;
  };
  std::vector<Case> cases;
  auto add = [&](const char* what, auto set_c, auto set_cpp) {
    Case k{what, mb_embed_params_default(), {}};
    set_c(k.c);
    set_cpp(k.cpp);
    cases.push_back(k);
  };
  using P = mb_embed_params&;
  using Q = modernbert::EmbedParams&;
  add(
      "normalize", [](P p) { p.normalize = 1; }, [](Q q) { q.normalize = true; });
  add(
      "dim 16", [](P p) { p.dim = 16; }, [](Q q) { q.dim = 16; });
  add(
      "cls", [](P p) { p.pooling = MB_POOLING_CLS; }, [](Q q) { q.pooling = modernbert::EmbedPooling::kCls; });
  add(
      "mean", [](P p) { p.pooling = MB_POOLING_MEAN; }, [](Q q) { q.pooling = modernbert::EmbedPooling::kMean; });
  add(
      "max", [](P p) { p.pooling = MB_POOLING_MAX; }, [](Q q) { q.pooling = modernbert::EmbedPooling::kMax; });
  add(
      "prompt", [](P p) { p.prompt_name = "query"; }, [](Q q) { q.prompt_name = "query"; });
  add(
      "prefix", [](P p) { p.prefix = "passage: "; }, [](Q q) { q.prefix = "passage: "; });
  add(
      "batch_size", [](P p) { p.batch_size = 1; }, [](Q q) { q.batch_size = 1; });
  add(
      "all",
      [](P p) {
        p.prompt_name = "document";
        p.prefix = "x ";
        p.normalize = 1;
        p.dim = 8;
        p.pooling = MB_POOLING_CLS;
        p.batch_size = 2;
      },
      [](Q q) {
        q.prompt_name = "document";
        q.prefix = "x ";
        q.normalize = true;
        q.dim = 8;
        q.pooling = modernbert::EmbedPooling::kCls;
        q.batch_size = 2;
      });
  for (const Case& k : cases) {
    Embeddings got = embed(m.get(), kTexts, &k.c);
    const modernbert::Matrix want = ref.embed(kTexts, k.cpp);
    EXPECT_EQ(mb_embeddings_rows(got.get()), static_cast<size_t>(want.rows)) << k.what;
    EXPECT_EQ(mb_embeddings_cols(got.get()), static_cast<size_t>(want.cols)) << k.what;
    EXPECT_EQ(data_of(got.get()), want.data) << k.what;
  }
  // A prompt changes the result (the names reach the model).
  Embeddings plain = embed(m.get(), kTexts, nullptr);
  EXPECT_NE(data_of(plain.get()), data_of(embed(m.get(), kTexts, &cases[5].c).get()));

  // No texts: an empty result.
  mb_embeddings* none = nullptr;
  ASSERT_EQ(mb_embed(m.get(), nullptr, 0, nullptr, &none), MB_OK);
  Embeddings owned(none);
  EXPECT_EQ(mb_embeddings_rows(none), 0u);
}

TEST(CApi, EmbedArgumentErrors) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  auto t = c_strs(kTexts);
  mb_embeddings* e = reinterpret_cast<mb_embeddings*>(0x1);
  expect_error(mb_embed(nullptr, t.data(), t.size(), nullptr, &e), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(e, nullptr);
  expect_error(mb_embed(m.get(), t.data(), t.size(), nullptr, nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out is NULL");
  expect_error(mb_embed(m.get(), nullptr, 2, nullptr, &e), MB_ERR_INVALID_ARGUMENT, -1, "texts is NULL");
  const char* with_null[] = {"a", nullptr};
  expect_error(mb_embed(m.get(), with_null, 2, nullptr, &e), MB_ERR_INVALID_ARGUMENT, 1, "texts[1] is NULL");
  mb_embed_params p = mb_embed_params_default();
  p.prompt_name = "no-such-prompt";
  expect_error(mb_embed(m.get(), t.data(), t.size(), &p, &e), MB_ERR_INVALID_ARGUMENT, -1, "no-such-prompt");
  p = mb_embed_params_default();
  p.dim = -1;
  expect_error(mb_embed(m.get(), t.data(), t.size(), &p, &e), MB_ERR_INVALID_ARGUMENT, -1, "dim");
  p.dim = 100000;
  expect_error(mb_embed(m.get(), t.data(), t.size(), &p, &e), MB_ERR_INVALID_ARGUMENT, -1, "dim");
  p = mb_embed_params_default();
  p.pooling = 7;
  expect_error(mb_embed(m.get(), t.data(), t.size(), &p, &e), MB_ERR_INVALID_ARGUMENT, -1, "pooling");
  p = mb_embed_params_default();
  p.batch_size = -2;
  expect_error(mb_embed(m.get(), t.data(), t.size(), &p, &e), MB_ERR_INVALID_ARGUMENT, -1, "batch_size");
  Model notok = load(M.notok);
  expect_error(mb_embed(notok.get(), t.data(), t.size(), nullptr, &e), MB_ERR_UNSUPPORTED, -1, "tokenizer.json");
  EXPECT_EQ(e, nullptr);
}

TEST(CApi, TextErrorsNameTheInput) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  const mb_model_info* info = nullptr;
  ASSERT_EQ(mb_model_get_info(m.get(), &info), MB_OK);
  std::string long_text;
  for (int64_t k = 0; k < info->max_length + 16; ++k) long_text += "word ";
  mb_embeddings* e = nullptr;
  {
    const char* t[] = {"fine", "also fine", ""};
    expect_error(mb_embed(m.get(), t, 3, nullptr, &e), MB_ERR_INPUT, 2);
  }
  {
    const char* t[] = {"fine", long_text.c_str()};
    expect_error(mb_embed(m.get(), t, 2, nullptr, &e), MB_ERR_TOO_LONG, 1);
  }
  {
    const char* t[] = {"bad \xc3\x28 utf-8", "fine"};
    expect_error(mb_embed(m.get(), t, 2, nullptr, &e), MB_ERR_TOKENIZER, 0);
  }
  EXPECT_EQ(e, nullptr);
  // A later success leaves the last error as it was (documented).
  Embeddings ok = embed(m.get(), {"fine"}, nullptr);
  EXPECT_EQ(mb_last_error_input_index(), 0);

  // truncate / lossy_utf8 accept them, with the C++ API's results.
  mb_model_options o = mb_model_options_default();
  o.truncate = 1;
  o.lossy_utf8 = 1;
  Model lenient = load(M.mc, &o);
  const std::vector<std::string> texts = {long_text, "bad \xc3\x28 utf-8"};
  Embeddings got = embed(lenient.get(), texts, nullptr);
  modernbert::ModelOptions cpp_opts;
  cpp_opts.truncate = true;
  cpp_opts.lossy_utf8 = true;
  EXPECT_EQ(data_of(got.get()), cpp_model(M.mc, cpp_opts).embed(texts).data);
}

TEST(CApi, ErrorsAreThreadLocal) {
  const auto& M = Models::get();
  mb_model* m = nullptr;
  mb_model_options o = mb_model_options_default();
  o.dtype = "here";
  ASSERT_EQ(mb_model_load(M.mc.c_str(), &o, &m), MB_ERR_INVALID_ARGUMENT);
  const std::string mine = mb_last_error_message();
  std::string theirs;
  std::thread([&] {
    EXPECT_STREQ(mb_last_error_message(), "");  // a fresh thread has no error
    EXPECT_EQ(mb_last_error_input_index(), -1);
    o.dtype = "there";
    EXPECT_EQ(mb_model_load(M.mc.c_str(), &o, &m), MB_ERR_INVALID_ARGUMENT);
    theirs = mb_last_error_message();
  }).join();
  EXPECT_EQ(mb_last_error_message(), mine);
  EXPECT_NE(mine.find("here"), std::string::npos);
  EXPECT_NE(theirs.find("there"), std::string::npos);
}

TEST(CApi, OneModelSharedByThreads) {
  // Four threads on one model, two embedding and two classifying at once: each gets what the C++
  // API gives alone (the calls are serialised inside).
  const auto& M = Models::get();
  Model m = load(M.mc);
  modernbert::Model ref = cpp_model(M.mc);
  const std::vector<float> want_e = ref.embed(kTexts).data;
  const auto want_c = ref.classify(kTexts);
  auto t = c_strs(kTexts);
  std::vector<std::vector<float>> got(4);
  std::vector<std::thread> th;
  for (size_t k = 0; k < got.size(); ++k) {
    th.emplace_back([&, k] {
      for (int rep = 0; rep < 3; ++rep) {
        if (k % 2 == 0) {
          got[k] = data_of(embed(m.get(), kTexts, nullptr).get());
        } else {
          mb_classifications* c = nullptr;
          EXPECT_EQ(mb_classify(m.get(), t.data(), nullptr, t.size(), &c), MB_OK) << mb_last_error_message();
          got[k].assign(mb_classifications_logits(c),
                        mb_classifications_logits(c) + mb_classifications_count(c) * mb_classifications_num_labels(c));
          mb_classifications_free(c);
        }
      }
    });
  }
  for (auto& x : th) x.join();
  std::vector<float> want_logits;
  for (const auto& c : want_c) want_logits.insert(want_logits.end(), c.logits.begin(), c.logits.end());
  for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k], k % 2 == 0 ? want_e : want_logits) << k;
}

TEST(CApi, NullObjectsAreSafe) {
  mb_model_free(nullptr);
  mb_encoding_free(nullptr);
  mb_embeddings_free(nullptr);
  mb_token_embeddings_free(nullptr);
  mb_classifications_free(nullptr);
  mb_token_labels_free(nullptr);
  mb_fill_mask_free(nullptr);
  mb_rerank_free(nullptr);
  EXPECT_EQ(mb_encoding_size(nullptr), 0u);
  EXPECT_EQ(mb_encoding_ids(nullptr), nullptr);
  EXPECT_EQ(mb_encoding_offsets(nullptr), nullptr);
  EXPECT_EQ(mb_encoding_special_mask(nullptr), nullptr);
  EXPECT_EQ(mb_embeddings_rows(nullptr), 0u);
  EXPECT_EQ(mb_embeddings_cols(nullptr), 0u);
  EXPECT_EQ(mb_embeddings_data(nullptr), nullptr);
  EXPECT_EQ(mb_token_embeddings_count(nullptr), 0u);
  EXPECT_EQ(mb_token_embeddings_rows(nullptr), 0u);
  EXPECT_EQ(mb_token_embeddings_cols(nullptr), 0u);
  EXPECT_EQ(mb_token_embeddings_data(nullptr), nullptr);
  EXPECT_EQ(mb_token_embeddings_offsets(nullptr), nullptr);
  EXPECT_EQ(mb_classifications_count(nullptr), 0u);
  EXPECT_EQ(mb_classifications_num_labels(nullptr), 0u);
  EXPECT_EQ(mb_classifications_logits(nullptr), nullptr);
  EXPECT_EQ(mb_classifications_scores(nullptr), nullptr);
  EXPECT_EQ(mb_classifications_labels(nullptr), nullptr);
  size_t count = 7;
  EXPECT_EQ(mb_classifications_multi_labels(nullptr, 0, &count), nullptr);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(mb_token_labels_count(nullptr), 0u);
  count = 7;
  EXPECT_EQ(mb_token_labels_get(nullptr, 0, &count), nullptr);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(mb_fill_mask_count(nullptr), 0u);
  count = 7;
  EXPECT_EQ(mb_fill_mask_get(nullptr, 0, &count), nullptr);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(mb_rerank_count(nullptr), 0u);
  EXPECT_EQ(mb_rerank_hits(nullptr), nullptr);
}

// The exception boundary itself (capi_internal.h): every exception a call may meet becomes its
// status, message and input index; nothing escapes.

TEST(CApi, ExceptionBoundaryMapsEveryException) {
  using modernbert::InputIssue;
  using modernbert::SequenceIssue;
  struct Case {
    std::function<void()> thrower;
    mb_status want;
    int64_t index;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[] { throw modernbert::InputError(InputIssue::kTooLong, 3, "600 tokens"); }, MB_ERR_TOO_LONG, 3, "600 tokens"},
      {[] { throw modernbert::InputError(InputIssue::kTokenizer, 1, "utf-8"); }, MB_ERR_TOKENIZER, 1, "utf-8"},
      {[] { throw modernbert::InputError(InputIssue::kEmpty, 0, "empty"); }, MB_ERR_INPUT, 0, "empty"},
      {[] { throw modernbert::InputError(InputIssue::kNoMask, 2, "no [MASK]"); }, MB_ERR_INPUT, 2, "no [MASK]"},
      {[] { throw modernbert::InputError(InputIssue::kIdOutOfRange, 4, "id"); }, MB_ERR_INPUT, 4, "id"},
      {[] { throw modernbert::InputError(InputIssue::kInvalid, 5, "bad"); }, MB_ERR_INPUT, 5, "bad"},
      {[] { throw modernbert::SequenceInputError(SequenceIssue::kTooLong, 6, "long"); }, MB_ERR_TOO_LONG, 6, "long"},
      {[] { throw modernbert::SequenceInputError(SequenceIssue::kTokenizer, 7, "tok"); }, MB_ERR_TOKENIZER, 7, "tok"},
      {[] { throw modernbert::SequenceInputError(SequenceIssue::kEmpty, 8, "none"); }, MB_ERR_INPUT, 8, "none"},
      {[] { throw modernbert::BatchItemError(9, "item"); }, MB_ERR_INPUT, 9, "text 9: item"},
      {[] { throw std::bad_alloc(); }, MB_ERR_OUT_OF_MEMORY, -1, "out of memory"},
      {[] { throw modernbert::Error("plain"); }, MB_ERR_LOAD, -1, "plain"},
      {[] { throw std::logic_error("bug"); }, MB_ERR_INTERNAL, -1, "internal error: bug"},
      {[] { throw 42; }, MB_ERR_INTERNAL, -1, "unknown exception"},
  };
  for (const Case& c : cases) {
    const mb_status s = modernbert::capi::guarded("fn", MB_ERR_LOAD, [&] {
      c.thrower();
      return MB_OK;
    });
    expect_error(s, c.want, c.index, c.needle);
    EXPECT_EQ(std::string(mb_last_error_message()).rfind("fn: ", 0), 0u) << mb_last_error_message();
  }
}
