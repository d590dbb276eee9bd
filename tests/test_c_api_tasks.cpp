// The C API (modernbert.h), part 2: per-token vectors, classification, token classification,
// fill-mask and rerank, each compared for exact equality with modernbert::Model's result for the
// same input, plus each function's argument and model errors. Part 1 is test_c_api.cpp.
#include "c_api_test_util.h"

using namespace capitest;

namespace {

const std::vector<std::string> kTexts = {"hello world", "The capital of France is Paris.", "a b c d e f g"};

}  // namespace

TEST(CApiTasks, EmbedTokensEqualsTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  modernbert::Model ref(M.mc);
  auto t = c_strs(kTexts);
  struct Case {
    const mb_token_params* c;
    modernbert::TokenParams cpp;
  };
  const mb_token_params query{1, nullptr}, prefixed{0, "passage: "};
  modernbert::TokenParams cpp_query, cpp_prefixed;
  cpp_query.is_query = true;
  cpp_prefixed.prefix = "passage: ";
  for (const Case& k : {Case{nullptr, {}}, Case{&query, cpp_query}, Case{&prefixed, cpp_prefixed}}) {
    mb_token_embeddings* e = nullptr;
    ASSERT_EQ(mb_embed_tokens(m.get(), t.data(), t.size(), k.c, &e), MB_OK) << mb_last_error_message();
    TokenEmbeddings owned(e);
    const modernbert::TokenVectors want = ref.embed_tokens(kTexts, k.cpp);
    ASSERT_EQ(mb_token_embeddings_count(e), kTexts.size());
    ASSERT_EQ(mb_token_embeddings_rows(e), static_cast<size_t>(want.vectors.rows));
    ASSERT_EQ(mb_token_embeddings_cols(e), static_cast<size_t>(want.vectors.cols));
    EXPECT_EQ(std::vector<int64_t>(mb_token_embeddings_offsets(e), mb_token_embeddings_offsets(e) + kTexts.size() + 1),
              want.offsets);
    EXPECT_EQ(
        std::vector<float>(mb_token_embeddings_data(e),
                           mb_token_embeddings_data(e) + mb_token_embeddings_rows(e) * mb_token_embeddings_cols(e)),
        want.vectors.data);
  }
  // No texts: count 0, offsets {0}.
  mb_token_embeddings* e = nullptr;
  ASSERT_EQ(mb_embed_tokens(m.get(), nullptr, 0, nullptr, &e), MB_OK);
  TokenEmbeddings owned(e);
  EXPECT_EQ(mb_token_embeddings_count(e), 0u);
  EXPECT_EQ(mb_token_embeddings_rows(e), 0u);
  EXPECT_EQ(mb_token_embeddings_offsets(e)[0], 0);
  // Errors.
  mb_token_embeddings* x = reinterpret_cast<mb_token_embeddings*>(0x1);
  expect_error(mb_embed_tokens(nullptr, t.data(), t.size(), nullptr, &x), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(x, nullptr);
  expect_error(mb_embed_tokens(m.get(), t.data(), t.size(), nullptr, nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out");
  expect_error(mb_embed_tokens(m.get(), nullptr, 1, nullptr, &x), MB_ERR_INVALID_ARGUMENT, -1, "texts is NULL");
  const char* empty[] = {"ok", ""};
  expect_error(mb_embed_tokens(m.get(), empty, 2, nullptr, &x), MB_ERR_INPUT, 1);
  Model notok = load(M.notok);
  expect_error(mb_embed_tokens(notok.get(), t.data(), t.size(), nullptr, &x), MB_ERR_UNSUPPORTED, -1, "tokenizer");
}

TEST(CApiTasks, HiddenStatesEqualTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  auto t = c_strs(kTexts);
  mb_token_embeddings* e = nullptr;
  ASSERT_EQ(mb_hidden_states(m.get(), t.data(), t.size(), &e), MB_OK) << mb_last_error_message();
  TokenEmbeddings owned(e);
  const modernbert::TokenVectors want = modernbert::Model(M.mc).hidden_states(kTexts);
  const mb_model_info* info = nullptr;
  ASSERT_EQ(mb_model_get_info(m.get(), &info), MB_OK);
  ASSERT_EQ(mb_token_embeddings_cols(e), static_cast<size_t>(info->hidden_size));
  ASSERT_EQ(mb_token_embeddings_rows(e), static_cast<size_t>(want.vectors.rows));
  EXPECT_EQ(std::vector<int64_t>(mb_token_embeddings_offsets(e), mb_token_embeddings_offsets(e) + kTexts.size() + 1),
            want.offsets);
  EXPECT_EQ(std::vector<float>(mb_token_embeddings_data(e),
                               mb_token_embeddings_data(e) + mb_token_embeddings_rows(e) * mb_token_embeddings_cols(e)),
            want.vectors.data);
  mb_token_embeddings* x = reinterpret_cast<mb_token_embeddings*>(0x1);
  expect_error(mb_hidden_states(nullptr, t.data(), t.size(), &x), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(x, nullptr);
  expect_error(mb_hidden_states(m.get(), t.data(), t.size(), nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out is NULL");
  const char* bad[] = {"ok", "fine", "\xff"};
  expect_error(mb_hidden_states(m.get(), bad, 3, &x), MB_ERR_TOKENIZER, 2);
  ASSERT_EQ(mb_hidden_states(m.get(), nullptr, 0, &x), MB_OK);
  TokenEmbeddings none(x);
  EXPECT_EQ(mb_token_embeddings_count(x), 0u);
}

TEST(CApiTasks, ClassifyEqualsTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  modernbert::Model ref(M.mc);
  auto t = c_strs(kTexts);
  const std::vector<std::string> pair_strs = {"a greeting", "geography", "letters"};
  auto pairs = c_strs(pair_strs);
  for (bool with_pairs : {false, true}) {
    mb_classifications* c = nullptr;
    ASSERT_EQ(mb_classify(m.get(), t.data(), with_pairs ? pairs.data() : nullptr, t.size(), &c), MB_OK)
        << mb_last_error_message();
    Classifications owned(c);
    const auto want = ref.classify(kTexts, with_pairs ? pair_strs : std::vector<std::string>{});
    ASSERT_EQ(mb_classifications_count(c), want.size());
    const size_t L = mb_classifications_num_labels(c);
    ASSERT_EQ(L, 3u);
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(std::vector<float>(mb_classifications_logits(c) + i * L, mb_classifications_logits(c) + (i + 1) * L),
                want[i].logits);
      EXPECT_EQ(std::vector<float>(mb_classifications_scores(c) + i * L, mb_classifications_scores(c) + (i + 1) * L),
                want[i].scores);
      EXPECT_EQ(mb_classifications_labels(c)[i], want[i].label);
      size_t n = 99;
      const int64_t* ml = mb_classifications_multi_labels(c, i, &n);
      ASSERT_EQ(n, want[i].labels.size());
      EXPECT_EQ(std::vector<int64_t>(ml, ml + n), want[i].labels);
    }
    size_t n = 99;
    EXPECT_EQ(mb_classifications_multi_labels(c, want.size(), &n), nullptr);  // out of range
    EXPECT_EQ(n, 0u);
  }
  // Pairs change the result (they reach the model).
  mb_classifications *a = nullptr, *b = nullptr;
  ASSERT_EQ(mb_classify(m.get(), t.data(), nullptr, 1, &a), MB_OK);
  ASSERT_EQ(mb_classify(m.get(), t.data(), pairs.data(), 1, &b), MB_OK);
  Classifications oa(a), ob(b);
  EXPECT_NE(mb_classifications_logits(a)[0], mb_classifications_logits(b)[0]);

  // Errors.
  mb_classifications* c = reinterpret_cast<mb_classifications*>(0x1);
  expect_error(mb_classify(nullptr, t.data(), nullptr, t.size(), &c), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(c, nullptr);
  expect_error(mb_classify(m.get(), t.data(), nullptr, t.size(), nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out is NULL");
  const char* half[] = {"x", nullptr};
  expect_error(mb_classify(m.get(), t.data(), half, 2, &c), MB_ERR_INVALID_ARGUMENT, 1, "pairs[1] is NULL");
  const char* empty[] = {"x", ""};
  expect_error(mb_classify(m.get(), empty, nullptr, 2, &c), MB_ERR_INPUT, 1);
  Model tok = load(M.tok);
  expect_error(mb_classify(tok.get(), t.data(), nullptr, t.size(), &c), MB_ERR_UNSUPPORTED, -1,
               "sequence-classification head");
  Model notok = load(M.notok);
  expect_error(mb_classify(notok.get(), t.data(), nullptr, t.size(), &c), MB_ERR_UNSUPPORTED, -1, "tokenizer");
  ASSERT_EQ(mb_classify(m.get(), nullptr, nullptr, 0, &c), MB_OK);
  Classifications none(c);
  EXPECT_EQ(mb_classifications_count(c), 0u);
}

TEST(CApiTasks, ClassifyTokensEqualsTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.tok);
  modernbert::Model ref(M.tok);
  auto t = c_strs(kTexts);
  mb_token_labels* r = nullptr;
  ASSERT_EQ(mb_classify_tokens(m.get(), t.data(), t.size(), &r), MB_OK) << mb_last_error_message();
  TokenLabels owned(r);
  const auto want = ref.classify_tokens(kTexts);
  ASSERT_EQ(mb_token_labels_count(r), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    size_t n = 0;
    const mb_token_label* got = mb_token_labels_get(r, i, &n);
    ASSERT_EQ(n, want[i].size());
    ASSERT_GT(n, 0u);
    for (size_t k = 0; k < n; ++k) {
      EXPECT_EQ(got[k].index, want[i][k].index);
      EXPECT_EQ(got[k].id, want[i][k].id);
      EXPECT_EQ(got[k].token, want[i][k].token);
      EXPECT_EQ(got[k].start, want[i][k].start);
      EXPECT_EQ(got[k].end, want[i][k].end);
      EXPECT_EQ(got[k].label, want[i][k].label);
      EXPECT_EQ(got[k].score, want[i][k].score);
    }
  }
  size_t n = 99;
  EXPECT_EQ(mb_token_labels_get(r, want.size(), &n), nullptr);
  EXPECT_EQ(n, 0u);
  // Errors.
  mb_token_labels* x = reinterpret_cast<mb_token_labels*>(0x1);
  expect_error(mb_classify_tokens(nullptr, t.data(), t.size(), &x), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(x, nullptr);
  expect_error(mb_classify_tokens(m.get(), t.data(), t.size(), nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out is NULL");
  expect_error(mb_classify_tokens(m.get(), nullptr, 3, &x), MB_ERR_INVALID_ARGUMENT, -1, "texts is NULL");
  const char* bad[] = {"ok", "\xed\xa0\x80 surrogate"};
  expect_error(mb_classify_tokens(m.get(), bad, 2, &x), MB_ERR_TOKENIZER, 1);
  Model mc = load(M.mc);
  expect_error(mb_classify_tokens(mc.get(), t.data(), t.size(), &x), MB_ERR_UNSUPPORTED, -1,
               "token-classification head");
  ASSERT_EQ(mb_classify_tokens(m.get(), nullptr, 0, &x), MB_OK);
  TokenLabels none(x);
  EXPECT_EQ(mb_token_labels_count(x), 0u);
}

TEST(CApiTasks, FillMaskEqualsTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  modernbert::Model ref(M.mc);
  const std::vector<std::string> texts = {"The capital of France is [MASK].", "[MASK] and [MASK] are colours."};
  auto t = c_strs(texts);
  for (int64_t top_k : {1, 5}) {
    mb_fill_mask_result* r = nullptr;
    ASSERT_EQ(mb_fill_mask(m.get(), t.data(), t.size(), top_k, &r), MB_OK) << mb_last_error_message();
    FillMask owned(r);
    const auto want = ref.fill_mask(texts, top_k);
    ASSERT_EQ(mb_fill_mask_count(r), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      size_t nm = 0;
      const mb_mask* masks = mb_fill_mask_get(r, i, &nm);
      ASSERT_EQ(nm, want[i].size());
      ASSERT_EQ(nm, i == 0 ? 1u : 2u);
      for (size_t k = 0; k < nm; ++k) {
        EXPECT_EQ(masks[k].position, want[i][k].position);
        ASSERT_EQ(masks[k].num_predictions, want[i][k].predictions.size());
        ASSERT_EQ(masks[k].num_predictions, static_cast<size_t>(top_k));
        for (size_t j = 0; j < masks[k].num_predictions; ++j) {
          const mb_mask_prediction& g = masks[k].predictions[j];
          const modernbert::MaskFill& w = want[i][k].predictions[j];
          EXPECT_EQ(g.token, w.token);
          EXPECT_EQ(g.token_str, w.token_str);
          EXPECT_EQ(g.score, w.score);
          EXPECT_EQ(g.sequence, w.sequence);
        }
      }
    }
    size_t nm = 99;
    EXPECT_EQ(mb_fill_mask_get(r, want.size(), &nm), nullptr);
    EXPECT_EQ(nm, 0u);
  }
  // Errors.
  mb_fill_mask_result* x = reinterpret_cast<mb_fill_mask_result*>(0x1);
  expect_error(mb_fill_mask(nullptr, t.data(), t.size(), 5, &x), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(x, nullptr);
  expect_error(mb_fill_mask(m.get(), t.data(), t.size(), 5, nullptr), MB_ERR_INVALID_ARGUMENT, -1, "out is NULL");
  expect_error(mb_fill_mask(m.get(), t.data(), t.size(), 0, &x), MB_ERR_INVALID_ARGUMENT, -1, "top_k");
  const char* no_mask[] = {"[MASK] here", "no mask here"};
  expect_error(mb_fill_mask(m.get(), no_mask, 2, 5, &x), MB_ERR_INPUT, 1);
  Model tok = load(M.tok);
  expect_error(mb_fill_mask(tok.get(), t.data(), t.size(), 5, &x), MB_ERR_UNSUPPORTED, -1,
               "masked-language-model head");
  ASSERT_EQ(mb_fill_mask(m.get(), nullptr, 0, 5, &x), MB_OK);
  FillMask none(x);
  EXPECT_EQ(mb_fill_mask_count(x), 0u);
}

TEST(CApiTasks, RerankEqualsTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.mc);
  modernbert::Model ref(M.mc);
  const std::string query = "Where is Paris?";
  auto t = c_strs(kTexts);
  struct Case {
    mb_rerank_params c;
    modernbert::RerankParams cpp;
  };
  using modernbert::RerankMode;
  auto rp = [](RerankMode mode, const char* qp, const char* dp, int64_t top_n) {
    modernbert::RerankParams p;
    p.mode = mode;
    p.query_prompt_name = qp;
    p.document_prompt_name = dp;
    p.top_n = top_n;
    return p;
  };
  const Case cases[] = {
      {{MB_RERANK_AUTO, nullptr, nullptr, 0}, {}},
      {{MB_RERANK_CROSS_ENCODER, nullptr, nullptr, 2}, rp(RerankMode::kCrossEncoder, "", "", 2)},
      {{MB_RERANK_COLBERT, nullptr, nullptr, 0}, rp(RerankMode::kColBERT, "", "", 0)},
      {{MB_RERANK_EMBEDDING, "query", "document", 0}, rp(RerankMode::kEmbedding, "query", "document", 0)},
  };
  for (const Case& k : cases) {
    mb_rerank_result* r = nullptr;
    ASSERT_EQ(mb_rerank(m.get(), query.c_str(), t.data(), t.size(), &k.c, &r), MB_OK) << mb_last_error_message();
    Rerank owned(r);
    const auto want = ref.rerank(query, kTexts, k.cpp);
    ASSERT_EQ(mb_rerank_count(r), want.size()) << k.c.mode;
    EXPECT_EQ(want.size(), k.c.top_n > 0 ? static_cast<size_t>(k.c.top_n) : kTexts.size());
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(mb_rerank_hits(r)[i].index, want[i].index) << k.c.mode;
      EXPECT_EQ(mb_rerank_hits(r)[i].score, want[i].score) << k.c.mode;
    }
  }
  // NULL params = auto, all.
  mb_rerank_result* r = nullptr;
  ASSERT_EQ(mb_rerank(m.get(), query.c_str(), t.data(), t.size(), nullptr, &r), MB_OK);
  Rerank owned(r);
  EXPECT_EQ(mb_rerank_count(r), kTexts.size());
  // Errors.
  mb_rerank_result* x = reinterpret_cast<mb_rerank_result*>(0x1);
  expect_error(mb_rerank(nullptr, "q", t.data(), t.size(), nullptr, &x), MB_ERR_INVALID_ARGUMENT, -1, "model is NULL");
  EXPECT_EQ(x, nullptr);
  expect_error(mb_rerank(m.get(), nullptr, t.data(), t.size(), nullptr, &x), MB_ERR_INVALID_ARGUMENT, -1,
               "query is NULL");
  expect_error(mb_rerank(m.get(), "q", t.data(), t.size(), nullptr, nullptr), MB_ERR_INVALID_ARGUMENT, -1,
               "out is NULL");
  expect_error(mb_rerank(m.get(), "q", nullptr, 2, nullptr, &x), MB_ERR_INVALID_ARGUMENT, -1, "texts is NULL");
  mb_rerank_params p{9, nullptr, nullptr, 0};
  expect_error(mb_rerank(m.get(), "q", t.data(), t.size(), &p, &x), MB_ERR_INVALID_ARGUMENT, -1, "mode");
  p = {MB_RERANK_AUTO, nullptr, nullptr, -1};
  expect_error(mb_rerank(m.get(), "q", t.data(), t.size(), &p, &x), MB_ERR_INVALID_ARGUMENT, -1, "top_n");
  p = {MB_RERANK_EMBEDDING, "no-such-prompt", nullptr, 0};
  expect_error(mb_rerank(m.get(), "q", t.data(), t.size(), &p, &x), MB_ERR_INVALID_ARGUMENT, -1, "no-such-prompt");
  const char* empty[] = {"x", ""};
  expect_error(mb_rerank(m.get(), "q", empty, 2, nullptr, &x), MB_ERR_INPUT, 1);
  expect_error(mb_rerank(m.get(), "", t.data(), t.size(), nullptr, &x), MB_ERR_INVALID_ARGUMENT, -1, "query");
  expect_error(mb_rerank(m.get(), "", nullptr, 0, nullptr, &x), MB_ERR_INVALID_ARGUMENT, -1, "the query is empty");
  std::string long_query;
  for (int k = 0; k < 10000; ++k) long_query += "word ";
  p = {MB_RERANK_EMBEDDING, nullptr, nullptr, 0};  // the query embedded alone: its error names it
  expect_error(mb_rerank(m.get(), long_query.c_str(), t.data(), t.size(), &p, &x), MB_ERR_INVALID_ARGUMENT, -1,
               "the query");
  p = {MB_RERANK_CROSS_ENCODER, nullptr, nullptr, 0};  // (query, text) pairs: the pair's index
  expect_error(mb_rerank(m.get(), long_query.c_str(), t.data(), t.size(), &p, &x), MB_ERR_TOO_LONG, 0);
  p = {MB_RERANK_CROSS_ENCODER, "query", nullptr, 0};
  expect_error(mb_rerank(m.get(), "q", t.data(), t.size(), &p, &x), MB_ERR_INVALID_ARGUMENT, -1, "prompt");
  Model tok = load(M.tok);
  p = {MB_RERANK_CROSS_ENCODER, nullptr, nullptr, 0};
  expect_error(mb_rerank(tok.get(), "q", t.data(), t.size(), &p, &x), MB_ERR_UNSUPPORTED, -1, "cross-encoder");
  ASSERT_EQ(mb_rerank(m.get(), "q", nullptr, 0, nullptr, &x), MB_OK);
  Rerank none(x);
  EXPECT_EQ(mb_rerank_count(x), 0u);
}

TEST(CApiTasks, SentenceTransformersColbertModelEqualsTheCppApi) {
  const auto& M = Models::get();
  Model m = load(M.st);
  modernbert::Model ref(M.st);
  const mb_model_info* info = nullptr;
  ASSERT_EQ(mb_model_get_info(m.get(), &info), MB_OK);
  EXPECT_TRUE(info->has_colbert && info->normalize);
  EXPECT_EQ(info->embedding_dim, 8);
  EXPECT_STREQ(info->default_prompt_name, "document");
  EXPECT_STREQ(info->pooling, "cls");
  auto t = c_strs(kTexts);
  // Sentence embeddings: the default prompt, Dense, Normalize.
  mb_embeddings* e = nullptr;
  ASSERT_EQ(mb_embed(m.get(), t.data(), t.size(), nullptr, &e), MB_OK) << mb_last_error_message();
  Embeddings oe(e);
  const modernbert::Matrix want = ref.embed(kTexts);
  ASSERT_EQ(mb_embeddings_cols(e), static_cast<size_t>(want.cols));
  EXPECT_EQ(std::vector<float>(mb_embeddings_data(e), mb_embeddings_data(e) + want.data.size()), want.data);
  // no_default_prompt: only the prefix, as modernbert::Model without its default prompt.
  mb_embed_params np = mb_embed_params_default();
  np.prefix = "query: ";
  np.no_default_prompt = 1;
  mb_embeddings* en = nullptr;
  ASSERT_EQ(mb_embed(m.get(), t.data(), t.size(), &np, &en), MB_OK) << mb_last_error_message();
  Embeddings oen(en);
  modernbert::EmbedParams ep;
  ep.prefix = "query: ";
  ep.use_default_prompt = false;
  const modernbert::Matrix want_np = ref.embed(kTexts, ep);
  EXPECT_EQ(std::vector<float>(mb_embeddings_data(en), mb_embeddings_data(en) + want_np.data.size()), want_np.data);
  EXPECT_NE(want_np.data, want.data);  // the default prompt did change the embeddings
  // ColBERT vectors of queries and documents.
  for (int is_query : {0, 1}) {
    const mb_token_params p{is_query, nullptr};
    mb_token_embeddings* v = nullptr;
    ASSERT_EQ(mb_embed_tokens(m.get(), t.data(), t.size(), &p, &v), MB_OK) << mb_last_error_message();
    TokenEmbeddings ov(v);
    modernbert::TokenParams tp;
    tp.is_query = is_query != 0;
    const modernbert::TokenVectors w = ref.embed_tokens(kTexts, tp);
    ASSERT_EQ(mb_token_embeddings_cols(v), 8u);
    EXPECT_EQ(std::vector<int64_t>(mb_token_embeddings_offsets(v), mb_token_embeddings_offsets(v) + kTexts.size() + 1),
              w.offsets);
    EXPECT_EQ(std::vector<float>(mb_token_embeddings_data(v), mb_token_embeddings_data(v) + w.vectors.data.size()),
              w.vectors.data);
  }
  // Rerank: auto = ColBERT MaxSim here (no classifier), and the embedding mode.
  for (int mode : {MB_RERANK_AUTO, MB_RERANK_EMBEDDING}) {
    const mb_rerank_params p{mode, nullptr, nullptr, 0};
    mb_rerank_result* r = nullptr;
    ASSERT_EQ(mb_rerank(m.get(), "Where is Paris?", t.data(), t.size(), &p, &r), MB_OK) << mb_last_error_message();
    Rerank o(r);
    modernbert::RerankParams rp;
    rp.mode = mode == MB_RERANK_AUTO ? modernbert::RerankMode::kAuto : modernbert::RerankMode::kEmbedding;
    const auto hits = ref.rerank("Where is Paris?", kTexts, rp);
    ASSERT_EQ(mb_rerank_count(r), hits.size());
    for (size_t i = 0; i < hits.size(); ++i) {
      EXPECT_EQ(mb_rerank_hits(r)[i].index, hits[i].index) << mode;
      EXPECT_EQ(mb_rerank_hits(r)[i].score, hits[i].score) << mode;
    }
  }
}

TEST(CApiTasks, ResultsOutliveTheModel) {
  const auto& M = Models::get();
  auto t = c_strs(kTexts);
  mb_model* m = nullptr;
  ASSERT_EQ(mb_model_load(M.mc.c_str(), nullptr, &m), MB_OK) << mb_last_error_message();
  mb_embeddings* e = nullptr;
  mb_fill_mask_result* f = nullptr;
  const char* masked[] = {"Paris is the [MASK] of France."};
  ASSERT_EQ(mb_embed(m, t.data(), t.size(), nullptr, &e), MB_OK);
  ASSERT_EQ(mb_fill_mask(m, masked, 1, 3, &f), MB_OK);
  mb_model_free(m);
  Embeddings oe(e);
  FillMask of(f);
  modernbert::Model ref(M.mc);
  EXPECT_EQ(
      std::vector<float>(mb_embeddings_data(e), mb_embeddings_data(e) + mb_embeddings_rows(e) * mb_embeddings_cols(e)),
      ref.embed(kTexts).data);
  size_t n = 0;
  const mb_mask* masks = mb_fill_mask_get(f, 0, &n);
  ASSERT_EQ(n, 1u);
  const auto want = ref.fill_mask({masked[0]}, 3);
  EXPECT_EQ(masks[0].predictions[2].sequence, want[0][0].predictions[2].sequence);
  EXPECT_EQ(masks[0].predictions[0].token_str, want[0][0].predictions[0].token_str);
}
